"""The Karpenter NodeClaim capacity signal (extender/model/karpenter.py), on NodeClaims in their JSON shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from extender.model.capacity import CapacityState, PoolWait
from extender.model.config import Autoscaler
from extender.model.karpenter import NODEPOOL_LABEL, karpenter_signal, nodeclaim_facts

NOW = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
WAIT = PoolWait(pool="general", node_group="general", nodes=(), provisioning_estimate_seconds=120)


def claim(name: str, age: float, *conditions: tuple[str, str], pool: str = "general", deleting: bool = False) -> Any:
    metadata: dict[str, Any] = {"name": name, "labels": {NODEPOOL_LABEL: pool},
                                "creationTimestamp": (NOW - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if deleting:
        metadata["deletionTimestamp"] = metadata["creationTimestamp"]
    status = {"conditions": [{"type": t, "status": s, "message": "no capacity" if s == "False" else ""}
                             for t, s in conditions]}
    return nodeclaim_facts({"metadata": metadata, "status": status})


def test_launched_not_ready_is_pending_with_an_eta() -> None:
    signal = karpenter_signal(WAIT, [claim("a", 30, ("Launched", "True")), claim("b", 10)], Autoscaler(), NOW)
    assert (signal.pending, signal.state, signal.eta_seconds) == (True, CapacityState.SCALE_UP_IN_PROGRESS, 90.0)
    assert signal.pending_since == NOW - timedelta(seconds=30)


def test_ready_other_pools_deleting_and_old_claims_are_not_pending() -> None:
    claims = [claim("a", 30, ("Launched", "True"), ("Ready", "True")), claim("b", 30, pool="gpu"),
              claim("c", 30, deleting=True), claim("d", 5000, ("Launched", "True"))]
    signal = karpenter_signal(WAIT, claims, Autoscaler(), NOW)
    assert (signal.pending, signal.state) == (False, CapacityState.NO_ACTIVITY)


def test_a_failed_launch_is_backoff() -> None:
    signal = karpenter_signal(WAIT, [claim("a", 30, ("Launched", "False"))], Autoscaler(), NOW)
    assert (signal.pending, signal.state) == (False, CapacityState.BACKOFF)
    assert "failed to launch (no capacity)" in signal.evidence[0]


def test_a_claim_far_past_its_estimate_is_stuck() -> None:
    signal = karpenter_signal(WAIT, [claim("a", 800, ("Launched", "True"))], Autoscaler(), NOW)
    assert (signal.pending, signal.stuck, signal.state) == (False, True, CapacityState.SCALE_UP_STUCK)
