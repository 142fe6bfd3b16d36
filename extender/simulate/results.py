"""What a run cost and how long pods waited: the table's figures, computed from a :class:`~.engine.RunLog`.

- ACI: each pod on the virtual node is billed from its binding (ACI creates the container group) until it is
  gone (termination included), at tideover's cost model (``virtualNodes.pricing``, billed minimums included).
- VMs: each node is billed from its scale-up request until the autoscaler removes it (Azure bills a VM from
  allocation; counting from the request slightly over-states VM cost, never ACI's). The initial nodes count from 0.
- Wait: a pod's creation to Running, for the pods demand created (scale-ups, Job pods, and replacements of pods
  on a node the autoscaler removed); the replacements of pods tideover moved back to VMs are left out (their
  predecessor served until they were created) and counted in ``returns``. Pods deleted before they ran are
  counted apart (``neverRan``), as are pods still pending at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from extender.simulate.engine import RunLog


@dataclass
class Series:
    at: list[float]
    pending: list[int]
    vm: list[int]
    virtual: list[int]
    vm_nodes: list[int]
    cost: list[float]  # cumulative USD (ACI + VMs)
    aci_cost: list[float]  # cumulative USD on ACI


@dataclass
class PolicyResult:
    key: str
    title: str
    description: str
    aci_pod_seconds: float
    aci_dollars: float
    vm_node_hours: float
    vm_dollars: float
    wait_p50: float | None
    wait_p95: float | None
    wait_max: float | None
    pods_started: int
    never_ran: int
    pending_at_end: int
    virtual_at_end: int
    returns: int
    scale_ups: int
    scale_downs: int
    outcomes: dict[str, int]
    jobs_completed_at: dict[str, float | None]
    waits: list[float] = field(repr=False)
    series: Series = field(repr=False)

    @property
    def total_dollars(self) -> float:
        return self.aci_dollars + self.vm_dollars

    def as_json(self, series: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "policy": self.key, "title": self.title, "description": self.description,
            "aciPodSeconds": round(self.aci_pod_seconds, 3), "aciDollars": round(self.aci_dollars, 6),
            "vmNodeHours": round(self.vm_node_hours, 6), "vmDollars": round(self.vm_dollars, 6),
            "totalDollars": round(self.total_dollars, 6),
            "waitSeconds": {"p50": _round(self.wait_p50), "p95": _round(self.wait_p95), "max": _round(self.wait_max)},
            "podsStarted": self.pods_started, "neverRan": self.never_ran, "pendingAtEnd": self.pending_at_end,
            "virtualAtEnd": self.virtual_at_end, "returns": self.returns, "scaleUps": self.scale_ups,
            "scaleDowns": self.scale_downs, "filterOutcomes": dict(sorted(self.outcomes.items())),
            "jobsCompletedAt": self.jobs_completed_at,
        }
        if series:
            s = self.series
            out["series"] = {"at": s.at, "pending": s.pending, "vm": s.vm, "virtual": s.virtual,
                             "vmNodes": s.vm_nodes, "cumulativeDollars": [round(c, 6) for c in s.cost]}
        return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _cumulative(at: NDArray[np.float64], starts: NDArray[np.float64], ends: NDArray[np.float64],
                rates: NDArray[np.float64]) -> NDArray[np.float64]:
    """Cost accrued by each sample time: sum of rate x overlap of [start, end) with [0, t)."""
    if starts.size == 0:
        return np.zeros_like(at)
    overlap = np.clip(np.minimum(ends[None, :], at[:, None]) - starts[None, :], 0.0, None)
    result: NDArray[np.float64] = overlap @ rates
    return result


def summarize(log: RunLog) -> PolicyResult:
    end = log.duration
    virtual = [p for p in log.pods if p.virtual and p.bound_at is not None]
    v_start = np.array([p.bound_at for p in virtual], dtype=np.float64)
    v_end = np.array([p.gone_at if p.gone_at is not None else end for p in virtual], dtype=np.float64)
    v_rate = np.array([p.cost_per_second for p in virtual], dtype=np.float64)
    n_start = np.array([n.created for n in log.nodes], dtype=np.float64)
    n_end = np.array([n.removed_at if n.removed_at is not None else end for n in log.nodes], dtype=np.float64)
    n_rate = np.array([n.pool.price_per_hour / 3600.0 for n in log.nodes], dtype=np.float64)
    waits = np.array([p.running_at - p.created for p in log.pods if p.running_at is not None and not p.replacement],
                     dtype=np.float64)
    at = np.array([s.at for s in log.samples] + [end], dtype=np.float64)
    aci_cost = _cumulative(at, v_start, v_end, v_rate)
    cost = aci_cost + _cumulative(at, n_start, n_end, n_rate)
    alive = [p for p in log.pods if p.gone_at is None and p.phase != "Succeeded"]
    last = log.samples[-1] if log.samples else None
    series = Series(
        at=at.tolist(), pending=[s.pending for s in log.samples] + [last.pending if last else 0],
        vm=[s.vm for s in log.samples] + [last.vm if last else 0],
        virtual=[s.virtual for s in log.samples] + [last.virtual if last else 0],
        vm_nodes=[s.vm_nodes for s in log.samples] + [last.vm_nodes if last else 0],
        cost=cost.tolist(), aci_cost=aci_cost.tolist(),
    )
    return PolicyResult(
        key=log.policy.key, title=log.policy.title, description=log.policy.description,
        aci_pod_seconds=float(np.sum(v_end - v_start)), aci_dollars=float(np.dot(v_end - v_start, v_rate)),
        vm_node_hours=float(np.sum(n_end - n_start) / 3600.0), vm_dollars=float(np.dot(n_end - n_start, n_rate)),
        wait_p50=float(np.percentile(waits, 50)) if waits.size else None,
        wait_p95=float(np.percentile(waits, 95)) if waits.size else None,
        wait_max=float(waits.max()) if waits.size else None,
        pods_started=int(waits.size),
        never_ran=sum(1 for p in log.pods if p.running_at is None and p.gone_at is not None),
        pending_at_end=sum(1 for p in alive if p.node is None),
        virtual_at_end=sum(1 for p in alive if p.virtual),
        returns=log.returns, scale_ups=log.scale_ups, scale_downs=log.scale_downs, outcomes=dict(log.outcomes),
        jobs_completed_at={w.key: w.completed_at for w in log.workloads if w.spec.kind == "Job"},
        waits=waits.tolist(), series=series,
    )


def placements_at(log: RunLog, times: Sequence[float]) -> list[tuple[int, int, int]]:
    """(pending, on VMs, on the virtual node) at each time, counting pods as ``kubectl get pods`` lists them
    without the terminating ones: created, not yet deleted."""
    out = []
    for t in times:
        pending = vm = virtual = 0
        for pod in log.pods:
            deleted = pod.deleted_at if pod.deleted_at is not None else pod.gone_at
            if pod.created > t or (deleted is not None and deleted <= t):
                continue
            if pod.bound_at is None or pod.bound_at > t:
                pending += 1
            elif pod.virtual:
                virtual += 1
            else:
                vm += 1
        out.append((pending, vm, virtual))
    return out
