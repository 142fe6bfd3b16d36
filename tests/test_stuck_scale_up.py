"""A scale-up that never lands (kubernetes/autoscaler#8323): autoscaler.stuckAfterSeconds and stuckAction.

CA keeps a VMSS scale-up whose VMs never register at InProgress until max-node-provision-time; tideover calls it
stuck once it is ``stuckAfterSeconds`` past its estimate, and then stops spilling (the default) or goes on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest
from prometheus_client import generate_latest

from extender.controllers.gate import desired_state
from extender.decide.filter import FilterOutcome, decide_filter
from extender.model.autoscaler_status import AutoscalerStatus, AutoscalerStatusRead, NodeGroupStatus
from extender.model.capacity import CapacityState, PoolWait, ProvisioningTimes, capacity_signal
from extender.model.config import Autoscaler, ConfigError, TideoverConfig, parse_config
from extender.model.keys import GATE, SCALE_UP_STUCK
from extender.model.objects import pod_facts
from extender.model.snapshot import PoolHistory, advance_pool
from extender.telemetry.metrics import Metrics
from tests.support.factories import NOW as FACTORY_NOW
from tests.support.factories import cluster, pod, snapshot, status_yaml

NOW = datetime(2026, 11, 29, 4, 30, tzinfo=UTC)
GROUP = "aks-nodepool1-12345678-vmss"
ESTIMATE = 240.0


def in_progress(since_seconds: float) -> AutoscalerStatusRead:
    group = NodeGroupStatus(
        name=GROUP, health="Healthy", registered=1, ready=1, not_started=0, unready=0, being_deleted=None,
        long_unregistered=0, unregistered=2, cloud_provider_target=3, min_size=1, max_size=5,
        scale_up="InProgress", scale_up_since=NOW - timedelta(seconds=since_seconds),
        backoff_error_code=None, backoff_error_message=None,
    )
    status = AutoscalerStatus(format="yaml", time=NOW, autoscaler_status="Running", cluster_scale_up=None,
                              node_groups=MappingProxyType({GROUP: group}))
    return AutoscalerStatusRead(status, None)


def stuck_signal(since_seconds: float, **settings: Any) -> Any:
    wait = PoolWait(pool="nodepool1", node_group=GROUP, nodes=(), provisioning_estimate_seconds=ESTIMATE)
    return capacity_signal(wait, in_progress(since_seconds), Autoscaler(**settings), NOW)


def test_the_default_stops_spilling_600s_past_the_estimate() -> None:
    just_before = stuck_signal(ESTIMATE + 600)
    assert (just_before.pending, just_before.stuck, just_before.state) == (
        True, False, CapacityState.SCALE_UP_IN_PROGRESS)
    late = stuck_signal(ESTIMATE + 601)
    assert (late.pending, late.stuck, late.state, late.eta_seconds) == (
        False, True, CapacityState.SCALE_UP_STUCK, None)
    assert late.evidence[0].startswith("scale-up stuck: 601s past its 240s estimate (limit 600s")
    assert "no longer counted as pending" in late.evidence[0]
    assert late.pending_since == NOW - timedelta(seconds=ESTIMATE + 601)
    assert "not pending (scale-up-stuck: scale-up stuck" in late.describe()


def test_keep_spilling_stays_pending_and_flags_it() -> None:
    late = stuck_signal(ESTIMATE + 700, stuck_action="keep-spilling")
    assert (late.pending, late.stuck, late.state) == (True, True, CapacityState.SCALE_UP_IN_PROGRESS)
    assert late.eta_seconds == 60.0  # the overdue floor
    assert "spilling goes on" in late.evidence[0]
    assert "stuck, spilling anyway" in late.describe()


def test_null_never_calls_it_stuck() -> None:
    late = stuck_signal(10_000, stuck_after_seconds=None)
    assert (late.pending, late.stuck) == (True, False)


def test_a_stuck_pool_keeps_its_history_so_it_stays_stuck() -> None:
    late = stuck_signal(ESTIMATE + 601)
    started = NOW - timedelta(seconds=ESTIMATE + 601)
    history, _ = advance_pool(PoolHistory(), ProvisioningTimes(ESTIMATE), "nodepool1", late, (), NOW)
    assert history.first_seen_pending == started
    assert history.scale_up_started == started


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"stuckAction": "spill-forever"}, "autoscaler.stuckAction"),
        ({"stuckAfterSeconds": -1}, "autoscaler.stuckAfterSeconds"),
    ],
)
def test_bad_settings_name_the_field(section: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"apiVersion": "tideover.io/v1alpha1", "kind": "TideoverConfiguration", "autoscaler": section})
    assert field in str(caught.value)


def real_snapshot(since_seconds: float, **settings: Any) -> Any:
    """A snapshot built as the cluster view builds it: one VM of nodepool1, the virtual node, CA InProgress (target
    3, registered 1) since ``since_seconds`` before the factories' NOW, its group named as AKS names it."""
    config = TideoverConfig(autoscaler=Autoscaler(**settings))
    status = status_yaml("InProgress", group=GROUP, registered=1, target=3,
                         since=FACTORY_NOW - timedelta(seconds=since_seconds))
    return snapshot(cluster(1), status, config=config)


def test_the_snapshot_maps_the_aks_group_and_sees_it_stuck() -> None:
    late = real_snapshot(ESTIMATE + 601)
    pool = late.pools["nodepool1"]
    assert pool.node_group == GROUP
    assert (pool.capacity.stuck, pool.capacity.pending) == (True, False)
    assert late.stuck_pools == ("nodepool1",) and late.pending_pools == ()
    keep = real_snapshot(ESTIMATE + 601, stuck_action="keep-spilling")
    assert keep.stuck_pools == ("nodepool1",) and keep.pending_pools == ("nodepool1",)


def test_metric_and_annotation_name_the_stuck_pool() -> None:
    stuck = real_snapshot(ESTIMATE + 601)
    healthy = real_snapshot(30)
    metrics = Metrics()
    current = [stuck]
    metrics.watch_snapshot(lambda: current[0], dict)
    text = generate_latest(metrics.registry).decode()
    assert 'tideover_scale_up_stuck{pool="nodepool1"} 1.0' in text
    assert 'tideover_capacity_pending{pool="nodepool1",state="scale-up-stuck"} 0.0' in text
    current[0] = healthy
    assert 'tideover_scale_up_stuck{pool="nodepool1"} 0.0' in generate_latest(metrics.registry).decode()

    state = desired_state(stuck, None)
    assert state is not None and state.annotations()[SCALE_UP_STUCK] == "nodepool1"
    assert state.pending_pools == ()
    assert "scale-up stuck" in state.annotations()[GATE]
    recovered = desired_state(healthy, state)
    assert recovered is not None and recovered.annotations()[SCALE_UP_STUCK] == ""
    assert recovered.pending_pools == ("nodepool1",)


def test_the_filter_and_the_waiting_event_say_stuck() -> None:
    stuck = real_snapshot(ESTIMATE + 601)
    waiting = pod_facts(pod("web-1", cpu="1", tolerate_virtual=True))
    decision = decide_filter(waiting, stuck.virtual_nodes, stuck, stuck_config())
    assert decision.outcome is FilterOutcome.WITHHELD_NO_SCALE_UP
    assert decision.reason.startswith("virtual node withheld: the VMSS scale-up of pools [nodepool1] is stuck")
    assert "scale-up stuck: 601s past" in decision.reason


def stuck_config() -> TideoverConfig:
    return TideoverConfig()
