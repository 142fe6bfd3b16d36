"""The decisions: pure functions of (pod, candidate nodes, cluster snapshot, config) -> result with reasons.

Filter (the bridge rule):
1. If any VM node is a candidate, the virtual nodes are removed: the pod fits on a VM now.
2. Otherwise a virtual node is kept only if the workload's spill policy allows it; for the default
   policy (``while-pending``) only while capacity is pending in a pool whose new nodes could host the
   pod, and, for a pod with a wait budget, only if the VM is predicted to take longer than the budget.
3. Whatever the policy (``when-full`` too), a virtual node is never kept for a pod the provider cannot run,
   nor past the ACI subnet's, the workload's or the namespace's cap (:mod:`extender.decide.guards`).
4. Every removed node carries a reason a person can act on. Virtual nodes are reported as
   FailedAndUnresolvable: preemption cannot change tideover's answer, so the scheduler should not try.

Prioritize: cost and start-latency models from :mod:`scoring`, weighted by the pod's priority class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from extender.decide.guards import (
    NO_IN_FLIGHT,
    CapacityGuard,
    InFlight,
    incompatibilities,
    incompatibility_reason,
    virtual_capacity_problems,
)
from extender.decide.matching import pod_fits_template, untolerated_taint
from extender.model.capacity import CapacityState
from extender.model.config import TideoverConfig
from extender.model.keys import GATE
from extender.model.objects import PodFacts
from extender.model.policy import SpillPolicy, WorkloadPolicy, workload_policy
from extender.model.snapshot import ClusterSnapshot, NodeKind, PoolView
from scoring.combine import Weights, combined_scores
from scoring.cost import GIB, virtual_cost_per_hour, vm_cost_per_hour
from scoring.latency import missing_image_bytes, start_seconds


class FilterOutcome(StrEnum):
    """What the filter did, as a short code (a metric label; the sentence is in the reason)."""

    NO_VIRTUAL_CANDIDATE = "no-virtual-candidate"
    DOES_NOT_TOLERATE_VIRTUAL = "does-not-tolerate-virtual"
    VM_FITS = "vm-fits"
    SPILL_CAPACITY_PENDING = "spill-capacity-pending"
    SPILL_WHEN_FULL = "spill-when-full"
    WITHHELD_SPILL_NEVER = "withheld-spill-never"
    WITHHELD_NO_SCALE_UP = "withheld-no-scale-up"
    WITHHELD_NO_POOL_FITS = "withheld-no-pool-fits"
    WITHHELD_WITHIN_WAIT_BUDGET = "withheld-within-wait-budget"
    WITHHELD_INCOMPATIBLE = "withheld-incompatible"
    WITHHELD_SUBNET_FULL = "withheld-subnet-full"
    WITHHELD_WORKLOAD_CAP = "withheld-workload-cap"
    WITHHELD_NAMESPACE_SPEND_CAP = "withheld-namespace-spend-cap"
    NOT_SYNCED = "not-synced"

    @property
    def spilled(self) -> bool:
        return self in (FilterOutcome.SPILL_CAPACITY_PENDING, FilterOutcome.SPILL_WHEN_FULL)


CAPACITY_OUTCOMES: Mapping[CapacityGuard, FilterOutcome] = {
    CapacityGuard.SUBNET: FilterOutcome.WITHHELD_SUBNET_FULL,
    CapacityGuard.WORKLOAD: FilterOutcome.WITHHELD_WORKLOAD_CAP,
    CapacityGuard.NAMESPACE_SPEND: FilterOutcome.WITHHELD_NAMESPACE_SPEND_CAP,
}


@dataclass(frozen=True, slots=True)
class FilterDecision:
    outcome: FilterOutcome
    feasible: tuple[str, ...]
    failed: Mapping[str, str]  # FailedNodes: preemption might help
    failed_unresolvable: Mapping[str, str]  # FailedAndUnresolvableNodes
    reason: str  # one sentence for logs and events
    policy: WorkloadPolicy
    unknown_nodes: tuple[str, ...] = ()
    pending_pools: tuple[str, ...] = ()
    eta_seconds: float | None = None
    virtual_cost_per_hour: float | None = None
    # The pools whose new nodes could host the pod (set once the pools were looked at).
    fitting_pools: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ScoreDecision:
    scores: tuple[tuple[str, int], ...]
    cost_per_hour: tuple[float, ...]
    start_seconds: tuple[float, ...]
    policy: WorkloadPolicy
    unknown_nodes: tuple[str, ...] = field(default=())


def _problems_suffix(policy: WorkloadPolicy) -> str:
    if not policy.problems:
        return ""
    return " [" + "; ".join(str(p) for p in policy.problems) + "]"


def wait_budget_seconds(policy: WorkloadPolicy, config: TideoverConfig) -> float:
    if policy.max_wait_seconds is not None:
        return policy.max_wait_seconds
    return config.priorities.for_priority(policy.priority).wait_budget_seconds


def pool_fit_problems(pod: PodFacts, pool: PoolView) -> list[str]:
    """Why a new node of this pool could not host the pod (empty: it could)."""
    problems = pod_fits_template(pod.spec, pool.template_labels, pool.template_taints)
    if pool.node_allocatable is not None:
        cpu, memory = pool.node_allocatable
        if pod.cpu > cpu:
            problems.append(f"requests {pod.cpu:g} CPU, a node has {cpu:g}")
        if pod.memory > memory:
            problems.append(f"requests {pod.memory / GIB:.1f}Gi memory, a node has {memory / GIB:.1f}Gi")
    return problems


def _tolerates_some_virtual_node(pod: PodFacts, snapshot: ClusterSnapshot) -> bool:
    for name in snapshot.virtual_nodes:
        # tideover's own gate is left out: kube-scheduler's taint filter has already judged it against the
        # node as the scheduler sees it, which may be newer than this snapshot (the moment the gate opens).
        taints = [t for t in snapshot.nodes[name].facts.taints if t.get("key") != GATE]
        if untolerated_taint(pod.tolerations, taints) is None:
            return True
    return False


def _scale_up_summary(pools: Sequence[PoolView]) -> str:
    states = sorted({p.capacity.autoscaler_scale_up or p.capacity.state.value for p in pools})
    # A failed scale-up says why (CA's error code and message), so a person can act on it (quota, SKU).
    failures = [f"{p.name}: {p.capacity.evidence[0]}" for p in pools
                if p.capacity.state is CapacityState.BACKOFF and p.capacity.evidence]
    return "; ".join([", ".join(states), *failures])


def decide_filter(
    pod: PodFacts,
    candidates: Sequence[str],
    snapshot: ClusterSnapshot,
    config: TideoverConfig,
    request_kinds: Mapping[str, NodeKind] | None = None,
    in_flight: InFlight = NO_IN_FLIGHT,
) -> FilterDecision:
    """Which of ``candidates`` (the nodes that passed kube-scheduler's own filters) may host ``pod``.

    ``request_kinds`` classifies nodes the request carried in full (nodeCacheCapable: false), so a node
    the cluster view has not seen yet is still understood. ``in_flight``: spills allowed that the snapshot
    does not show yet (:class:`~extender.decide.guards.SpillLedger`), counted by the capacity guards.
    """
    policy = workload_policy(pod.annotations)
    suffix = _problems_suffix(policy)
    everything = tuple(candidates)

    if not snapshot.synced:
        return FilterDecision(
            FilterOutcome.NOT_SYNCED, (), {}, {}, "tideover's cluster view has not synced yet", policy
        )
    # Fast path: a pod that tolerates no virtual node's taint cannot have one among its candidates.
    if request_kinds is None and not _tolerates_some_virtual_node(pod, snapshot):
        return FilterDecision(
            FilterOutcome.DOES_NOT_TOLERATE_VIRTUAL, everything, {}, {},
            "pod does not tolerate the virtual node's taint" + suffix, policy,
        )

    virtual: list[str] = []
    other: list[str] = []
    unknown: list[str] = []
    nodes = snapshot.nodes
    for name in everything:
        kind = request_kinds.get(name) if request_kinds is not None else None
        if kind is None:
            info = nodes.get(name)
            if info is None:
                # Not seen yet: almost always a VM that just registered (virtual nodes are few and
                # long-lived), so it counts as a node the pod fits on now.
                unknown.append(name)
            else:
                kind = info.kind
        if kind is NodeKind.VIRTUAL:
            virtual.append(name)
        else:
            other.append(name)
    unknown_nodes = tuple(unknown)

    if not virtual:
        return FilterDecision(
            FilterOutcome.NO_VIRTUAL_CANDIDATE, everything, {}, {}, "no virtual node among the candidates" + suffix,
            policy, unknown_nodes,
        )

    def withhold(outcome: FilterOutcome, reason: str, **extra: object) -> FilterDecision:
        text = f"virtual node withheld: {reason}{suffix}"
        return FilterDecision(
            outcome, tuple(other), {}, dict.fromkeys(virtual, text), text, policy, unknown_nodes, **extra  # type: ignore[arg-type]
        )

    if other:
        sample = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
        return withhold(FilterOutcome.VM_FITS, f"the pod fits on VM node(s) now ({sample})")

    cost = virtual_cost_per_hour(
        pod.cpu, pod.memory,
        vcpu_price_per_second=config.virtual_nodes.pricing.vcpu_per_second,
        gib_price_per_second=config.virtual_nodes.pricing.gib_per_second,
        min_cpu=config.virtual_nodes.pricing.min_cpu,
        min_memory=config.virtual_nodes.pricing.min_memory_gib * GIB,
    )
    if policy.spill is SpillPolicy.NEVER:
        return withhold(FilterOutcome.WITHHELD_SPILL_NEVER, "the pod's annotation tideover.io/spill is never")
    profile_name, profile = config.virtual_nodes.provider_profile()
    incompatible = incompatibilities(pod, profile, profile_name)
    if incompatible:
        return withhold(
            FilterOutcome.WITHHELD_INCOMPATIBLE, incompatibility_reason(incompatible, profile, profile_name)
        )

    def capped(waiting: str = "", **extra: object) -> FilterDecision | None:
        problems = virtual_capacity_problems(pod, snapshot, config, policy, cost, in_flight)
        if not problems:
            return None
        reason = "; ".join(problem.reason for problem in problems) + waiting
        return withhold(CAPACITY_OUTCOMES[problems[0].guard], reason, virtual_cost_per_hour=cost, **extra)

    if policy.spill is SpillPolicy.WHEN_FULL:
        if (capped_decision := capped()) is not None:
            return capped_decision
        return FilterDecision(
            FilterOutcome.SPILL_WHEN_FULL, everything, {}, {},
            f"spilling to the virtual node: no VM node fits and tideover.io/spill is when-full "
            f"(est. ${cost:.4f}/h on the virtual node){suffix}",
            policy, unknown_nodes, virtual_cost_per_hour=cost,
        )

    pools = list(snapshot.pools.values())
    misfits: dict[str, list[str]] = {}
    fitting: list[PoolView] = []
    for pool in pools:
        problems = pool_fit_problems(pod, pool)
        if problems:
            misfits[pool.name] = problems
        else:
            fitting.append(pool)
    if not fitting:
        if not pools:
            detail = "no VM pool is known (no node carries the pool label and none is configured)"
        else:
            detail = "no VM pool's new nodes could host the pod (" + "; ".join(
                f"{name}: {', '.join(problems)}" for name, problems in sorted(misfits.items())
            ) + ")"
        return withhold(
            FilterOutcome.WITHHELD_NO_POOL_FITS,
            f"{detail}; set tideover.io/spill: when-full to let it run on the virtual node",
        )
    pending = [p for p in fitting if p.capacity.pending]
    fitting_names = tuple(p.name for p in fitting)
    names = "[" + ", ".join(fitting_names) + "]"
    if not pending:
        return withhold(
            FilterOutcome.WITHHELD_NO_SCALE_UP,
            f"no VMSS scale-up in progress for pools {names} (autoscaler: {_scale_up_summary(fitting)})",
            fitting_pools=fitting_names,
        )
    etas = [p.capacity.eta_seconds for p in pending if p.capacity.eta_seconds is not None]
    eta = min(etas) if etas else None
    pending_names = tuple(p.name for p in pending)
    budget = wait_budget_seconds(policy, config)
    if eta is not None and eta <= budget:
        return withhold(
            FilterOutcome.WITHHELD_WITHIN_WAIT_BUDGET,
            f"pool {pending_names[0]} is scaling up and expected Ready in ~{eta:.0f}s, within the pod's "
            f"wait budget of {budget:.0f}s (priority {policy.priority.value})",
            pending_pools=pending_names, eta_seconds=eta, fitting_pools=fitting_names,
        )
    evidence = "; ".join(pending[0].capacity.evidence[:2])
    eta_text = f"VM expected in ~{eta:.0f}s" if eta is not None else "VM ETA unknown"
    capped_decision = capped(
        f"; the pod waits for pool(s) {', '.join(pending_names)} ({eta_text})",
        pending_pools=pending_names, eta_seconds=eta, fitting_pools=fitting_names,
    )
    if capped_decision is not None:
        return capped_decision
    return FilterDecision(
        FilterOutcome.SPILL_CAPACITY_PENDING, everything, {}, {},
        f"spilling to the virtual node while pool(s) {', '.join(pending_names)} scale up ({evidence}); "
        f"{eta_text}; est. ${cost:.4f}/h on the virtual node{suffix}",
        policy, unknown_nodes, pending_names, eta, cost, fitting_names,
    )


# Filter outcomes under which a pod that tolerates the virtual node waits because of tideover: the gate is closed
# (no scale-up), no pool fits, its wait budget, a guard (incompatible, spill: never) or a cap.
WAITING_OUTCOMES = frozenset({
    FilterOutcome.WITHHELD_NO_SCALE_UP,
    FilterOutcome.WITHHELD_NO_POOL_FITS,
    FilterOutcome.WITHHELD_WITHIN_WAIT_BUDGET,
    FilterOutcome.WITHHELD_INCOMPATIBLE,
    FilterOutcome.WITHHELD_SPILL_NEVER,
    FilterOutcome.WITHHELD_SUBNET_FULL,
    FilterOutcome.WITHHELD_WORKLOAD_CAP,
    FilterOutcome.WITHHELD_NAMESPACE_SPEND_CAP,
})


@dataclass(frozen=True, slots=True)
class PendingReason:
    """Why a pending pod waits for a VM instead of running on the virtual node."""

    outcome: FilterOutcome
    message: str  # what it waits for, the pool and the ETA when known, then tideover's reason
    # The same while the pod waits for the same thing (outcome, pools, gate), whatever the ETA or the counts:
    # a new Event is worth posting when it changes.
    key: str


def _gated(pod: PodFacts, snapshot: ClusterSnapshot) -> bool:
    """Whether tideover's gate taint keeps the pod off every virtual node it otherwise tolerates."""
    for name in snapshot.virtual_nodes:
        taints = snapshot.nodes[name].facts.taints
        gate = [t for t in taints if t.get("key") == GATE]
        if gate and untolerated_taint(pod.tolerations, gate) is not None:
            return True
    return False


def pending_reason(pod: PodFacts, snapshot: ClusterSnapshot, config: TideoverConfig) -> PendingReason | None:
    """Why tideover keeps an unbound pod that tolerates the virtual node off it, or None when tideover is not what
    it waits for (the view has not synced, there is no virtual node, the pod does not tolerate it, or the filter
    would let it spill).

    kube-scheduler calls the extender only with nodes that passed its own filters, so a pod kept off the virtual
    node by the gate taint never reaches tideover's filter, and its FailedScheduling event says only "untolerated
    taint". This is the filter's answer for the virtual nodes, asked on the pod's behalf.
    """
    if not snapshot.synced or pod.node_name or not snapshot.virtual_nodes:
        return None
    if not _tolerates_some_virtual_node(pod, snapshot):
        return None
    decision = decide_filter(pod, snapshot.virtual_nodes, snapshot, config)
    if decision.outcome not in WAITING_OUTCOMES:
        return None
    pools = decision.pending_pools or decision.fitting_pools
    waits_for = "a VM" + (f" of pool {', '.join(pools)}" if pools else "")
    if decision.eta_seconds is not None:
        waits_for += f", expected in ~{decision.eta_seconds:.0f}s"
    gated = _gated(pod, snapshot)
    message = (
        f"Waiting for {waits_for}; tideover keeps the pod off the virtual node: "
        f"{decision.reason.removeprefix('virtual node withheld: ')}"
    )
    if gated:
        message += (
            f" (tideover's gate taint {GATE}=closed:NoSchedule is what kube-scheduler reports as "
            "an untolerated taint)"
        )
    key = f"{decision.outcome.value}|{','.join(pools)}|{'gated' if gated else 'open'}"
    return PendingReason(decision.outcome, message, key)


def decide_scores(
    pod: PodFacts,
    candidates: Sequence[str],
    snapshot: ClusterSnapshot,
    config: TideoverConfig,
) -> ScoreDecision:
    """Scores 0..10 per candidate from the cost and latency models. Unknown nodes score 0."""
    policy = workload_policy(pod.annotations)
    names = list(candidates)
    count = len(names)
    if count == 0:
        return ScoreDecision((), (), (), policy)
    index = snapshot.index
    positions = np.fromiter((index.get(name, -1) for name in names), dtype=np.int64, count=count)
    known = positions >= 0
    safe = np.where(known, positions, 0)
    if len(index) == 0:
        return ScoreDecision(tuple((n, 0) for n in names), (0.0,) * count, (0.0,) * count, policy, tuple(names))
    is_virtual = snapshot.is_virtual[safe] & known

    pricing = config.virtual_nodes.pricing
    cost = vm_cost_per_hour(
        pod.cpu, pod.memory,
        snapshot.allocatable_cpu[safe], snapshot.allocatable_memory[safe], snapshot.price_per_hour[safe],
    )
    if is_virtual.any():
        virtual_cost = virtual_cost_per_hour(
            pod.cpu, pod.memory, vcpu_price_per_second=pricing.vcpu_per_second,
            gib_price_per_second=pricing.gib_per_second, min_cpu=pricing.min_cpu,
            min_memory=pricing.min_memory_gib * GIB,
        )
        cost = np.where(is_virtual, virtual_cost, cost)

    # Only images some node has need a column: one no node has is pulled everywhere, so it adds the same bytes to
    # every candidate. The work is then (candidates x images the cluster has), not x every image the pod names.
    held = [image for image in pod.images if image in snapshot.image_presence]
    pulled_everywhere = sum(
        snapshot.image_sizes.get(image, config.images.default_size_bytes)
        for image in pod.images if image not in snapshot.image_presence
    )
    sizes = np.array(
        [snapshot.image_sizes.get(image, config.images.default_size_bytes) for image in held], dtype=np.float64
    )
    present = np.zeros((count, len(held)), dtype=np.bool_)
    for column, image in enumerate(held):
        present[:, column] = snapshot.image_presence[image][safe] & known
    present &= ~is_virtual[:, None]  # ACI pulls every image at each start
    missing = missing_image_bytes(sizes, present) + pulled_everywhere
    base = np.where(is_virtual, config.virtual_nodes.cold_start_seconds, config.vm_pools.pod_start_seconds)
    bandwidth = np.where(
        is_virtual, config.virtual_nodes.pull_bytes_per_second, config.vm_pools.pull_bytes_per_second
    )
    latency = start_seconds(base, missing, bandwidth)
    # Unknown nodes must not set the "best" value the others are measured against.
    cost = np.where(known, cost, np.inf)
    latency = np.where(known, latency, np.inf)

    weights_policy = config.priorities.for_priority(policy.priority)
    scores = combined_scores(
        cost, latency, Weights(cost=weights_policy.cost_weight, latency=weights_policy.latency_weight)
    )
    scores = np.where(known, scores, 0)
    unknown = tuple(name for name, ok in zip(names, known.tolist(), strict=True) if not ok)
    return ScoreDecision(
        scores=tuple(zip(names, scores.tolist(), strict=True)),
        cost_per_hour=tuple(cost.tolist()),
        start_seconds=tuple(latency.tolist()),
        policy=policy,
        unknown_nodes=unknown,
    )
