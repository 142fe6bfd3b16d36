"""SpillNotifier: a spill decision becomes a SpilledToVirtualNode Event once the pod lands on the virtual node."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from extender.controllers.events import (
    SPILLED_TO_VIRTUAL_NODE,
    WAITING_FOR_VM,
    PodEvent,
    SpillNotifier,
    WaitingNotifier,
)
from extender.decide.filter import FilterOutcome, decide_filter, pending_reason
from extender.model.config import TideoverConfig
from extender.model.keys import GATE_TAINT
from extender.model.objects import pod_facts
from extender.model.snapshot import ClusterSnapshot, PodPlacement, empty_snapshot, pod_placement
from tests.support.factories import (
    NOW,
    VIRTUAL_NODE,
    VIRTUAL_TAINT,
    cluster,
    pod,
    snapshot,
    status_yaml,
    unschedulable,
    virtual_node,
)

CONFIG = TideoverConfig()
SNAP = snapshot(cluster(1), status_yaml("InProgress", registered=1, target=3))


def _placement(node: str | None, uid: str = "uid-default-web-1") -> PodPlacement:
    return PodPlacement("default", "web-1", uid, node, "Pending", None)


def _notifier() -> tuple[SpillNotifier, list[PodEvent]]:
    events: list[PodEvent] = []
    return SpillNotifier(events.append, lambda: SNAP), events


def test_spill_decision_then_binding_emits_one_event_with_the_reason() -> None:
    notifier, events = _notifier()
    facts = pod_facts(pod())
    decision = decide_filter(facts, [VIRTUAL_NODE], SNAP, CONFIG)
    assert decision.outcome is FilterOutcome.SPILL_CAPACITY_PENDING
    notifier.on_filter_decision(facts, decision)
    notifier.on_pod_change(_placement(None), _placement(VIRTUAL_NODE))
    notifier.on_pod_change(_placement(VIRTUAL_NODE), _placement(VIRTUAL_NODE))  # a status update: no repeat
    assert len(events) == 1
    event = events[0]
    assert (event.reason, event.pod_name, event.namespace) == (SPILLED_TO_VIRTUAL_NODE, "web-1", "default")
    assert event.message.startswith(f"placed on virtual node {VIRTUAL_NODE}: spilling to the virtual node while")
    assert "est. $" in event.message and "VM expected in ~" in event.message


def test_pod_bound_to_a_vm_emits_nothing() -> None:
    notifier, events = _notifier()
    facts = pod_facts(pod())
    notifier.on_filter_decision(facts, decide_filter(facts, [VIRTUAL_NODE], SNAP, CONFIG))
    notifier.on_pod_change(_placement(None), _placement("aks-nodepool1-000000"))
    assert events == []


def test_binding_without_a_decision_of_ours_emits_nothing() -> None:
    notifier, events = _notifier()
    notifier.on_pod_change(None, _placement(VIRTUAL_NODE, uid="someone-else"))
    assert events == []


def test_withheld_decisions_are_not_remembered() -> None:
    notifier, events = _notifier()
    quiet = snapshot(cluster(1), status_yaml("NoActivity", registered=1))
    facts = pod_facts(pod())
    notifier.on_filter_decision(facts, decide_filter(facts, [VIRTUAL_NODE], quiet, CONFIG))
    notifier.on_pod_change(_placement(None), _placement(VIRTUAL_NODE))
    assert events == []


def test_memory_is_bounded() -> None:
    events: list[PodEvent] = []
    notifier = SpillNotifier(events.append, lambda: SNAP, capacity=2)
    for i in range(3):
        facts = pod_facts(pod(f"p{i}", uid=f"u{i}"))
        notifier.on_filter_decision(facts, decide_filter(facts, [VIRTUAL_NODE], SNAP, CONFIG))
    notifier.on_pod_change(None, PodPlacement("default", "p0", "u0", VIRTUAL_NODE, "Pending", None))
    notifier.on_pod_change(None, PodPlacement("default", "p2", "u2", VIRTUAL_NODE, "Pending", None))
    assert [e.pod_name for e in events] == ["p2"]


# --------------------------------------------------------------------------------------------------
# Issue 11: a pending pod is told why (WaitingForVM)
# --------------------------------------------------------------------------------------------------

GATED_VIRTUAL = virtual_node(taints=(VIRTUAL_TAINT, GATE_TAINT))


def _waiting(
    nodes: list[dict[str, Any]] | None = None, status: str | None = None, **kwargs: Any
) -> tuple[WaitingNotifier, list[PodEvent], ClusterSnapshot, list[float]]:
    """A notifier on a cluster whose VMs are full (as when kube-scheduler finds a pod unschedulable)."""
    events: list[PodEvent] = []
    clock = [1000.0]
    snap = snapshot(
        nodes if nodes is not None else [*cluster(1)[:-1], GATED_VIRTUAL],
        status if status is not None else status_yaml("NoActivity", registered=1),
    )
    notifier = WaitingNotifier(events.append, CONFIG, clock=lambda: clock[0], **kwargs)
    return notifier, events, snap, clock


def _pending(obj: dict[str, Any]) -> PodPlacement:
    placement = pod_placement(unschedulable(obj))
    assert placement.unschedulable and placement.pending_facts is not None
    return placement


def test_a_pod_held_back_by_the_gate_is_told_why_once() -> None:
    """Before: kube-scheduler said only "node(s) had untolerated taint(s)" and tideover said nothing."""
    notifier, events, snap, clock = _waiting()
    notifier.on_pod_change(None, _pending(pod("web-1")))
    for _ in range(5):  # one snapshot every 2 s: one Event, not one per round
        notifier.on_snapshot(snap, snap)
        clock[0] += 2
    assert len(events) == 1
    event = events[0]
    assert (event.reason, event.namespace, event.pod_name, event.pod_uid) == (
        WAITING_FOR_VM, "default", "web-1", "uid-default-web-1"
    )
    assert event.message.startswith("Waiting for a VM of pool nodepool1; tideover keeps the pod off the virtual "
                                    "node: no VMSS scale-up in progress for pools [nodepool1] (autoscaler: NoActivity)")
    assert "gate taint tideover.io/spill-window=closed:NoSchedule" in event.message


def test_a_pod_no_pool_can_host_is_told_why() -> None:
    notifier, events, snap, _ = _waiting()
    notifier.on_pod_change(None, _pending(pod("big", cpu="8")))
    notifier.on_snapshot(snap, snap)
    (event,) = events
    assert event.message.startswith("Waiting for a VM; tideover keeps the pod off the virtual node: no VM pool's new "
                                    "nodes could host the pod (nodepool1: requests 8 CPU, a node has 2)")


def test_a_pod_within_its_wait_budget_is_told_the_pool_and_eta() -> None:
    scaling = status_yaml("InProgress", registered=1, target=2)
    notifier, events, snap, _ = _waiting(cluster(1), scaling)
    notifier.on_pod_change(None, _pending(pod("cheap", annotations={"tideover.io/priority": "economy"})))
    notifier.on_snapshot(snap, snap)
    (event,) = events
    assert event.message.startswith("Waiting for a VM of pool nodepool1, expected in ~210s; tideover keeps the pod "
                                    "off the virtual node: pool nodepool1 is scaling up")
    assert "gate taint" not in event.message


def test_a_capped_pod_is_told_why() -> None:
    scaling = status_yaml("InProgress", registered=1, target=2)
    notifier, events, snap, _ = _waiting(cluster(1), scaling)
    notifier.on_pod_change(None, _pending(pod("capped", annotations={"tideover.io/max-virtual-replicas": "0"})))
    notifier.on_snapshot(snap, snap)
    (event,) = events
    assert "Waiting for a VM of pool nodepool1" in event.message and "max-virtual-replicas" in event.message


@pytest.mark.parametrize(
    ("obj", "status"),
    [
        pytest.param(pod("vm-only", tolerate_virtual=False), None, id="does-not-tolerate-the-virtual-node"),
        pytest.param(pod("spills"), status_yaml("InProgress", registered=1, target=2), id="would-spill"),
    ],
)
def test_no_event_when_tideover_is_not_what_the_pod_waits_for(obj: dict[str, Any], status: str | None) -> None:
    notifier, events, snap, _ = _waiting(status=status)
    notifier.on_pod_change(None, _pending(obj))
    notifier.on_snapshot(snap, snap)
    assert events == []


def test_a_changed_reason_is_posted_no_more_than_once_a_minute_and_a_long_wait_every_half_hour() -> None:
    notifier, events, gated, clock = _waiting()
    other_reason = snapshot(cluster(1), status_yaml("InProgress", registered=1, target=2))
    notifier.on_pod_change(None, _pending(pod("cheap", annotations={"tideover.io/priority": "economy"})))
    notifier.on_snapshot(gated, gated)
    clock[0] += 10
    notifier.on_snapshot(gated, other_reason)  # now within its wait budget: too soon to say so
    assert len(events) == 1
    clock[0] += 60
    notifier.on_snapshot(gated, other_reason)
    assert len(events) == 2 and "expected in ~" in events[1].message
    clock[0] += 1799
    notifier.on_snapshot(other_reason, other_reason)
    assert len(events) == 2
    clock[0] += 1
    notifier.on_snapshot(other_reason, other_reason)
    assert len(events) == 3


def test_a_pod_that_is_bound_or_deleted_is_forgotten() -> None:
    notifier, events, snap, _ = _waiting()
    first, second = _pending(pod("a")), _pending(pod("b"))
    notifier.on_pod_change(None, first)
    notifier.on_pod_change(None, second)
    notifier.on_pod_change(first, replace(first, node_name="aks-nodepool1-000000", unschedulable=False))
    notifier.on_pod_change(second, None)
    notifier.on_snapshot(snap, snap)
    assert len(notifier) == 0 and events == []


def test_only_the_leader_posts_and_memory_is_bounded() -> None:
    leading = [False]
    notifier, events, snap, _ = _waiting(leading=lambda: leading[0], capacity=2, per_round=1)
    for name in ("a", "b", "c"):
        notifier.on_pod_change(None, _pending(pod(name)))
    assert len(notifier) == 2
    notifier.on_snapshot(snap, snap)
    assert events == []
    leading[0] = True
    notifier.on_snapshot(snap, snap)
    notifier.on_snapshot(snap, snap)
    notifier.on_snapshot(snap, snap)
    assert sorted(e.pod_name for e in events) == ["a", "b"]  # one a round, each once


def test_pod_placement_marks_only_unbound_unschedulable_pods() -> None:
    assert not pod_placement(pod()).unschedulable  # not tried yet
    assert pod_placement(unschedulable(pod())).unschedulable
    assert not pod_placement(unschedulable(pod(node_name="vm-1"))).unschedulable
    terminating = unschedulable(pod())
    terminating["metadata"]["deletionTimestamp"] = "2026-11-22T12:00:00Z"
    assert not pod_placement(terminating).unschedulable
    broken = unschedulable(pod())
    broken["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "lots"
    assert not pod_placement(broken).unschedulable  # nothing to judge it by


def test_pending_reason_is_none_until_the_view_has_synced() -> None:
    facts = pod_facts(unschedulable(pod()))
    assert pending_reason(facts, empty_snapshot(CONFIG, NOW), CONFIG) is None
