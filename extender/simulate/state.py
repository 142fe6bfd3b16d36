"""The simulated cluster's objects: nodes, pods, workloads. Plain records; the engine changes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from extender.simulate.bridge import PodFacts, PodTemplate
from extender.simulate.cluster import ResolvedPool
from extender.simulate.trace import Workload


class Order(IntEnum):
    """What happens first among events at the same instant: the cluster's facts, then demand, then the pods'
    lifecycle, then the controllers that read them, then kube-scheduler's pass over what they left pending."""

    NODE = 0
    DEMAND = 1
    POD = 2
    CONTROLLER = 3
    SCHEDULE = 4
    SAMPLE = 5


@dataclass(eq=False)
class Node:
    name: str
    pool: ResolvedPool
    created: float  # the scale-up request (billing starts)
    registered_at: float
    ready_at: float
    registered: bool = False
    ready: bool = False
    removed_at: float | None = None
    used_cpu: float = 0.0
    used_memory: float = 0.0
    pods: set[str] = field(default_factory=set)
    has_image: bool = False
    unneeded_since: float | None = None

    @property
    def free_cpu(self) -> float:
        return self.pool.spec.node_cpu - self.used_cpu

    @property
    def free_memory(self) -> float:
        return self.pool.spec.node_memory_gib * 2**30 - self.used_memory

    def fits(self, cpu: float, memory: float) -> bool:
        return (self.free_cpu + 1e-9 >= cpu and self.free_memory + 1 >= memory
                and len(self.pods) < self.pool.spec.node_pods)

    @property
    def utilization(self) -> float:
        return max(self.used_cpu / self.pool.spec.node_cpu, self.used_memory / (self.pool.spec.node_memory_gib * 2**30))


@dataclass(eq=False)
class Pod:
    uid: str
    workload: WorkloadState
    facts: PodFacts
    created: float
    node: str | None = None  # bound to (a VM node's name, or the virtual node's)
    virtual: bool = False
    bound_at: float | None = None
    running_at: float | None = None
    phase: str = "Pending"  # Pending (also while starting on its node) | Running | Succeeded
    terminating: bool = False
    deleted_at: float | None = None  # deletion requested (terminating from then on)
    gone_at: float | None = None
    cost_per_second: float = 0.0  # on ACI
    tried: bool = False  # kube-scheduler tried and found no node (what cluster-autoscaler acts on)
    replacement: bool = False  # created for a pod tideover moved back (not demand: left out of the waits)

    @property
    def name(self) -> str:
        return self.facts.name

    @property
    def active(self) -> bool:
        """Counted by its controller: not terminating, not finished."""
        return not self.terminating and self.gone_at is None and self.phase != "Succeeded"


@dataclass(eq=False)
class WorkloadState:
    spec: Workload
    template: PodTemplate
    desired: int = 0
    succeeded: int = 0
    created: int = 0
    pods: list[Pod] = field(default_factory=list)  # not yet gone
    completed_at: float | None = None  # a Job: when its last completion came

    @property
    def key(self) -> str:
        return f"{self.spec.namespace}/{self.spec.name}"

    def active(self) -> list[Pod]:
        return [pod for pod in self.pods if pod.active]
