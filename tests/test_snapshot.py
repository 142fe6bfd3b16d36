"""The snapshot builder's memory: provisioning times are learnt only from VMs a scale-up added, and the history is
handed from one snapshot to the next, never changed in place."""

from __future__ import annotations

from datetime import timedelta

from extender.model.autoscaler_status import AutoscalerStatusRead, parse_autoscaler_status
from extender.model.config import TideoverConfig
from extender.model.objects import node_facts
from extender.model.snapshot import PendingHistory, build_snapshot
from tests.support.factories import NOW, cluster, status_yaml, vm_node


def _build(
    history: PendingHistory | None, nodes: list[dict[str, object]], status: str, seconds: float
) -> PendingHistory:
    at = NOW + timedelta(seconds=seconds)
    snapshot = build_snapshot(
        config=TideoverConfig(), nodes=[node_facts(n) for n in nodes],
        autoscaler=AutoscalerStatusRead(parse_autoscaler_status(status), at), now=at, history=history,
    )
    assert snapshot.pending_history is not None
    return snapshot.pending_history


def test_a_new_vm_turning_ready_teaches_the_estimate() -> None:
    base = cluster(2)
    scaling = status_yaml("InProgress", registered=2, target=3, since=NOW)
    first = _build(None, base, scaling, 0)
    booting = vm_node("aks-nodepool1-000002", ready=False, created=NOW + timedelta(seconds=60))
    second = _build(first, [*base, booting], scaling, 70)
    ready = vm_node("aks-nodepool1-000002", ready=True, created=NOW + timedelta(seconds=60))
    third = _build(second, [*base, ready], status_yaml("NoActivity", registered=3), 95)
    assert third.times.observations("nodepool1") == (95.0,)
    assert second.times.observations("nodepool1") == ()  # the earlier history is unchanged
    assert third.pools["nodepool1"].scale_up_started is None  # no longer pending: forgotten
    assert second.pools["nodepool1"].scale_up_started == NOW


def test_an_old_node_flapping_back_to_ready_teaches_nothing() -> None:
    flapping = vm_node("aks-nodepool1-000000", ready=False, created=NOW - timedelta(seconds=30))
    first = _build(None, [flapping], status_yaml("NoActivity", registered=1, ready=0), 0)  # pending: node starting
    second = _build(first, [vm_node("aks-nodepool1-000000", created=NOW - timedelta(seconds=30))],
                    status_yaml("NoActivity", registered=1), 2)
    assert second.times.observations("nodepool1") == ()
