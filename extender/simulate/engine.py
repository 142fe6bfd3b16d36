"""The discrete-event engine: one trace, one policy, one seed -> what happened.

Simulated here: kube-scheduler's filters and its choice among VMs (LeastAllocated), the ReplicaSet and Job
controllers (ReplicaSet scale-down ranking included), the VMSS (provisioning time drawn per node), the virtual
node (ACI start time drawn per pod) and cluster-autoscaler (scale-up for pods that fit nowhere, counting upcoming
nodes and, as CA does, the virtual node when a pod tolerates it; scale-down of underused nodes after its delays).
Decided by tideover's own code (:mod:`.bridge`): the filter, the gate (open while a snapshot shows a pool pending),
the guards, and the return controller's plan.

Events at the same instant run in :class:`~.state.Order`, then in the order they were scheduled, so a run is a
function of (trace, cluster, config, policy, seed). Every random draw comes from one ``numpy`` Generator seeded
with ``seed``.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from extender.simulate import autoscaler, bridge
from extender.simulate.bridge import SPILL, VIRTUAL_NODE, ClusterSnapshot, SpillLedger, TideoverConfig
from extender.simulate.cluster import ResolvedCluster, ResolvedPool
from extender.simulate.policies import Policy
from extender.simulate.state import Node, Order, Pod, WorkloadState
from extender.simulate.trace import Trace

GIB = 2.0**30


@dataclass
class Sample:
    at: float
    pending: int
    vm: int
    virtual: int
    vm_nodes: int


@dataclass
class RunLog:
    """Everything the results are computed from."""

    policy: Policy
    seed: int
    duration: float
    pods: list[Pod]
    nodes: list[Node]
    samples: list[Sample]
    outcomes: Counter[str]
    returns: int
    scale_ups: int
    scale_downs: int
    workloads: list[WorkloadState]
    events: list[tuple[float, str, str]] = field(default_factory=list)


class _RateLimiter:
    """The return controller's cluster-wide eviction budget (controllers.returnToVm.maxEvictionsPerMinute), on the
    simulated clock: extender.controllers.loop.EvictionRateLimiter's rule; that module does Kubernetes I/O."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.recent: deque[float] = deque()

    def budget(self, now: float) -> int:
        while self.recent and now - self.recent[0] >= 60:
            self.recent.popleft()
        return self.per_minute - len(self.recent)


class Simulation:
    def __init__(
        self, trace: Trace, config: TideoverConfig, policy: Policy, seed: int, *, record_events: bool = False
    ) -> None:
        self.trace = trace
        self.config = config
        self.policy = policy
        self.seed = seed
        self.cluster = ResolvedCluster(trace.cluster, config)
        self.rng = np.random.default_rng(seed)
        self.now = 0.0
        self.duration = trace.duration
        self._queue: list[tuple[float, int, int, str, Any]] = []
        self._seq = itertools.count()
        self._schedule_queued_at: float | None = None
        self.record_events = record_events
        self.events: list[tuple[float, str, str]] = []
        self.nodes: dict[str, Node] = {}
        self.all_nodes: list[Node] = []
        self.all_pods: list[Pod] = []
        self.pending: dict[str, Pod] = {}  # unbound, in creation order
        self.workloads = [self._workload(w) for w in trace.workloads]
        self.gated = self._gate_enabled  # no scale-up is pending at the start
        self.status: Any = None  # the autoscaler's last written status (bridge.autoscaler_status)
        self.last_groups: tuple[Any, ...] = ()  # what that status said, times left out
        self.history = bridge.start_history(config)
        self.ledger = SpillLedger(clock=lambda: self.now)
        self.limiter = _RateLimiter(config.controllers.return_to_vm.max_evictions_per_minute)
        self.stable_since: float | None = None
        self.protected: set[str] = set()
        self.targets: dict[str, int] = {}
        self.scale_up_since: dict[str, float | None] = {}
        self.last_scale_up = -1e18
        self.outcomes: Counter[str] = Counter()
        self.returns = self.scale_ups = self.scale_downs = 0
        self.samples: list[Sample] = []
        self._node_numbers: Counter[str] = Counter()

    # ------------------------------------------------------------------ set-up

    @property
    def _gate_enabled(self) -> bool:
        return self.policy.tideover and self.config.virtual_nodes.gate_taint

    @property
    def _returns_enabled(self) -> bool:
        return self.policy.tideover and self.policy.returns and self.config.controllers.return_to_vm.enabled

    def _workload(self, spec: Any) -> WorkloadState:
        annotations = dict(spec.annotations)
        if self.policy.tideover and self.policy.spill is not None:
            annotations[SPILL] = self.policy.spill.value
        template = bridge.pod_template(
            namespace=spec.namespace, workload=spec.name,
            owner_kind="ReplicaSet" if spec.kind == "Deployment" else "Job", cpu=spec.cpu,
            memory_bytes=spec.memory_gib * GIB, annotations=annotations,
            tolerate_virtual=spec.tolerate_virtual and self.policy.virtual_node,
            tolerate_gate=self.policy.gate_toleration,
        )
        return WorkloadState(spec, template)

    def push(self, at: float, order: Order, kind: str, data: Any = None) -> None:
        heapq.heappush(self._queue, (at, int(order), next(self._seq), kind, data))

    def pop(self) -> tuple[str, Any] | None:
        """The next event up to the end of the run, the clock moved to it; None when there is none."""
        if not self._queue or self._queue[0][0] > self.duration:
            return None
        at, _, _, kind, data = heapq.heappop(self._queue)
        self.now = at
        return kind, data

    def log(self, kind: str, detail: str) -> None:
        if self.record_events:
            self.events.append((self.now, kind, detail))

    # ------------------------------------------------------------------ the loop

    def run(self) -> RunLog:
        for pool in self.cluster.pools:
            self.targets[pool.name] = pool.spec.initial
            self.scale_up_since[pool.name] = None
            for _ in range(pool.spec.initial):
                node = self.new_node(pool, created=0.0, provisioning=0.0)
                node.registered = node.ready = True
        for workload in self.workloads:
            for step in workload.spec.steps:
                self.push(step.at_seconds, Order.DEMAND, "demand", (workload, step.replicas))
        self.push(0.0, Order.CONTROLLER, "autoscaler")
        if self._returns_enabled:
            self.push(0.0, Order.CONTROLLER, "returns")
        sample_every = self.trace.cluster.sample_seconds or max(1.0, round(self.duration / 600))
        for at in np.arange(0.0, self.duration + 1e-9, sample_every):
            self.push(float(at), Order.SAMPLE, "sample")
        handlers: dict[str, Callable[[Any], None]] = {
            "demand": self._on_demand, "node-registered": self._on_node_registered, "node-ready": self._on_node_ready,
            "pod-running": self._on_pod_running, "pod-done": self._on_pod_done, "pod-gone": self._on_pod_gone,
            "autoscaler": self._on_autoscaler, "returns": self._on_returns, "schedule": self._on_schedule,
            "sample": self._on_sample,
        }
        while (event := self.pop()) is not None:
            kind, data = event
            handlers[kind](data)
        self.now = self.duration
        return RunLog(self.policy, self.seed, self.duration, self.all_pods, self.all_nodes, self.samples,
                      self.outcomes, self.returns, self.scale_ups, self.scale_downs, self.workloads, self.events)

    def want_schedule(self) -> None:
        if self._schedule_queued_at != self.now and self.pending:
            self._schedule_queued_at = self.now
            self.push(self.now, Order.SCHEDULE, "schedule")

    # ------------------------------------------------------------------ workloads (ReplicaSet, Job controllers)

    def _on_demand(self, data: tuple[WorkloadState, int]) -> None:
        workload, replicas = data
        workload.desired = replicas
        self.log("demand", f"{workload.key} -> {replicas}")
        self._reconcile(workload)

    def _reconcile(self, workload: WorkloadState, replacement: bool = False) -> None:
        active = workload.active()
        if workload.spec.kind == "Job":
            completions = workload.spec.completions or 0
            want = max(0, min(workload.desired, completions - workload.succeeded))
        else:
            want = workload.desired
        if len(active) < want:
            for _ in range(want - len(active)):
                self._create_pod(workload).replacement = replacement
            self.want_schedule()
        elif len(active) > want:
            for pod in sorted(active, key=self._deletion_rank)[: len(active) - want]:
                self._delete_pod(pod, "scale-down")

    def _deletion_rank(self, pod: Pod) -> tuple[float, ...]:
        """The ReplicaSet controller's order (ActivePodsWithRanks): unscheduled, then not running, then lower
        pod-deletion-cost (tideover's -1000 on Running virtual-node pods), then more of its siblings on the same
        node, then the newest."""
        cost = 0.0
        if (pod.virtual and pod.phase == "Running" and self.policy.tideover
                and self.config.controllers.deletion_cost.enabled and pod.workload.spec.kind == "Deployment"):
            cost = float(self.config.controllers.deletion_cost.virtual_pod_cost)
        siblings = sum(1 for p in pod.workload.pods if p.node == pod.node and p.active) if pod.node else 0
        since = pod.running_at if pod.running_at is not None else pod.created
        return (pod.node is not None, pod.phase == "Running", cost, -siblings, -since)

    def _create_pod(self, workload: WorkloadState) -> Pod:
        workload.created += 1
        name = f"{workload.spec.name}-{workload.created}"
        uid = f"{workload.key}/{workload.created}"
        facts = bridge.pod_facts_for(workload.template, name, uid, self.now)
        pod = Pod(uid, workload, facts, self.now,
                  cost_per_second=bridge.virtual_cost_per_second(self.config, facts.cpu, facts.memory))
        workload.pods.append(pod)
        self.all_pods.append(pod)
        self.pending[uid] = pod
        return pod

    def _delete_pod(self, pod: Pod, why: str) -> None:
        self.log("delete", f"{pod.name} ({why}) on {pod.node or 'no node'}")
        pod.terminating, pod.deleted_at = True, self.now
        if pod.node is None:
            self.pending.pop(pod.uid, None)
            self._gone(pod)
        else:
            self.push(self.now + self.cluster.termination_seconds, Order.POD, "pod-gone", pod)

    def _gone(self, pod: Pod) -> None:
        if pod.gone_at is not None:
            return
        pod.gone_at = self.now
        self._release(pod)
        pod.workload.pods.remove(pod)

    def _release(self, pod: Pod) -> None:
        node = self.nodes.get(pod.node or "")
        if node is not None and pod.uid in node.pods:
            node.pods.discard(pod.uid)
            node.used_cpu -= pod.facts.cpu
            node.used_memory -= pod.facts.memory
            self.want_schedule()

    def _on_pod_gone(self, pod: Pod) -> None:
        self._gone(pod)
        self._reconcile(pod.workload)

    def _on_pod_running(self, pod: Pod) -> None:
        if pod.terminating or pod.gone_at is not None:
            return
        pod.phase, pod.running_at = "Running", self.now
        if pod.workload.spec.kind == "Job" and pod.workload.spec.run is not None:
            self.push(self.now + pod.workload.spec.run.draw(self.rng), Order.POD, "pod-done", pod)

    def _on_pod_done(self, pod: Pod) -> None:
        if pod.terminating or pod.gone_at is not None:
            return
        pod.phase = "Succeeded"
        workload = pod.workload
        workload.succeeded += 1
        self._gone(pod)
        if workload.succeeded >= (workload.spec.completions or 0):
            workload.completed_at = self.now
        self._reconcile(workload)

    # ------------------------------------------------------------------ nodes (the VMSS)

    def new_node(self, pool: ResolvedPool, created: float, provisioning: float) -> Node:
        self._node_numbers[pool.name] += 1
        name = f"aks-{pool.name}-vmss{self._node_numbers[pool.name]:06d}"
        ready_at = created + provisioning
        registered_at = max(created, ready_at - pool.spec.registered_before_ready_seconds)
        node = Node(name, pool, created, registered_at, ready_at)
        self.nodes[name] = node
        self.all_nodes.append(node)
        return node

    def _on_node_registered(self, node: Node) -> None:
        if node.removed_at is None:
            node.registered = True
            self.log("node", f"{node.name} registered")

    def _on_node_ready(self, node: Node) -> None:
        if node.removed_at is None:
            node.ready = True
            self.log("node", f"{node.name} Ready")
            self.want_schedule()

    def remove_node(self, node: Node) -> None:
        self.log("node", f"{node.name} removed by the autoscaler")
        node.removed_at = self.now
        self.targets[node.pool.name] -= 1
        self.scale_downs += 1
        for pod in [p for p in self.all_pods if p.node == node.name and p.gone_at is None]:
            pod.terminating, pod.deleted_at = True, self.now
            self._gone(pod)
            self._reconcile(pod.workload)
        del self.nodes[node.name]

    # ------------------------------------------------------------------ tideover's view and gate

    def snapshot(self) -> ClusterSnapshot:
        nodes = [self._node_facts(node) for node in self.nodes.values() if node.registered]
        if self.policy.virtual_node:
            nodes.append(bridge.virtual_node_facts(self.gated))
        pods = self._placements()
        view = bridge.snapshot(self.config, nodes, pods, self.status, self.now, self.history)
        self.history = view.pending_history or self.history
        self._refresh_gate(view)
        return view

    def _node_facts(self, node: Node) -> Any:
        spec = node.pool.spec
        return bridge.vm_node_facts(
            node.name, node.pool.name, self.config.vm_pools.pool_label, cpu=spec.node_cpu,
            memory_bytes=spec.node_memory_gib * GIB, pods=spec.node_pods, ready=node.ready, created=node.created,
            ready_at=node.ready_at,
        )

    def _refresh_gate(self, view: ClusterSnapshot) -> None:
        """tideover's spill-state recorder: the gate taint is on while no pool has capacity pending."""
        gated = self._gate_enabled and not view.pending_pools
        if gated != self.gated:
            self.gated = gated
            self.log("gate", "closed" if gated else f"open ({', '.join(view.pending_pools)} pending)")
            self.want_schedule()  # a Node update wakes the parked pods

    def _placements(self) -> list[Any]:
        return [
            bridge.placement(pod.facts, node=pod.node, phase=pod.phase, terminating=pod.terminating,
                             created=pod.created)
            for pod in self.all_pods if pod.gone_at is None
        ]

    # ------------------------------------------------------------------ kube-scheduler

    def _on_schedule(self, _: Any) -> None:
        self._schedule_queued_at = None
        if not self.pending:
            return
        view = self.snapshot() if self.policy.tideover else None
        virtual = bridge.virtual_node_facts(self.gated) if self.policy.virtual_node else None
        for pod in list(self.pending.values()):
            self._schedule_one(pod, view, virtual)

    def _schedule_one(self, pod: Pod, view: ClusterSnapshot | None, virtual: Any) -> None:
        vms = [n for n in self.nodes.values() if n.ready and n.removed_at is None
               and n.fits(pod.facts.cpu, pod.facts.memory)]
        virtual_ok = virtual is not None and bridge.tolerates(pod.facts, virtual)
        if view is not None and virtual_ok:
            decision = bridge.filter_pod(pod.facts, [n.name for n in vms] + [VIRTUAL_NODE], view, self.config,
                                         self.ledger)
            self.outcomes[decision.outcome.value] += 1
            feasible = set(decision.feasible)
            vms = [n for n in vms if n.name in feasible]
            virtual_ok = VIRTUAL_NODE in feasible
        if vms:
            # LeastAllocated (kube-scheduler's default scoring): the most free CPU; the seeds' preferred affinity
            # keeps a VM ahead of the virtual node.
            node = max(vms, key=lambda n: (n.free_cpu / n.pool.spec.node_cpu, n.name))
            self._bind(pod, node)
        elif virtual_ok:
            self._bind_virtual(pod)
        else:
            pod.tried = True

    def _bind(self, pod: Pod, node: Node) -> None:
        del self.pending[pod.uid]
        pod.node, pod.bound_at = node.name, self.now
        node.pods.add(pod.uid)
        node.used_cpu += pod.facts.cpu
        node.used_memory += pod.facts.memory
        start = self.cluster.vm_start.draw(self.rng) + (0.0 if node.has_image else self.cluster.vm_pull_seconds)
        node.has_image = True
        node.unneeded_since = None
        self.log("bind", f"{pod.name} -> {node.name}")
        self.push(self.now + start, Order.POD, "pod-running", pod)

    def _bind_virtual(self, pod: Pod) -> None:
        del self.pending[pod.uid]
        pod.node, pod.bound_at, pod.virtual = VIRTUAL_NODE, self.now, True
        self.log("bind", f"{pod.name} -> {VIRTUAL_NODE}")
        self.push(self.now + self.cluster.virtual_start.draw(self.rng), Order.POD, "pod-running", pod)

    # ------------------------------------------------------------------ cluster-autoscaler

    def _on_autoscaler(self, _: Any) -> None:
        autoscaler.scan(self)
        self.push(self.now + self.cluster.autoscaler.scan_interval_seconds, Order.CONTROLLER, "autoscaler")

    # ------------------------------------------------------------------ tideover's return controller

    def _on_returns(self, _: Any) -> None:
        interval = self.config.controllers.return_to_vm.interval_seconds
        self.push(self.now + interval, Order.CONTROLLER, "returns")
        on_virtual = [p for p in self.all_pods if p.virtual and p.gone_at is None]
        if not on_virtual and not self.protected:
            return
        view = self.snapshot()
        if view.pending_pools:
            self.stable_since = None
        elif self.stable_since is None:
            self.stable_since = self.now
        plan = bridge.returns(view, self.now, self.config, self.stable_since, self.limiter.budget(self.now))
        # The controller's marks: scale-down-disabled on the VMs the plan protects, all lifted on release.
        self.protected = set() if plan.release else self.protected | plan.protect
        by_uid = {p.uid: p for p in on_virtual}
        for move in plan.moves:
            pod = by_uid.get(move.pod.uid)
            if pod is None or pod.terminating:
                continue
            self.limiter.recent.append(self.now)
            self.returns += 1
            self._delete_pod(pod, f"return to {move.target_node}")
            self._reconcile(pod.workload, replacement=True)

    # ------------------------------------------------------------------ sampling

    def _on_sample(self, _: Any) -> None:
        pending = vm = virtual = 0
        for pod in self.all_pods:
            if pod.gone_at is not None:
                continue
            if pod.node is None:
                pending += 1
            elif pod.virtual:
                virtual += 1
            else:
                vm += 1
        self.samples.append(Sample(self.now, pending, vm, virtual, len(self.nodes)))


def simulate(trace: Trace, config: TideoverConfig, policy: Policy, seed: int, **options: Any) -> RunLog:
    return Simulation(trace, config, policy, seed, **options).run()
