"""Tests for extender.model.capacity: the capacity-pending rules and the provisioning-time estimator."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from extender.model.autoscaler_status import (
    AutoscalerStatus,
    AutoscalerStatusRead,
    NodeGroupStatus,
    parse_autoscaler_status,
)
from extender.model.capacity import (
    PENDING_STATES,
    CapacitySignal,
    CapacityState,
    PoolNodeState,
    PoolWait,
    ProvisioningTimes,
    capacity_signal,
)
from extender.model.config import Autoscaler

NOW = datetime(2026, 3, 10, 12, 4, 39, tzinfo=UTC)
GROUP = "aks-nodepool1-12345678-vmss"
POOL = "nodepool1"
S = CapacityState


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def group(**fields: Any) -> NodeGroupStatus:
    base: dict[str, Any] = {
        "name": GROUP, "health": "Healthy", "registered": 3, "ready": 3, "not_started": 0, "unready": 0,
        "being_deleted": None, "long_unregistered": 0, "unregistered": 0, "cloud_provider_target": 3,
        "min_size": 1, "max_size": 10, "scale_up": "NoActivity", "scale_up_since": None,
        "backoff_error_code": None, "backoff_error_message": None,
    }
    base.update(fields)
    return NodeGroupStatus(**base)


def status(
    *groups: NodeGroupStatus, time: datetime | None = NOW, autoscaler: str | None = "Running"
) -> AutoscalerStatus:
    return AutoscalerStatus(
        format="yaml", time=time, autoscaler_status=autoscaler, cluster_scale_up=None,
        node_groups=MappingProxyType({g.name: g for g in groups}),
    )


def node(name: str, *, ready: bool = False, age: float | None = 40.0) -> PoolNodeState:
    return PoolNodeState(name=name, ready=ready, created=None if age is None else ago(age))


SETTINGS = ("status_max_age_seconds", "new_node_window_seconds", "overdue_floor_seconds")


def signal(**overrides: Any) -> CapacitySignal:
    """The signal for one pool; ``overrides`` name any input: the pool's, the status read's or a setting."""
    arguments: dict[str, Any] = {
        "pool": POOL, "node_group": GROUP, "status": status(group()), "status_updated_at": None,
        "nodes": (), "now": NOW, "provisioning_estimate_seconds": 240.0, "status_max_age_seconds": 180.0,
        "new_node_window_seconds": 900.0, "overdue_floor_seconds": 60.0, "first_seen_pending": None,
    }
    arguments.update(overrides)
    wait = PoolWait(
        pool=arguments["pool"], node_group=arguments["node_group"], nodes=arguments["nodes"],
        provisioning_estimate_seconds=arguments["provisioning_estimate_seconds"],
        first_seen_pending=arguments["first_seen_pending"],
    )
    read = AutoscalerStatusRead(arguments["status"], arguments["status_updated_at"])
    settings = Autoscaler(**{name: arguments[name] for name in SETTINGS})
    return capacity_signal(wait, read, settings, arguments["now"])


QUOTA_MESSAGE = (
    "Operation could not be completed as it results in exceeding approved standardDSv5Family Cores quota."
)

# (overrides, pending, state, autoscaler_scale_up, evidence sentences that must be present)
RULE_CASES = [
    pytest.param(
        {"status": status(group(scale_up="InProgress", scale_up_since=ago(95), cloud_provider_target=4))},
        True, S.SCALE_UP_IN_PROGRESS, "InProgress",
        ["autoscaler: ScaleUp InProgress since 12:03:04Z (95s ago)", "cloudProviderTarget 4 > registered 3"],
        id="ca-in-progress",
    ),
    pytest.param(
        {"status": status(group(cloud_provider_target=5))},
        True, S.TARGET_ABOVE_REGISTERED, "NoActivity",
        ["autoscaler: ScaleUp NoActivity", "cloudProviderTarget 5 > registered 3"],
        id="target-above-registered",
    ),
    pytest.param(
        {"status": status(group(cloud_provider_target=5, long_unregistered=1))},
        True, S.TARGET_ABOVE_REGISTERED, "NoActivity",
        ["cloudProviderTarget 5 > registered 3 + 1 long-unregistered (VMs that failed to join)"],
        id="target-above-registered-plus-long-unregistered",
    ),
    pytest.param(
        {"status": status(group(cloud_provider_target=5, long_unregistered=2))},
        False, S.NO_ACTIVITY, "NoActivity",
        ["cloudProviderTarget 5 > registered 3, but 2 VM(s) failed to register (longUnregistered): "
         "nothing new is coming"],
        id="target-gap-is-only-long-unregistered",
    ),
    pytest.param(
        {"status": status(group(cloud_provider_target=4, registered=4, ready=4, being_deleted=1))},
        True, S.TARGET_ABOVE_REGISTERED, "NoActivity",
        ["cloudProviderTarget 4 > registered 4 - 1 being deleted"],
        id="target-above-registered-minus-being-deleted",
    ),
    pytest.param(
        {"status": status(group(cloud_provider_target=3, registered=4, ready=4, being_deleted=1))},
        False, S.NO_ACTIVITY, "NoActivity", ["autoscaler: ScaleUp NoActivity"],
        id="being-deleted-not-in-target",
    ),
    pytest.param(
        {"status": status(group(registered=4, ready=3, not_started=1, cloud_provider_target=4))},
        True, S.NODES_STARTING, "NoActivity", ["autoscaler: 1 node(s) registered, not started yet"],
        id="ca-not-started",
    ),
    pytest.param(
        {"status": status(group(scale_up="Backoff", scale_up_since=ago(30), cloud_provider_target=5,
                                not_started=1, backoff_error_code="QuotaExceeded",
                                backoff_error_message=QUOTA_MESSAGE)),
         "nodes": (node("aks-nodepool1-12345678-vmss000004"),)},
        False, S.BACKOFF, "Backoff",
        [f"autoscaler: ScaleUp Backoff since 12:04:09Z (QuotaExceeded: {QUOTA_MESSAGE}): a scale-up failed "
         "and will not be retried for a while",
         "cloudProviderTarget 5 > registered 3: ignored, the autoscaler is in backoff",
         "autoscaler: 1 node(s) not started yet: ignored, backoff",
         "node aks-nodepool1-12345678-vmss000004 registered, not Ready yet (created 40s ago)"],
        id="backoff-overrides-target-not-started-and-nodes",
    ),
    pytest.param(
        {"status": status(group(scale_up="Backoff"))},
        False, S.BACKOFF, "Backoff",
        ["autoscaler: ScaleUp Backoff (no error details in the status): a scale-up failed and will not be "
         "retried for a while"],
        id="backoff-without-details",
    ),
    pytest.param(
        {"status": status(group(scale_up="HasDynamicHeadroom", cloud_provider_target=5, not_started=1))},
        False, S.UNKNOWN_SCALE_UP_STATE, "HasDynamicHeadroom",
        ["autoscaler: ScaleUp HasDynamicHeadroom is not a state tideover knows: not pending"],
        id="unknown-scale-up-ignores-ca-numbers",
    ),
    pytest.param(
        {"status": status(group(scale_up="HasDynamicHeadroom")), "nodes": (node("vmss000004", age=10),)},
        True, S.NODES_STARTING, "HasDynamicHeadroom",
        ["autoscaler: ScaleUp HasDynamicHeadroom is not a state tideover knows: not pending",
         "node vmss000004 registered, not Ready yet (created 10s ago)"],
        id="unknown-scale-up-but-fresh-node",
    ),
    pytest.param(
        {"status": status(group(cloud_provider_target=10, registered=10, ready=10, max_size=10))},
        False, S.AT_MAX_SIZE, "NoActivity",
        ["at max size: cloudProviderTarget 10 = maxSize 10 (registered 10)"],
        id="at-max-size",
    ),
    pytest.param(
        {"status": status(group(cloud_provider_target=10, registered=9, ready=9, max_size=10))},
        True, S.TARGET_ABOVE_REGISTERED, "NoActivity", ["cloudProviderTarget 10 > registered 9"],
        id="at-max-target-but-last-node-coming",
    ),
    pytest.param(
        {"status": status(group(cloud_provider_target=10, registered=10, max_size=10)),
         "nodes": (node("vmss000009"),)},
        True, S.NODES_STARTING, "NoActivity", ["node vmss000009 registered, not Ready yet (created 40s ago)"],
        id="at-max-target-but-node-starting",
    ),
    pytest.param(
        {"status": status(group(scale_up="NotNeeded"))},
        False, S.NO_ACTIVITY, "NotNeeded", ["autoscaler: ScaleUp NotNeeded"], id="not-needed",
    ),
    pytest.param(
        {"status": status(group(scale_up="Needed", scale_up_since=ago(5)))},
        False, S.NO_ACTIVITY, "Needed", ["autoscaler: ScaleUp Needed since 12:04:34Z"], id="needed",
    ),
    pytest.param(
        {"status": status(group(scale_up=None, cloud_provider_target=None, registered=None))},
        False, S.NO_ACTIVITY, None, ["autoscaler: no ScaleUp state for the node group"],
        id="no-scale-up-value",
    ),
    pytest.param(
        {"status": None}, False, S.NO_STATUS, None, ["no cluster-autoscaler status"], id="no-status",
    ),
    pytest.param(
        {"status": None, "nodes": (node("vmss000004"),)},
        True, S.NODES_STARTING, None,
        ["no cluster-autoscaler status", "node vmss000004 registered, not Ready yet (created 40s ago)"],
        id="no-status-but-fresh-node",
    ),
    pytest.param(
        {"status": status(group(name="aks-other-1-vmss", scale_up="InProgress"))},
        False, S.GROUP_NOT_IN_STATUS, None,
        [f"node group {GROUP} is not in the autoscaler status (node groups: aks-other-1-vmss)"],
        id="group-not-in-status",
    ),
    pytest.param(
        {"status": status(autoscaler="Initializing")},
        False, S.GROUP_NOT_IN_STATUS, None,
        [f"node group {GROUP} is not in the autoscaler status (node groups: none; the autoscaler is still "
         "initializing)"],
        id="autoscaler-initializing",
    ),
    pytest.param(
        {"status": status(group(name="aks-other-1-vmss")), "nodes": (node("vmss000004"),)},
        True, S.NODES_STARTING, None, ["node vmss000004 registered, not Ready yet (created 40s ago)"],
        id="group-not-in-status-but-fresh-node",
    ),
    pytest.param(
        {"status": status(group(scale_up="InProgress", cloud_provider_target=5)),
         "status_updated_at": ago(200)},
        False, S.STATUS_STALE, None,
        ["autoscaler status is 200s old (written 12:01:19Z; limit 180s): ignored"],
        id="stale-by-last-updated",
    ),
    pytest.param(
        {"status": status(group(scale_up="InProgress"), time=ago(181))},
        False, S.STATUS_STALE, None,
        ["autoscaler status is 181s old (written 12:01:38Z; limit 180s): ignored"],
        id="stale-by-status-time",
    ),
    pytest.param(
        {"status": status(group(scale_up="InProgress"), time=ago(3600)), "status_updated_at": ago(10)},
        True, S.SCALE_UP_IN_PROGRESS, "InProgress", ["autoscaler: ScaleUp InProgress"],
        id="last-updated-wins-over-status-time",
    ),
    pytest.param(
        {"status": status(group(scale_up="InProgress"), time=None)},
        False, S.STATUS_STALE, None,
        ["autoscaler status has no time, so its age is unknown: ignored"],
        id="status-without-time",
    ),
    pytest.param(
        {"status": status(group(scale_up="InProgress"), time=ago(86400 + 60))},
        False, S.STATUS_STALE, None,
        ["autoscaler status is 86460s old (written 2026-03-09T12:03:39Z; limit 180s): ignored"],
        id="stale-day-old-shows-date",
    ),
    pytest.param(
        {"status": status(group(scale_up="InProgress"), time=ago(500)), "nodes": (node("vmss000004"),)},
        True, S.NODES_STARTING, None, ["node vmss000004 registered, not Ready yet (created 40s ago)"],
        id="stale-but-fresh-node",
    ),
    pytest.param(
        {"nodes": (node("vmss000004", age=900),)},
        True, S.NODES_STARTING, "NoActivity",
        ["node vmss000004 registered, not Ready yet (created 900s ago)"],
        id="node-at-window-edge",
    ),
    pytest.param(
        {"nodes": (node("vmss000001", age=901), node("vmss000002", age=7200))},
        False, S.NO_ACTIVITY, "NoActivity",
        ["2 node(s) not Ready and created over 900s ago, a failure rather than capacity coming: "
         "vmss000001, vmss000002"],
        id="old-not-ready-nodes-are-failures",
    ),
    pytest.param(
        {"nodes": (node("vmss000004", age=None),)},
        False, S.NO_ACTIVITY, "NoActivity",
        ["1 node(s) not Ready with no creation time, not counted: vmss000004"],
        id="node-without-creation-time",
    ),
    pytest.param(
        {"nodes": (node("vmss000004", ready=True, age=5),)},
        False, S.NO_ACTIVITY, "NoActivity", ["autoscaler: ScaleUp NoActivity"], id="fresh-ready-node",
    ),
    pytest.param(
        {"nodes": (node("vmss000004", age=-30),)},
        True, S.NODES_STARTING, "NoActivity",
        ["node vmss000004 registered, not Ready yet (created 0s ago)"],
        id="node-created-in-the-future-clock-skew",
    ),
    pytest.param(
        {"nodes": tuple(node(f"vmss00000{i}", age=10 * i) for i in range(1, 6))},
        True, S.NODES_STARTING, "NoActivity",
        ["5 nodes registered, not Ready yet (created 10-50s ago): vmss000001, vmss000002, vmss000003 "
         "and 2 more"],
        id="many-starting-nodes-summarised",
    ),
    pytest.param(
        {"status": status(group(scale_up="InProgress", cloud_provider_target=5, registered=4, not_started=1)),
         "nodes": (node("vmss000004"),)},
        True, S.SCALE_UP_IN_PROGRESS, "InProgress",
        ["autoscaler: ScaleUp InProgress", "cloudProviderTarget 5 > registered 4",
         "autoscaler: 1 node(s) registered, not started yet",
         "node vmss000004 registered, not Ready yet (created 40s ago)"],
        id="all-reasons-in-progress-wins",
    ),
]


@pytest.mark.parametrize(("overrides", "pending", "state", "scale_up", "evidence"), RULE_CASES)
def test_capacity_rules(
    overrides: dict[str, Any], pending: bool, state: CapacityState, scale_up: str | None, evidence: list[str]
) -> None:
    result = signal(**overrides)
    assert (result.pending, result.state) == (pending, state)
    assert result.autoscaler_scale_up == scale_up
    for sentence in evidence:
        assert sentence in result.evidence, f"{sentence!r} not in {result.evidence}"
    assert (result.eta_seconds is not None) == pending
    assert (result.pending_since is not None) == pending
    assert (state in PENDING_STATES) == pending


@pytest.mark.parametrize(
    ("overrides", "pending_since", "eta"),
    [
        pytest.param(
            {"status": status(group(scale_up="InProgress", scale_up_since=ago(95))),
             "first_seen_pending": ago(20)},
            ago(95), 145.0, id="in-progress-uses-ca-transition-time",
        ),
        pytest.param(
            {"status": status(group(scale_up="InProgress")), "first_seen_pending": ago(30)},
            ago(30), 210.0, id="in-progress-without-ca-time-uses-first-seen",
        ),
        pytest.param(
            {"status": status(group(cloud_provider_target=5, scale_up_since=ago(3000))),
             "first_seen_pending": ago(100)},
            ago(100), 140.0, id="not-in-progress-ignores-ca-time",
        ),
        pytest.param(
            {"status": status(group(cloud_provider_target=5))}, NOW, 240.0, id="first-sight-is-now",
        ),
        pytest.param(
            {"status": status(group(scale_up="InProgress", scale_up_since=ago(200)))},
            ago(200), 40.0, id="nearly-due-is-an-honest-40s",
        ),
        pytest.param(
            {"status": status(group(scale_up="InProgress", scale_up_since=ago(400)))},
            ago(400), 60.0, id="overdue-uses-floor",
        ),
        pytest.param(
            {"status": status(group(scale_up="InProgress", scale_up_since=ago(400))),
             "overdue_floor_seconds": 0.0},
            ago(400), 0.0, id="overdue-with-zero-floor",
        ),
        pytest.param(
            {"status": status(group(scale_up="InProgress", scale_up_since=ago(10))),
             "provisioning_estimate_seconds": 95.0},
            ago(10), 85.0, id="estimate-from-caller",
        ),
        pytest.param(
            {"status": status(group(scale_up="InProgress", scale_up_since=NOW + timedelta(seconds=30)))},
            NOW + timedelta(seconds=30), 240.0, id="ca-time-in-future-counts-as-no-wait",
        ),
        pytest.param(
            {"status": None, "nodes": (node("vmss000004"),), "first_seen_pending": ago(50)},
            ago(50), 190.0, id="node-evidence-uses-first-seen",
        ),
    ],
)
def test_pending_since_and_eta(overrides: dict[str, Any], pending_since: datetime, eta: float) -> None:
    result = signal(**overrides)
    assert result.pending is True
    assert result.pending_since == pending_since
    assert result.eta_seconds == pytest.approx(eta)


def test_overdue_is_in_the_evidence() -> None:
    result = signal(status=status(group(scale_up="InProgress", scale_up_since=ago(400))))
    assert "overdue: pending for 400s, longer than the 240s estimate" in result.evidence
    not_yet = signal(status=status(group(scale_up="InProgress", scale_up_since=ago(200))))
    assert not any(line.startswith("overdue") for line in not_yet.evidence)


def test_not_pending_has_no_eta_even_with_first_seen() -> None:
    result = signal(first_seen_pending=ago(100))
    assert (result.pending, result.pending_since, result.eta_seconds) == (False, None, None)


def test_naive_datetimes_are_utc() -> None:
    naive_now = NOW.replace(tzinfo=None)
    result = signal(
        now=naive_now,
        status=status(group(scale_up="InProgress", scale_up_since=ago(95))),
        nodes=(PoolNodeState("vmss000004", False, (NOW - timedelta(seconds=40)).replace(tzinfo=None)),),
    )
    assert result.state is S.SCALE_UP_IN_PROGRESS
    assert result.eta_seconds == pytest.approx(145.0)
    assert "node vmss000004 registered, not Ready yet (created 40s ago)" in result.evidence


@pytest.mark.parametrize(
    "argument",
    ["provisioning_estimate_seconds", "status_max_age_seconds", "new_node_window_seconds", "overdue_floor_seconds"],
)
@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
def test_bad_durations_are_rejected(argument: str, value: float) -> None:
    """The pool's estimate is checked by the signal; the settings by the config model, before any signal."""
    with pytest.raises(ValueError, match=argument):
        signal(**{argument: value})


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        pytest.param(
            {"status": status(
                group(scale_up="InProgress", scale_up_since=ago(145), cloud_provider_target=4)
            )},
            f"{POOL} (node group {GROUP}): pending (scale-up-in-progress; ETA ~95s): autoscaler: ScaleUp "
            "InProgress since 12:02:14Z (145s ago); cloudProviderTarget 4 > registered 3",
            id="pending",
        ),
        pytest.param(
            {"node_group": POOL,
             "status": status(group(name=POOL, scale_up="Backoff", backoff_error_code="QuotaExceeded",
                                    backoff_error_message="quota"))},
            f"{POOL}: not pending (backoff: autoscaler: ScaleUp Backoff (QuotaExceeded: quota): "
            "a scale-up failed and will not be retried for a while)",
            id="not-pending-same-name",
        ),
        pytest.param(
            {"status": None},
            f"{POOL} (node group {GROUP}): not pending (no-status: no cluster-autoscaler status)",
            id="no-status",
        ),
    ],
)
def test_describe(overrides: dict[str, Any], line: str) -> None:
    assert signal(**overrides).describe() == line


def test_long_backoff_message_is_truncated() -> None:
    message = "x" * 1000
    result = signal(status=status(group(scale_up="Backoff", backoff_error_message=message)))
    assert result.evidence[0] == (
        f"autoscaler: ScaleUp Backoff ({'x' * 297}...): a scale-up failed and will not be retried for a while"
    )


def test_states_are_short_kebab_case_labels() -> None:
    assert {state.value for state in CapacityState} == {
        "scale-up-in-progress", "target-above-registered", "nodes-starting", "backoff", "at-max-size",
        "no-activity", "unknown-scale-up-state", "status-stale", "no-status", "group-not-in-status", "scale-up-stuck",
    }
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)*", state.value) for state in CapacityState)
    assert {S.SCALE_UP_IN_PROGRESS, S.TARGET_ABOVE_REGISTERED, S.NODES_STARTING} == PENDING_STATES
    assert f"{S.AT_MAX_SIZE}" == "at-max-size"


DATA = Path(__file__).parent / "data" / "autoscaler_status"


def load_sample(name: str) -> str:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    while name.endswith(".txt") and lines and lines[0].startswith("#"):
        lines.pop(0)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("sample", "node_group", "seconds_after", "pending", "state", "evidence"),
    [
        pytest.param("yaml_target_above_registered_aks.yaml", "aks-user-25795745-vmss", 8, True,
                     S.SCALE_UP_IN_PROGRESS, "cloudProviderTarget 3 > registered 2", id="aks-in-progress"),
        pytest.param("yaml_at_max_noactivity_aks.yaml", "aks-user-25795745-vmss", 5, False, S.AT_MAX_SIZE,
                     "at max size: cloudProviderTarget 3 = maxSize 3 (registered 3)", id="aks-at-max"),
        pytest.param("yaml_backoff_upstream_test.yaml", "sample-node-group", 5, False, S.BACKOFF,
                     "autoscaler: 3 node(s) not started yet: ignored, backoff", id="upstream-backoff"),
        pytest.param("yaml_noactivity_gke.yaml",
                     "https://www.googleapis.com/compute/v1/projects/gca-gke-2025/zones/asia-southeast1-a/"
                     "instanceGroups/gke-dbs-mgmt-primary-gpu-pool-98cd300e-grp",
                     5, False, S.NO_ACTIVITY, "autoscaler: ScaleUp NoActivity since 03:30:51Z",
                     id="gke-noactivity"),
        pytest.param("yaml_initializing.yaml", "aks-user-25795745-vmss", 5, False, S.GROUP_NOT_IN_STATUS,
                     "node group aks-user-25795745-vmss is not in the autoscaler status (node groups: none; "
                     "the autoscaler is still initializing)", id="initializing"),
        pytest.param("text_inprogress_aro.txt", "MachineSet/openshift-machine-api/memory-node-zone1", 5,
                     True, S.SCALE_UP_IN_PROGRESS, "cloudProviderTarget 3 > registered 1",
                     id="aro-text-in-progress"),
        pytest.param("text_backoff_eks.txt",
                     "eks-ue1-prod-XXXX-worker-group-staging-120200506102140590500000013", 5, False,
                     S.BACKOFF,
                     "autoscaler: ScaleUp Backoff since 14:28:31Z (no error details in the status): "
                     "a scale-up failed and will not be retried for a while", id="eks-text-backoff"),
        pytest.param("text_noactivity_aks.txt", "nodepool1", 500, False, S.STATUS_STALE,
                     "autoscaler status is 500s old (written 22:59:22Z; limit 180s): ignored",
                     id="aks-text-stale"),
    ],
)
def test_samples_end_to_end(
    sample: str, node_group: str, seconds_after: float, pending: bool, state: CapacityState, evidence: str
) -> None:
    parsed = parse_autoscaler_status(load_sample(sample))
    assert parsed.time is not None
    result = signal(status=parsed, node_group=node_group, now=parsed.time + timedelta(seconds=seconds_after))
    assert (result.pending, result.state) == (pending, state)
    assert evidence in result.evidence


# ---------------------------------------------------------------------------------------------------------
# ProvisioningTimeEstimator


@pytest.mark.parametrize(
    ("observed", "window", "estimate", "kept"),
    [
        pytest.param([], 20, 240.0, (), id="default-until-observed"),
        pytest.param([72.0], 20, 72.0, (72.0,), id="one-observation"),
        pytest.param([100.0, 120.0, 900.0], 20, 120.0, (100.0, 120.0, 900.0), id="median-ignores-outlier"),
        pytest.param([100.0, 200.0], 20, 150.0, (100.0, 200.0), id="median-of-even-count"),
        pytest.param([10.0, 20.0, 30.0, 40.0], 3, 30.0, (20.0, 30.0, 40.0), id="window-keeps-last"),
        pytest.param([0.0], 20, 0.0, (0.0,), id="zero-is-valid"),
        pytest.param([math.nan, math.inf, -math.inf, -1.0, 95.0], 20, 95.0, (95.0,), id="bad-values-ignored"),
        pytest.param([math.nan, -5.0], 20, 240.0, (), id="only-bad-values-keep-default"),
    ],
)
def test_estimator(observed: list[float], window: int, estimate: float, kept: tuple[float, ...]) -> None:
    start = estimator = ProvisioningTimes(240.0, window=window)
    for seconds in observed:
        estimator = estimator.observe(POOL, seconds)
    assert estimator.estimate(POOL) == pytest.approx(estimate)
    assert estimator.observations(POOL) == kept
    assert start.observations(POOL) == ()  # immutable: observe returns the next value


def test_estimator_ignores_non_numbers() -> None:
    estimator = ProvisioningTimes(240.0)
    estimator = estimator.observe(POOL, True)
    estimator = estimator.observe(POOL, "fast")  # type: ignore[arg-type]
    estimator = estimator.observe(POOL, None)  # type: ignore[arg-type]
    assert estimator.observations(POOL) == ()
    assert estimator.estimate(POOL) == 240.0


def test_estimator_pools_are_separate() -> None:
    estimator = ProvisioningTimes(240.0).observe("gpu", 600.0)
    assert estimator.estimate("gpu") == 600.0
    assert estimator.estimate(POOL) == 240.0
    assert estimator.observations(POOL) == ()
    assert (estimator.default_seconds, estimator.window) == (240.0, 20)


@pytest.mark.parametrize(
    ("default", "window", "message"),
    [
        pytest.param(-1.0, 20, "default_seconds", id="negative-default"),
        pytest.param(math.nan, 20, "default_seconds", id="nan-default"),
        pytest.param(240.0, 0, "window", id="zero-window"),
    ],
)
def test_estimator_rejects_bad_settings(default: float, window: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProvisioningTimes(default, window=window)
