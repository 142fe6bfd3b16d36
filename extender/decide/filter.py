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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any

from extender.decide.guards import (
    NO_RECENT_SPILLS,
    CapacityGuard,
    RecentSpills,
    full_virtual_nodes,
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
from scoring.cost import GIB


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
    # Every virtual candidate is full (virtualNodes.maxPodsPerNode, else its allocatable pods, counting recent spills).
    WITHHELD_VIRTUAL_NODES_FULL = "withheld-virtual-nodes-full"
    WITHHELD_POD_NOT_SEEN = "withheld-pod-not-seen"
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
    # The virtual nodes kept (those with room): where a spilled pod may land, for the SpillLedger's per-node count.
    spill_nodes: tuple[str, ...] = ()


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
    states = sorted({p.capacity.state.value if p.capacity.stuck else p.capacity.autoscaler_scale_up
                     or p.capacity.state.value for p in pools})
    # A failed scale-up says why (CA's error code and message), so a person can act on it (quota, SKU).
    failures = [f"{p.name}: {p.capacity.evidence[0]}" for p in pools
                if (p.capacity.state is CapacityState.BACKOFF or p.capacity.stuck) and p.capacity.evidence]
    return "; ".join([", ".join(states), *failures])


@dataclass(frozen=True)
class _Request:
    """One filter request as the steps read it: the pod, its policy and its candidates sorted by kind. The facts
    only some steps need (the virtual node's price, the pools that could host the pod) are computed once, on
    first use."""

    pod: PodFacts
    snapshot: ClusterSnapshot
    config: TideoverConfig
    policy: WorkloadPolicy
    recent_spills: RecentSpills
    everything: tuple[str, ...]
    virtual: tuple[str, ...]
    other: tuple[str, ...]
    unknown_nodes: tuple[str, ...]

    @property
    def suffix(self) -> str:
        return _problems_suffix(self.policy)

    @cached_property
    def cost(self) -> float:
        """USD per hour the pod would cost on the virtual node."""
        return self.config.virtual_nodes.pricing.pod_cost_per_hour(
            self.pod.cpu, self.pod.memory, sidecar=self.pod.kube_proxy_sidecar
        )

    @cached_property
    def pool_fits(self) -> tuple[tuple[PoolView, ...], dict[str, list[str]]]:
        """The pools whose new nodes could host the pod, and why each other pool's could not."""
        fitting: list[PoolView] = []
        misfits: dict[str, list[str]] = {}
        for pool in self.snapshot.pools.values():
            problems = pool_fit_problems(self.pod, pool)
            if problems:
                misfits[pool.name] = problems
            else:
                fitting.append(pool)
        return tuple(fitting), misfits

    @property
    def fitting_names(self) -> tuple[str, ...]:
        return tuple(pool.name for pool in self.pool_fits[0])

    @cached_property
    def pending(self) -> tuple[PoolView, ...]:
        """The fitting pools with capacity pending."""
        return tuple(pool for pool in self.pool_fits[0] if pool.capacity.pending)

    @property
    def eta(self) -> float | None:
        etas = [pool.capacity.eta_seconds for pool in self.pending if pool.capacity.eta_seconds is not None]
        return min(etas) if etas else None

    @cached_property
    def full_virtual(self) -> dict[str, str]:
        """The virtual candidates with no room left (virtual nodes v2 hold 200 pods each, counting the recent spills
        that may land on each), with the reason."""
        return full_virtual_nodes(
            self.virtual, self.snapshot, self.config.virtual_nodes.max_pods_per_node, self.recent_spills
        )

    def keep(self, outcome: FilterOutcome, reason: str, **extra: Any) -> FilterDecision:
        """Every candidate stays (the virtual nodes too, when there are any), except virtual nodes without room. A
        spill with no virtual node left is no spill: the pod waits (withheld-virtual-nodes-full)."""
        full = self.full_virtual
        nodes = tuple(name for name in self.everything if name not in full) if full else self.everything
        spill_nodes = tuple(name for name in self.virtual if name not in full)
        if outcome.spilled and self.virtual and not spill_nodes:
            outcome = FilterOutcome.WITHHELD_VIRTUAL_NODES_FULL
            reason = "virtual node withheld: " + "; ".join(full.values())
        return FilterDecision(
            outcome, nodes, dict(full), {}, reason + self.suffix, self.policy, self.unknown_nodes,
            spill_nodes=spill_nodes, **extra,
        )

    def withhold(self, outcome: FilterOutcome, reason: str, **extra: Any) -> FilterDecision:
        """The virtual nodes go, as FailedAndUnresolvable with the reason; the other candidates stay."""
        text = f"virtual node withheld: {reason}{self.suffix}"
        return FilterDecision(
            outcome, self.other, {}, dict.fromkeys(self.virtual, text), text, self.policy, self.unknown_nodes, **extra
        )

    def capped(self, waiting: str = "", **extra: Any) -> FilterDecision | None:
        """The virtual nodes withheld by the first capacity cap the spill would pass (subnet, workload, namespace
        spend), or None when it passes none."""
        problems = virtual_capacity_problems(
            self.pod, self.snapshot, self.config, self.policy, self.cost, self.recent_spills
        )
        if not problems:
            return None
        reason = "; ".join(problem.reason for problem in problems) + waiting
        return self.withhold(CAPACITY_OUTCOMES[problems[0].guard], reason, virtual_cost_per_hour=self.cost, **extra)


# Up to this many virtual candidates, they are taken out of the candidate list one by one (a scan in C each);
# past it, one pass in Python over the candidates is cheaper.
_FEW_VIRTUAL = 16


def _sort_candidates(
    candidates: tuple[str, ...], snapshot: ClusterSnapshot, request_kinds: Mapping[str, NodeKind] | None,
    candidate_set: frozenset[str] | None = None,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(virtual, other, unknown) candidates. A node the view has not seen yet is almost always a VM that just
    registered (virtual nodes are few and long-lived), so it counts as a node the pod fits on now. ``candidate_set``:
    the candidates as a set, when the caller has one."""
    if request_kinds is None:
        # The usual request (NodeNames): set operations in C instead of a lookup per candidate in Python.
        # (Against the snapshot's set of node names: each candidate looked up once, in a table smaller than the map's.)
        present = set(candidates) if candidate_set is None else candidate_set
        if present <= snapshot.node_names:
            virtual_hits = present.intersection(snapshot.virtual_nodes)
            if not virtual_hits:
                return (), candidates, ()
            if len(virtual_hits) > _FEW_VIRTUAL:
                return (
                    tuple(n for n in candidates if n in virtual_hits),
                    tuple(n for n in candidates if n not in virtual_hits),
                    (),
                )
            # Virtual nodes are few: take them out of the list by name (each a scan in C), in request order.
            rest = list(candidates)
            for name in virtual_hits:
                rest.remove(name)
            return tuple(sorted(virtual_hits, key=candidates.index)), tuple(rest), ()
    virtual: list[str] = []
    other: list[str] = []
    unknown: list[str] = []
    for name in candidates:
        kind = request_kinds.get(name) if request_kinds is not None else None
        if kind is None:
            info = snapshot.nodes.get(name)
            if info is None:
                unknown.append(name)
            else:
                kind = info.kind
        (virtual if kind is NodeKind.VIRTUAL else other).append(name)
    return tuple(virtual), tuple(other), tuple(unknown)


# --- the steps, in order: each decides, or passes (None) to the next ------------------------------------------------


def _no_virtual_candidate(r: _Request) -> FilterDecision | None:
    if r.virtual:
        return None
    return r.keep(FilterOutcome.NO_VIRTUAL_CANDIDATE, "no virtual node among the candidates")


def _vm_fits(r: _Request) -> FilterDecision | None:
    if not r.other:
        return None
    sample = ", ".join(r.other[:3]) + (f" and {len(r.other) - 3} more" if len(r.other) > 3 else "")
    return r.withhold(FilterOutcome.VM_FITS, f"the pod fits on VM node(s) now ({sample})")


def _spill_never(r: _Request) -> FilterDecision | None:
    if r.policy.spill is not SpillPolicy.NEVER:
        return None
    return r.withhold(FilterOutcome.WITHHELD_SPILL_NEVER, "the pod's annotation tideover.io/spill is never")


def _incompatible(r: _Request) -> FilterDecision | None:
    profile_name, profile = r.config.virtual_nodes.provider_profile()
    problems = incompatibilities(r.pod, profile, profile_name)
    if not problems:
        return None
    return r.withhold(FilterOutcome.WITHHELD_INCOMPATIBLE, incompatibility_reason(problems, profile, profile_name))


def _when_full(r: _Request) -> FilterDecision | None:
    if r.policy.spill is not SpillPolicy.WHEN_FULL:
        return None
    return r.capped() or r.keep(
        FilterOutcome.SPILL_WHEN_FULL,
        "spilling to the virtual node: no VM node fits and tideover.io/spill is when-full "
        f"(est. ${r.cost:.4f}/h on the virtual node)",
        virtual_cost_per_hour=r.cost,
    )


def _no_pool_fits(r: _Request) -> FilterDecision | None:
    fitting, misfits = r.pool_fits
    if fitting:
        return None
    if not r.snapshot.pools:
        detail = "no VM pool is known (no node carries the pool label and none is configured)"
    else:
        detail = "no VM pool's new nodes could host the pod (" + "; ".join(
            f"{name}: {', '.join(problems)}" for name, problems in sorted(misfits.items())
        ) + ")"
    return r.withhold(
        FilterOutcome.WITHHELD_NO_POOL_FITS,
        f"{detail}; set tideover.io/spill: when-full to let it run on the virtual node",
    )


# (stuck, idle, source) for cluster-autoscaler (False) and Karpenter (True).
_SIGNAL_WORDS = {
    False: ("the VMSS scale-up of pools [{}] is stuck, far past its ETA", "no VMSS scale-up in progress for pools [{}]",
            "autoscaler"),
    True: ("the NodeClaims of NodePools [{}] are stuck, far past their ETA",
           "no NodeClaim launching for NodePools [{}]", "karpenter"),
}


def _no_scale_up(r: _Request) -> FilterDecision | None:
    if r.pending:
        return None
    stuck = [pool.name for pool in r.pool_fits[0] if pool.capacity.stuck]
    # In the words of the signal in use (autoscaler.capacitySignal): VMSS scale-ups, or Karpenter's NodeClaims.
    stuck_head, idle_head, source = _SIGNAL_WORDS[r.snapshot.capacity_source == "karpenter"]
    head = stuck_head.format(", ".join(stuck)) if stuck else idle_head.format(", ".join(r.fitting_names))
    return r.withhold(
        FilterOutcome.WITHHELD_NO_SCALE_UP,
        f"{head} "
        f"({source}: {_scale_up_summary(r.pool_fits[0])})",
        fitting_pools=r.fitting_names,
    )


def _within_wait_budget(r: _Request) -> FilterDecision | None:
    budget = wait_budget_seconds(r.policy, r.config)
    eta = r.eta
    if eta is None or eta > budget:
        return None
    pending_names = tuple(pool.name for pool in r.pending)
    return r.withhold(
        FilterOutcome.WITHHELD_WITHIN_WAIT_BUDGET,
        f"pool {pending_names[0]} is scaling up and expected Ready in ~{eta:.0f}s, within the pod's "
        f"wait budget of {budget:.0f}s (priority {r.policy.priority.value})",
        pending_pools=pending_names, eta_seconds=eta, fitting_pools=r.fitting_names,
    )


def _capacity_pending(r: _Request) -> FilterDecision:
    pending_names = tuple(pool.name for pool in r.pending)
    eta = r.eta
    eta_text = f"VM expected in ~{eta:.0f}s" if eta is not None else "VM ETA unknown"
    facts: dict[str, Any] = {"pending_pools": pending_names, "eta_seconds": eta, "fitting_pools": r.fitting_names}
    capped = r.capped(f"; the pod waits for pool(s) {', '.join(pending_names)} ({eta_text})", **facts)
    if capped is not None:
        return capped
    evidence = "; ".join(r.pending[0].capacity.evidence[:2])
    return r.keep(
        FilterOutcome.SPILL_CAPACITY_PENDING,
        f"spilling to the virtual node while pool(s) {', '.join(pending_names)} scale up ({evidence}); "
        f"{eta_text}; est. ${r.cost:.4f}/h on the virtual node",
        virtual_cost_per_hour=r.cost, **facts,
    )


# Once a virtual node is a candidate: the bridge rule (a VM fits now), the guards that hold whatever the policy, the
# when-full policy, then while-pending's questions about the pools. The last step always decides.
FILTER_STEPS: tuple[Callable[[_Request], FilterDecision | None], ...] = (
    _no_virtual_candidate,
    _vm_fits,
    _spill_never,
    _incompatible,
    _when_full,
    _no_pool_fits,
    _no_scale_up,
    _within_wait_budget,
)


def decide_filter(
    pod: PodFacts,
    candidates: Sequence[str],
    snapshot: ClusterSnapshot,
    config: TideoverConfig,
    request_kinds: Mapping[str, NodeKind] | None = None,
    recent_spills: RecentSpills = NO_RECENT_SPILLS,
    pod_seen: bool = True,
    candidate_set: frozenset[str] | None = None,
) -> FilterDecision:
    """Which of ``candidates`` (the nodes that passed kube-scheduler's own filters) may host ``pod``.

    ``request_kinds`` classifies nodes the request carried in full (nodeCacheCapable: false), so a node
    the cluster view has not seen yet is still understood. ``recent_spills``: spills allowed that the snapshot
    does not show yet (:class:`~extender.decide.guards.SpillLedger`), counted by the capacity guards.
    ``pod_seen``: the cluster view holds this pod, Pending and unbound; a spill for a pod it does not hold (not
    delivered by the watch yet, or forged) is withheld: the HTTP edge then waits for the watch (see ExtenderService).
    ``candidate_set``: ``candidates`` as a set, when the caller has one (the wire's check of the names makes it).
    """
    policy = workload_policy(pod.annotations)
    everything = tuple(candidates)
    if not snapshot.synced:
        return FilterDecision(
            FilterOutcome.NOT_SYNCED, (), {}, {}, "tideover's cluster view has not synced yet", policy
        )
    # Fast path: a pod that tolerates no virtual node's taint cannot have one among its candidates.
    if request_kinds is None and not _tolerates_some_virtual_node(pod, snapshot):
        return FilterDecision(
            FilterOutcome.DOES_NOT_TOLERATE_VIRTUAL, everything, {}, {},
            "pod does not tolerate the virtual node's taint" + _problems_suffix(policy), policy,
        )
    request = _Request(pod, snapshot, config, policy, recent_spills, everything,
                       *_sort_candidates(everything, snapshot, request_kinds, candidate_set))
    decision = next((found for step in FILTER_STEPS if (found := step(request)) is not None), None)
    decision = decision or _capacity_pending(request)
    if decision.outcome.spilled and not pod_seen:
        return request.withhold(
            FilterOutcome.WITHHELD_POD_NOT_SEEN,
            f"tideover's cluster view holds no Pending, unbound pod {pod.key} with uid {pod.uid or '(none)'}; a "
            "spill is allowed only for pods it has seen (kube-scheduler retries the pod)",
        )
    return decision


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
    FilterOutcome.WITHHELD_VIRTUAL_NODES_FULL,
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
