"""End-to-end: several virtual nodes shaped like virtual nodes v2 (issue 15).

Virtual nodes v2 (microsoft/virtualnodesOnAzureContainerInstances) run one virtual kubelet per StatefulSet replica
(nodes ``<release>-0``, ``<release>-1``, ...), each holding at most 200 pods, labelled ``type: virtual-kubelet`` and
``virtualization: virtualnode2`` and tainted ``virtual-kubelet.io/provider:NoSchedule`` (pods tolerate it with
``operator: Exists``). Here two real virtual-kubelet mock providers stand in for two replicas, each reporting room
for 110 pods while tideover's ``virtualNodes.maxPodsPerNode`` is 3 (200 scaled down, so the burst fills them): only
tideover's count, which includes the spills not yet bound per node, keeps a node from taking more (kube-scheduler's
own pod-count check would allow 110). Next to them run the real cluster-autoscaler and the simulated VMSS.
The legacy single virtual node that every other scenario uses is cordoned for this one. No ACI runs: the mock
provider only records the pods, and it injects no kube-proxy sidecar.

What it shows: the burst spills across both v2 nodes while the scale-up is pending, neither takes more than it
holds, tideover gates and annotates both, counts pods per node, and the rest of the burst goes to the new VMs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from kubernetes.client.exceptions import ApiException

from e2e.harness.autoscaled import POOL, VIRTUAL, AutoscaledStack, wait_until
from e2e.harness.observe import observing
from e2e.harness.workloads import Namespace, deployment
from e2e.vmss.simulator import GroupConfig
from extender.model.keys import CAPACITY_PENDING, GATE

pytestmark = [pytest.mark.e2e]

BOOT_SECONDS = 20.0
V2_NODES = ("vn2-0", "vn2-1")
PODS_PER_NODE = 3  # v2 holds 200 per node; scaled down so a 12-pod burst fills both
REPORTED_PODS = "110"  # what each node tells kube-scheduler: more than tideover lets it hold
V2_LABELS = {"type": "virtual-kubelet", "virtualization": "virtualnode2", "kubernetes.io/os": "linux"}
# The repository documents the key and effect (pods tolerate it with operator Exists); the value is not documented.
V2_TAINT = ("virtual-kubelet.io/provider", "azure", "NoSchedule")
V2_TOLERATION = {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}

AUTOSCALED_STACK = {
    "provisioning_seconds": BOOT_SECONDS,
    "tideover_overrides": {"controllers": {"returnToVm": {"enabled": False}},
                           "virtualNodes": {"maxPodsPerNode": PODS_PER_NODE}},
}


@pytest.fixture
def v2_nodes(stack: AutoscaledStack) -> Iterator[tuple[str, ...]]:
    """Two v2-shaped virtual nodes, the legacy one cordoned; all undone afterwards."""
    cluster = stack.cluster
    for name in V2_NODES:
        cluster.add_virtual_kubelet(name, labels=V2_LABELS, taint=V2_TAINT,
                                    capacity={"cpu": "1000", "memory": "4Ti", "pods": REPORTED_PODS})
    stack.core.patch_node(VIRTUAL, {"spec": {"unschedulable": True}})
    try:
        yield V2_NODES
    finally:
        stack.core.patch_node(VIRTUAL, {"spec": {"unschedulable": False}})
        for name in V2_NODES:
            cluster.stop_component(f"virtual-kubelet-{name}")
            with contextlib.suppress(ApiException):
                stack.core.delete_node(name)


def _annotation(stack: AutoscaledStack, node: str, key: str) -> str:
    return str(((stack.cluster.node(node).get("metadata") or {}).get("annotations") or {}).get(key, ""))


def _gated(stack: AutoscaledStack, node: str) -> bool:
    return any(t.get("key") == GATE for t in (stack.cluster.node(node).get("spec") or {}).get("taints") or [])


def test_a_burst_spills_across_several_v2_nodes_each_within_its_capacity(
    stack: AutoscaledStack, ns: Namespace, v2_nodes: tuple[str, ...]
) -> None:
    stack.start_pool(GroupConfig(name=POOL, min_size=1, max_size=6, initial=1, provisioning_delay=BOOT_SECONDS))
    wait_until(stack, lambda: all(_gated(stack, n) for n in v2_nodes), 30, "tideover to gate both v2 nodes")
    ns.create_deployment(deployment("web", 1, cpu="1", tolerations=[V2_TOLERATION]))
    wait_until(stack, lambda: len(ns.running_on()) == 1, 60, "the first replica to run")

    with observing(stack, ns.name) as obs:
        origin = time.time()
        obs.mark("Deployment web scaled 1 -> 12 (the VM has room for 2; two v2 nodes hold 3 pods each)")
        ns.scale("web", 12)
        wait_until(stack, lambda: not any(_gated(stack, n) for n in v2_nodes), 60, "the gate to open on both")
        assert all(_annotation(stack, n, CAPACITY_PENDING) == POOL for n in v2_nodes)

        def per_node() -> dict[str, int]:
            placed = ns.placements().values()
            return {n: sum(1 for node in placed if node == n) for n in v2_nodes}

        wait_until(stack, lambda: per_node() == dict.fromkeys(v2_nodes, PODS_PER_NODE), 45,
                   "both v2 nodes full (3 pods each)")
        ns.hold(lambda: all(count <= PODS_PER_NODE for count in per_node().values()), 4,
                "no v2 node may take more than maxPodsPerNode, though it reports room for 110")
        assert VIRTUAL not in ns.placements().values(), "a pod reached the cordoned legacy virtual node"
        for name in v2_nodes:
            assert stack.tideover.metric("tideover_pods_on_virtual_nodes", {"node": name}) == PODS_PER_NODE
        # tideover, not kube-scheduler (which sees room for 110), kept the rest of the burst off the full nodes.
        full = {"verb": "filter", "outcome": "withheld-virtual-nodes-full"}
        assert stack.tideover.metric("tideover_decisions_total", full) >= 1
        # The rest of the burst waits for, then runs on, the new VMs.
        def on_vms() -> int:  # ns.summary() counts only the legacy node as virtual
            return sum(1 for node in ns.placements().values() if node is not None and node not in v2_nodes)

        wait_until(stack, lambda: on_vms() == 6 and per_node() == dict.fromkeys(v2_nodes, PODS_PER_NODE),
                   BOOT_SECONDS + 60, "the other 6 pods on the VMs (2 on the first, 4 on the new ones)")
        wait_until(stack, lambda: all(_gated(stack, n) for n in v2_nodes), 60, "the gate to close on both")
        print(f"\n[e2e] per v2 node: {per_node()}; on VMs: {on_vms()}")
        obs.print_timeline(origin)
