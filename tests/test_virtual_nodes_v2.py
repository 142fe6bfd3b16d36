"""Virtual nodes v2 (the Helm-based "virtual nodes on ACI", microsoft/virtualnodesOnAzureContainerInstances): several
virtual nodes, each holding at most 200 pods, labelled virtualization=virtualnode2 and tainted
virtual-kubelet.io/provider:NoSchedule, with a kube-proxy sidecar (0.1 core, 0.1 GB) in every pod's container group.

The shapes come from that repository's README ("Each virtual node supports 200 pods"; the demo pod's nodeSelector
``virtualization: virtualnode2`` and toleration ``virtual-kubelet.io/provider`` Exists), Docs/PodCustomizations.md
(nodeSelector ``type: virtual-kubelet`` plus ``virtualization: virtualnode2``), Docs/NodeCustomizations.md (one
replica per 200 pods; kubeProxy.reservedCPUCores / reservedMemoryGB 0.1) and Helm/virtualnode/values.yaml.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from extender.decide.filter import FilterOutcome, decide_filter
from extender.decide.guards import NO_RECENT_SPILLS, RecentSpills, SpillLedger, full_virtual_nodes
from extender.model.config import GIB, TideoverConfig, parse_config
from extender.model.objects import pod_facts
from extender.model.snapshot import NodeKind, PodPlacement, pod_placement
from tests.support.factories import NOW, cluster, pod, snapshot, status_yaml, virtual_node

V2_TAINT = {"key": "virtual-kubelet.io/provider", "effect": "NoSchedule"}
V2_TOLERATION = {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}


def v2_node(name: str, pods: str = "200") -> dict[str, Any]:
    """A v2 virtual node as its StatefulSet replica registers it (name: the Helm release plus -0, -1, ...)."""
    node = virtual_node(name, taints=(V2_TAINT,))
    node["metadata"]["labels"]["virtualization"] = "virtualnode2"
    node["status"]["allocatable"]["pods"] = pods
    return node


def bound(node: str, count: int) -> list[PodPlacement]:
    return [
        PodPlacement(namespace="default", name=f"{node}-p{i}", uid=f"uid-{node}-{i}", node_name=node, phase="Running",
                     owner_uid="rs-x", cpu=0.1, memory=2**27, owner_kind="ReplicaSet",
                     created=NOW - timedelta(minutes=5), terminating=False, scheduling={})
        for i in range(count)
    ]


def v2_pod(pinned: bool = False) -> Any:
    """A bridging pod tolerates the v2 taint (as the repository's examples do) but does not select
    ``virtualization: virtualnode2``, or it could never run on a VM; ``pinned`` adds that selector."""
    manifest = pod("web-1", cpu="1", tolerate_virtual=False)
    manifest["spec"]["tolerations"] = [dict(V2_TOLERATION)]
    if pinned:
        manifest["spec"]["nodeSelector"] = {"virtualization": "virtualnode2", "kubernetes.io/os": "linux"}
    return pod_facts(manifest)


PENDING = status_yaml("InProgress", registered=1, target=3)
NODES = [*cluster(1, with_virtual=False), v2_node("vn2-0"), v2_node("vn2-1")]


def test_the_filter_keeps_only_the_virtual_nodes_with_room() -> None:
    snap = snapshot(NODES, PENDING, pods=bound("vn2-0", 200) + bound("vn2-1", 17))
    decision = decide_filter(v2_pod(), ["vn2-0", "vn2-1"], snap, TideoverConfig())
    assert decision.outcome is FilterOutcome.SPILL_CAPACITY_PENDING
    assert decision.feasible == ("vn2-1",)
    assert decision.failed == {"vn2-0": "virtual node vn2-0 is full: 200 of 200 pods"}


def test_a_pod_pinned_to_v2_is_no_bridging_pod() -> None:
    """The repository's opt-in (nodeSelector virtualization=virtualnode2) matches no VM pool: tideover does not
    spill it as a bridge; tideover.io/spill: when-full lets it run there."""
    snap = snapshot(NODES, PENDING)
    decision = decide_filter(v2_pod(pinned=True), ["vn2-0", "vn2-1"], snap, TideoverConfig())
    assert decision.outcome is FilterOutcome.WITHHELD_NO_POOL_FITS
    assert "virtualization=virtualnode2" in decision.reason


def test_every_v2_node_full_keeps_none() -> None:
    snap = snapshot(NODES, PENDING, pods=bound("vn2-0", 200) + bound("vn2-1", 200))
    decision = decide_filter(v2_pod(), ["vn2-0", "vn2-1"], snap, TideoverConfig())
    assert decision.feasible == ()
    assert set(decision.failed) == {"vn2-0", "vn2-1"}


def test_max_pods_per_node_caps_a_node_that_reports_more() -> None:
    nodes = [*cluster(1, with_virtual=False), v2_node("vn2-0", pods="1000"), v2_node("vn2-1", pods="1000")]
    config = parse_config({"virtualNodes": {"maxPodsPerNode": 200}})
    snap = snapshot(nodes, PENDING, config=config, pods=bound("vn2-0", 200))
    decision = decide_filter(v2_pod(), ["vn2-0", "vn2-1"], snap, config)
    assert decision.feasible == ("vn2-1",)
    unlimited = snapshot(nodes, PENDING, pods=bound("vn2-0", 200))
    assert decide_filter(v2_pod(), ["vn2-0", "vn2-1"], unlimited, TideoverConfig()).feasible == ("vn2-0", "vn2-1")


def test_a_v2_selector_tells_v2_nodes_from_the_legacy_one() -> None:
    config = parse_config({"virtualNodes": {"selector": {"type": "virtual-kubelet", "virtualization": "virtualnode2"}}})
    snap = snapshot([*NODES, virtual_node()], PENDING, config=config)
    assert snap.virtual_nodes == ("vn2-0", "vn2-1")
    assert snap.nodes["virtual-node-aci-linux"].kind is not NodeKind.VIRTUAL


@pytest.mark.parametrize(
    ("cpu", "memory_gib", "extra"),
    [
        pytest.param(2.0, 4.0, True, id="above-aci-minimum-the-sidecar-adds"),
        pytest.param(0.2, 0.5, False, id="below-aci-minimum-the-sidecar-is-absorbed"),
    ],
)
def test_the_cost_adds_the_kube_proxy_sidecar(cpu: float, memory_gib: float, extra: bool) -> None:
    legacy = TideoverConfig().virtual_nodes.pricing
    v2 = parse_config({"virtualNodes": {"pricing": {"sidecarCpu": 0.1, "sidecarMemoryGib": 0.1}}}).virtual_nodes.pricing
    difference = v2.pod_cost_per_hour(cpu, memory_gib * GIB) - legacy.pod_cost_per_hour(cpu, memory_gib * GIB)
    sidecar = (0.1 * legacy.vcpu_per_second + 0.1 * legacy.gib_per_second) * 3600
    assert difference == pytest.approx(sidecar if extra else 0.0)


# -- recent spills counted per virtual node -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bound_pods", "recent", "limit", "full"),
    [
        pytest.param({"vn2-0": 2, "vn2-1": 0}, {}, 3, set(), id="room-on-both"),
        pytest.param({"vn2-0": 3, "vn2-1": 0}, {}, 3, {"vn2-0"}, id="bound-fills-one"),
        pytest.param({"vn2-0": 2, "vn2-1": 0}, {"vn2-0": 1}, 3, {"vn2-0"}, id="a-recent-spill-fills-it"),
        pytest.param({"vn2-0": 1, "vn2-1": 1}, {"vn2-0": 2, "vn2-1": 2}, 3, {"vn2-0", "vn2-1"}, id="recent-fill-both"),
        pytest.param({"vn2-0": 0, "vn2-1": 0}, {"vn2-1": 2}, 3, set(), id="recent-below-the-limit"),
        pytest.param({"vn2-0": 0, "vn2-1": 0}, {"vn2-0": 5}, None, set(), id="no-limit-reported-never-full"),
    ],
)
def test_a_virtual_node_is_full_when_bound_plus_recent_spills_reach_what_it_holds(
    bound_pods: dict[str, int], recent: dict[str, int], limit: int | None, full: set[str]
) -> None:
    pods = "1000" if limit is not None else None
    nodes = [*cluster(1, with_virtual=False), *(v2_node(n, pods or "0") for n in ("vn2-0", "vn2-1"))]
    if pods is None:  # a node that reports no allocatable pods and no maxPodsPerNode: nothing says what it holds
        for node in nodes[1:]:
            del node["status"]["allocatable"]["pods"]
    placed = [p for name, count in bound_pods.items() for p in bound(name, count)]
    snap = snapshot(nodes, PENDING, pods=placed)
    found = full_virtual_nodes(("vn2-0", "vn2-1"), snap, limit, RecentSpills(by_node=recent))
    assert set(found) == full
    for name in full & set(recent):
        assert "not bound yet" in found[name]


def _v2_burst(replicas: int, *, snapshot_lags: bool, with_ledger: bool) -> dict[str, int]:
    """``replicas`` pending pods while a scale-up is pending, two v2 nodes of 3 pods each (maxPodsPerNode 3; each
    reports 1000). kube-scheduler's part is played by picking the emptiest node the filter kept. Returns the pods
    placed per virtual node. With ``snapshot_lags`` the cluster view never catches up during the burst."""
    config = parse_config({"virtualNodes": {"maxPodsPerNode": 3}})
    nodes = [*cluster(1, with_virtual=False), v2_node("vn2-0", "1000"), v2_node("vn2-1", "1000")]
    objs = [pod(f"web-{i}", cpu="1", tolerate_virtual=False) for i in range(replicas)]
    for obj in objs:
        obj["spec"]["tolerations"] = [dict(V2_TOLERATION)]
    placed: list[PodPlacement] = []
    stale = snapshot(nodes, PENDING, config=config)
    ledger = SpillLedger(clock=lambda: 0.0) if with_ledger else None
    for obj in objs:
        facts = pod_facts(obj)
        snap = stale if snapshot_lags else snapshot(nodes, PENDING, config=config, pods=placed)
        recent = ledger.view(snap, exclude_uid=facts.uid) if ledger is not None else NO_RECENT_SPILLS
        decision = decide_filter(facts, ["vn2-0", "vn2-1"], snap, config, recent_spills=recent)
        if ledger is not None:
            ledger.settle(facts, decision.outcome.spilled, decision.virtual_cost_per_hour, decision.spill_nodes)
        if not decision.outcome.spilled:
            assert decision.outcome is FilterOutcome.WITHHELD_VIRTUAL_NODES_FULL, decision.reason
            continue
        count = {n: sum(1 for p in placed if p.node_name == n) for n in decision.spill_nodes}
        target = min(decision.spill_nodes, key=lambda n: (count[n], n))
        placed.append(PodPlacement(namespace="default", name=facts.name, uid=facts.uid, node_name=target,
                                   phase="Running", owner_uid=facts.owner_uid, cpu=1.0))
    return {n: sum(1 for p in placed if p.node_name == n) for n in ("vn2-0", "vn2-1")}


@pytest.mark.parametrize(
    ("snapshot_lags", "with_ledger", "expected"),
    [
        pytest.param(False, True, {"vn2-0": 3, "vn2-1": 3}, id="fresh-snapshot: both nodes filled to 3"),
        # Each recent spill counts against both nodes it may land on: 3 placed before the view catches up, not 6.
        pytest.param(True, True, {"vn2-0": 2, "vn2-1": 1}, id="stale-snapshot-and-ledger: never over"),
        # Why the per-node count exists: with the snapshot lagging, every pod sees two empty nodes.
        pytest.param(True, False, {"vn2-0": 5, "vn2-1": 5}, id="stale-snapshot-no-ledger: over-filled"),
    ],
)
def test_a_burst_never_over_fills_a_v2_node_while_the_snapshot_lags(
    snapshot_lags: bool, with_ledger: bool, expected: dict[str, int]
) -> None:
    assert _v2_burst(10, snapshot_lags=snapshot_lags, with_ledger=with_ledger) == expected


def test_the_ledger_counts_a_spill_on_each_virtual_node_it_may_land_on_and_forgets_it_once_bound() -> None:
    ledger = SpillLedger(clock=lambda: 0.0)
    a, b = pod_facts(pod("a")), pod_facts(pod("b"))
    ledger.settle(a, True, 0.05, ("vn2-0", "vn2-1"))
    ledger.settle(b, True, 0.05, ("vn2-1",))
    empty = snapshot(NODES, PENDING)
    assert dict(ledger.view(empty).by_node) == {"vn2-0": 1, "vn2-1": 2}
    assert dict(ledger.view(empty, exclude_uid=a.uid).by_node) == {"vn2-1": 1}  # a's own filter leaves a out
    shown = snapshot(NODES, PENDING, pods=[PodPlacement(namespace="default", name="a", uid=a.uid, node_name="vn2-0",
                                                        phase="Running", owner_uid=a.owner_uid)])
    assert dict(ledger.view(shown).by_node) == {"vn2-1": 1}


# -- the kube-proxy sidecar opt-out (Docs/PodCustomizations.md, "Disable Kube-Proxy") --------------------------------

INJECT = "microsoft.containerinstance.virtualnode.injectkubeproxy"
CCE = "microsoft.containerinstance.virtualnode.ccepolicy"
V2_PRICING = {"virtualNodes": {"pricing": {"sidecarCpu": 0.1, "sidecarMemoryGib": 0.1}}}


@pytest.mark.parametrize(
    ("annotations", "sidecar"),
    [
        pytest.param({}, True, id="default-injected"),
        pytest.param({INJECT: "false"}, False, id="opted-out"),
        pytest.param({INJECT: "False"}, False, id="opted-out-any-case"),
        pytest.param({INJECT: "true"}, True, id="asked-for"),
        pytest.param({INJECT: "no"}, True, id="only-false-opts-out"),
        pytest.param({CCE: "cGFja2FnZQ==", INJECT: "true"}, False, id="confidential-never-gets-one"),
    ],
)
def test_the_sidecar_is_charged_unless_the_pod_opts_out_or_is_confidential(
    annotations: dict[str, str], sidecar: bool
) -> None:
    config = parse_config(V2_PRICING)
    manifest = pod("web-1", cpu="2", memory="4Gi", annotations=annotations)
    facts = pod_facts(manifest)
    assert facts.kube_proxy_sidecar is sidecar
    pricing = config.virtual_nodes.pricing
    expected = pricing.pod_cost_per_hour(2.0, 4 * GIB, sidecar=sidecar)
    assert pricing.pod_cost_per_hour(2, 4 * GIB, sidecar=True) > pricing.pod_cost_per_hour(2, 4 * GIB, sidecar=False)
    decision = decide_filter(facts, ["virtual-node-aci-linux"], snapshot(cluster(1), PENDING, config=config), config)
    assert decision.outcome is FilterOutcome.SPILL_CAPACITY_PENDING
    assert decision.virtual_cost_per_hour == pytest.approx(expected)
    # The namespace's spend, counted from the watched pod once it runs there, charges the same.
    manifest["spec"]["nodeName"] = "virtual-node-aci-linux"
    running = snapshot(cluster(1), PENDING, config=config, pods=[pod_placement(manifest)])
    assert running.virtual_spend_by_namespace["default"] == pytest.approx(expected)
