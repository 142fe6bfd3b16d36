"""Smoke test of the local cluster: real control plane, kwok VM nodes and the virtual node."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from e2e.cluster import VIRTUAL_NODE_NAME, VIRTUAL_NODE_TAINT, LocalCluster

pytestmark = pytest.mark.e2e


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "smoke"}},
        "spec": {
            "containers": [
                {"name": "main", "image": "registry.k8s.io/pause:3.10", "resources": {"requests": {"cpu": "100m"}}}
            ],
            **spec,
        },
    }


def test_cluster_started(cluster: LocalCluster) -> None:
    assert cluster.started_seconds is not None
    print(f"\n[e2e] cluster start took {cluster.started_seconds:.1f}s")
    assert cluster.kubeconfig.is_file()
    assert cluster.core_v1().read_namespace("default").metadata.name == "default"


def test_kwok_vm_nodes_become_ready(cluster: LocalCluster) -> None:
    image = {"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 300_000}
    t0 = time.monotonic()
    for i in range(2):
        node = cluster.add_vm_node(f"aks-nodepool1-smoke-{i}", images=[image] if i == 0 else None)
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.azure.com/agentpool"] == "nodepool1"
        assert labels["type"] != "virtual-kubelet"
        assert node["spec"]["providerID"].startswith("azure:///subscriptions/sim/")
        assert node["status"]["allocatable"]["cpu"] == "2"
    print(f"\n[e2e] 2 kwok nodes Ready in {time.monotonic() - t0:.1f}s")
    node0 = cluster.core_v1().read_node("aks-nodepool1-smoke-0")
    assert [n for i in node0.status.images or [] for n in i.names] == ["registry.k8s.io/pause:3.10"]


def test_virtual_node_ready_with_aks_labels_and_taint(cluster: LocalCluster) -> None:
    node = cluster.core_v1().read_node(VIRTUAL_NODE_NAME)
    labels = node.metadata.labels
    assert labels["type"] == "virtual-kubelet"
    assert labels["kubernetes.io/role"] == "agent"
    assert labels["kubernetes.io/os"] == "linux"
    taints = {(t.key, t.value, t.effect) for t in node.spec.taints or []}
    assert VIRTUAL_NODE_TAINT in taints
    assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
    assert node.status.allocatable["cpu"] == "1k"
    # kwok must not have taken the virtual node over.
    assert "kwok.x-k8s.io/node" not in (node.metadata.annotations or {})


def test_pod_lands_on_kwok_node(cluster: LocalCluster) -> None:
    v1 = cluster.core_v1()
    if not any(n.metadata.name.startswith("aks-nodepool1-smoke-") for n in v1.list_node().items):
        cluster.add_vm_node("aks-nodepool1-smoke-0")
    name = f"vm-pod-{uuid.uuid4().hex[:6]}"
    v1.create_namespaced_pod("default", _pod(name))
    pod = cluster.wait_pod_phase(name, timeout=60)
    assert pod.spec.node_name.startswith("aks-nodepool1-smoke-")
    v1.delete_namespaced_pod(name, "default", grace_period_seconds=0)


def test_pod_runs_on_virtual_node(cluster: LocalCluster) -> None:
    v1 = cluster.core_v1()
    key, value, effect = VIRTUAL_NODE_TAINT
    name = f"aci-pod-{uuid.uuid4().hex[:6]}"
    v1.create_namespaced_pod(
        "default",
        _pod(
            name,
            nodeSelector={"type": "virtual-kubelet"},
            tolerations=[{"key": key, "operator": "Equal", "value": value, "effect": effect}],
        ),
    )
    pod = cluster.wait_pod_phase(name, timeout=60)
    assert pod.spec.node_name == VIRTUAL_NODE_NAME
    v1.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    # The virtual node keeps the labels patched onto it after virtual-kubelet's own status updates.
    assert v1.read_node(VIRTUAL_NODE_NAME).metadata.labels["kubernetes.io/os"] == "linux"
