"""A second capacity signal: Karpenter's NodeClaims, for AKS Node Auto Provisioning (managed Karpenter), where no
cluster-autoscaler runs and so no status ConfigMap exists.

Karpenter (sigs.k8s.io/karpenter, API ``karpenter.sh/v1``) creates a NodeClaim per node it wants, labelled
``karpenter.sh/nodepool: <NodePool>``; the cloud provider launches it (condition ``Launched``), its node registers
(``Registered``), is initialized (``Initialized``), and the claim turns ``Ready``. A NodePool has capacity pending
while one of its claims is created or launched but not Ready, created within ``newNodeWindowSeconds`` (the same
window as for nodes), and not failed: ``Launched=False`` is a failed launch (for example no capacity for the
instance type) and counts like cluster-autoscaler's Backoff. The ETA and the stuck check are those of
:mod:`extender.model.capacity`: the provisioning estimate minus the wait since the oldest pending claim was created.

:class:`CapacitySource` is the interface both signals implement. This module is pure: the cluster view watches the
NodeClaims and NodePools (``nodeclaim_facts`` and ``nodepool_facts`` parse one), and the signal is
read in the snapshot when ``autoscaler.capacitySignal`` is ``karpenter``, or ``auto`` with the NodeClaim CRD served
and no cluster-autoscaler status ConfigMap (:func:`capacity_source`). The NodePools are the pools: one without a
node yet is known from its NodePool, and its template (labels, single-valued ``In`` requirements, taints) is what a
pending pod is matched against. Field names checked against sigs.k8s.io/karpenter v1.8.0 ``pkg/apis/v1``
(nodeclaim.go, nodeclaim_status.go, nodepool.go, labels.go) and ``pkg/apis/crds``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from extender.model.autoscaler_status import AutoscalerStatusRead
from extender.model.capacity import CapacitySignal, CapacityState, PoolWait, capacity_signal, is_stuck
from extender.model.config import Autoscaler
from extender.model.objects import Json, parse_time

__all__ = ["CLUSTER_AUTOSCALER", "KARPENTER", "NODEPOOL_LABEL", "NOT_WATCHED", "AutoscalerStatusSource",
           "CapacitySource", "KarpenterRead", "KarpenterSource", "NodeClaimFacts", "NodePoolFacts",
           "capacity_source", "karpenter_signal", "nodeclaim_facts", "nodepool_facts"]

NODEPOOL_LABEL = "karpenter.sh/nodepool"  # sigs.k8s.io/karpenter pkg/apis/v1/labels.go NodePoolLabelKey
# The API the view lists and watches (pkg/apis/crds/karpenter.sh_nodeclaims.yaml, karpenter.sh_nodepools.yaml).
GROUP: Final = "karpenter.sh"
VERSION: Final = "v1"
CLUSTER_AUTOSCALER: Final = "cluster-autoscaler"
KARPENTER: Final = "karpenter"


class CapacitySource(Protocol):
    """Where a pool's capacity signal comes from: cluster-autoscaler's status, or Karpenter's NodeClaims."""

    @property
    def name(self) -> str: ...

    def signal(self, wait: PoolWait, now: datetime) -> CapacitySignal: ...


@dataclass(frozen=True, slots=True)
class AutoscalerStatusSource:
    read: AutoscalerStatusRead
    settings: Autoscaler
    name: str = CLUSTER_AUTOSCALER

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


def _map(value: Any) -> Mapping[str, Any]:
    """A mapping, or an empty one for anything else: these objects are read leniently (a field of the wrong type
    counts as absent), as the API server has already checked them against the CRD's schema."""
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else ()


def _aware(moment: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC (the API always writes one; a hand-written dump may not)."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _condition(conditions: Sequence[Any], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if isinstance(c, Mapping) and c.get("type") == kind), None)


def nodeclaim_facts(claim: Mapping[str, Any]) -> NodeClaimFacts:
    """The facts of one ``karpenter.sh/v1`` NodeClaim (its JSON shape)."""
    metadata = _map(claim.get("metadata"))
    conditions = _list(_map(claim.get("status")).get("conditions"))
    launched = _condition(conditions, "Launched")
    ready = _condition(conditions, "Ready")
    launched_status = None if launched is None else {"True": True, "False": False}.get(str(launched.get("status")))
    return NodeClaimFacts(
        name=str(metadata.get("name", "")),
        nodepool=_map(metadata.get("labels")).get(NODEPOOL_LABEL),
        created=_aware(parse_time(metadata.get("creationTimestamp"))),
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
    problem: str | None = None  # why the NodeClaims cannot be read (CRD not served), if they cannot
    name: str = KARPENTER

    def signal(self, wait: PoolWait, now: datetime) -> CapacitySignal:
        if self.problem is not None:
            return CapacitySignal(
                pool=wait.pool, node_group=wait.node_group, pending=False, state=CapacityState.NO_STATUS,
                evidence=(f"karpenter: {self.problem}",), autoscaler_scale_up=None, pending_since=None,
                eta_seconds=None,
            )
        return karpenter_signal(wait, self.claims, self.settings, now)


@dataclass(frozen=True, slots=True)
class NodePoolFacts:
    """What a NodePool says of the nodes it will add: the labels (its template's, plus each requirement ``In`` with
    a single value, which every node of the pool carries) and the taints (not the startup taints, which go)."""

    name: str
    labels: Mapping[str, str]
    taints: tuple[Json, ...]


def nodepool_facts(pool: Mapping[str, Any]) -> NodePoolFacts:
    """The facts of one ``karpenter.sh/v1`` NodePool (spec.template.metadata.labels, spec.template.spec.taints and
    .requirements)."""
    template = _map(_map(pool.get("spec")).get("template"))
    spec = _map(template.get("spec"))
    labels = {str(k): str(v) for k, v in _map(_map(template.get("metadata")).get("labels")).items()}
    for requirement in map(_map, _list(spec.get("requirements"))):
        values = _list(requirement.get("values"))
        if requirement.get("operator") == "In" and len(values) == 1:
            labels.setdefault(str(requirement.get("key")), str(values[0]))
    taints = tuple(dict(t) for t in _list(spec.get("taints")) if isinstance(t, Mapping))
    return NodePoolFacts(name=str(_map(pool.get("metadata")).get("name", "")), labels=labels, taints=taints)


@dataclass(frozen=True)
class KarpenterRead:
    """What the cluster view read of Karpenter: whether the NodeClaim CRD is served, the claims and the NodePools."""

    served: bool
    claims: tuple[NodeClaimFacts, ...] = ()
    nodepools: Mapping[str, NodePoolFacts] = field(default_factory=dict)
    problem: str | None = None  # why nothing was read, when nothing was


NOT_WATCHED = KarpenterRead(served=False, problem="NodeClaims are not watched (autoscaler.capacitySignal)")


def capacity_source(settings: Autoscaler, autoscaler: AutoscalerStatusRead, karpenter: KarpenterRead) -> CapacitySource:
    """The signal ``autoscaler.capacitySignal`` chooses: ``auto`` takes Karpenter's NodeClaims while their CRD is
    served and no cluster-autoscaler status ConfigMap exists (AKS Node Auto Provisioning), else the CA status."""
    chosen = settings.capacity_signal
    if chosen == "auto":
        chosen = KARPENTER if karpenter.served and autoscaler.config_map_missing else CLUSTER_AUTOSCALER
    if chosen == KARPENTER:
        problem = None if karpenter.served else (karpenter.problem or "the NodeClaim CRD is not served")
        return KarpenterSource(karpenter.claims, settings, problem)
    return AutoscalerStatusSource(autoscaler, settings)
