"""The cluster view's per-event pod counts (extender/cluster/tally.py) equal a whole count of the same pods, whatever
the order of adds, changes and deletes; and the counts handed to a snapshot do not change afterwards."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.cluster.tally import PodTally
from extender.model.config import TideoverConfig
from extender.model.keys import POD_DELETION_COST
from extender.model.objects import node_facts
from extender.model.snapshot import PodCounts, PodPlacement, _pod_counts, index_nodes, pod_placement
from tests.support.factories import VIRTUAL_NODE, pod, virtual_node, vm_node

CONFIG = TideoverConfig()
INDEX = index_nodes(CONFIG, [node_facts(n) for n in (vm_node("vm-1"), vm_node("vm-2"), virtual_node())])
PRICING = CONFIG.virtual_nodes.pricing


def placement(uid: int, node: str | None, owner: int | None, namespace: str, phase: str, cpu: str,
              terminating: bool = False, cost: str | None = None) -> PodPlacement:
    obj = pod(f"p{uid}", namespace, uid=f"u{uid}", node_name=node, cpu=cpu,
              owner=("ReplicaSet", f"rs-{owner}") if owner is not None else None,
              annotations={POD_DELETION_COST: cost} if cost is not None else None)
    obj["status"] = {"phase": phase}
    if terminating:
        obj["metadata"]["deletionTimestamp"] = "2026-11-29T10:00:00Z"
    return pod_placement(obj)


def assert_same(counts: PodCounts, expected: PodCounts) -> None:
    assert counts.pods_on_virtual_nodes == expected.pods_on_virtual_nodes
    assert counts.owned_pods == expected.owned_pods
    assert counts.virtual_pods_by_owner == expected.virtual_pods_by_owner
    assert counts.virtual_pod_uids == expected.virtual_pod_uids
    assert sorted(counts.virtual_pods, key=lambda p: p.uid) == sorted(expected.virtual_pods, key=lambda p: p.uid)
    assert counts.in_flight_by_owner == expected.in_flight_by_owner
    assert counts.requested_by_node.keys() == expected.requested_by_node.keys()
    for node, requested in expected.requested_by_node.items():
        assert counts.requested_by_node[node] == pytest.approx(requested)
    assert counts.virtual_spend_by_namespace.keys() == expected.virtual_spend_by_namespace.keys()
    for namespace, spend in expected.virtual_spend_by_namespace.items():
        assert counts.virtual_spend_by_namespace[namespace] == pytest.approx(spend)


events = st.lists(
    st.tuples(
        st.integers(0, 12),  # which pod
        st.booleans(),  # deleted?
        st.sampled_from([None, "vm-1", VIRTUAL_NODE]),
        st.sampled_from([None, 0, 1]),
        st.sampled_from(["default", "batch"]),
        st.sampled_from(["Pending", "Running", "Succeeded"]),
        st.sampled_from(["250m", "1", "2"]),
        st.booleans(),  # terminating?
        st.sampled_from([None, "-100", "5"]),  # its deletion cost
    ),
    max_size=60,
)


Event = tuple[int, bool, str | None, int | None, str, str, str, bool, str | None]


@settings(max_examples=200, deadline=None)
@given(events)
def test_per_event_counts_equal_a_whole_count(sequence: list[Event]) -> None:
    pods: dict[str, PodPlacement] = {}
    tally = PodTally(INDEX.virtual_nodes, PRICING)
    for uid, deleted, node, owner, namespace, phase, cpu, terminating, cost in sequence:
        new = None if deleted else placement(uid, node, owner, namespace, phase, cpu, terminating, cost)
        old = pods.pop(f"u{uid}", None)
        if new is not None:
            pods[new.uid] = new
        tally.replace(old, new)
        assert_same(tally.counts(), _pod_counts(CONFIG, INDEX, pods.values()))


# Changes to pods that stay where they are (each pod's node, owner, namespace and requests follow from its number):
# status updates, terminations and deletion costs, which the tally mostly skips.
status_changes = st.lists(
    st.tuples(
        st.integers(0, 8),
        st.booleans(),  # deleted?
        st.sampled_from(["Pending", "Running", "Succeeded"]),
        st.booleans(),  # terminating?
        st.sampled_from([None, "-100", "5"]),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(status_changes)
def test_status_changes_are_counted_as_a_whole_count_would(
    sequence: list[tuple[int, bool, str, bool, str | None]],
) -> None:
    pods: dict[str, PodPlacement] = {}
    tally = PodTally(INDEX.virtual_nodes, PRICING)
    for uid, deleted, phase, terminating, cost in sequence:
        node = (None, "vm-1", VIRTUAL_NODE)[uid % 3]
        new = None if deleted else placement(uid, node, uid % 2, "default", phase, "1", terminating, cost)
        old = pods.pop(f"u{uid}", None)
        if new is not None:
            pods[new.uid] = new
        tally.replace(old, new)
        assert_same(tally.counts(), _pod_counts(CONFIG, INDEX, pods.values()))


@settings(max_examples=200, deadline=None)
@given(events, st.lists(st.booleans(), min_size=60, max_size=60))
def test_counts_taken_now_and_then_equal_a_whole_count_and_stay_as_taken(
    sequence: list[Event], taken: list[bool]
) -> None:
    """A workload's pods are copied for a snapshot only when counts() is asked for: whatever events come between two
    asks, each ask equals a whole count of the pods at that moment, and keeps equalling it after later events."""
    pods: dict[str, PodPlacement] = {}
    tally = PodTally(INDEX.virtual_nodes, PRICING)
    handed: list[tuple[PodCounts, PodCounts]] = []
    for (uid, deleted, node, owner, namespace, phase, cpu, terminating, cost), take in zip(sequence, taken,
                                                                                            strict=False):
        new = None if deleted else placement(uid, node, owner, namespace, phase, cpu, terminating, cost)
        old = pods.pop(f"u{uid}", None)
        if new is not None:
            pods[new.uid] = new
        tally.replace(old, new)
        if take:
            handed.append((tally.counts(), _pod_counts(CONFIG, INDEX, pods.values())))
    handed.append((tally.counts(), _pod_counts(CONFIG, INDEX, pods.values())))
    for counts, expected in handed:
        assert_same(counts, expected)


def test_counts_handed_out_do_not_change_with_later_events() -> None:
    tally = PodTally(INDEX.virtual_nodes, PRICING)
    first = placement(1, VIRTUAL_NODE, 0, "default", "Running", "1")
    tally.add(first)
    before = tally.counts()
    tally.add(placement(2, VIRTUAL_NODE, 0, "default", "Running", "1"))
    tally.remove(first)
    assert before.pods_on_virtual_nodes == {VIRTUAL_NODE: 1}
    assert before.owned_pods == {first.owner_uid: frozenset({"u1"})}
    assert before.virtual_pod_uids == frozenset({"u1"})
    after = tally.counts()
    assert after.virtual_pod_uids == frozenset({"u2"})
    assert after.owned_pods == {first.owner_uid: frozenset({"u2"})}
    tally.remove(placement(2, VIRTUAL_NODE, 0, "default", "Running", "1"))
    assert tally.counts().owned_pods == {}
    assert after.owned_pods == {first.owner_uid: frozenset({"u2"})}


def test_a_namespace_with_no_pod_left_on_the_virtual_node_has_no_spend_entry() -> None:
    tally = PodTally(INDEX.virtual_nodes, PRICING)
    spilled = placement(1, VIRTUAL_NODE, None, "batch", "Running", "250m")
    tally.add(spilled)
    assert tally.counts().virtual_spend_by_namespace["batch"] > 0
    tally.remove(spilled)
    assert tally.counts().virtual_spend_by_namespace == {}


def test_the_view_rebuilds_the_node_index_only_when_a_node_changed() -> None:
    from extender.cluster.view import ClusterView

    view = ClusterView(core=None, config=CONFIG)  # type: ignore[arg-type]
    node = vm_node("vm-1")
    view._replace("nodes", [node, virtual_node()])
    first = view.rebuild().node_index
    heartbeat = {**node, "status": {**node["status"], "conditions": [
        {**c, "lastHeartbeatTime": "2030-01-01T00:00:00Z"} for c in node["status"].get("conditions", [])
    ]}}
    view._apply("nodes", "MODIFIED", heartbeat)
    assert view.rebuild().node_index is first
    relabelled = {**node, "metadata": {**node["metadata"], "labels": {**node["metadata"]["labels"], "team": "a"}}}
    view._apply("nodes", "MODIFIED", relabelled)
    second = view.rebuild().node_index
    assert second is not first and second is not None and second.nodes["vm-1"].facts.labels["team"] == "a"
    view._apply("nodes", "DELETED", relabelled)
    assert "vm-1" not in view.rebuild().nodes


def test_the_view_counts_pods_per_event_as_a_whole_count_would() -> None:
    from extender.cluster.view import ClusterView

    view = ClusterView(core=None, config=CONFIG)  # type: ignore[arg-type]
    view._replace("nodes", [vm_node("vm-1"), virtual_node()])
    view._replace("pods", [pod("a", uid="ua", node_name=VIRTUAL_NODE)])
    assert view.rebuild().virtual_pod_uids == frozenset({"ua"})
    view._apply("pods", "ADDED", pod("b", uid="ub", node_name=VIRTUAL_NODE))
    view._apply("pods", "DELETED", pod("a", uid="ua", node_name=VIRTUAL_NODE))
    view._apply("pods", "MODIFIED", pod("c", uid="uc", node_name="vm-1"))
    snap = view.rebuild()
    assert snap.virtual_pod_uids == frozenset({"ub"})
    assert snap.pods_on_virtual_nodes == {VIRTUAL_NODE: 1}
    assert snap.owned_pods == {"uid-web-5d8f": frozenset({"ub", "uc"})}
    view._replace("pods", [])  # a relist that finds none: counted afresh
    assert view.rebuild().virtual_pod_uids == frozenset()
