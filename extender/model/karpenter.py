"""A second capacity signal: Karpenter's NodeClaims, for AKS Node Auto Provisioning (managed Karpenter), where no
cluster-autoscaler runs and so no status ConfigMap exists.

Karpenter (sigs.k8s.io/karpenter, API ``karpenter.sh/v1``) creates a NodeClaim per node it wants, labelled
``karpenter.sh/nodepool: <NodePool>``; the cloud provider launches it (condition ``Launched``), its node registers
(``Registered``), is initialized (``Initialized``), and the claim turns ``Ready``. A NodePool has capacity pending
while one of its claims is created or launched but not Ready, created within ``newNodeWindowSeconds`` (the same
window as for nodes), and not failed: ``Launched=False`` is a failed launch (for example no capacity for the
instance type) and counts like cluster-autoscaler's Backoff. The ETA and the stuck check are those of
:mod:`extender.model.capacity`: the provisioning estimate minus the wait since the oldest pending claim was created.

:class:`CapacitySource` is the interface both signals implement. This module is pure: the caller lists the
NodeClaims (``nodeclaim_facts`` parses one). The cluster view does not watch NodeClaims yet, so the signal is not
wired into the snapshot; see the README ("Karpenter / Node Auto Provisioning").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from extender.model.autoscaler_status import AutoscalerStatusRead
from extender.model.capacity import CapacitySignal, CapacityState, PoolWait, capacity_signal, is_stuck
from extender.model.config import Autoscaler
from extender.model.objects import parse_time

__all__ = ["NODEPOOL_LABEL", "AutoscalerStatusSource", "CapacitySource", "KarpenterSource", "NodeClaimFacts",
           "karpenter_signal", "nodeclaim_facts"]

NODEPOOL_LABEL = "karpenter.sh/nodepool"  # sigs.k8s.io/karpenter pkg/apis/v1/labels.go NodePoolLabelKey


class CapacitySource(Protocol):
    """Where a pool's capacity signal comes from: cluster-autoscaler's status, or Karpenter's NodeClaims."""

    def signal(self, wait: PoolWait, now: datetime) -> CapacitySignal: ...


@dataclass(frozen=True, slots=True)
class AutoscalerStatusSource:
    read: AutoscalerStatusRead
    settings: Autoscaler

    def signal(self, wait: PoolWait, now: datetime) -> CapacitySignal:
        return capacity_signal(wait, self.read, self.settings, now)


@dataclass(frozen=True, slots=True)
class NodeClaimFacts:
    name: str
    nodepool: str | None
    created: datetime | None
    launched: bool | None  # condition Launched: True, False (failed), None (unknown or absent)
    launch_message: str
    ready: bool
    deleting: bool


def _condition(conditions: Sequence[Any], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if isinstance(c, Mapping) and c.get("type") == kind), None)


def nodeclaim_facts(claim: Mapping[str, Any]) -> NodeClaimFacts:
    """The facts of one ``karpenter.sh/v1`` NodeClaim (its JSON shape)."""
    metadata = claim.get("metadata") or {}
    conditions = (claim.get("status") or {}).get("conditions") or []
    launched = _condition(conditions, "Launched")
    ready = _condition(conditions, "Ready")
    launched_status = None if launched is None else {"True": True, "False": False}.get(str(launched.get("status")))
    return NodeClaimFacts(
        name=str(metadata.get("name", "")),
        nodepool=(metadata.get("labels") or {}).get(NODEPOOL_LABEL),
        created=parse_time(metadata.get("creationTimestamp")),
        launched=launched_status,
        launch_message=str((launched or {}).get("message") or (launched or {}).get("reason") or ""),
        ready=ready is not None and ready.get("status") == "True",
        deleting=bool(metadata.get("deletionTimestamp")),
    )


def karpenter_signal(
    wait: PoolWait, claims: Sequence[NodeClaimFacts], settings: Autoscaler, now: datetime
) -> CapacitySignal:
    """Is capacity pending for NodePool ``wait.node_group`` (``wait.pool`` is tideover's pool), from ``claims``."""
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    mine = [c for c in claims if c.nodepool == wait.node_group and not c.ready and not c.deleting]
    failed = [c for c in mine if c.launched is False]
    window = settings.new_node_window_seconds
    pending = [c for c in mine if c.launched is not False and c.created is not None
               and (now - c.created).total_seconds() <= window]
    evidence: list[str] = []
    if pending:
        oldest = min(c.created for c in pending if c.created is not None)
        evidence.append(f"karpenter: {len(pending)} NodeClaim(s) of NodePool {wait.node_group} not Ready yet "
                        f"({', '.join(sorted(c.name for c in pending)[:3])}; oldest created "
                        f"{(now - oldest).total_seconds():.0f}s ago)")
        estimate = wait.provisioning_estimate_seconds
        waited = max(0.0, (now - oldest).total_seconds())
        eta = estimate - waited if estimate > waited else settings.overdue_floor_seconds
        stuck = is_stuck(estimate, oldest, now, settings, evidence)
        stop = stuck and settings.stuck_action == "stop-spilling"
        return CapacitySignal(
            pool=wait.pool, node_group=wait.node_group, pending=not stop,
            state=CapacityState.SCALE_UP_STUCK if stop else CapacityState.SCALE_UP_IN_PROGRESS,
            evidence=tuple(evidence), autoscaler_scale_up=None, pending_since=oldest,
            eta_seconds=None if stop else eta, stuck=stuck,
        )
    if failed:
        evidence.append(f"karpenter: NodeClaim {failed[0].name} failed to launch "
                        f"({failed[0].launch_message or 'no message'}): nothing is coming")
        state = CapacityState.BACKOFF
    else:
        evidence.append(f"karpenter: no NodeClaim of NodePool {wait.node_group} is launching")
        state = CapacityState.NO_ACTIVITY
    return CapacitySignal(pool=wait.pool, node_group=wait.node_group, pending=False, state=state,
                          evidence=tuple(evidence), autoscaler_scale_up=None, pending_since=None, eta_seconds=None)


@dataclass(frozen=True, slots=True)
class KarpenterSource:
    claims: Sequence[NodeClaimFacts]
    settings: Autoscaler

    def signal(self, wait: PoolWait, now: datetime) -> CapacitySignal:
        return karpenter_signal(wait, self.claims, self.settings, now)
