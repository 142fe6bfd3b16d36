"""Is VM capacity pending for a pool? A pure decision from cluster-autoscaler's status and the pool's nodes.

tideover lets a pod spill to the virtual node only while capacity for its VM pool is *pending*: a
cluster-autoscaler (CA) scale-up of the pool's scale set is under way and its nodes are not Ready yet.
:func:`capacity_signal` decides that for one pool (CA node group) and says why, in sentences a person can
check against ``kubectl``. It does no I/O: the caller passes the pool (:class:`PoolWait`), what it read of
the CA status (:class:`~extender.model.autoscaler_status.AutoscalerStatusRead`), the config's autoscaler
settings and the clock.

Rules, in order:

1. **Which CA evidence counts.** No status at all: ``no-status``. The status's age is taken from
   ``updated_at`` of the read (the ConfigMap's ``last-updated`` annotation) or else the status's own ``time``;
   if it is older than ``statusMaxAgeSeconds``, or has no time at all, it is ignored (``status-stale``):
   CA rewrites it every loop, so an old "InProgress" is no promise. A status without the pool's node
   group: ``group-not-in-status``. In these three cases only node evidence (rule 4) can make the pool
   pending.
2. **Backoff is never pending.** CA's ``scaleUp: Backoff`` means a scale-up just failed (quota, SKU out of
   stock, ...) and CA will not retry for a while: whatever the target or the nodes say, the state is
   ``backoff``, not pending, and the evidence carries CA's ``errorCode``/``errorMessage``.
3. **Pending from CA** (fresh status, node group present), when any of:
   ``scaleUp: InProgress`` (``scale-up-in-progress``); ``cloudProviderTarget`` above the registered nodes
   (``target-above-registered``), counted as CA counts upcoming nodes: registered minus ``beingDeleted``
   (not part of the target) plus ``longUnregistered`` (VMs that failed to join will not); or
   ``notStarted > 0`` (``nodes-starting``). A scale-up value tideover does not know (CA adds values over
   time) makes the whole CA part not pending (``unknown-scale-up-state``).
4. **Pending from nodes**: a node of the pool that is registered but not Ready, and was created within
   ``newNodeWindowSeconds`` of now, is capacity arriving (``nodes-starting``). An older node going
   NotReady is a failure, not capacity coming, and is ignored (so is a node without a creation time).
5. **Not pending otherwise.** If the target equals ``maxSize``, no more than the registered nodes, and
   nothing is starting: ``at-max-size``. Else (``NoActivity``, ``NotNeeded``, ``Needed``, or no scale-up
   value): ``no-activity``, with CA's raw value in ``autoscaler_scale_up``.

When several pending reasons hold, the state is the first of ``scale-up-in-progress``,
``target-above-registered``, ``nodes-starting``; the evidence lists all of them.

``pending_since`` is CA's ``scaleUp.lastTransitionTime`` when CA says InProgress, else
``first_seen_pending`` (the caller remembers when it first saw the pool pending), else ``now``.
``eta_seconds = provisioning_estimate_seconds - (now - pending_since)`` while that is positive; once a
scale-up is overdue its remaining wait is unknown, and the prediction is ``overdueFloorSeconds`` (never
"almost there" for a scale-up that is already late).

6. **Stuck.** A pending scale-up more than ``stuckAfterSeconds`` past its estimate is ``stuck`` (a VMSS
   allocation that never lands keeps CA at InProgress until its max-node-provision-time,
   kubernetes/autoscaler#8323). With ``stuckAction: stop-spilling`` it is no longer pending (state
   ``scale-up-stuck``, no ETA); with ``keep-spilling`` it stays pending, flagged ``stuck``. The stuck
   evidence comes first, so every reason built from the first evidence says it.
:class:`ProvisioningTimes` refines the estimate from provisioning times observed per pool.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

from extender.model.autoscaler_status import AutoscalerStatusRead, NodeGroupStatus
from extender.model.config import Autoscaler

__all__ = [
    "PENDING_STATES",
    "CapacitySignal",
    "CapacityState",
    "PoolNodeState",
    "PoolWait",
    "ProvisioningTimes",
    "capacity_signal",
    "is_stuck",
]


@dataclass(frozen=True, slots=True)
class PoolNodeState:
    name: str
    ready: bool
    created: datetime | None  # node metadata.creationTimestamp


class CapacityState(StrEnum):
    """Why a pool is (or is not) pending. Values are short and stable: they are metric labels."""

    # pending
    SCALE_UP_IN_PROGRESS = "scale-up-in-progress"
    TARGET_ABOVE_REGISTERED = "target-above-registered"
    NODES_STARTING = "nodes-starting"
    # not pending
    BACKOFF = "backoff"
    AT_MAX_SIZE = "at-max-size"
    NO_ACTIVITY = "no-activity"
    UNKNOWN_SCALE_UP_STATE = "unknown-scale-up-state"
    STATUS_STALE = "status-stale"
    NO_STATUS = "no-status"
    GROUP_NOT_IN_STATUS = "group-not-in-status"
    # pending by the evidence, but so far past its estimate that it is taken as stuck (stuckAction stop-spilling)
    SCALE_UP_STUCK = "scale-up-stuck"


# In priority order: the state reported when several hold.
_PENDING_ORDER = (
    CapacityState.SCALE_UP_IN_PROGRESS,
    CapacityState.TARGET_ABOVE_REGISTERED,
    CapacityState.NODES_STARTING,
)
PENDING_STATES = frozenset(_PENDING_ORDER)

# CA's scaleUp values that mean "nothing is being added" (clusterstate/api/types.go).
_IDLE_SCALE_UP = frozenset({"NoActivity", "NotNeeded", "Needed"})
_MAX_NODES_LISTED = 3
_MAX_MESSAGE_CHARS = 300


@dataclass(frozen=True, slots=True)
class CapacitySignal:
    pool: str
    node_group: str
    pending: bool
    state: CapacityState
    evidence: tuple[str, ...]  # each a sentence a person understands
    # Raw CA value (from a fresh status only), for reasons like "(autoscaler: NoActivity)".
    autoscaler_scale_up: str | None
    pending_since: datetime | None
    eta_seconds: float | None  # when pending: predicted seconds until the new capacity is Ready
    # Far past its estimate (autoscaler.stuckAfterSeconds): pending only if stuckAction is keep-spilling.
    stuck: bool = False

    def describe(self) -> str:
        """One line, e.g. ``nodepool1: pending (scale-up-in-progress; ETA ~95s): autoscaler: ...``."""
        head = self.pool if self.pool == self.node_group else f"{self.pool} (node group {self.node_group})"
        evidence = "; ".join(self.evidence) or "no evidence"
        if self.pending:
            eta = "" if self.eta_seconds is None else f"; ETA ~{self.eta_seconds:.0f}s"
            stuck = "; stuck, spilling anyway" if self.stuck else ""
            return f"{head}: pending ({self.state}{eta}{stuck}): {evidence}"
        return f"{head}: not pending ({self.state}: {evidence})"


@dataclass(frozen=True, slots=True)
class PoolWait:
    """One pool as the capacity signal sees it: its autoscaler node group, its nodes, how long a new node takes
    (seconds, the estimate) and when the caller first saw the pool pending (None: not pending before)."""

    pool: str
    node_group: str
    nodes: Sequence[PoolNodeState]
    provisioning_estimate_seconds: float
    first_seen_pending: datetime | None = None


def capacity_signal(
    wait: PoolWait, read: AutoscalerStatusRead, settings: Autoscaler, now: datetime
) -> CapacitySignal:
    """Decide whether capacity is pending for ``wait.pool`` (CA node group ``wait.node_group``) from the autoscaler's
    status ``read`` and ``settings`` (the config's ``autoscaler`` section); see the module doc.

    Naive datetimes are taken as UTC.
    """
    estimate = wait.provisioning_estimate_seconds
    if not math.isfinite(estimate) or estimate < 0:
        raise ValueError(f"provisioning_estimate_seconds must be a finite number >= 0, got {estimate!r}")
    now = _utc(now)
    evidence: list[str] = []
    pending_states: set[CapacityState] = set()
    # The not-pending state CA's part gives, when it gives no pending reason.
    idle_state = CapacityState.NO_ACTIVITY
    usable = _usable_group(read, wait.node_group, now, settings.status_max_age_seconds, evidence)
    group: NodeGroupStatus | None = None
    if isinstance(usable, CapacityState):
        idle_state = usable
    else:
        group = usable

    backoff = group is not None and group.scale_up == "Backoff"
    if group is not None:
        idle_state = _autoscaler_evidence(group, now, backoff, evidence, pending_states)

    if _node_evidence(wait.nodes, now, settings.new_node_window_seconds, evidence):
        pending_states.add(CapacityState.NODES_STARTING)

    if backoff:
        state = CapacityState.BACKOFF
        pending = False
    elif pending_states:
        state = next(s for s in _PENDING_ORDER if s in pending_states)
        pending = True
    else:
        state = idle_state
        pending = False
        if group is not None and state is CapacityState.NO_ACTIVITY and _at_max_size(group):
            state = CapacityState.AT_MAX_SIZE
            evidence.append(
                f"at max size: cloudProviderTarget {group.cloud_provider_target} = maxSize {group.max_size} "
                f"(registered {group.registered})"
            )

    pending_since: datetime | None = None
    eta: float | None = None
    stuck = False
    if pending:
        pending_since, eta = _wait_estimate(wait, group, state, now, settings.overdue_floor_seconds, evidence)
        stuck = is_stuck(wait.provisioning_estimate_seconds, pending_since, now, settings, evidence)
        if stuck and settings.stuck_action == "stop-spilling":
            state, pending, eta = CapacityState.SCALE_UP_STUCK, False, None
    return CapacitySignal(
        pool=wait.pool,
        node_group=wait.node_group,
        pending=pending,
        state=state,
        evidence=tuple(evidence),
        autoscaler_scale_up=group.scale_up if group is not None else None,
        pending_since=pending_since,
        eta_seconds=eta,
        stuck=stuck,
    )


def is_stuck(
    estimate: float, pending_since: datetime, now: datetime, settings: Autoscaler, evidence: list[str]
) -> bool:
    """Rule 6: a pending scale-up more than ``stuckAfterSeconds`` past its estimate is stuck (autoscaler#8323)."""
    limit = settings.stuck_after_seconds
    if limit is None:
        return False
    late = (now - pending_since).total_seconds() - estimate
    if late <= limit:
        return False
    action = "no longer counted as pending" if settings.stuck_action == "stop-spilling" else "spilling goes on"
    evidence.insert(
        0,
        f"scale-up stuck: {late:.0f}s past its {estimate:.0f}s estimate (limit {limit:.0f}s; a VMSS allocation "
        f"that never lands keeps the autoscaler at InProgress until max-node-provision-time): {action}",
    )
    return True


def _wait_estimate(
    wait: PoolWait, group: NodeGroupStatus | None, state: CapacityState, now: datetime, overdue_floor: float,
    evidence: list[str],
) -> tuple[datetime, float]:
    """Since when a pending pool has waited, and the seconds it has left (the overdue floor once late)."""
    if state is CapacityState.SCALE_UP_IN_PROGRESS and group is not None and group.scale_up_since:
        pending_since = group.scale_up_since
    elif wait.first_seen_pending is not None:
        pending_since = _utc(wait.first_seen_pending)
    else:
        pending_since = now
    estimate = wait.provisioning_estimate_seconds
    waited = max(0.0, (now - pending_since).total_seconds())
    remaining = estimate - waited
    if waited > estimate:
        evidence.append(f"overdue: pending for {waited:.0f}s, longer than the {estimate:.0f}s estimate")
    return pending_since, remaining if remaining > 0 else overdue_floor


def _usable_group(
    read: AutoscalerStatusRead,
    node_group: str,
    now: datetime,
    max_age: float,
    evidence: list[str],
) -> NodeGroupStatus | CapacityState:
    """The node group's CA status if it may be used, else the state saying why not (rule 1)."""
    status = read.status
    if status is None:
        evidence.append("no cluster-autoscaler status")
        return CapacityState.NO_STATUS
    updated = read.updated_at if read.updated_at is not None else status.time
    if updated is None:
        evidence.append("autoscaler status has no time, so its age is unknown: ignored")
        return CapacityState.STATUS_STALE
    age = (now - _utc(updated)).total_seconds()
    if age > max_age:
        evidence.append(
            f"autoscaler status is {age:.0f}s old (written {_clock(_utc(updated), now)}; "
            f"limit {max_age:.0f}s): ignored"
        )
        return CapacityState.STATUS_STALE
    group = status.node_groups.get(node_group)
    if group is None:
        known = ", ".join(sorted(status.node_groups)[:5]) or "none"
        if status.autoscaler_status == "Initializing":
            known += "; the autoscaler is still initializing"
        evidence.append(f"node group {node_group} is not in the autoscaler status (node groups: {known})")
        return CapacityState.GROUP_NOT_IN_STATUS
    return group


def _autoscaler_evidence(
    group: NodeGroupStatus,
    now: datetime,
    backoff: bool,
    evidence: list[str],
    pending_states: set[CapacityState],
) -> CapacityState:
    """Add CA's evidence for the group (rules 2, 3); return the state to report if nothing is pending."""
    scale_up = group.scale_up
    since = f" since {_clock(group.scale_up_since, now)}" if group.scale_up_since else ""
    if backoff:
        detail = ": ".join(
            part for part in (group.backoff_error_code, _truncate(group.backoff_error_message)) if part
        )
        evidence.append(
            f"autoscaler: ScaleUp Backoff{since} ({detail or 'no error details in the status'}): "
            "a scale-up failed and will not be retried for a while"
        )
    elif scale_up is not None and scale_up != "InProgress" and scale_up not in _IDLE_SCALE_UP:
        evidence.append(f"autoscaler: ScaleUp {scale_up}{since} is not a state tideover knows: not pending")
        return CapacityState.UNKNOWN_SCALE_UP_STATE
    elif scale_up == "InProgress":
        ago = ""
        if group.scale_up_since is not None:
            ago = f" ({max(0.0, (now - group.scale_up_since).total_seconds()):.0f}s ago)"
        evidence.append(f"autoscaler: ScaleUp InProgress{since}{ago}")
        pending_states.add(CapacityState.SCALE_UP_IN_PROGRESS)
    elif scale_up is None:
        evidence.append("autoscaler: no ScaleUp state for the node group")
    else:
        evidence.append(f"autoscaler: ScaleUp {scale_up}{since}")

    target, registered = group.cloud_provider_target, group.registered
    if target is not None and registered is not None and target > registered - (group.being_deleted or 0):
        deleting = group.being_deleted or 0
        lost = group.long_unregistered or 0
        counted = registered - deleting + lost
        comparison = f"cloudProviderTarget {target} > registered {registered}"
        if deleting:
            comparison += f" - {deleting} being deleted"
        if backoff:
            evidence.append(f"{comparison}: ignored, the autoscaler is in backoff")
        elif target > counted:
            if lost:
                comparison += f" + {lost} long-unregistered (VMs that failed to join)"
            evidence.append(comparison)
            pending_states.add(CapacityState.TARGET_ABOVE_REGISTERED)
        else:
            evidence.append(
                f"{comparison}, but {lost} VM(s) failed to register (longUnregistered): nothing new is coming"
            )
    if group.not_started:
        if backoff:
            evidence.append(f"autoscaler: {group.not_started} node(s) not started yet: ignored, backoff")
        else:
            evidence.append(f"autoscaler: {group.not_started} node(s) registered, not started yet")
            pending_states.add(CapacityState.NODES_STARTING)
    return CapacityState.NO_ACTIVITY


def _node_evidence(nodes: Sequence[PoolNodeState], now: datetime, window: float, evidence: list[str]) -> bool:
    """Add the nodes' evidence (rule 4); return whether any node is capacity arriving."""
    starting: list[tuple[str, float]] = []
    failed: list[str] = []
    unknown: list[str] = []
    for node in nodes:
        if node.ready:
            continue
        if node.created is None:
            unknown.append(node.name)
            continue
        age = max(0.0, (now - _utc(node.created)).total_seconds())
        if age <= window:
            starting.append((node.name, age))
        else:
            failed.append(node.name)
    if len(starting) <= _MAX_NODES_LISTED:
        evidence.extend(
            f"node {name} registered, not Ready yet (created {age:.0f}s ago)" for name, age in starting
        )
    else:
        ages = [age for _, age in starting]
        evidence.append(
            f"{len(starting)} nodes registered, not Ready yet "
            f"(created {min(ages):.0f}-{max(ages):.0f}s ago): {_names([name for name, _ in starting])}"
        )
    if failed:
        evidence.append(
            f"{len(failed)} node(s) not Ready and created over {window:.0f}s ago, a failure rather than "
            f"capacity coming: {_names(failed)}"
        )
    if unknown:
        evidence.append(
            f"{len(unknown)} node(s) not Ready with no creation time, not counted: {_names(unknown)}"
        )
    return bool(starting)


def _at_max_size(group: NodeGroupStatus) -> bool:
    target, registered = group.cloud_provider_target, group.registered
    return (
        target is not None
        and group.max_size is not None
        and registered is not None
        and target == group.max_size
        and target <= registered
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _clock(value: datetime, now: datetime) -> str:
    value = _utc(value)
    return value.strftime("%H:%M:%SZ" if value.date() == now.date() else "%Y-%m-%dT%H:%M:%SZ")


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_NODES_LISTED])
    return shown if len(names) <= _MAX_NODES_LISTED else f"{shown} and {len(names) - _MAX_NODES_LISTED} more"


def _truncate(message: str | None) -> str | None:
    if message is None or len(message) <= _MAX_MESSAGE_CHARS:
        return message
    return message[: _MAX_MESSAGE_CHARS - 3] + "..."


@dataclass(frozen=True)
class ProvisioningTimes:
    """Provisioning times observed per pool, refining the configured estimate. Immutable: :meth:`observe` returns
    the next value.

    Until a pool has an observation its estimate is the configured default; then it is the median of the
    pool's last ``window`` observations, so a single outlier (a first node pulling every image, an Azure
    hiccup) does not swing it.
    """

    default_seconds: float
    window: int = 20
    observed: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not math.isfinite(self.default_seconds) or self.default_seconds < 0:
            raise ValueError(f"default_seconds must be a finite number >= 0, got {self.default_seconds!r}")
        if self.window < 1:
            raise ValueError(f"window must be at least 1, got {self.window!r}")

    def observe(self, pool: str, seconds: float) -> ProvisioningTimes:
        """These times plus: a new node of ``pool`` took ``seconds`` to be Ready (non-finite or negative: ignored)."""
        if isinstance(seconds, bool):
            return self
        try:
            value = float(seconds)
        except (TypeError, ValueError):
            return self
        if not math.isfinite(value) or value < 0:
            return self
        kept = (*self.observed.get(pool, ()), value)[-self.window:]
        return replace(self, observed={**self.observed, pool: kept})

    def estimate(self, pool: str, default: float | None = None) -> float:
        """Seconds a new node of ``pool`` takes: the median observed, else ``default`` (else the configured one)."""
        observed = self.observed.get(pool)
        if not observed:
            return self.default_seconds if default is None else default
        return float(statistics.median(observed))

    def observations(self, pool: str) -> tuple[float, ...]:
        return self.observed.get(pool, ())
