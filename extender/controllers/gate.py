"""Records tideover's spill state on each virtual node, so kube-scheduler retries the pods it rejected.

kube-scheduler retries a pod that an extender rejected only on a cluster event: the pod is parked with
the fake plugin "Extender" among its UnschedulablePlugins, which any event wakes (pkg/scheduler/
schedule_one.go, findNodesThatFitPod; framework/runtime defaultEnqueueExtension), or after
podMaxInUnschedulablePodsDuration (5 minutes). The autoscaler's status ConfigMap is no such event, and
on AKS the new VM registers only once it has booted. So when the set of pools with capacity pending
changes, tideover writes it onto the virtual node's annotations: a Node annotation update
(UpdateNodeAnnotation) wakes the parked pods at once, and ``kubectl describe node`` shows the state. A
scale-up far past its estimate (``autoscaler.stuckAfterSeconds``) is named in ``tideover.io/scale-up-stuck``.

It also gates the virtual nodes (``virtualNodes.gateTaint``, on by default): while no pool has capacity
pending, each carries the taint ``tideover.io/spill-window=closed:NoSchedule``. cluster-autoscaler
simulates scheduling without extenders, so without the gate a pending pod that tolerates the virtual node
"fits" there in its simulation and it never adds the VM the pod is waiting for. The taint is a fact both
the scheduler and the autoscaler see; it comes off when a scale-up is pending (and that change, too,
wakes the parked pods).

Only a change of the pending set is written (never an ETA tick), so a burst causes no patch storm. Every
replica computes the same value, and a write that changes nothing is skipped, so this runs in every
replica without a lease. Taints are a list the API replaces whole, so they are written with the node's
resourceVersion (optimistic concurrency) and retried on a conflict.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from extender.controllers.port import KubeWrites, Outcome
from extender.model.capacity import CapacityState
from extender.model.keys import CAPACITY_PENDING, GATE, GATE_TAINT, SCALE_UP_STUCK
from extender.model.snapshot import ClusterSnapshot

log = logging.getLogger("tideover.spillstate")

CONFLICT_RETRIES = 5


@dataclass(frozen=True, slots=True)
class SpillState:
    pending_pools: tuple[str, ...]
    since: datetime
    reason: str = ""
    # Each pool's state (and a failed scale-up's error): a change here rewrites the reason, which is rare,
    # unlike an ETA that moves every second.
    pool_states: tuple[tuple[str, str, str], ...] = ()
    stuck_pools: tuple[str, ...] = ()  # scale-ups far past their estimate (kubernetes/autoscaler#8323)

    def annotations(self) -> dict[str, str]:
        stamp = self.since.strftime("%Y-%m-%dT%H:%M:%SZ")
        window = "open" if self.pending_pools else "closed"
        text = f"{window} since {stamp}" + (f": {self.reason}" if self.reason else "")
        return {CAPACITY_PENDING: ",".join(self.pending_pools), GATE: text, SCALE_UP_STUCK: ",".join(self.stuck_pools)}


def _reason(snapshot: ClusterSnapshot, pending: tuple[str, ...]) -> str:
    if pending:
        return "capacity pending in " + "; ".join(snapshot.pools[name].capacity.describe() for name in pending)
    states = "; ".join(pool.capacity.describe() for pool in snapshot.pools.values())
    return f"no VM pool has capacity pending ({states or 'no pools'})"


def _pool_states(snapshot: ClusterSnapshot) -> tuple[tuple[str, str, str], ...]:
    return tuple(
        (name, pool.capacity.state.value,
         pool.capacity.evidence[0] if pool.capacity.state is CapacityState.BACKOFF and pool.capacity.evidence else "")
        for name, pool in sorted(snapshot.pools.items())
    )


def _without_time(window: str) -> str:
    """'closed since 2026-...Z: reason' -> 'closed: reason' (replicas differ only in when they noticed)."""
    head, _, rest = window.partition(" since ")
    return f"{head}: {rest.partition(' ')[2]}" if rest else head  # the stamp has no spaces


def desired_taints(current: list[Mapping[str, Any]], state: SpillState, gate: bool) -> list[Mapping[str, Any]]:
    """The node's taints with the gate added (window closed) or removed (open); others kept in order."""
    kept = [t for t in current if t.get("key") != GATE]
    if gate and not state.pending_pools:
        kept.append(dict(GATE_TAINT))
    return kept


def desired_state(snapshot: ClusterSnapshot, previous: SpillState | None) -> SpillState | None:
    """The state to record, or None when nothing changed (the 'since' of an unchanged state is kept)."""
    pending = tuple(sorted(snapshot.pending_pools))
    states = _pool_states(snapshot)
    stuck = snapshot.stuck_pools
    if (previous is not None and previous.pending_pools == pending and previous.pool_states == states
            and previous.stuck_pools == stuck):
        return None
    since = previous.since if previous is not None and previous.pending_pools == pending else snapshot.built_at
    return SpillState(pending, since, _reason(snapshot, pending), states, stuck)


class SpillStateRecorder:
    """Snapshot listener -> background writes of the virtual nodes' spill annotations and gate taint."""

    def __init__(self, kube: KubeWrites, *, gate: bool = True) -> None:
        self._kube = kube
        self._gate = gate
        self._state: SpillState | None = None
        self._recorded: dict[str, SpillState] = {}
        self._queue: queue.Queue[tuple[str, SpillState] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="spill-state", daemon=True)
        self.patches = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)

    def on_snapshot(self, previous: ClusterSnapshot, new: ClusterSnapshot) -> None:
        if not new.synced:
            return
        state = desired_state(new, self._state)
        if state is not None:
            self._state = state
            log.info("spill window %s (pending pools: %s)", "open" if state.pending_pools else "closed",
                     ", ".join(state.pending_pools) or "none")
        current = self._state
        if current is None:
            return
        for node in new.virtual_nodes:
            # A virtual node that (re)appeared since the last change is brought up to date too.
            if self._recorded.get(node) != current:
                self._recorded[node] = current
                self._queue.put((node, current))

    def _write(self, name: str, state: SpillState) -> bool:
        """Bring one node to ``state``; True when a write was needed."""
        for _ in range(CONFLICT_RETRIES):
            node = self._kube.read_node(name)
            metadata = node.get("metadata") or {}
            annotations = metadata.get("annotations") or {}
            taints = list((node.get("spec") or {}).get("taints") or [])
            wanted_annotations = state.annotations()
            existing = str(annotations.get(GATE, ""))
            if annotations.get(CAPACITY_PENDING) == wanted_annotations[CAPACITY_PENDING] and _without_time(
                existing
            ) == _without_time(wanted_annotations[GATE]):
                # Same state and reason, recorded by another replica (or before a restart): its "since" stands.
                wanted_annotations[GATE] = existing
            wanted_taints = desired_taints(taints, state, self._gate)
            if taints == wanted_taints and all(annotations.get(k) == v for k, v in wanted_annotations.items()):
                return False
            body = {
                "metadata": {"resourceVersion": metadata.get("resourceVersion"), "annotations": wanted_annotations},
                "spec": {"taints": wanted_taints},
            }
            result = self._kube.patch_node(name, body)
            if result.ok:
                return True
            if result.outcome is not Outcome.CONFLICT:
                raise RuntimeError(result.reason)
        raise RuntimeError(f"{CONFLICT_RETRIES} conflicting writes in a row")

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            node, state = item
            try:
                if self._write(node, state):
                    self.patches += 1
            except Exception as error:
                log.warning("could not record the spill state on %s: %s", node, error)
                self._recorded.pop(node, None)  # retried on the next snapshot
