"""Workloads and observations for the end-to-end scenarios, through the real API."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from e2e.harness.cluster import VIRTUAL_NODE_NAME, LocalCluster

IMAGE = "registry.k8s.io/pause:3.10"

# Seed 001: tolerate the virtual node's taint, prefer nodes that are not virtual.
SEED_TOLERATIONS = [
    {"key": "virtual-kubelet.io/provider", "value": "azure", "operator": "Equal", "effect": "NoSchedule"}
]
# Tolerating tideover's gate (tideover.io/spill-window=closed:NoSchedule, on the virtual node while no
# scale-up is pending) is how a workload that must run now reaches the virtual node anyway.
GATE_TOLERATION = {"key": "tideover.io/spill-window", "operator": "Exists", "effect": "NoSchedule"}
SEED_AFFINITY = {
    "nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 1,
                "preference": {
                    "matchExpressions": [{"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}]
                },
            }
        ]
    }
}


def pod_spec(
    *, cpu: str = "1", tolerate_virtual: bool = True, tolerate_gate: bool = False, image: str = IMAGE, **extra: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": "app", "image": image, "resources": {"requests": {"cpu": cpu, "memory": "256Mi"}}}],
        "terminationGracePeriodSeconds": 0,
        "affinity": SEED_AFFINITY,
    }
    if tolerate_virtual:
        spec["tolerations"] = [*SEED_TOLERATIONS, *([GATE_TOLERATION] if tolerate_gate else [])]
    spec.update(extra)
    return spec


def deployment(
    name: str, replicas: int, *, annotations: Mapping[str, str] | None = None, **spec_args: Any
) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": dict(annotations or {})},
                "spec": pod_spec(**spec_args),
            },
        },
    }


def pod(name: str, *, annotations: Mapping[str, str] | None = None, **spec_args: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": dict(annotations or {})},
        "spec": pod_spec(**spec_args),
    }


class Namespace:
    """A test's own namespace, with the observations the scenarios need."""

    def __init__(self, cluster: LocalCluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.core = cluster.core_v1()
        self.apps = k8s.AppsV1Api(cluster.api_client())

    def create_deployment(self, manifest: dict[str, Any]) -> None:
        self.apps.create_namespaced_deployment(self.name, manifest)

    def scale(self, name: str, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale(name, self.name, {"spec": {"replicas": replicas}})

    def create_pod(self, manifest: dict[str, Any]) -> None:
        self.core.create_namespaced_pod(self.name, manifest)

    def pods(self, selector: str | None = None) -> list[dict[str, Any]]:
        listed = self.core.list_namespaced_pod(self.name, label_selector=selector)
        return [self.cluster.to_dict(p) for p in listed.items if p.metadata.deletion_timestamp is None]

    def placements(self, selector: str | None = None) -> dict[str, str | None]:
        """pod name -> node name (None while unscheduled)."""
        return {p["metadata"]["name"]: p["spec"].get("nodeName") for p in self.pods(selector)}

    def summary(self, selector: str | None = None) -> Counter[str]:
        """How many pods are on VMs, on the virtual node, or pending."""
        counts: Counter[str] = Counter()
        for node in self.placements(selector).values():
            counts["pending" if node is None else "virtual" if node == VIRTUAL_NODE_NAME else "vm"] += 1
        return counts

    def running_on(self, selector: str | None = None) -> dict[str, str]:
        return {
            p["metadata"]["name"]: p["spec"]["nodeName"]
            for p in self.pods(selector)
            if p.get("status", {}).get("phase") == "Running" and p["spec"].get("nodeName")
        }

    def events(self, reason: str, pod_name: str | None = None) -> list[str]:
        selector = f"reason={reason}" + (f",involvedObject.name={pod_name}" if pod_name else "")
        listed = self.core.list_namespaced_event(self.name, field_selector=selector)
        return [e.message or "" for e in listed.items]

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        """Wait until ``predicate``; returns the seconds it took."""
        start = time.monotonic()
        self.cluster.wait_for(predicate, timeout, what)
        return time.monotonic() - start

    def hold(self, predicate: Callable[[], bool], seconds: float, what: str) -> None:
        """Assert ``predicate`` stays true for ``seconds`` (for "never reaches the virtual node")."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert predicate(), what
            time.sleep(0.5)

    def delete(self) -> None:
        with contextlib.suppress(ApiException):
            self.core.delete_collection_namespaced_pod(self.name, grace_period_seconds=0)
        with contextlib.suppress(ApiException):
            self.apps.delete_collection_namespaced_deployment(self.name)
        with contextlib.suppress(ApiException):
            self.core.delete_namespace(self.name)


def add_vm_nodes(cluster: LocalCluster, count: int, pool: str = "nodepool1", **kwargs: object) -> list[str]:
    """Add ``count`` kwok VM nodes of ``pool`` (AKS-style names); their names."""
    names = [f"aks-{pool}-{uuid.uuid4().hex[:6]}-vmss{i:06d}" for i in range(count)]
    for name in names:
        cluster.add_vm_node(name, pool=pool, **kwargs)  # type: ignore[arg-type]
    return names
