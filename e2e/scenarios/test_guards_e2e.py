"""End-to-end: the virtual-node guards (issue 6) on the real scheduler, while VM capacity is pending.

Capacity is made pending the way a VMSS scale-up looks before its VM is Ready: a node of the pool is
registered but not Ready (a Node object that kwok does not manage, so no kubelet ever reports it Ready).
tideover counts that as capacity arriving, opens the gate, and its filter then decides pod by pod.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.harness.cluster import VIRTUAL_NODE_NAME, LocalCluster
from e2e.harness.tideover import TideoverProcess
from e2e.harness.workloads import SEED_TOLERATIONS, Namespace, add_vm_nodes, deployment, pod

pytestmark = [pytest.mark.e2e, pytest.mark.kind]

VIRTUAL = VIRTUAL_NODE_NAME


@pytest.fixture
def pending(stack: tuple[LocalCluster, TideoverProcess], ns: Namespace) -> Iterator[str]:
    """One full VM, and one more VM of nodepool1 registered but booting: the gate opens."""
    cluster, _ = stack
    (vm,) = add_vm_nodes(cluster, 1)
    booting = f"aks-nodepool1-{uuid.uuid4().hex[:6]}-booting"
    cluster.core_v1().create_node({
        "metadata": {"name": booting, "labels": {
            "kubernetes.azure.com/agentpool": "nodepool1", "kubernetes.azure.com/mode": "user",
            "kubernetes.io/os": "linux", "kubernetes.io/hostname": booting}},
        "spec": {"providerID": f"azure:///sim/{booting}"},
    })
    ns.create_deployment(deployment("filler", 2, cpu="1", tolerate_virtual=False))
    ns.wait(lambda: len(ns.running_on("app=filler")) == 2, 60, "the VM to fill")

    def gate_open() -> bool:
        annotations = cluster.node(VIRTUAL)["metadata"].get("annotations") or {}
        return annotations.get("tideover.io/capacity-pending") == "nodepool1"

    ns.wait(gate_open, 30, "tideover to see nodepool1's capacity pending")
    yield vm
    cluster.delete_node(booting)


def _reason_reported(namespace: Namespace, name: str, text: str) -> bool:
    return any(text in message for message in namespace.events("FailedScheduling", name))


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        pytest.param({"hostNetwork": True}, "ACI cannot run this pod: it sets hostNetwork: true", id="host-network"),
        pytest.param(
            {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                             "securityContext": {"privileged": True}, "resources": {"requests": {"cpu": "1"}}}]},
            "privileged", id="privileged"),
    ],
)
def test_pods_aci_cannot_run_stay_off_with_their_reason(
    stack: tuple[LocalCluster, TideoverProcess], ns: Namespace, pending: str,
    extra: dict[str, Any], reason: str,
) -> None:
    ns.create_pod(pod("incompatible", cpu="1", **extra))
    ns.create_pod(pod("control", cpu="1"))
    # The control pod shows the gate is open and a compatible pod spills; the incompatible one may not.
    ns.wait(lambda: ns.placements().get("control") == VIRTUAL, 60, "the compatible control pod to spill")
    ns.wait(lambda: _reason_reported(ns, "incompatible", reason), 30, "the guard's reason in FailedScheduling")
    assert ns.placements()["incompatible"] is None


def test_pvc_pod_stays_off(stack: tuple[LocalCluster, TideoverProcess], ns: Namespace, pending: str) -> None:
    cluster, _ = stack
    core = cluster.core_v1()
    pv = f"pv-{ns.name}"
    core.create_persistent_volume({
        "metadata": {"name": pv},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/x"},
                 "storageClassName": "", "claimRef": {"namespace": ns.name, "name": "data"}},
    })
    core.create_namespaced_persistent_volume_claim(ns.name, {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": "", "volumeName": pv},
    })
    try:
        volume = {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}
        ns.create_pod(pod("stateful", cpu="1", volumes=[volume]))
        ns.wait(lambda: _reason_reported(ns, "stateful", "persistentVolumeClaim"), 60,
                "the PVC guard's reason in FailedScheduling")
        ns.hold(lambda: ns.placements()["stateful"] is None, 5, "the PVC pod must stay off the virtual node")
    finally:
        core.delete_persistent_volume(pv)


def test_daemonset_pod_for_the_virtual_node_stays_pending(
    stack: tuple[LocalCluster, TideoverProcess], ns: Namespace, pending: str,
) -> None:
    """A real DaemonSet that tolerates the virtual node: its pod pinned to the virtual node stays Pending."""
    labels = {"app": "agent"}
    ns.apps.create_namespaced_daemon_set(ns.name, {
        "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
            "tolerations": SEED_TOLERATIONS, "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "agent", "image": "registry.k8s.io/pause:3.10",
                            "resources": {"requests": {"cpu": "10m"}}}]}}},
    })

    def virtual_agent() -> str | None:
        for p in ns.pods("app=agent"):
            terms = p["spec"].get("affinity", {}).get("nodeAffinity", {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", [])
            if any(VIRTUAL in f.get("values", []) for t in terms for f in t.get("matchFields", [])):
                return str(p["metadata"]["name"])
        return None

    ns.wait(lambda: virtual_agent() is not None, 60, "the DaemonSet's pod for the virtual node")
    name = virtual_agent()
    assert name is not None
    ns.wait(lambda: _reason_reported(ns, name, "DaemonSet pods never run on virtual nodes"), 60,
            "the DaemonSet guard's reason in FailedScheduling")
    assert ns.placements()[name] is None


def test_workload_capped_at_25_percent_spills_at_most_a_quarter(
    stack: tuple[LocalCluster, TideoverProcess], ns: Namespace, pending: str,
) -> None:
    ns.create_deployment(deployment("capped", 8, cpu="1", annotations={"tideover.io/max-virtual-percent": "25"}))
    # The VM is full: all 8 need the virtual node; 25% of 8 is 2.
    ns.wait(lambda: ns.summary("app=capped")["virtual"] == 2, 60, "two pods on the virtual node")
    ns.hold(lambda: ns.summary("app=capped")["virtual"] <= 2, 10, "at most a quarter on the virtual node")
    assert ns.summary("app=capped") == {"virtual": 2, "pending": 6}
    waiting = [n for n, node in ns.placements("app=capped").items() if node is None]
    ns.wait(lambda: _reason_reported(ns, waiting[0], "tideover.io/max-virtual-percent=25 allows 2 of 8"), 30,
            "the cap's reason in FailedScheduling")


def _forged_pod(namespace: str, index: int, owner_uid: str) -> dict[str, Any]:
    """A pod nobody created, claiming to belong to ``owner_uid``'s ReplicaSet, that would spill."""
    forged = pod(f"forged-{index}", cpu="1", tolerate_gate=True)
    forged["metadata"].update({
        "namespace": namespace, "uid": str(uuid.uuid4()),
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "capped", "uid": owner_uid,
                             "controller": True}],
    })
    return forged


def test_forged_pods_cannot_fill_the_ledger(
    stack: tuple[LocalCluster, TideoverProcess], ns: Namespace, pending: str,
) -> None:
    """Issue 16 (2): /filter requests for pods nobody created, claiming the workload's ReplicaSet, while capacity is
    pending: tideover answers each (after server.podWatchGraceSeconds) and records none, so the workload's cap still
    lets its real pods spill (had the forgeries counted, a 25% cap would let none of them)."""
    _, tideover = stack
    ns.create_deployment(deployment("capped", 0, cpu="1", annotations={"tideover.io/max-virtual-percent": "25"}))
    ns.wait(lambda: bool(ns.apps.list_namespaced_replica_set(ns.name).items), 30, "the ReplicaSet")
    owner_uid = ns.apps.list_namespaced_replica_set(ns.name).items[0].metadata.uid
    ledger = tideover.metric("tideover_spill_ledger_entries")
    for index in range(10):
        status, reply = tideover.post("/filter", {"Pod": _forged_pod(ns.name, index, owner_uid), "Nodes": None,
                                                  "NodeNames": [VIRTUAL]})
        assert status == 200, reply
    assert tideover.metric("tideover_spill_ledger_entries") == ledger
    ns.scale("capped", 8)
    ns.wait(lambda: ns.summary("app=capped")["virtual"] == 2, 60, "two real pods on the virtual node")
