"""Records tideover's spill state on each virtual node, so kube-scheduler retries the pods it rejected.

kube-scheduler retries a pod that an extender rejected only on a cluster event: the pod is parked with
the fake plugin "Extender" among its UnschedulablePlugins, which any event wakes (pkg/scheduler/
schedule_one.go, findNodesThatFitPod; framework/runtime defaultEnqueueExtension), or after
podMaxInUnschedulablePodsDuration (5 minutes). The autoscaler's status ConfigMap is no such event, and
on AKS the new VM registers only once it has booted. So when the set of pools with capacity pending
changes, tideover writes it onto the virtual node's annotations: a Node annotation update
(UpdateNodeAnnotation) wakes the parked pods at once, and ``kubectl describe node`` shows the state.

Only a change of the pending set is written (never an ETA tick), so a burst causes no patch storm. Every
replica computes the same value, and a patch that changes nothing is a no-op on the API server, so
this runs in every replica without a lease.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from extender.snapshot import ClusterSnapshot

log = logging.getLogger("tideover.spillstate")

CAPACITY_PENDING = "tideover.io/capacity-pending"  # comma-separated pools, "" when none
SPILL_WINDOW = "tideover.io/spill-window"  # "open" | "closed", with the time it last changed


@dataclass(frozen=True, slots=True)
class SpillState:
    pending_pools: tuple[str, ...]
    since: datetime

    def annotations(self) -> dict[str, str]:
        stamp = self.since.strftime("%Y-%m-%dT%H:%M:%SZ")
        window = "open" if self.pending_pools else "closed"
        return {CAPACITY_PENDING: ",".join(self.pending_pools), SPILL_WINDOW: f"{window} since {stamp}"}


def desired_state(snapshot: ClusterSnapshot, previous: SpillState | None) -> SpillState | None:
    """The state to record, or None when nothing changed (the 'since' of an unchanged state is kept)."""
    pending = tuple(sorted(snapshot.pending_pools))
    if previous is not None and previous.pending_pools == pending:
        return None
    return SpillState(pending, snapshot.built_at)


class SpillStateRecorder:
    """Snapshot listener -> background patches of the virtual nodes' annotations."""

    def __init__(self, patch_node: Callable[[str, Mapping[str, object]], object]) -> None:
        self._patch_node = patch_node
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

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            node, state = item
            try:
                self._patch_node(node, {"metadata": {"annotations": state.annotations()}})
                self.patches += 1
            except Exception as error:
                log.warning("could not record the spill state on %s: %s", node, error)
                self._recorded.pop(node, None)  # retried on the next snapshot
