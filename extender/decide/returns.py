"""Which spilled pods go back to VMs now: a pure plan from (snapshot, time, policy).

It reads no pod but those the snapshot keeps for it (the virtual nodes' pods, what each node's pods request, each
workload's pods on the move), so a round costs the same with 150,000 pods in the cluster as with 1,000.

A pod on a virtual node moves back when all of these hold:
- no VM pool has capacity pending, and none has for ``stableSeconds`` (the capacity it waited for is
  Ready and has stayed so; a second scale-up wave or a flapping node does not cause a round trip);
- it belongs to a ReplicaSet (its replacement is scheduled by the filter onto a VM; Job pods are left
  to finish where they are, and bare pods would not come back), is not terminating, and has run for
  ``minPodAgeSeconds``;
- its workload has fewer than ``maxInFlightPerWorkload`` moves in flight (pods terminating or replacements
  not yet Running, read from the API state, so a new leader sees the same);
- a VM node could take it now: Ready, schedulable, its taints tolerated, its labels matching the pod's
  node selector and required affinity, and enough CPU and memory left after the moves already planned.
The caller adds the global rate limit and the Eviction API's PodDisruptionBudget check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson

from extender.decide.matching import pod_fits_template
from extender.model.config import ReturnToVm
from extender.model.snapshot import ClusterSnapshot, NodeKind, PodPlacement

RETURNABLE_OWNERS = frozenset({"ReplicaSet"})


@dataclass(frozen=True, slots=True)
class ReturnMove:
    pod: PodPlacement
    target_node: str  # a VM node that can take it now (the scheduler makes the final choice)


class SkipCode(StrEnum):
    """Why a spilled pod stays on the virtual node this round."""

    NOT_A_REPLICA = "not-a-replica"  # not a ReplicaSet pod: left to finish where it is
    TOO_YOUNG = "too-young"  # has not run minPodAgeSeconds yet
    WORKLOAD_BUSY = "workload-busy"  # maxInFlightPerWorkload moves of its workload under way
    NO_ROOM = "no-room"  # no VM node could take it now

    @property
    def returns_soon(self) -> bool:
        """The pod will move back once time passes: the VMs it would move to stay protected meanwhile."""
        return self in (SkipCode.TOO_YOUNG, SkipCode.WORKLOAD_BUSY)


@dataclass(frozen=True, slots=True)
class Skip:
    code: SkipCode
    reason: str  # the sentence, for logs


@dataclass(frozen=True, slots=True)
class ReturnPlan:
    """What the return controller does this round: evict ``moves``, keep ``protect`` from scale-down, and, when
    ``release``, lift the protection of every node it protected (no return is possible any more)."""

    moves: tuple[ReturnMove, ...]
    waiting: str | None = None  # why nothing may move yet, when that is the case
    skipped: Mapping[str, Skip] = field(default_factory=dict)  # pod key -> why it stays for now
    protect: frozenset[str] = frozenset()
    release: bool = False


def free_capacity(snapshot: ClusterSnapshot) -> dict[str, list[float]]:
    """VM nodes that can take pods: node -> [free cores, free bytes]."""
    free: dict[str, list[float]] = {}
    requested = snapshot.requested_by_node
    for name, info in snapshot.nodes.items():
        facts = info.facts
        if info.kind is NodeKind.VIRTUAL or not facts.ready or facts.unschedulable:
            continue
        cpu, memory = requested.get(name, (0.0, 0.0))
        free[name] = [facts.allocatable_cpu - cpu, facts.allocatable_memory - memory]
    return free


def return_targets(snapshot: ClusterSnapshot, spilled: Sequence[PodPlacement]) -> frozenset[str]:
    """The VM nodes some spilled pod could move to now: room for it, its taints tolerated, its node selector and
    required affinity matched. These are kept from scale-down while returns are possible; a node no spilled pod
    can use (a tainted system pool, say) is not."""
    needs = _distinct_needs(spilled)
    if not needs:
        return frozenset()
    least_cpu = min(cpu for cpu, _, _ in needs)
    least_memory = min(memory for _, memory, _ in needs)
    targets: set[str] = set()
    for name, (cpu, memory) in free_capacity(snapshot).items():
        if cpu + 1e-9 < least_cpu or memory < least_memory:
            continue  # too full for any of them
        facts = snapshot.nodes[name].facts
        if any(
            cpu + 1e-9 >= need_cpu and memory >= need_memory
            and not pod_fits_template(scheduling, facts.labels, facts.taints, name)
            for need_cpu, need_memory, scheduling in needs
        ):
            targets.add(name)
    return frozenset(targets)


def _distinct_needs(pods: Sequence[PodPlacement]) -> list[tuple[float, float, Mapping[str, Any]]]:
    """(cores, bytes, scheduling constraints) of the pods, each distinct need once: a workload's pods share theirs,
    so the nodes are matched against a few needs rather than against every spilled pod (5,000 nodes and 300 spilled
    pods were 1.5 million matches a round)."""
    needs: dict[tuple[float, float, bytes], Mapping[str, Any]] = {}
    for pod in pods:
        key = (pod.cpu, pod.memory, orjson.dumps(pod.scheduling, option=orjson.OPT_SORT_KEYS))
        needs.setdefault(key, pod.scheduling)
    return [(cpu, memory, scheduling) for (cpu, memory, _), scheduling in needs.items()]


def plan_returns(
    snapshot: ClusterSnapshot,
    now: datetime,
    policy: ReturnToVm,
    capacity_stable_since: datetime | None,
    budget: int,
) -> ReturnPlan:
    """The moves to make now (at most ``budget``), oldest pods first, and which VMs to protect or release."""
    spilled = spilled_replica_pods(snapshot)
    waiting = _not_yet(snapshot, now, policy, capacity_stable_since, budget)
    if waiting is not None:
        # Returns will be possible later while spilled ReplicaSet pods remain: their VMs stay protected (from the
        # moment no capacity is pending: a pending scale-up's VMs are not Ready yet to move to).
        protect = return_targets(snapshot, spilled) if spilled and not snapshot.pending_pools else frozenset()
        return ReturnPlan((), waiting, protect=protect, release=not spilled)
    moves, skipped = _moves(snapshot, now, policy, budget)
    returnable = bool(moves) or any(skip.code.returns_soon for skip in skipped.values())
    # Protect every VM a spilled pod could use from the moment returns are possible, not only each planned
    # target: the autoscaler would otherwise remove new, still-empty VMs in the stability window, and
    # kube-scheduler may place a replacement on another node than planned.
    protect = return_targets(snapshot, spilled) if returnable else frozenset()
    return ReturnPlan(
        moves, None, skipped, protect | {move.target_node for move in moves}, release=not returnable
    )


def spilled_replica_pods(snapshot: ClusterSnapshot) -> list[PodPlacement]:
    return [p for p in snapshot.virtual_pods if p.active and p.owner_kind in RETURNABLE_OWNERS]


def _not_yet(
    snapshot: ClusterSnapshot, now: datetime, policy: ReturnToVm, capacity_stable_since: datetime | None, budget: int
) -> str | None:
    """Why no pod may move this round, or None when moves may be planned."""
    if snapshot.pending_pools:
        return f"capacity still pending in {', '.join(snapshot.pending_pools)}"
    if capacity_stable_since is None:
        return "capacity not yet seen stable"
    stable_for = (now - capacity_stable_since).total_seconds()
    if stable_for < policy.stable_seconds:
        return f"capacity stable for {stable_for:.0f}s of the {policy.stable_seconds:.0f}s required"
    if budget <= 0:
        return "eviction rate limit reached"
    return None


def _skip(pod: PodPlacement, now: datetime, policy: ReturnToVm, moving: Counter[str]) -> Skip | None:
    if pod.owner_kind not in RETURNABLE_OWNERS or pod.owner_uid is None:
        owner = pod.owner_kind or "nothing"
        return Skip(SkipCode.NOT_A_REPLICA, f"owned by {owner}: left to finish on the virtual node")
    age = (now - pod.created).total_seconds() if pod.created else 0.0
    if age < policy.min_pod_age_seconds:
        return Skip(SkipCode.TOO_YOUNG, f"running {age:.0f}s, less than {policy.min_pod_age_seconds:.0f}s")
    if moving[pod.owner_uid] >= policy.max_in_flight_per_workload:
        return Skip(SkipCode.WORKLOAD_BUSY, f"{moving[pod.owner_uid]} move(s) of its workload in flight")
    return None


def _moves(
    snapshot: ClusterSnapshot, now: datetime, policy: ReturnToVm, budget: int
) -> tuple[tuple[ReturnMove, ...], dict[str, Skip]]:
    moving = Counter(snapshot.in_flight_by_owner)  # per workload: pods going away, or replacements not yet running
    free = free_capacity(snapshot)
    candidates = sorted(
        (p for p in snapshot.virtual_pods if p.active and not p.terminating),
        key=lambda p: (p.created or now, p.namespace, p.name),
    )
    moves: list[ReturnMove] = []
    skipped: dict[str, Skip] = {}
    for pod in candidates:
        key = f"{pod.namespace}/{pod.name}"
        skip = _skip(pod, now, policy, moving)
        target = None if skip is not None else _fitting_node(pod, snapshot, free)
        if target is None:
            skipped[key] = skip or Skip(SkipCode.NO_ROOM, "no VM node could take it now")
            continue
        moves.append(ReturnMove(pod, target))
        free[target][0] -= pod.cpu
        free[target][1] -= pod.memory
        moving[pod.owner_uid or ""] += 1
        if len(moves) >= budget:
            break
    return tuple(moves), skipped


def _fitting_node(pod: PodPlacement, snapshot: ClusterSnapshot, free: Mapping[str, list[float]]) -> str | None:
    best: str | None = None
    best_room = -1.0
    for name, (cpu, memory) in free.items():
        if cpu + 1e-9 < pod.cpu or memory < pod.memory:
            continue
        info = snapshot.nodes[name]
        if pod_fits_template(pod.scheduling, info.facts.labels, info.facts.taints, name):
            continue
        # The most free CPU: spread the returns rather than pile them on one node.
        if cpu > best_room:
            best, best_room = name, cpu
    return best
