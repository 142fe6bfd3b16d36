"""The controllers: deletion cost on spilled pods, returns through the Eviction API, failover safety."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from extender.controllers.events import PodEvent
from extender.controllers.loop import RETURNING_TO_VM, ControllerLoop, EvictionRateLimiter, desired_deletion_cost
from extender.model.config import parse_config
from extender.model.keys import RETURN_TARGET_MARKER, SCALE_DOWN_DISABLED
from extender.model.snapshot import ClusterSnapshot, PodPlacement
from extender.telemetry.metrics import Metrics
from tests.support.factories import NOW, VIRTUAL_NODE, cluster, snapshot, spilled, status_yaml
from tests.support.fakes import FakeKube

VIRTUAL = frozenset({VIRTUAL_NODE})


@pytest.mark.parametrize(
    ("pod", "wanted"),
    [
        pytest.param(spilled("a"), "-1000", id="spilled-replicaset-pod"),
        pytest.param(replace(spilled("a"), deletion_cost="-1000", deletion_cost_by_tideover=True), None,
                     id="already-set-no-repatch"),
        pytest.param(replace(spilled("a"), deletion_cost="-5", deletion_cost_by_tideover=True), "-1000",
                     id="ours-but-stale"),
        pytest.param(replace(spilled("a"), deletion_cost="250"), None, id="user-set-cost-wins"),
        pytest.param(spilled("a", node="aks-nodepool1-000000"), None, id="vm-pod-untouched"),
        pytest.param(spilled("a", kind="Job"), None, id="job-pod-untouched"),
        pytest.param(spilled("a", terminating=True), None, id="terminating"),
        pytest.param(spilled("a", phase="Succeeded"), None, id="finished"),
        pytest.param(spilled("a", phase="Pending"), None, id="not-running-yet"),
    ],
)
def test_desired_deletion_cost(pod: PodPlacement, wanted: str | None) -> None:
    assert desired_deletion_cost(pod, VIRTUAL, -1000) == wanted


def test_rate_limiter_window() -> None:
    clock = [0.0]
    limiter = EvictionRateLimiter(2, clock=lambda: clock[0])
    limiter.spend()
    limiter.spend()
    assert limiter.budget() == 0
    clock[0] = 59.9
    assert limiter.budget() == 0
    clock[0] = 60.0
    assert limiter.budget() == 2


CONFIG = parse_config({"controllers": {"returnToVm": {"stableSeconds": 0, "minPodAgeSeconds": 60}}})


QUIET_STATUS = status_yaml("NoActivity", registered=2)


def quiet(pods: list[PodPlacement]) -> ClusterSnapshot:
    """No capacity pending, and these pods (the controllers read the pods from the snapshot)."""
    return snapshot(cluster(2), QUIET_STATUS, pods=pods)


def _loop(core: FakeKube) -> tuple[ControllerLoop, list[PodEvent]]:
    events: list[PodEvent] = []
    loop = ControllerLoop(core, CONFIG, lambda: quiet([]), events.append, Metrics(), now=lambda: NOW)
    return loop, events


def test_deletion_cost_is_patched_once_per_spilled_pod() -> None:
    core = FakeKube()
    pods = [spilled("a", age=5), spilled("b", age=5), spilled("vm", node="aks-nodepool1-000000")]
    loop, _ = _loop(core)
    loop.apply_deletion_costs(quiet(pods))
    assert [name for name, _ in core.pod_patches] == ["a", "b"]
    assert core.pod_patches[0][1] == {"metadata": {"annotations": {
        "controller.kubernetes.io/pod-deletion-cost": "-1000", "tideover.io/deletion-cost": "managed"}}}
    # The next round sees the annotation (as the watch would report it) and patches nothing.
    patched = [replace(p, deletion_cost="-1000", deletion_cost_by_tideover=True) for p in pods[:2]]
    loop.apply_deletion_costs(quiet([*patched, pods[2]]))
    assert len(core.pod_patches) == 2


def test_return_evicts_records_events_and_protects_targets() -> None:
    core = FakeKube()
    pods = [spilled("a", owner="rs-1"), spilled("b", owner="rs-2")]
    loop, events = _loop(core)
    plan = loop.return_pods(quiet(pods))
    assert [m.pod.name for m in plan.moves] == ["a", "b"]
    assert core.evictions == ["a", "b"]
    assert [(e.reason, e.pod_name) for e in events] == [(RETURNING_TO_VM, "a"), (RETURNING_TO_VM, "b")]
    protected = {name for name, body in core.node_patches
                 if body["metadata"]["annotations"].get(SCALE_DOWN_DISABLED) == "true"}
    assert protected == {m.target_node for m in plan.moves}


def test_pdb_refusal_is_not_an_eviction_and_is_retried_later() -> None:
    core = FakeKube(pdb_blocks={"a"})
    pods = [spilled("a", owner="rs-1")]
    loop, events = _loop(core)
    loop.return_pods(quiet(pods))
    assert core.evictions == [] and events == []
    core.pdb_blocks.clear()
    loop.return_pods(quiet(pods))
    assert core.evictions == ["a"]


def test_a_new_leader_does_not_evict_a_pod_twice() -> None:
    core = FakeKube()
    pods = [spilled("a", owner="rs-1"), spilled("b", owner="rs-1")]
    first, _ = _loop(core)
    first.return_pods(quiet(pods[:1]))
    assert core.evictions == ["a"]
    # The leader dies. The API now shows "a" terminating; the new leader starts from that state alone.
    after = [replace(pods[0], terminating=True), pods[1]]
    second, _ = _loop(core)
    second.return_pods(quiet(after))
    assert core.evictions == ["a", "b"]


def test_nothing_moves_while_a_scale_up_is_pending_and_protection_is_released_after() -> None:
    core = FakeKube()
    pending = snapshot(cluster(2), status_yaml("InProgress", registered=2, target=3), pods=[spilled("a")])
    loop, _ = _loop(core)
    assert loop.return_pods(pending).waiting == "capacity still pending in nodepool1"
    assert core.evictions == []
    # Once every spilled pod is back, nodes tideover protected (this leader or a previous one) are released.
    marked = cluster(2)
    marked[0]["metadata"]["annotations"] = {RETURN_TARGET_MARKER: "true", SCALE_DOWN_DISABLED: "true"}
    done = snapshot(marked, QUIET_STATUS, now=NOW + timedelta(seconds=5),
                    pods=[spilled("a", node="aks-nodepool1-000001")])
    loop.return_pods(done)
    assert ("aks-nodepool1-000000", {"metadata": {"annotations": {SCALE_DOWN_DISABLED: None,
                                                                  RETURN_TARGET_MARKER: None}}}) in core.node_patches


def test_rate_limit_spans_rounds() -> None:
    config = parse_config({"controllers": {"returnToVm": {"stableSeconds": 0, "maxEvictionsPerMinute": 1}}})
    core = FakeKube()
    pods = [spilled("a", owner="rs-1"), spilled("b", owner="rs-2")]
    loop = ControllerLoop(core, config, lambda: quiet(pods), lambda e: None, Metrics(), now=lambda: NOW)
    loop.return_pods(quiet(pods))
    loop.return_pods(quiet(pods))
    assert core.evictions == ["a"]
