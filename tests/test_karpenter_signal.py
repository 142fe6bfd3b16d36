"""The Karpenter NodeClaim capacity signal (extender/model/karpenter.py), on NodeClaims in their JSON shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from extender.decide.filter import FilterOutcome, decide_filter
from extender.model.autoscaler_status import (
    NO_CONFIG_MAP,
    NO_STATUS_READ,
    AutoscalerStatusRead,
    parse_autoscaler_status,
)
from extender.model.capacity import CapacityState, PoolWait
from extender.model.config import Autoscaler, TideoverConfig
from extender.model.karpenter import (
    NODEPOOL_LABEL,
    KarpenterRead,
    capacity_source,
    karpenter_signal,
    nodeclaim_facts,
    nodepool_facts,
)
from extender.model.objects import node_facts, pod_facts
from extender.model.snapshot import ClusterSnapshot, build_snapshot
from tests.support.factories import NOW as FNOW
from tests.support.factories import VIRTUAL_NODE, iso, pod, status_yaml, virtual_node, vm_node

NOW = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
WAIT = PoolWait(pool="general", node_group="general", nodes=(), provisioning_estimate_seconds=120)


def claim(name: str, age: float, *conditions: tuple[str, str], pool: str = "general", deleting: bool = False) -> Any:
    metadata: dict[str, Any] = {"name": name, "labels": {NODEPOOL_LABEL: pool},
                                "creationTimestamp": (NOW - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if deleting:
        metadata["deletionTimestamp"] = metadata["creationTimestamp"]
    status = {"conditions": [{"type": t, "status": s, "message": "no capacity" if s == "False" else ""}
                             for t, s in conditions]}
    return nodeclaim_facts({"metadata": metadata, "status": status})


def test_launched_not_ready_is_pending_with_an_eta() -> None:
    signal = karpenter_signal(WAIT, [claim("a", 30, ("Launched", "True")), claim("b", 10)], Autoscaler(), NOW)
    assert (signal.pending, signal.state, signal.eta_seconds) == (True, CapacityState.SCALE_UP_IN_PROGRESS, 90.0)
    assert signal.pending_since == NOW - timedelta(seconds=30)


def test_ready_other_pools_deleting_and_old_claims_are_not_pending() -> None:
    claims = [claim("a", 30, ("Launched", "True"), ("Ready", "True")), claim("b", 30, pool="gpu"),
              claim("c", 30, deleting=True), claim("d", 5000, ("Launched", "True"))]
    signal = karpenter_signal(WAIT, claims, Autoscaler(), NOW)
    assert (signal.pending, signal.state) == (False, CapacityState.NO_ACTIVITY)


def test_a_failed_launch_is_backoff() -> None:
    signal = karpenter_signal(WAIT, [claim("a", 30, ("Launched", "False"))], Autoscaler(), NOW)
    assert (signal.pending, signal.state) == (False, CapacityState.BACKOFF)
    assert "failed to launch (no capacity)" in signal.evidence[0]


def test_a_claim_far_past_its_estimate_is_stuck() -> None:
    signal = karpenter_signal(WAIT, [claim("a", 800, ("Launched", "True"))], Autoscaler(), NOW)
    assert (signal.pending, signal.stuck, signal.state) == (False, True, CapacityState.SCALE_UP_STUCK)


# -- the signal in the snapshot (autoscaler.capacitySignal) -------------------------------------------------------

KARPENTER_CONFIG = TideoverConfig.model_validate(
    {"autoscaler": {"capacitySignal": "karpenter"}, "vmPools": {"poolLabel": NODEPOOL_LABEL}}
)
CA_STATUS = AutoscalerStatusRead(parse_autoscaler_status(status_yaml("InProgress", target=3)), FNOW)
NO_CONFIG_MAP_READ = AutoscalerStatusRead(None, None, NO_CONFIG_MAP)
UNREADABLE = AutoscalerStatusRead(None, None, "unreadable autoscaler status: bad YAML")
SERVED = KarpenterRead(served=True)
NOT_SERVED = KarpenterRead(served=False, problem="the NodeClaim CRD (karpenter.sh/v1) is not served")


@pytest.mark.parametrize(
    ("setting", "autoscaler", "karpenter", "chosen"),
    [
        ("cluster-autoscaler", NO_CONFIG_MAP_READ, SERVED, "cluster-autoscaler"),
        ("karpenter", CA_STATUS, SERVED, "karpenter"),
        ("karpenter", NO_CONFIG_MAP_READ, NOT_SERVED, "karpenter"),  # chosen, and says it cannot read
        ("auto", NO_CONFIG_MAP_READ, SERVED, "karpenter"),  # Node Auto Provisioning: no CA, the CRDs
        ("auto", NO_STATUS_READ, SERVED, "karpenter"),
        ("auto", CA_STATUS, SERVED, "cluster-autoscaler"),  # both: CA writes a status, it is the one in charge
        ("auto", UNREADABLE, SERVED, "cluster-autoscaler"),  # a ConfigMap that cannot be read is still CA's
        ("auto", NO_CONFIG_MAP_READ, NOT_SERVED, "cluster-autoscaler"),
    ],
)
def test_the_setting_chooses_the_signal(
    setting: str, autoscaler: AutoscalerStatusRead, karpenter: KarpenterRead, chosen: str
) -> None:
    settings = Autoscaler.model_validate({"capacitySignal": setting})
    assert capacity_source(settings, autoscaler, karpenter).name == chosen


def test_karpenter_chosen_without_its_crds_is_never_pending_and_says_why() -> None:
    signal = capacity_source(Autoscaler(capacitySignal="karpenter"), NO_CONFIG_MAP_READ, NOT_SERVED).signal(WAIT, NOW)
    assert (signal.pending, signal.state) == (False, CapacityState.NO_STATUS)
    assert signal.evidence == ("karpenter: the NodeClaim CRD (karpenter.sh/v1) is not served",)


def test_a_nodepool_template_gives_labels_single_value_requirements_and_taints_not_startup_taints() -> None:
    facts = nodepool_facts({"metadata": {"name": "general"}, "spec": {"template": {
        "metadata": {"labels": {"team": "web"}},
        "spec": {"requirements": [
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
            {"key": "karpenter.azure.com/sku-family", "operator": "In", "values": ["D", "E"]},
            {"key": "kubernetes.io/os", "operator": "NotIn", "values": ["windows"]},
        ],
            "taints": [{"key": "dedicated", "value": "web", "effect": "NoSchedule"}],
            "startupTaints": [{"key": "starting", "effect": "NoSchedule"}]},
    }}})
    assert facts.name == "general"
    assert facts.labels == {"team": "web", "kubernetes.io/arch": "amd64"}
    assert facts.taints == ({"key": "dedicated", "value": "web", "effect": "NoSchedule"},)


def _claim_obj(name: str, age: float, *conditions: tuple[str, str], pool: str = "general") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {NODEPOOL_LABEL: pool},
                         "creationTimestamp": iso(FNOW - timedelta(seconds=age))},
            "status": {"conditions": [{"type": t, "status": s} for t, s in conditions]}}


def _karpenter_snapshot(*claims: dict[str, Any], nodes: tuple[dict[str, Any], ...] = ()) -> ClusterSnapshot:
    nodepool = nodepool_facts({"metadata": {"name": "general"}, "spec": {"template": {"spec": {"requirements": [
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}}}})
    read = KarpenterRead(served=True, claims=tuple(nodeclaim_facts(c) for c in claims),
                         nodepools={"general": nodepool})
    return build_snapshot(config=KARPENTER_CONFIG, nodes=[node_facts(n) for n in (*nodes, virtual_node())],
                          autoscaler=NO_CONFIG_MAP_READ, karpenter=read, now=FNOW)


def test_a_nodepool_without_nodes_is_a_pool_with_its_template() -> None:
    snap = _karpenter_snapshot()
    assert snap.capacity_source == "karpenter"
    pool = snap.pools["general"]
    assert (pool.nodes, pool.template_source) == (0, "NodePool general")
    assert pool.template_labels == {NODEPOOL_LABEL: "general", "kubernetes.io/os": "linux"}
    assert pool.capacity.state is CapacityState.NO_ACTIVITY


def _filter(snap: ClusterSnapshot) -> Any:
    return decide_filter(pod_facts(pod("web-1")), [VIRTUAL_NODE], snap, KARPENTER_CONFIG)


def test_a_pod_spills_only_while_a_nodeclaim_of_its_nodepool_is_not_ready() -> None:
    """The same gate, reasons and ETA as with cluster-autoscaler: the filter reads the pools' signal."""
    idle = _filter(_karpenter_snapshot())
    assert idle.outcome is FilterOutcome.WITHHELD_NO_SCALE_UP
    assert "no NodeClaim launching for NodePools [general] (karpenter: no-activity)" in idle.reason

    launching = _filter(_karpenter_snapshot(_claim_obj("general-abc", 30, ("Launched", "True"))))
    assert launching.outcome is FilterOutcome.SPILL_CAPACITY_PENDING
    assert launching.pending_pools == ("general",)
    assert launching.eta_seconds == KARPENTER_CONFIG.vm_pools.provisioning_seconds - 30
    assert "1 NodeClaim(s) of NodePool general not Ready yet" in launching.reason

    ready = _filter(_karpenter_snapshot(
        _claim_obj("general-abc", 60, ("Launched", "True"), ("Registered", "True"), ("Ready", "True")),
        nodes=(vm_node("general-abc", labels={NODEPOOL_LABEL: "general"}),),
    ))
    assert ready.outcome is FilterOutcome.WITHHELD_NO_SCALE_UP, ready.reason


def test_the_nodepools_are_ignored_while_cluster_autoscaler_is_the_signal() -> None:
    read = KarpenterRead(served=True, nodepools={"general": nodepool_facts({"metadata": {"name": "general"}})})
    snap = build_snapshot(config=TideoverConfig(), nodes=[node_facts(virtual_node())], autoscaler=CA_STATUS,
                          karpenter=read, now=FNOW)
    assert snap.capacity_source == "cluster-autoscaler" and "general" not in snap.pools
