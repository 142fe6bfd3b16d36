"""pod-deletion-cost hygiene (issue 15): the API documents controller.kubernetes.io/pod-deletion-cost as best-effort
and warns against frequent updates (each is an API write the ReplicaSet controller does not need). tideover writes
it once per pod, only on pods that run on a virtual node, whatever the rounds and however late the watch is."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from extender.controllers.loop import ControllerLoop
from extender.controllers.port import Outcome, WriteResult
from extender.model.config import parse_config
from extender.model.keys import DELETION_COST_MARKER, POD_DELETION_COST
from extender.model.snapshot import ClusterSnapshot, PodPlacement
from extender.telemetry.metrics import Metrics
from tests.support.factories import NOW, VIRTUAL_NODE, cluster, snapshot, spilled, status_yaml
from tests.support.fakes import FakeKube

CONFIG = parse_config({"controllers": {"returnToVm": {"enabled": False}}})
QUIET_STATUS = status_yaml("NoActivity", registered=2)


def quiet(pods: list[PodPlacement]) -> ClusterSnapshot:
    """No capacity pending, and these pods as the cluster view shows them (the controllers read them there)."""
    return snapshot(cluster(2), QUIET_STATUS, pods=pods)


def _loop(core: FakeKube) -> ControllerLoop:
    return ControllerLoop(core, CONFIG, lambda: quiet([]), lambda _: None, Metrics(), now=lambda: NOW)
VMS = ("aks-nodepool1-000000", "aks-nodepool1-000001")


def _seen_by_watch(pod: PodPlacement, landed: list[tuple[str, dict[str, Any]]]) -> PodPlacement:
    """The pod as the watch reports it once the patches in ``landed`` have reached it."""
    for name, body in landed:
        if name == pod.name:
            value = body["metadata"]["annotations"][POD_DELETION_COST]
            pod = replace(pod, deletion_cost=value, deletion_cost_by_tideover=True)
    return pod


def _rounds(pods: list[PodPlacement], rounds: int, watch_lag: int) -> FakeKube:
    """Run ``rounds`` controller rounds; the view shows a round's patches ``watch_lag`` rounds late (0: by the
    next round)."""
    core = FakeKube()
    loop = _loop(core)
    written_after: list[int] = []  # patches written by the end of each round
    for index in range(rounds):
        last_seen_round = index - 1 - watch_lag
        seen = written_after[last_seen_round] if last_seen_round >= 0 else 0
        loop.apply_deletion_costs(quiet([_seen_by_watch(pod, core.pod_patches[:seen]) for pod in pods]))
        written_after.append(len(core.pod_patches))
    return core


class FlakyKube(FakeKube):
    """Refuses the first ``failures`` pod patches (a 500 from the API server)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def patch_pod(self, namespace: str, name: str, body: Mapping[str, Any]) -> WriteResult:
        if self.failures:
            self.failures -= 1
            return WriteResult(Outcome.FAILED, "500 Internal Server Error")
        return super().patch_pod(namespace, name, body)


@settings(max_examples=60, deadline=None)
@given(
    placements=st.lists(st.sampled_from([VIRTUAL_NODE, *VMS]), min_size=1, max_size=12),
    rounds=st.integers(min_value=1, max_value=6),
    watch_lag=st.integers(min_value=0, max_value=4),
)
def test_once_per_virtual_pod_and_never_on_a_vm_pod(placements: list[str], rounds: int, watch_lag: int) -> None:
    pods = [spilled(f"web-{i}", node=node) for i, node in enumerate(placements)]
    core = _rounds(pods, rounds, watch_lag)
    written = Counter(name for name, _ in core.pod_patches)
    on_virtual = {pod.name for pod in pods if pod.node_name == VIRTUAL_NODE}
    assert set(written) == on_virtual  # every pod on the virtual node, no pod on a VM
    assert all(count == 1 for count in written.values()), written  # once each, however late the watch
    for _, body in core.pod_patches:
        assert body["metadata"]["annotations"] == {POD_DELETION_COST: "-1000", DELETION_COST_MARKER: "managed"}


def test_a_new_pod_after_a_return_is_a_new_pod_and_on_a_vm_gets_nothing() -> None:
    """A returned pod is evicted and its ReplicaSet makes a new one (new uid) that lands on a VM: no write."""
    core = FakeKube()
    pods = [spilled("web-1")]
    loop = _loop(core)
    loop.apply_deletion_costs(quiet(pods))
    replacement = replace(spilled("web-2", node=VMS[0]), uid="uid-web-2")
    loop.apply_deletion_costs(quiet([replacement]))
    loop.apply_deletion_costs(quiet([replacement]))
    assert [name for name, _ in core.pod_patches] == ["web-1"]


def test_a_failed_write_is_retried_next_round() -> None:
    core = FlakyKube(failures=1)
    pods = [spilled("web-1")]
    loop = _loop(core)
    assert loop.apply_deletion_costs(quiet(pods)) == 0
    assert loop.apply_deletion_costs(quiet(pods)) == 1
    assert loop.apply_deletion_costs(quiet(pods)) == 0
