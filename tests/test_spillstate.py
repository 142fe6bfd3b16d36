"""The spill state written onto virtual nodes: once per change of the pending set, never per ETA tick."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta

from extender.snapshot import ClusterSnapshot
from extender.spillstate import CAPACITY_PENDING, SPILL_WINDOW, SpillStateRecorder
from tests.factories import NOW, VIRTUAL_NODE, cluster, snapshot, status_yaml


def _snap(scale_up: str, seconds: int = 0, nodes: list[dict[str, object]] | None = None) -> ClusterSnapshot:
    status = status_yaml(scale_up, registered=2, target=3 if scale_up == "InProgress" else 2)
    at = NOW + timedelta(seconds=seconds)
    return snapshot(nodes or cluster(2), status, now=at, status_updated_at=at)


def _run(snapshots: list[ClusterSnapshot]) -> list[tuple[str, Mapping[str, object]]]:
    patches: list[tuple[str, Mapping[str, object]]] = []
    recorder = SpillStateRecorder(lambda node, patch: patches.append((node, patch)))
    recorder.start()
    previous = snapshots[0]
    for snap in snapshots:
        recorder.on_snapshot(previous, snap)
        previous = snap
    recorder.stop()
    deadline = time.monotonic() + 5
    while recorder._thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    return patches


def test_one_patch_per_change_of_the_pending_set() -> None:
    patches = _run([
        _snap("NoActivity"), _snap("NoActivity", 2),  # closed, unchanged
        _snap("InProgress", 4), _snap("InProgress", 6), _snap("InProgress", 8),  # open; ETA ticks are not changes
        _snap("NoActivity", 10),  # closed again
    ])
    annotations = [patch["metadata"]["annotations"] for _, patch in patches]  # type: ignore[index]
    assert [node for node, _ in patches] == [VIRTUAL_NODE] * 3
    assert [a[CAPACITY_PENDING] for a in annotations] == ["", "nodepool1", ""]
    assert annotations[1][SPILL_WINDOW] == "open since 2026-11-22T12:00:04Z"
    assert annotations[2][SPILL_WINDOW].startswith("closed since 2026-11-22T12:00:10Z")


def test_unsynced_snapshots_are_not_recorded() -> None:
    from extender.config import TideoverConfig
    from extender.snapshot import empty_snapshot

    assert _run([empty_snapshot(TideoverConfig(), NOW)]) == []


def test_failed_patch_is_retried_on_the_next_snapshot() -> None:
    calls: list[str] = []

    def flaky(node: str, patch: Mapping[str, object]) -> None:
        calls.append(node)
        if len(calls) == 1:
            raise RuntimeError("apiserver unavailable")

    recorder = SpillStateRecorder(flaky)
    recorder.start()
    first = _snap("InProgress")
    recorder.on_snapshot(first, first)
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    recorder.on_snapshot(first, _snap("InProgress", 2))
    while recorder.patches < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    recorder.stop()
    assert calls == [VIRTUAL_NODE, VIRTUAL_NODE]
    assert recorder.patches == 1
