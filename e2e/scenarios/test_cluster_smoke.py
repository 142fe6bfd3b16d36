"""Smoke test of the local cluster: real control plane, kwok VM nodes and the virtual node.

Run: ``TIDEOVER_E2E=1 .venv/bin/python -m pytest e2e -s``.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from e2e.harness.cluster import VIRTUAL_NODE_NAME, VIRTUAL_NODE_TAINT, LocalCluster

pytestmark = pytest.mark.e2e

PAUSE = "registry.k8s.io/pause:3.10"


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": PAUSE, "resources": {"requests": {"cpu": "100m"}}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "smoke"}},
        "spec": {"containers": [container], **spec},
    }


def _ready(node: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))


def test_cluster_started(cluster: LocalCluster) -> None:
    assert cluster.started_seconds is not None
    print(f"\n[e2e] cluster start (warm binaries) took {cluster.started_seconds:.1f}s")
    assert cluster.kubeconfig.is_file()
    assert cluster.core_v1().read_namespaced_service_account("default", "default") is not None


def test_kwok_vm_nodes_become_ready(cluster: LocalCluster) -> None:
    image = {"names": [PAUSE], "sizeBytes": 300_000}
    t0 = time.monotonic()
    for i in range(2):
        node = cluster.add_vm_node(f"aks-nodepool1-smoke-{i}", images=[image] if i == 0 else None)
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.azure.com/agentpool"] == "nodepool1"
        assert labels["kubernetes.azure.com/mode"] == "user"
        assert labels.get("type") != "virtual-kubelet"
        assert node["spec"]["providerID"].startswith("azure:///subscriptions/sim/")
        assert node["status"]["allocatable"]["cpu"] == "2"
        assert _ready(node)
    print(f"\n[e2e] 2 kwok nodes Ready in {time.monotonic() - t0:.1f}s")
    images = cluster.node("aks-nodepool1-smoke-0")["status"].get("images", [])
    assert [n for i in images for n in i["names"]] == [PAUSE]


def test_virtual_node_ready_with_aks_labels_and_taint(cluster: LocalCluster) -> None:
    node = cluster.node(VIRTUAL_NODE_NAME)
    labels = node["metadata"]["labels"]
    assert labels["type"] == "virtual-kubelet"
    assert labels["kubernetes.io/role"] == "agent"
    assert labels["kubernetes.io/os"] == "linux"
    taints = {(t["key"], t.get("value"), t["effect"]) for t in node["spec"].get("taints", [])}
    assert VIRTUAL_NODE_TAINT in taints
    assert _ready(node)
    assert node["status"]["allocatable"]["pods"] == "1k"
    # kwok must not have taken the virtual node over.
    assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})


def test_pod_lands_on_kwok_node(cluster: LocalCluster) -> None:
    if not any(n.startswith("aks-nodepool1-smoke-") for n in _node_names(cluster)):
        cluster.add_vm_node("aks-nodepool1-smoke-0")
    name = f"vm-pod-{uuid.uuid4().hex[:6]}"
    cluster.create_pod(_pod(name))
    pod = cluster.wait_pod_phase(name, timeout=60)
    assert pod["spec"]["nodeName"].startswith("aks-nodepool1-smoke-")
    cluster.delete_pod(name)


def test_pod_runs_on_virtual_node(cluster: LocalCluster) -> None:
    key, value, effect = VIRTUAL_NODE_TAINT
    name = f"aci-pod-{uuid.uuid4().hex[:6]}"
    toleration = {"key": key, "operator": "Equal", "value": value, "effect": effect}
    cluster.create_pod(_pod(name, nodeSelector={"type": "virtual-kubelet"}, tolerations=[toleration]))
    pod = cluster.wait_pod_phase(name, timeout=60)
    assert pod["spec"]["nodeName"] == VIRTUAL_NODE_NAME
    cluster.delete_pod(name)
    # The labels patched onto the virtual node survive virtual-kubelet's own node updates.
    assert cluster.node(VIRTUAL_NODE_NAME)["metadata"]["labels"]["kubernetes.io/os"] == "linux"


def _node_names(cluster: LocalCluster) -> list[str]:
    return [str(n.metadata.name) for n in cluster.core_v1().list_node().items if n.metadata]


def test_restart_scheduler_with_caller_config(cluster: LocalCluster, tmp_path: Path) -> None:
    config = tmp_path / "scheduler.yaml"
    config.write_text(
        "apiVersion: kubescheduler.config.k8s.io/v1\n"
        "kind: KubeSchedulerConfiguration\n"
        "profiles:\n"
        "- schedulerName: default-scheduler\n"
        "- schedulerName: smoke-scheduler\n"
    )
    before = config.read_text()
    t0 = time.monotonic()
    cluster.restart_scheduler(config)
    print(f"\n[e2e] scheduler restarted in {time.monotonic() - t0:.1f}s")
    assert config.read_text() == before  # the caller's file is not modified
    assert str(cluster.scheduler_config_path) != str(config)
    if not any(n.startswith("aks-nodepool1-smoke-") for n in _node_names(cluster)):
        cluster.add_vm_node("aks-nodepool1-smoke-0")
    name = f"profile-pod-{uuid.uuid4().hex[:6]}"
    cluster.create_pod(_pod(name, schedulerName="smoke-scheduler"))
    pod = cluster.wait_pod_phase(name, timeout=60)
    assert pod["spec"]["nodeName"].startswith("aks-nodepool1-smoke-")
    cluster.delete_pod(name)
    cluster.restart_scheduler(None)  # back to the previous (caller's) config: still valid
    assert cluster.is_running("kube-scheduler")
