"""The spill state on virtual nodes: annotations and the gate taint, once per change of the pending set."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest

from extender.controllers.gate import SpillState, SpillStateRecorder, desired_taints
from extender.model.config import TideoverConfig
from extender.model.keys import CAPACITY_PENDING, GATE, GATE_TAINT
from extender.model.snapshot import ClusterSnapshot, empty_snapshot
from tests.support.factories import NOW, VIRTUAL_NODE, VIRTUAL_TAINT, cluster, snapshot, status_yaml, virtual_node
from tests.support.fakes import FakeKube


def fake_nodes(conflicts: int = 0) -> FakeKube:
    """The API with one virtual node, and a writer that races the first ``conflicts`` patches."""
    return FakeKube({VIRTUAL_NODE: virtual_node()}, conflicts=conflicts)


def writes(kube: FakeKube) -> list[dict[str, Any]]:
    return [body for _, body in kube.node_patches]


def _snap(scale_up: str, seconds: int = 0) -> ClusterSnapshot:
    status = status_yaml(scale_up, registered=2, target=3 if scale_up == "InProgress" else 2)
    at = NOW + timedelta(seconds=seconds)
    return snapshot(cluster(2), status, now=at, status_updated_at=at)


def _drive(nodes: FakeKube, snapshots: list[ClusterSnapshot], gate: bool = True) -> SpillStateRecorder:
    recorder = SpillStateRecorder(nodes, gate=gate)
    recorder.start()
    previous = snapshots[0]
    for snap in snapshots:
        recorder.on_snapshot(previous, snap)
        previous = snap
    recorder.stop()
    recorder._thread.join(5)
    return recorder


def test_gate_closed_then_open_then_closed_one_write_each() -> None:
    nodes = fake_nodes()
    _drive(nodes, [
        _snap("NoActivity"), _snap("NoActivity", 2),  # closed, unchanged
        _snap("InProgress", 4), _snap("InProgress", 6), _snap("InProgress", 8),  # open; ETA ticks are no change
        _snap("NoActivity", 10),  # closed again
    ])
    assert len(writes(nodes)) == 3
    taints = [w["spec"]["taints"] for w in writes(nodes)]
    assert taints == [[VIRTUAL_TAINT, GATE_TAINT], [VIRTUAL_TAINT], [VIRTUAL_TAINT, GATE_TAINT]]
    annotations = [w["metadata"]["annotations"] for w in writes(nodes)]
    assert [a[CAPACITY_PENDING] for a in annotations] == ["", "nodepool1", ""]
    assert annotations[1][GATE].startswith("open since 2026-11-22T12:00:04Z: capacity pending in nodepool1")
    assert annotations[2][GATE] == (
        "closed since 2026-11-22T12:00:10Z: no VM pool has capacity pending "
        "(nodepool1: not pending (no-activity: autoscaler: ScaleUp NoActivity since 11:59:30Z))"
    )


def test_a_change_of_reason_while_closed_is_written_once() -> None:
    nodes = fake_nodes()
    backoff = snapshot(cluster(2), status_yaml("Backoff", registered=2, backoff_code="QuotaExceeded"),
                       now=NOW + timedelta(seconds=4), status_updated_at=NOW + timedelta(seconds=4))
    _drive(nodes, [_snap("NoActivity"), backoff, backoff])
    assert len(writes(nodes)) == 2  # closed (no activity), then closed (backoff): the reason changed
    reason = writes(nodes)[1]["metadata"]["annotations"][GATE]
    assert reason.startswith("closed since 2026-11-22T12:00:00Z: ")  # still closed since the start
    assert "QuotaExceeded" in reason


def test_without_the_gate_only_annotations_change() -> None:
    nodes = fake_nodes()
    _drive(nodes, [_snap("NoActivity"), _snap("InProgress", 4)], gate=False)
    assert [w["spec"]["taints"] for w in writes(nodes)] == [[VIRTUAL_TAINT], [VIRTUAL_TAINT]]


def test_conflicting_writer_is_retried_with_a_fresh_read() -> None:
    nodes = fake_nodes(conflicts=2)
    recorder = _drive(nodes, [_snap("NoActivity")])
    assert recorder.patches == 1
    assert nodes.nodes[VIRTUAL_NODE]["spec"]["taints"] == [VIRTUAL_TAINT, GATE_TAINT]


def test_a_node_already_in_the_wanted_state_is_not_written() -> None:
    nodes = fake_nodes()
    _drive(nodes, [_snap("NoActivity")])
    again = _drive(nodes, [_snap("NoActivity", 5)])  # a second replica, same state
    assert len(writes(nodes)) == 1
    assert again.patches == 0


def test_unsynced_snapshots_are_not_recorded() -> None:
    nodes = fake_nodes()
    _drive(nodes, [empty_snapshot(TideoverConfig(), NOW)])
    assert writes(nodes) == []


def test_failed_write_is_retried_on_the_next_snapshot() -> None:
    class Flaky(FakeKube):
        failures = 1

        def read_node(self, name: str) -> Mapping[str, Any]:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("apiserver unavailable")
            return super().read_node(name)

    nodes = Flaky({VIRTUAL_NODE: virtual_node()})
    recorder = SpillStateRecorder(nodes)
    recorder.start()
    first = _snap("InProgress")
    recorder.on_snapshot(first, first)
    deadline = time.monotonic() + 5
    while nodes.failures and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    recorder.on_snapshot(first, _snap("InProgress", 2))
    recorder.stop()
    recorder._thread.join(5)
    assert recorder.patches == 1
    assert nodes.nodes[VIRTUAL_NODE]["metadata"]["annotations"][CAPACITY_PENDING] == "nodepool1"


@pytest.mark.parametrize(
    ("current", "pending", "gate", "expected"),
    [
        pytest.param([VIRTUAL_TAINT], (), True, [VIRTUAL_TAINT, GATE_TAINT], id="close-adds"),
        pytest.param([VIRTUAL_TAINT, GATE_TAINT], ("p",), True, [VIRTUAL_TAINT], id="open-removes"),
        pytest.param([GATE_TAINT, VIRTUAL_TAINT], (), True, [VIRTUAL_TAINT, GATE_TAINT], id="no-duplicate"),
        pytest.param([VIRTUAL_TAINT, GATE_TAINT], (), False, [VIRTUAL_TAINT], id="gate-off-removes"),
    ],
)
def test_desired_taints(current: list[dict[str, str]], pending: tuple[str, ...], gate: bool,
                        expected: list[dict[str, str]]) -> None:
    assert desired_taints(current, SpillState(pending, NOW), gate) == expected
