"""An immutable view of the cluster, as the decisions see it.

The cluster view builds a new :class:`ClusterSnapshot` in the background whenever something changes
(and every few seconds, so time-based facts such as an ETA stay fresh); the request path only reads
the current one. :func:`build_snapshot` is pure: the same inputs give the same snapshot, which is
what lets ``tideover explain`` answer from a ``kubectl`` dump with the server's own code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from extender.model.autoscaler_status import (
    NO_CONFIG_MAP,
    NO_STATUS_READ,
    AutoscalerStatus,
    AutoscalerStatusError,
    AutoscalerStatusRead,
    parse_autoscaler_status,
)
from extender.model.capacity import (
    CapacitySignal,
    CapacityState,
    PoolNodeState,
    PoolWait,
    ProvisioningTimes,
)
from extender.model.config import TideoverConfig
from extender.model.karpenter import NOT_WATCHED, CapacitySource, KarpenterRead, NodePoolFacts, capacity_source
from extender.model.keys import (
    AUTOSCALER_DELETION_TAINTS,
    AUTOSCALER_LAST_UPDATED,
    DELETION_COST_MARKER,
    PER_NODE_LABELS,
    POD_DELETION_COST,
    TRANSIENT_TAINT_PREFIXES,
)
from extender.model.objects import (
    Json,
    NodeFacts,
    ObjectError,
    PodFacts,
    PodOwner,
    kube_proxy_injected,
    parse_go_time,
    parse_time,
    pod_facts,
    pod_owner,
    pod_requests,
)


class NodeKind(StrEnum):
    VIRTUAL = "virtual"
    VM = "vm"  # a node of a VM pool (carries the pool label)
    OTHER = "other"  # neither: a node tideover knows no pool for


@dataclass(frozen=True, slots=True)
class NodeInfo:
    facts: NodeFacts
    kind: NodeKind
    pool: str | None

    @property
    def name(self) -> str:
        return self.facts.name


@dataclass(frozen=True, slots=True)
class PoolView:
    name: str
    node_group: str
    template_labels: Mapping[str, str]
    template_taints: tuple[Json, ...]
    template_source: str  # where the template came from, for explanations
    capacity: CapacitySignal
    price_per_hour: float
    nodes: int
    ready_nodes: int
    # (cores, bytes) of the pool's largest node: what a new node will offer. None without nodes.
    node_allocatable: tuple[float, float] | None = None


# Pending because the autoscaler is adding VMs (as opposed to a node merely still starting).
AUTOSCALER_PENDING_STATES = frozenset({CapacityState.SCALE_UP_IN_PROGRESS, CapacityState.TARGET_ABOVE_REGISTERED})


@dataclass(frozen=True, slots=True)
class PodPlacement:
    """What the cluster view keeps of a pod: enough for counts and metrics, not the whole object."""

    namespace: str
    name: str
    uid: str
    node_name: str | None
    phase: str | None
    owner_uid: str | None  # the controller owner (else the first owner), as PodFacts.owner_uid
    cpu: float = 0.0  # cores requested, as PodFacts.cpu; 0 when the pod's requests cannot be read
    memory: float = 0.0  # bytes requested, likewise
    owner_kind: str | None = None
    created: datetime | None = None
    terminating: bool = False  # metadata.deletionTimestamp is set
    deletion_cost: str | None = None  # controller.kubernetes.io/pod-deletion-cost, as written
    deletion_cost_by_tideover: bool = False  # tideover set that cost (tideover.io/deletion-cost: managed)
    # The pod's scheduling constraints (tolerations, nodeSelector, affinity), for "could a VM take it?"
    scheduling: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # kube-scheduler tried and found no node (PodScheduled=False, reason Unschedulable), and the pod is not bound.
    unschedulable: bool = False
    # The whole pod's facts, kept only while it is unschedulable: what tideover tells it about its wait.
    pending_facts: PodFacts | None = field(default=None, compare=False, repr=False)
    # Virtual nodes v2 add their kube-proxy sidecar to its container group (objects.kube_proxy_injected).
    kube_proxy_sidecar: bool = True

    @property
    def active(self) -> bool:
        """Holds (or will hold) resources and an IP: not Succeeded or Failed."""
        return self.phase not in TERMINAL_PHASES


TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


def _lenient_requests(spec: Any) -> tuple[float, float]:
    """(cores, bytes) the pod requests (:func:`~extender.model.objects.pod_requests`); (0, 0) when the spec cannot
    be read: a watched pod with a malformed spec still counts, it just holds nothing."""
    if not isinstance(spec, Mapping):
        return 0.0, 0.0
    try:
        cpu, memory = pod_requests(spec)
    except (ObjectError, TypeError, AttributeError):
        return 0.0, 0.0
    if not (math.isfinite(cpu) and math.isfinite(memory)):  # sums of huge quantities
        return 0.0, 0.0
    return cpu, memory


def _lenient_owner(metadata: Mapping[str, Any]) -> PodOwner:
    try:
        return pod_owner(metadata)
    except ObjectError:
        return PodOwner()


def pod_placement(pod: Mapping[str, Any]) -> PodPlacement:
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    owner = _lenient_owner(metadata)
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, Mapping):
        annotations = {}
    cpu, memory = _lenient_requests(spec)
    unschedulable = not metadata.get("deletionTimestamp") and _unschedulable(spec, status)
    facts = None
    if unschedulable:
        try:
            facts = pod_facts(pod)
        except ObjectError:
            unschedulable = False
    return PodPlacement(
        namespace=metadata.get("namespace") or "default",
        name=metadata.get("name", ""),
        uid=metadata.get("uid", ""),
        node_name=spec.get("nodeName") or None,
        phase=status.get("phase"),
        owner_uid=owner.uid,
        cpu=cpu,
        memory=memory,
        owner_kind=owner.kind,
        created=parse_time(metadata.get("creationTimestamp")),
        terminating=bool(metadata.get("deletionTimestamp")),
        deletion_cost=annotations.get(POD_DELETION_COST),
        deletion_cost_by_tideover=annotations.get(DELETION_COST_MARKER) == "managed",
        scheduling={key: spec[key] for key in ("tolerations", "nodeSelector", "affinity") if key in spec},
        unschedulable=unschedulable,
        pending_facts=facts,
        kube_proxy_sidecar=kube_proxy_injected(annotations),
    )


def _unschedulable(spec: Any, status: Any) -> bool:
    """Not bound, and kube-scheduler's last attempt found no node (PodScheduled=False, reason Unschedulable)."""
    if not isinstance(spec, Mapping) or spec.get("nodeName") or not isinstance(status, Mapping):
        return False
    if status.get("phase") not in (None, "Pending"):
        return False
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return False
    return any(
        isinstance(c, Mapping) and c.get("type") == "PodScheduled" and c.get("status") == "False"
        and c.get("reason") == "Unschedulable"
        for c in conditions
    )




def read_autoscaler_config_map(config_map: Mapping[str, Any] | None) -> AutoscalerStatusRead:
    """The autoscaler's status ConfigMap (raw object) -> its parsed status and when it was written."""
    if config_map is None:
        return AutoscalerStatusRead(None, None, NO_CONFIG_MAP)
    text = (config_map.get("data") or {}).get("status")
    if not text:
        return AutoscalerStatusRead(None, None, "status ConfigMap has no data.status")
    try:
        status = parse_autoscaler_status(text)
    except AutoscalerStatusError as error:
        return AutoscalerStatusRead(None, None, f"unreadable autoscaler status: {error}")
    annotations = (config_map.get("metadata") or {}).get("annotations") or {}
    return AutoscalerStatusRead(status, parse_go_time(annotations.get(AUTOSCALER_LAST_UPDATED)) or status.time, None)


@dataclass(frozen=True)
class ClusterSnapshot:
    built_at: datetime
    synced: bool
    nodes: Mapping[str, NodeInfo]
    pools: Mapping[str, PoolView]
    virtual_nodes: tuple[str, ...]
    autoscaler_status: AutoscalerStatus | None
    autoscaler_status_problem: str | None  # why the status could not be used, if it could not
    pods_on_virtual_nodes: Mapping[str, int]  # virtual node -> running or pending pods bound to it
    image_sizes: Mapping[str, float]  # normalised image -> bytes, the largest size any node reports
    # Scoring arrays, one entry per node in `index` order.
    index: Mapping[str, int] = field(repr=False)
    allocatable_cpu: NDArray[np.float64] = field(repr=False)
    allocatable_memory: NDArray[np.float64] = field(repr=False)
    price_per_hour: NDArray[np.float64] = field(repr=False)
    is_virtual: NDArray[np.bool_] = field(repr=False)
    image_presence: Mapping[str, NDArray[np.bool_]] = field(repr=False, default_factory=dict)
    node_index: NodeIndex | None = field(repr=False, default=None)
    node_names: frozenset[str] = field(repr=False, default=frozenset())  # the keys of ``nodes``, as a set
    # For the virtual-node guards (extender.decide.guards); all count active pods only (not Succeeded/Failed).
    # Owner uid -> uids of its pods, wherever they are (bound or not).
    owned_pods: Mapping[str, frozenset[str]] = field(repr=False, default_factory=dict)
    # Owner uid -> how many of its pods are bound to virtual nodes.
    virtual_pods_by_owner: Mapping[str, int] = field(repr=False, default_factory=dict)
    # Namespace -> estimated USD per hour of its pods on virtual nodes (virtualNodes.pricing on their requests).
    virtual_spend_by_namespace: Mapping[str, float] = field(repr=False, default_factory=dict)
    # Uids of the pods bound to virtual nodes.
    virtual_pod_uids: frozenset[str] = field(repr=False, default=frozenset())
    # For the controllers (extender.decide.returns, deletion costs), so that a round reads no pod but these:
    # the pods bound to virtual nodes; node -> (cores, bytes) requested by the pods bound to it; owner uid -> its pods
    # on the move (terminating, unbound, or bound and still Pending).
    virtual_pods: tuple[PodPlacement, ...] = field(repr=False, default=())
    requested_by_node: Mapping[str, tuple[float, float]] = field(repr=False, default_factory=dict)
    in_flight_by_owner: Mapping[str, int] = field(repr=False, default_factory=dict)
    # What the next build starts from (None only in snapshots not made by build_snapshot).
    pending_history: PendingHistory | None = field(repr=False, default=None, compare=False)
    # Where the pools' capacity signal came from: cluster-autoscaler or karpenter (autoscaler.capacitySignal).
    capacity_source: str = "cluster-autoscaler"

    @property
    def pending_pools(self) -> tuple[str, ...]:
        return tuple(name for name, pool in self.pools.items() if pool.capacity.pending)

    @property
    def stuck_pools(self) -> tuple[str, ...]:
        """Pools whose scale-up is far past its estimate (autoscaler.stuckAfterSeconds), pending or not."""
        return tuple(sorted(name for name, pool in self.pools.items() if pool.capacity.stuck))

    def virtual_node_room(self, name: str, max_pods_per_node: int | None) -> tuple[int, float | None]:
        """(pods bound to the virtual node, the pods it holds: ``max_pods_per_node`` else its allocatable pods,
        None when neither says)."""
        info = self.nodes.get(name)
        capacity = max_pods_per_node if max_pods_per_node is not None else (
            info.facts.allocatable_pods if info is not None else None)
        return self.pods_on_virtual_nodes.get(name, 0), capacity

    @property
    def virtual_pod_count(self) -> int:
        """Active pods bound to any virtual node: each holds an IP of the ACI subnet."""
        return sum(self.pods_on_virtual_nodes.values())


def is_virtual_node(labels: Mapping[str, str] | None, selector: Mapping[str, str]) -> bool:
    if not labels:
        return False
    return all(labels.get(key) == value for key, value in selector.items())


def node_kind_from_labels(labels: Mapping[str, str] | None, selector: Mapping[str, str]) -> NodeKind:
    """Virtual or not, from labels alone (enough for the filter's first rule)."""
    return NodeKind.VIRTUAL if is_virtual_node(labels, selector) else NodeKind.OTHER


def node_kind(facts: NodeFacts, config: TideoverConfig) -> tuple[NodeKind, str | None]:
    if is_virtual_node(facts.labels, config.virtual_nodes.selector):
        return NodeKind.VIRTUAL, None
    pool = facts.labels.get(config.vm_pools.pool_label)
    if pool:
        return NodeKind.VM, pool
    return NodeKind.OTHER, None


_AKS_VMSS_GROUP = "aks-{pool}-"


def resolve_node_group(pool: str, config: TideoverConfig, status: AutoscalerStatus | None) -> str:
    """The autoscaler node group of a pool: configured, else a group of that name, else AKS's VMSS naming
    (``aks-<pool>-<digits>-vmss``), else the pool name."""
    configured = config.vm_pools.configured(pool)
    if configured is not None and configured.node_group:
        return configured.node_group
    if status is not None and pool not in status.node_groups:
        pattern = re.compile(rf"^aks-{re.escape(pool)}-\d+-vmss$")
        matches = [name for name in status.node_groups if pattern.match(name)]
        if len(matches) == 1:
            return matches[0]
    return pool


def _template(
    pool: str, config: TideoverConfig, pool_nodes: list[NodeFacts]
) -> tuple[Mapping[str, str], tuple[Json, ...], str]:
    configured = config.vm_pools.configured(pool)
    if configured is not None and configured.template is not None:
        labels = dict(configured.template.labels)
        labels.setdefault(config.vm_pools.pool_label, pool)
        return labels, tuple(t.as_json() for t in configured.template.taints), "config"
    if pool_nodes:
        # Prefer a Ready node: its labels are complete.
        model = sorted(pool_nodes, key=lambda n: (not n.ready, n.name))[0]
        labels = {k: v for k, v in model.labels.items() if k not in PER_NODE_LABELS}
        taints = tuple(
            t
            for t in model.taints
            if not str(t.get("key", "")).startswith(TRANSIENT_TAINT_PREFIXES)
            and t.get("key") not in AUTOSCALER_DELETION_TAINTS
        )
        return labels, taints, f"node {model.name}"
    return {config.vm_pools.pool_label: pool}, (), "pool label only"


def _nodepool_template(
    pool: str, config: TideoverConfig, nodepool: NodePoolFacts | None
) -> tuple[Mapping[str, str], tuple[Json, ...], str] | None:
    """A Karpenter NodePool's template, unless config gives the pool one: what its next node will carry."""
    configured = config.vm_pools.configured(pool)
    if nodepool is None or (configured is not None and configured.template is not None):
        return None
    labels = {config.vm_pools.pool_label: pool, **nodepool.labels}
    return labels, nodepool.taints, f"NodePool {pool}"


@dataclass(frozen=True, slots=True)
class PoolHistory:
    """What the builder remembers of one pool between snapshots."""

    first_seen_pending: datetime | None = None
    # When the autoscaler's scale-up (not merely a node starting) began: what provisioning times are measured from.
    scale_up_started: datetime | None = None
    ready_nodes: frozenset[str] | None = None  # None: the pool was not seen before


@dataclass(frozen=True)
class PendingHistory:
    """What the builder remembers between snapshots: when each pool was first seen pending, and the provisioning
    times observed. Immutable: each snapshot carries the history it leads to, and the next build starts from it."""

    times: ProvisioningTimes
    pools: Mapping[str, PoolHistory] = field(default_factory=dict)

    @classmethod
    def start(cls, config: TideoverConfig) -> PendingHistory:
        return cls(ProvisioningTimes(config.vm_pools.provisioning_seconds))


def advance_pool(
    history: PoolHistory, times: ProvisioningTimes, pool: str, signal: CapacitySignal, nodes: Sequence[NodeFacts],
    now: datetime, ready_now: frozenset[str] | None = None,
) -> tuple[PoolHistory, ProvisioningTimes]:
    """The pool's history after this snapshot, and the provisioning times with any new observation. ``ready_now``:
    the names of the Ready ones among ``nodes``, when the caller has them already."""
    if ready_now is None:
        ready_now = frozenset(n.name for n in nodes if n.ready)
    started = history.scale_up_started
    if history.ready_nodes is not None and started is not None:
        # A node created by this scale-up turned Ready: one observed provisioning time. A node that
        # was there before (flapping NotReady -> Ready) says nothing about how long a VM takes.
        turned_ready = ready_now - history.ready_nodes
        for node in nodes if turned_ready else ():
            if node.name in turned_ready and node.created is not None and node.created >= started:
                times = times.observe(pool, (now - started).total_seconds())
    if not signal.pending and not signal.stuck:  # a stuck scale-up keeps its start, so it stays stuck
        return PoolHistory(ready_nodes=ready_now), times
    since = signal.pending_since or now
    scale_up = started or (since if signal.state in AUTOSCALER_PENDING_STATES or signal.stuck else None)
    return PoolHistory(history.first_seen_pending or since, scale_up, ready_now), times


@dataclass(frozen=True, slots=True)
class PoolNodes:
    """What a snapshot reads of one pool's nodes, worked out once per :class:`NodeIndex`: the nodes change far less
    often than snapshots are built (each burst of pod events builds one), and a pool may have thousands."""

    nodes: tuple[NodeFacts, ...]
    not_ready: tuple[PoolNodeState, ...]  # what the capacity signal looks at (Ready nodes are no evidence)
    ready: frozenset[str]
    ready_count: int
    template: tuple[Mapping[str, str], tuple[Json, ...], str]  # labels, taints, where they came from
    allocatable: tuple[float, float] | None  # the largest node's (cores, bytes)

    @classmethod
    def of(cls, pool: str, config: TideoverConfig, nodes: Sequence[NodeFacts]) -> PoolNodes:
        return cls(
            nodes=tuple(nodes),
            not_ready=tuple(PoolNodeState(name=n.name, ready=n.ready, created=n.created) for n in nodes if not n.ready),
            ready=frozenset(n.name for n in nodes if n.ready),
            ready_count=sum(1 for n in nodes if n.ready),
            template=_template(pool, config, list(nodes)),
            allocatable=max(((n.allocatable_cpu, n.allocatable_memory) for n in nodes), default=None),
        )


@dataclass(frozen=True)
class NodeIndex:
    """Everything derived from the nodes alone. Rebuilt only when a node changes, so the periodic
    snapshot refresh (for ETAs and staleness) costs little on a 5,000-node cluster."""

    nodes: Mapping[str, NodeInfo]
    by_pool: Mapping[str, tuple[NodeFacts, ...]]
    virtual_nodes: tuple[str, ...]
    image_sizes: Mapping[str, float]
    index: Mapping[str, int]
    allocatable_cpu: NDArray[np.float64]
    allocatable_memory: NDArray[np.float64]
    price_per_hour: NDArray[np.float64]
    is_virtual: NDArray[np.bool_]
    # image -> boolean mask over `index` order: which nodes report the image in status.images.
    image_presence: Mapping[str, NDArray[np.bool_]]
    pool_nodes: Mapping[str, PoolNodes] = field(default_factory=dict)  # per pool of by_pool
    # The nodes' names as a set: the verbs check a request's candidates against it (a set's table is smaller than the
    # map's, so fewer cache misses where a request runs between other processes' work).
    names: frozenset[str] = frozenset()


def index_nodes(config: TideoverConfig, nodes: Iterable[NodeFacts]) -> NodeIndex:
    infos: dict[str, NodeInfo] = {}
    by_pool: dict[str, list[NodeFacts]] = {pool.name: [] for pool in config.vm_pools.pools}
    image_sizes: dict[str, float] = {}
    holders: dict[str, list[int]] = {}
    for position, facts in enumerate(nodes):
        kind, pool = node_kind(facts, config)
        infos[facts.name] = NodeInfo(facts=facts, kind=kind, pool=pool)
        if pool is not None:
            by_pool.setdefault(pool, []).append(facts)
        for image, size in facts.images.items():
            if size > image_sizes.get(image, 0.0):
                image_sizes[image] = size
            holders.setdefault(image, []).append(position)
    ordered = list(infos.values())
    count = len(ordered)
    presence: dict[str, NDArray[np.bool_]] = {}
    for image, positions in holders.items():
        mask = np.zeros(count, dtype=np.bool_)
        mask[positions] = True
        presence[image] = mask
    return NodeIndex(
        nodes=infos,
        by_pool={name: tuple(members) for name, members in by_pool.items()},
        pool_nodes={name: PoolNodes.of(name, config, members) for name, members in by_pool.items()},
        virtual_nodes=tuple(sorted(name for name, info in infos.items() if info.kind is NodeKind.VIRTUAL)),
        image_sizes=image_sizes,
        index={info.name: i for i, info in enumerate(ordered)},
        allocatable_cpu=np.array([i.facts.allocatable_cpu for i in ordered], dtype=np.float64),
        allocatable_memory=np.array([i.facts.allocatable_memory for i in ordered], dtype=np.float64),
        price_per_hour=np.array([config.vm_pools.price_per_hour(i.pool) for i in ordered], dtype=np.float64),
        is_virtual=np.array([i.kind is NodeKind.VIRTUAL for i in ordered], dtype=np.bool_),
        image_presence=presence,
        names=frozenset(infos),
    )


def build_snapshot(
    *,
    config: TideoverConfig,
    nodes: Iterable[NodeFacts] | NodeIndex,
    pods: Iterable[PodPlacement] = (),
    autoscaler: AutoscalerStatusRead = NO_STATUS_READ,
    now: datetime,
    synced: bool = True,
    history: PendingHistory | None = None,
    counts: PodCounts | None = None,
    karpenter: KarpenterRead = NOT_WATCHED,
) -> ClusterSnapshot:
    """A snapshot from the nodes (or a :class:`NodeIndex` of them), pods and what was read of the autoscaler's
    status. ``history``: the previous snapshot's ``pending_history`` (None: nothing remembered); the new snapshot
    carries the history that follows it. ``counts``: the pods already counted (for the node index's virtual nodes),
    as the cluster view keeps them one event at a time; ``pods`` is then not read. ``karpenter``: what was read of
    Karpenter's NodeClaims and NodePools, the pools' signal when ``autoscaler.capacitySignal`` chooses it."""
    history = history or PendingHistory.start(config)
    node_index = nodes if isinstance(nodes, NodeIndex) else index_nodes(config, nodes)
    source = capacity_source(config.autoscaler, autoscaler, karpenter)
    nodepools = karpenter.nodepools if source.name == "karpenter" else {}
    pools, pending_history = _pool_views(config, node_index, (source, nodepools), autoscaler, now, history)
    if counts is None:
        counts = _pod_counts(config, node_index, pods)
    return ClusterSnapshot(
        built_at=now,
        synced=synced,
        nodes=node_index.nodes,
        pools=pools,
        virtual_nodes=node_index.virtual_nodes,
        autoscaler_status=autoscaler.status,
        autoscaler_status_problem=autoscaler.problem,
        image_sizes=node_index.image_sizes,
        index=node_index.index,
        allocatable_cpu=node_index.allocatable_cpu,
        allocatable_memory=node_index.allocatable_memory,
        price_per_hour=node_index.price_per_hour,
        is_virtual=node_index.is_virtual,
        image_presence=node_index.image_presence,
        node_index=node_index,
        node_names=node_index.names,
        pending_history=pending_history,
        pods_on_virtual_nodes=counts.pods_on_virtual_nodes,
        owned_pods=counts.owned_pods,
        virtual_pods_by_owner=counts.virtual_pods_by_owner,
        virtual_spend_by_namespace=counts.virtual_spend_by_namespace,
        virtual_pod_uids=counts.virtual_pod_uids,
        virtual_pods=counts.virtual_pods,
        requested_by_node=counts.requested_by_node,
        in_flight_by_owner=counts.in_flight_by_owner,
        capacity_source=source.name,
    )


def _pool_views(
    config: TideoverConfig, node_index: NodeIndex, signal_from: tuple[CapacitySource, Mapping[str, NodePoolFacts]],
    autoscaler: AutoscalerStatusRead, now: datetime, history: PendingHistory,
) -> tuple[dict[str, PoolView], PendingHistory]:
    """The pools (those of the nodes and config, and the NodePools when Karpenter is the signal), each with its
    capacity signal from ``signal_from``'s source."""
    source, nodepools = signal_from
    pools: dict[str, PoolView] = {}
    remembered = dict(history.pools)
    times = history.times
    for pool_name in sorted({*node_index.by_pool, *nodepools}):
        pool_nodes = node_index.pool_nodes.get(pool_name) or PoolNodes.of(
            pool_name, config, node_index.by_pool.get(pool_name, ())
        )
        node_group = resolve_node_group(pool_name, config, autoscaler.status)
        default_estimate = config.vm_pools.pool(pool_name).provisioning_seconds or config.vm_pools.provisioning_seconds
        past = remembered.get(pool_name, PoolHistory())
        wait = PoolWait(
            pool=pool_name,
            node_group=node_group,
            nodes=pool_nodes.not_ready,
            provisioning_estimate_seconds=times.estimate(pool_name, default_estimate),
            first_seen_pending=past.first_seen_pending,
        )
        signal = source.signal(wait, now)
        remembered[pool_name], times = advance_pool(
            past, times, pool_name, signal, pool_nodes.nodes, now, ready_now=pool_nodes.ready
        )
        labels, taints, template_source = _nodepool_template(pool_name, config, nodepools.get(pool_name)) or (
            pool_nodes.template)
        pools[pool_name] = PoolView(
            name=pool_name,
            node_group=node_group,
            template_labels=labels,
            template_taints=taints,
            template_source=template_source,
            capacity=signal,
            price_per_hour=config.vm_pools.price_per_hour(pool_name),
            nodes=len(pool_nodes.nodes),
            ready_nodes=pool_nodes.ready_count,
            node_allocatable=pool_nodes.allocatable,
        )
    return pools, PendingHistory(times, remembered)


@dataclass(frozen=True, slots=True)
class PodCounts:
    """What the guards and metrics count of the active pods (see :class:`ClusterSnapshot`'s fields of these names)."""

    pods_on_virtual_nodes: Mapping[str, int]
    owned_pods: Mapping[str, frozenset[str]]
    virtual_pods_by_owner: Mapping[str, int]
    virtual_spend_by_namespace: Mapping[str, float]
    virtual_pod_uids: frozenset[str]
    virtual_pods: tuple[PodPlacement, ...] = ()
    requested_by_node: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    in_flight_by_owner: Mapping[str, int] = field(default_factory=dict)


def in_flight(pod: PodPlacement) -> bool:
    """An active pod on the move: going away, or not yet running where it was bound (or not bound yet)."""
    return pod.terminating or pod.node_name is None or pod.phase == "Pending"


def _pod_counts(config: TideoverConfig, node_index: NodeIndex, pods: Iterable[PodPlacement]) -> PodCounts:
    on_virtual = dict.fromkeys(node_index.virtual_nodes, 0)
    owned: dict[str, set[str]] = {}
    virtual_by_owner: dict[str, int] = {}
    spend: dict[str, float] = {}
    virtual_pods: dict[str, PodPlacement] = {}
    requested: dict[str, tuple[float, float]] = {}
    moving: dict[str, int] = {}
    pricing = config.virtual_nodes.pricing
    for pod in pods:
        if not pod.active:
            continue
        if pod.owner_uid:
            owned.setdefault(pod.owner_uid, set()).add(pod.uid)
            if in_flight(pod):
                moving[pod.owner_uid] = moving.get(pod.owner_uid, 0) + 1
        if pod.node_name is not None:
            cpu, memory = requested.get(pod.node_name, (0.0, 0.0))
            requested[pod.node_name] = (cpu + pod.cpu, memory + pod.memory)
        if pod.node_name in on_virtual:
            on_virtual[pod.node_name] += 1
            virtual_pods[pod.uid] = pod
            if pod.owner_uid:
                virtual_by_owner[pod.owner_uid] = virtual_by_owner.get(pod.owner_uid, 0) + 1
            spend[pod.namespace] = spend.get(pod.namespace, 0.0) + pricing.pod_cost_per_hour(
                pod.cpu, pod.memory, sidecar=pod.kube_proxy_sidecar)

    return PodCounts(
        pods_on_virtual_nodes=on_virtual,
        owned_pods={owner: frozenset(uids) for owner, uids in owned.items()},
        virtual_pods_by_owner=virtual_by_owner,
        virtual_spend_by_namespace=spend,
        virtual_pod_uids=frozenset(virtual_pods),
        virtual_pods=tuple(virtual_pods.values()),
        requested_by_node=requested,
        in_flight_by_owner=moving,
    )


def empty_snapshot(config: TideoverConfig, now: datetime) -> ClusterSnapshot:
    return build_snapshot(config=config, nodes=(), now=now, synced=False)
