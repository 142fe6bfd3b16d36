"""End-to-end: tideover with Karpenter's capacity signal (issue 15; AKS Node Auto Provisioning).

Real kube-apiserver, kube-scheduler (calling tideover), kwok and the virtual-kubelet mock provider, with the real
``karpenter.sh`` CRDs of the sigs.k8s.io/karpenter module pinned in e2e/versions.toml. tideover runs with
``autoscaler.capacitySignal: karpenter`` and ``vmPools.poolLabel: karpenter.sh/nodepool``, and no
cluster-autoscaler status exists. **No Karpenter controller and no cloud provider run:** the test stands in for both
(e2e/harness/karpenter.py ``StandIn``): it creates the NodeClaim Karpenter would create for the pending pods, marks it
Launched, adds the kwok node the provider's VM would register as, then marks the claim Registered, Initialized and
Ready.

What it shows: pods that do not fit wait while no NodeClaim is pending; they spill to the virtual node while one is
(launched, not Ready); once it is Ready the spilled pods return to the new node, and pods that do not fit wait again
instead of spilling.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import E2E
from e2e.harness.cluster import VIRTUAL_NODE_NAME, LocalCluster
from e2e.harness.karpenter import NODEPOOL_LABEL, StandIn, condition, install_crds_established
from e2e.harness.stacks import ExtenderStack, extender_stack
from e2e.harness.tideover import DEFAULT_CONFIG
from e2e.harness.workloads import Namespace, deployment
from extender.model.keys import CAPACITY_PENDING, GATE

pytestmark = [pytest.mark.e2e]

NODEPOOL = "general"
CLAIM = "general-7xk2p"  # Karpenter names a claim <nodepool>-<random>; its node here takes the same name
TOLERATION = {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}
CONFIG: dict[str, Any] = {
    **DEFAULT_CONFIG,
    "vmPools": {"poolLabel": NODEPOOL_LABEL, "provisioningSeconds": 30},
    "autoscaler": {"capacitySignal": "karpenter"},
    "controllers": {"returnToVm": {"stableSeconds": 3, "minPodAgeSeconds": 3, "intervalSeconds": 1}},
}


def _karpenter_objects(cluster: LocalCluster) -> None:
    install_crds_established(cluster)
    StandIn(cluster.api_client()).create_nodepool(NODEPOOL)


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, e2e: E2E, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The extender stack, with Karpenter's CRDs and a NodePool before tideover starts."""
    work: Path = tmp_path_factory.mktemp("tideover-karpenter")
    yield from extender_stack(work, request, e2e.target, config=CONFIG, before_tideover=_karpenter_objects)


def _gated(cluster: LocalCluster) -> bool:
    return any(t.get("key") == GATE for t in (cluster.node(VIRTUAL_NODE_NAME).get("spec") or {}).get("taints") or [])


def _on_virtual(ns: Namespace) -> int:
    return sum(1 for node in ns.placements().values() if node == VIRTUAL_NODE_NAME)


def _pending(ns: Namespace) -> int:
    return sum(1 for node in ns.placements().values() if node is None)


def _add_node(cluster: LocalCluster, name: str, *, wait_ready: bool = True) -> None:
    """A kwok node as a Karpenter-launched VM registers: labelled with its NodePool (2 cores: two 1-core pods)."""
    cluster.add_vm_node(name, pool=NODEPOOL, labels={NODEPOOL_LABEL: NODEPOOL, "karpenter.sh/registered": "true"},
                        wait_ready=wait_ready)


def test_pods_spill_only_while_a_nodeclaim_is_pending_and_return_once_it_is_ready(
    stack: ExtenderStack, ns: Namespace
) -> None:
    cluster, tideover = stack
    stand_in = StandIn(cluster.api_client())
    _add_node(cluster, "general-seed")
    ns.create_deployment(deployment("web", 2, cpu="1", tolerations=[TOLERATION]))
    ns.wait(lambda: len(ns.running_on()) == 2, 60, "two replicas on the seed node")
    ns.wait(lambda: _gated(cluster), 30, "the gate closed: no NodeClaim pending")
    origin = time.monotonic()

    # 1. No NodeClaim: the two pods that do not fit wait, and tideover says why.
    ns.scale("web", 4)
    ns.wait(lambda: _pending(ns) == 2, 30, "two replicas pending")
    ns.hold(lambda: _on_virtual(ns) == 0, 5, "no pod may spill while no NodeClaim is pending")
    ns.wait(lambda: any("no NodeClaim launching for NodePools [general]" in m for m in ns.events("WaitingForVM")),
            30, "a WaitingForVM event naming the NodePool")

    # 2. Karpenter (the test, standing in) creates a NodeClaim and the provider launches it: capacity pending.
    stand_in.create_nodeclaim(CLAIM, NODEPOOL)
    created = time.monotonic() - origin
    ns.wait(lambda: _on_virtual(ns) == 2, 45, "the two waiting pods spilled to the virtual node")
    spilled = time.monotonic() - origin
    assert not _gated(cluster)
    annotations = cluster.node(VIRTUAL_NODE_NAME)["metadata"].get("annotations") or {}
    assert annotations.get(CAPACITY_PENDING) == NODEPOOL
    stand_in.set_status(CLAIM, condition("Launched"))
    assert tideover.metric("tideover_capacity_pending", {"pool": NODEPOOL}) == 1
    ns.hold(lambda: _on_virtual(ns) == 2 and not _gated(cluster), 4, "launched, not Ready: the pods stay, gate open")

    # 3. The VM registers (a kwok node, Ready at once), then the claim is initialized and turns Ready. Until the
    #    claim is Ready the pool is still pending, so the spilled pods stay where they are.
    _add_node(cluster, CLAIM)
    stand_in.set_status(CLAIM, condition("Launched"), condition("Registered"), nodeName=CLAIM,
                        providerID=f"azure:///subscriptions/sim/resourceGroups/sim/providers/Microsoft.Compute/"
                                   f"virtualMachines/{CLAIM}")
    ns.hold(lambda: _on_virtual(ns) == 2 and not _gated(cluster), 2, "registered, not Ready: still pending")
    stand_in.set_status(CLAIM, condition("Launched"), condition("Registered"), condition("Initialized"),
                        condition("Ready"), nodeName=CLAIM)
    ready = time.monotonic() - origin
    ns.wait(lambda: _gated(cluster), 30, "the gate closed again: the NodeClaim is Ready")

    # 4. The spilled pods return to the new node (returnToVm, once capacity has been stable for stableSeconds), and
    #    a pod that fits nowhere waits: no spill.
    ns.wait(lambda: _on_virtual(ns) == 0 and len(ns.running_on()) == 4, 60,
            "the spilled pods back on the new node")
    returned = time.monotonic() - origin
    assert sorted(ns.running_on().values()).count(CLAIM) == 2
    stable = CONFIG["controllers"]["returnToVm"]["stableSeconds"]
    assert returned - ready >= stable - 1, f"returned {returned - ready:.1f}s after Ready, before {stable}s stable"
    ns.scale("web", 5)
    ns.wait(lambda: _pending(ns) == 1, 30, "the fifth replica pending")
    ns.hold(lambda: _on_virtual(ns) == 0, 6, "no spill once the NodeClaim is Ready")
    stand_in.delete_all()
    print(f"\n[e2e] Karpenter signal (no cloud provider; the test advanced the NodeClaim): claim created at "
          f"{created:.1f}s, 2 pods on the virtual node by {spilled:.1f}s, claim Ready at {ready:.1f}s, pods back on "
          f"{CLAIM} by {returned:.1f}s")
