"""SpillNotifier: a spill decision becomes a SpilledToVirtualNode Event once the pod lands on the virtual node."""

from __future__ import annotations

from extender.config import TideoverConfig
from extender.decisions import FilterOutcome, decide_filter
from extender.events import SPILLED_TO_VIRTUAL_NODE, PodEvent, SpillNotifier
from extender.objects import pod_facts
from extender.snapshot import PodPlacement
from tests.factories import VIRTUAL_NODE, cluster, pod, snapshot, status_yaml

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
