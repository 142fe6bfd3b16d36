"""The snapshot builder's memory: provisioning times are learnt only from VMs a scale-up added."""

from __future__ import annotations

from datetime import timedelta

from extender.model.autoscaler_status import parse_autoscaler_status
from extender.model.capacity import ProvisioningTimeEstimator
from extender.model.config import TideoverConfig
from extender.model.objects import node_facts
from extender.model.snapshot import PendingTracker, build_snapshot
from tests.support.factories import NOW, cluster, status_yaml, vm_node


def _build(tracker: PendingTracker, nodes: list[dict[str, object]], status: str, seconds: float) -> None:
    at = NOW + timedelta(seconds=seconds)
    build_snapshot(config=TideoverConfig(), nodes=[node_facts(n) for n in nodes],
                   autoscaler_status=parse_autoscaler_status(status), autoscaler_status_updated_at=at, now=at,
                   tracker=tracker)


def test_a_new_vm_turning_ready_teaches_the_estimate() -> None:
    tracker = PendingTracker(ProvisioningTimeEstimator(240))
    base = cluster(2)
    scaling = status_yaml("InProgress", registered=2, target=3, since=NOW)
    _build(tracker, base, scaling, 0)
    booting = vm_node("aks-nodepool1-000002", ready=False, created=NOW + timedelta(seconds=60))
    _build(tracker, [*base, booting], scaling, 70)
    ready = vm_node("aks-nodepool1-000002", ready=True, created=NOW + timedelta(seconds=60))
    _build(tracker, [*base, ready], status_yaml("NoActivity", registered=3), 95)
    assert tracker.estimator.observations("nodepool1") == (95.0,)


def test_an_old_node_flapping_back_to_ready_teaches_nothing() -> None:
    tracker = PendingTracker(ProvisioningTimeEstimator(240))
    flapping = vm_node("aks-nodepool1-000000", ready=False, created=NOW - timedelta(seconds=30))
    _build(tracker, [flapping], status_yaml("NoActivity", registered=1, ready=0), 0)  # pending: node starting
    _build(tracker, [vm_node("aks-nodepool1-000000", created=NOW - timedelta(seconds=30))],
           status_yaml("NoActivity", registered=1), 2)
    assert tracker.estimator.observations("nodepool1") == ()
