"""Builders for Kubernetes objects in their JSON shape, and snapshots made from them, for tests and benchmarks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from extender.model.autoscaler_status import AutoscalerStatusRead, parse_autoscaler_status
from extender.model.config import TideoverConfig
from extender.model.objects import node_facts
from extender.model.snapshot import ClusterSnapshot, PodPlacement, build_snapshot

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
POOL_LABEL = "kubernetes.azure.com/agentpool"
VIRTUAL_NODE = "virtual-node-aci-linux"
VIRTUAL_TAINT = {"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}
# Seed 001's workload: tolerate the virtual node, prefer VMs.
SEED_TOLERATION = {"key": "virtual-kubelet.io/provider", "value": "azure", "operator": "Equal", "effect": "NoSchedule"}
SEED_AFFINITY = {
    "nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [
                {"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}
            ]}}
        ]
    }
}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def vm_node(
    name: str,
    pool: str = "nodepool1",
    *,
    cpu: str = "2",
    memory: str = "8Gi",
    pods: str = "110",
    ready: bool = True,
    created: datetime | None = None,
    images: Sequence[tuple[str, int]] = (),
    labels: Mapping[str, str] | None = None,
    taints: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    created = created or NOW - timedelta(days=3)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "creationTimestamp": iso(created),
            "labels": {
                POOL_LABEL: pool,
                "kubernetes.azure.com/mode": "user",
                "node.kubernetes.io/instance-type": "Standard_D2s_v5",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                **(labels or {}),
            },
        },
        "spec": {"providerID": f"azure:///vmss/{pool}/{name}", "taints": list(taints)},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
            "capacity": {"cpu": cpu, "memory": memory, "pods": pods},
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": iso(created)}
            ],
            "images": [{"names": [image], "sizeBytes": size} for image, size in images],
        },
    }


def virtual_node(name: str = VIRTUAL_NODE, taints: Sequence[Mapping[str, str]] = (VIRTUAL_TAINT,)) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "creationTimestamp": iso(NOW - timedelta(days=30)),
            "labels": {
                "type": "virtual-kubelet",
                "kubernetes.io/role": "agent",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
            },
        },
        "spec": {"taints": [dict(taint) for taint in taints]},
        "status": {
            "allocatable": {"cpu": "1000", "memory": "4Ti", "pods": "1000"},
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": iso(NOW - timedelta(days=30))}],
        },
    }


def pod(
    name: str = "web-1",
    namespace: str = "default",
    *,
    cpu: str | None = "500m",
    memory: str | None = "512Mi",
    image: str = "nginx:1.27",
    annotations: Mapping[str, str] | None = None,
    tolerate_virtual: bool = True,
    node_selector: Mapping[str, str] | None = None,
    affinity: Mapping[str, Any] | None = None,
    node_name: str | None = None,
    uid: str | None = None,
    owner: tuple[str, str] | None = ("ReplicaSet", "web-5d8f"),
) -> dict[str, Any]:
    requests = {k: v for k, v in {"cpu": cpu, "memory": memory}.items() if v is not None}
    spec: dict[str, Any] = {
        "containers": [{"name": "app", "image": image, "resources": {"requests": requests}}],
        "tolerations": [dict(SEED_TOLERATION)] if tolerate_virtual else [],
        "affinity": dict(affinity) if affinity is not None else dict(SEED_AFFINITY),
    }
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if node_name:
        spec["nodeName"] = node_name
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid or f"uid-{namespace}-{name}",
        "annotations": dict(annotations or {}),
        "creationTimestamp": iso(NOW),
    }
    if owner:
        metadata["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1], "uid": f"uid-{owner[1]}", "controller": True}
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": {"phase": "Pending"}}


def status_yaml(
    scale_up: str = "NoActivity",
    *,
    group: str = "nodepool1",
    registered: int = 2,
    ready: int | None = None,
    not_started: int = 0,
    target: int | None = None,
    max_size: int = 10,
    since: datetime | None = None,
    backoff_code: str = "",
) -> str:
    """A cluster-autoscaler status in the YAML format (CA 1.30+)."""
    ready = registered if ready is None else ready
    target = registered if target is None else target
    since = since or NOW - timedelta(seconds=30)
    backoff = (
        f"\n      backoffInfo:\n        errorCode: {backoff_code}\n        errorMessage: quota exceeded"
        if backoff_code else ""
    )
    return f"""time: {iso(NOW)}
autoscalerStatus: Running
clusterWide:
  health:
    status: Healthy
    nodeCounts:
      registered:
        total: {registered + 1}
        ready: {ready + 1}
        notStarted: {not_started}
      longUnregistered: 0
      unregistered: 0
    lastProbeTime: "{iso(NOW)}"
    lastTransitionTime: "{iso(NOW - timedelta(hours=1))}"
  scaleUp:
    status: {"InProgress" if scale_up == "InProgress" else "NoActivity"}
    lastProbeTime: "{iso(NOW)}"
    lastTransitionTime: "{iso(since)}"
  scaleDown:
    status: NoCandidates
    lastProbeTime: "{iso(NOW)}"
    lastTransitionTime: "{iso(NOW - timedelta(hours=1))}"
nodeGroups:
  - name: {group}
    health:
      status: Healthy
      nodeCounts:
        registered:
          total: {registered}
          ready: {ready}
          notStarted: {not_started}
        longUnregistered: 0
        unregistered: 0
      cloudProviderTarget: {target}
      minSize: 1
      maxSize: {max_size}
      lastProbeTime: "{iso(NOW)}"
      lastTransitionTime: "{iso(NOW - timedelta(hours=1))}"
    scaleUp:
      status: {scale_up}{backoff}
      lastProbeTime: "{iso(NOW)}"
      lastTransitionTime: "{iso(since)}"
    scaleDown:
      status: NoCandidates
      lastProbeTime: "{iso(NOW)}"
      lastTransitionTime: "{iso(NOW - timedelta(hours=1))}"
"""


def status_config_map(text: str, updated: datetime = NOW) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "cluster-autoscaler-status",
            "namespace": "kube-system",
            "annotations": {
                "cluster-autoscaler.kubernetes.io/last-updated": updated.strftime("%Y-%m-%d %H:%M:%S.%f000 +0000 UTC")
            },
        },
        "data": {"status": text},
    }


def snapshot(
    nodes: Sequence[Mapping[str, Any]],
    status: str | None = None,
    *,
    config: TideoverConfig | None = None,
    now: datetime = NOW,
    pods: Sequence[PodPlacement] = (),
    status_updated_at: datetime | None = NOW,
) -> ClusterSnapshot:
    config = config or TideoverConfig()
    parsed = parse_autoscaler_status(status) if status is not None else None
    return build_snapshot(
        config=config,
        nodes=[node_facts(node) for node in nodes],
        pods=pods,
        autoscaler=AutoscalerStatusRead(parsed, status_updated_at if parsed is not None else None),
        now=now,
    )


def cluster(vm_count: int, *, pool: str = "nodepool1", with_virtual: bool = True) -> list[dict[str, Any]]:
    nodes = [vm_node(f"aks-{pool}-{i:06d}", pool) for i in range(vm_count)]
    if with_virtual:
        nodes.append(virtual_node())
    return nodes


def unschedulable(pod_obj: dict[str, Any]) -> dict[str, Any]:
    """The pod as kube-scheduler leaves it after an attempt that found no node."""
    status = {"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 Insufficient cpu.",
        "lastTransitionTime": iso(NOW),
    }]}
    return {**pod_obj, "status": status}


def spilled(name: str, *, owner: str | None = "rs-a", kind: str | None = "ReplicaSet", age: float = 600,
            cpu: float = 1.0, node: str | None = VIRTUAL_NODE, phase: str = "Running", terminating: bool = False,
            scheduling: dict[str, Any] | None = None) -> PodPlacement:
    """A pod on the virtual node as the cluster view keeps it: a ReplicaSet's, running for 10 minutes."""
    return PodPlacement(
        namespace="default", name=name, uid=f"uid-{name}", node_name=node, phase=phase, owner_uid=owner,
        cpu=cpu, memory=2**30, owner_kind=kind, created=NOW - timedelta(seconds=age), terminating=terminating,
        scheduling=scheduling or {},
    )
