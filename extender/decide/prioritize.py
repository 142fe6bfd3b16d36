"""Prioritize: scores 0..10 per candidate from the cost and start-latency models of :mod:`scoring`, weighted by the
pod's priority class. A pure function of (pod, candidates, snapshot, config); unknown nodes score 0."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np
from numpy.typing import NDArray

from extender.model.bounded import BoundedMap
from extender.model.config import TideoverConfig
from extender.model.objects import PodFacts
from extender.model.policy import WorkloadPolicy, workload_policy
from extender.model.snapshot import ClusterSnapshot
from scoring.combine import MAX_EXTENDER_PRIORITY, Weights, combined_scores
from scoring.cost import vm_cost_per_hour
from scoring.latency import missing_image_bytes, start_seconds

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class ScoreDecision:
    scores: tuple[tuple[str, int], ...]
    cost_per_hour: tuple[float, ...]
    start_seconds: tuple[float, ...]
    policy: WorkloadPolicy
    unknown_nodes: tuple[str, ...] = field(default=())
    # Every candidate has the same score: a constant added to every node, which changes no ranking (see
    # prioritize_reply in extender/edge/wire.py).
    uniform: bool = False


def _cost_per_hour(pod: PodFacts, snapshot: ClusterSnapshot, config: TideoverConfig, safe: NDArray[np.int64],
                   is_virtual: Bools) -> Floats:
    """USD per hour the pod would cost on each candidate: its share of a VM's price, or the virtual node's price."""
    cost = vm_cost_per_hour(
        pod.cpu, pod.memory,
        snapshot.allocatable_cpu[safe], snapshot.allocatable_memory[safe], snapshot.price_per_hour[safe],
    )
    if is_virtual.any():
        virtual = config.virtual_nodes.pricing.pod_cost_per_hour(pod.cpu, pod.memory, sidecar=pod.kube_proxy_sidecar)
        cost = np.where(is_virtual, virtual, cost)
    return cost


def _start_seconds(pod: PodFacts, snapshot: ClusterSnapshot, config: TideoverConfig, safe: NDArray[np.int64],
                   known: Bools, is_virtual: Bools) -> Floats:
    """Seconds until the pod would run on each candidate: the start-up time plus pulling the images it lacks."""
    default_size = config.images.default_size_bytes
    # Only images some node has need a column: one no node has is pulled everywhere, so it adds the same bytes to
    # every candidate. The work is then (candidates x images the cluster has), not x every image the pod names.
    held = [image for image in pod.images if image in snapshot.image_presence]
    pulled_everywhere = sum(
        snapshot.image_sizes.get(image, default_size) for image in pod.images if image not in snapshot.image_presence
    )
    sizes = np.array([snapshot.image_sizes.get(image, default_size) for image in held], dtype=np.float64)
    present = np.zeros((len(safe), len(held)), dtype=np.bool_)
    for column, image in enumerate(held):
        present[:, column] = snapshot.image_presence[image][safe] & known
    present &= ~is_virtual[:, None]  # ACI pulls every image at each start
    missing = missing_image_bytes(sizes, present) + pulled_everywhere
    base = np.where(is_virtual, config.virtual_nodes.cold_start_seconds, config.vm_pools.pod_start_seconds)
    bandwidth = np.where(
        is_virtual, config.virtual_nodes.pull_bytes_per_second, config.vm_pools.pull_bytes_per_second
    )
    return start_seconds(base, missing, bandwidth)


@dataclass(frozen=True, slots=True)
class NodeModels:
    """What one pod shape (requests, images, whether v2's kube-proxy sidecar is charged) would cost and how long it
    would take to start on every node of a snapshot's node index, in ``index`` order. Both depend on the nodes alone,
    not on the pods placed, so one computation serves every identical pod (a workload's replicas) until a node
    changes."""

    cost_per_hour: Floats
    start_seconds: Floats
    # Every VM node (every node not virtual) has the same cost and the same start latency for this shape: one pool at
    # one price, and no image some VMs hold and others lack. Candidates that are all such nodes then all score the
    # same, and prioritize need not compute their scores one by one.
    vm_uniform: bool = False


def _same_everywhere(values: Floats) -> bool:
    return bool(values.size) and bool(np.all(values == values[0]))


PodShape = tuple[float, float, tuple[str, ...], bool]


def pod_shape(pod: PodFacts) -> PodShape:
    """What :func:`node_models` reads of a pod."""
    return pod.cpu, pod.memory, pod.images, pod.kube_proxy_sidecar


def node_models(pod: PodFacts, snapshot: ClusterSnapshot, config: TideoverConfig) -> NodeModels:
    """The cost and start-latency models of the pod on every node of the snapshot."""
    count = len(snapshot.index)
    every = np.arange(count, dtype=np.int64)
    known = np.ones(count, dtype=np.bool_)
    is_virtual = np.asarray(snapshot.is_virtual, dtype=np.bool_)
    cost = _cost_per_hour(pod, snapshot, config, every, is_virtual)
    latency = _start_seconds(pod, snapshot, config, every, known, is_virtual)
    vms = ~is_virtual
    uniform = (_same_everywhere(cost[vms]) and _same_everywhere(latency[vms])
               and bool(np.isfinite(cost[vms][0]) and np.isfinite(latency[vms][0])))
    return NodeModels(cost_per_hour=cost, start_seconds=latency, vm_uniform=uniform)


class ModelCache:
    """:func:`node_models` per pod shape, for the node index they were computed on: a new node index (a node
    added, removed or changed) empties it. At most ``max_shapes`` shapes are kept, the oldest dropped first.
    Safe to share between threads: a race computes a shape twice, never mixes two indexes."""

    def __init__(self, max_shapes: int = 256) -> None:
        self.max_shapes = max_shapes
        # (node index, its models by shape): one reference, so a reader takes an index and its models together.
        self._state: tuple[object, BoundedMap[PodShape, NodeModels]] = (None, BoundedMap(max_shapes))
        self._lock = threading.Lock()  # a new node index replaces the map once

    def models(self, pod: PodFacts, snapshot: ClusterSnapshot, config: TideoverConfig) -> NodeModels:
        index = snapshot.node_index
        if index is None:  # a snapshot not made by build_snapshot: nothing to key on
            return node_models(pod, snapshot, config)
        key = pod_shape(pod)
        cached_index, cached = self._state
        if cached_index is index:
            found = cached.get(key)
            if found is not None:
                return found
        models = node_models(pod, snapshot, config)
        with self._lock:
            cached_index, cached = self._state
            if cached_index is not index:
                cached = BoundedMap(self.max_shapes)
                self._state = (index, cached)
        cached.put(key, models)
        return models


def _all_vms_known(candidates: Sequence[str], candidate_set: frozenset[str] | None, snapshot: ClusterSnapshot) -> bool:
    """Whether every candidate is a node of the snapshot and none is virtual (set operations in C)."""
    present = frozenset(candidates) if candidate_set is None else candidate_set
    return present <= snapshot.node_names and present.isdisjoint(snapshot.virtual_nodes)


def all_score_the_top(
    models: NodeModels, candidates: Sequence[str], snapshot: ClusterSnapshot,
    candidate_set: frozenset[str] | None = None, known_vms: bool = False,
) -> bool:
    """Whether every candidate gets the top score without the per-node maths: the VMs have the same cost and start
    latency for the pod's shape (``models.vm_uniform``) and every candidate is such a VM (``known_vms``: the caller
    knows they all are VM nodes of this snapshot). The HTTP edge then answers at once (an empty list:
    :func:`~extender.edge.wire.prioritize_reply`), as :func:`decide_scores` would."""
    return bool(candidates) and models.vm_uniform and (
        known_vms or _all_vms_known(candidates, candidate_set, snapshot))


def decide_scores(
    pod: PodFacts,
    candidates: Sequence[str],
    snapshot: ClusterSnapshot,
    config: TideoverConfig,
    models: NodeModels | None = None,
    candidate_set: frozenset[str] | None = None,
) -> ScoreDecision:
    """Scores 0..10 per candidate from the cost and latency models. Unknown nodes score 0. ``models``, when
    given, are :func:`node_models` of this pod's shape on this snapshot (from a :class:`ModelCache`);
    ``candidate_set``: the candidates as a set, when the caller has one."""
    policy = workload_policy(pod.annotations)
    names = list(candidates)
    count = len(names)
    if count == 0:
        return ScoreDecision((), (), (), policy)
    index = snapshot.index
    if len(index) == 0:
        return ScoreDecision(
            tuple((n, 0) for n in names), (0.0,) * count, (0.0,) * count, policy, tuple(names), uniform=True
        )
    if models is None:
        models = node_models(pod, snapshot, config)
    if all_score_the_top(models, names, snapshot, candidate_set):
        # Equal cost and latency everywhere: every candidate is the best on both, so each scores the top score, as
        # combined_scores would give it (a table-driven test holds the two paths equal).
        first = index[names[0]]
        return ScoreDecision(
            scores=tuple(zip(names, repeat(MAX_EXTENDER_PRIORITY), strict=False)),
            cost_per_hour=(float(models.cost_per_hour[first]),) * count,
            start_seconds=(float(models.start_seconds[first]),) * count,
            policy=policy,
            uniform=True,
        )
    positions = np.fromiter(map(index.get, names, repeat(-1)), dtype=np.int64, count=count)
    known = positions >= 0
    safe = np.where(known, positions, 0)
    # Unknown nodes must not set the "best" value the others are measured against.
    cost = np.where(known, models.cost_per_hour[safe], np.inf)
    latency = np.where(known, models.start_seconds[safe], np.inf)

    weights_policy = config.priorities.for_priority(policy.priority)
    scores = combined_scores(
        cost, latency, Weights(cost=weights_policy.cost_weight, latency=weights_policy.latency_weight)
    )
    scores = np.where(known, scores, 0)
    unknown = tuple(name for name, ok in zip(names, known.tolist(), strict=True) if not ok) if not known.all() else ()
    return ScoreDecision(
        scores=tuple(zip(names, scores.tolist(), strict=True)),
        cost_per_hour=tuple(cost.tolist()),
        start_seconds=tuple(latency.tolist()),
        policy=policy,
        unknown_nodes=unknown,
        uniform=bool(scores.min() == scores.max()),
    )
