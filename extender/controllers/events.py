"""Kubernetes Events for decisions a person will ask about ("why is my pod on ACI?").

The filter runs while kube-scheduler waits, so it only *remembers* a spill decision (in memory, by pod
UID). When the pod watch later sees that pod bound to a virtual node, :class:`SpillNotifier` queues a
``SpilledToVirtualNode`` Event with the decision's reason, predicted cost and VM ETA, and
:class:`EventRecorder` posts it from its own thread.

A pod that tideover keeps off the virtual node is often never seen by the filter: while the gate taint is on,
kube-scheduler rejects the virtual node itself and says only "untolerated taint(s)". :class:`WaitingNotifier`
tells such a pod why, with a ``WaitingForVM`` Event: what it waits for, the pool and the ETA when known. Events
are only created (not bumped), so it posts once per pod and reason, again only when the reason changes (at most
once a minute) or, for a long wait, every half hour so the reason outlives the Events' one-hour TTL.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from extender.controllers.port import KubeWrites
from extender.decide.filter import FilterDecision, pending_reason
from extender.model.config import TideoverConfig
from extender.model.objects import PodFacts
from extender.model.snapshot import ClusterSnapshot, PodPlacement

log = logging.getLogger("tideover.events")

COMPONENT = "tideover"
SPILLED_TO_VIRTUAL_NODE = "SpilledToVirtualNode"
WAITING_FOR_VM = "WaitingForVM"


@dataclass(frozen=True, slots=True)
class PodEvent:
    namespace: str
    pod_name: str
    pod_uid: str
    reason: str
    message: str
    type: str = "Normal"


class EventRecorder:
    """Posts core/v1 Events from a background thread; the queue is bounded so a slow API never grows memory."""

    def __init__(self, kube: KubeWrites, *, max_queue: int = 1000, host: str = "") -> None:
        self._kube = kube
        self._queue: queue.Queue[PodEvent | None] = queue.Queue(maxsize=max_queue)
        self._host = host
        self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
        self.dropped = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def emit(self, event: PodEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            now = datetime.now(UTC)
            body = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{event.pod_name}.{uuid.uuid4().hex[:16]}", "namespace": event.namespace},
                "involvedObject": {
                    "apiVersion": "v1", "kind": "Pod", "namespace": event.namespace, "name": event.pod_name,
                    "uid": event.pod_uid,
                },
                "reason": event.reason,
                "message": event.message[:1024],
                "type": event.type,
                "source": {"component": COMPONENT, "host": self._host},
                "reportingComponent": COMPONENT,
                "reportingInstance": self._host or COMPONENT,
                "firstTimestamp": now.isoformat().replace("+00:00", "Z"),
                "lastTimestamp": now.isoformat().replace("+00:00", "Z"),
                "count": 1,
            }
            try:
                result = self._kube.create_event(event.namespace, body)
            except Exception as error:  # a transport error: the recorder must outlive it
                log.warning("could not record event %s: %s", event.reason, error)
                continue
            if not result.ok:
                log.warning("could not record event %s for %s/%s: %s", event.reason, event.namespace,
                            event.pod_name, result.reason)


class SpillNotifier:
    """Links the filter's spill decisions to the pods that then land on a virtual node."""

    def __init__(
        self, emit: Callable[[PodEvent], None], snapshot: Callable[[], ClusterSnapshot], capacity: int = 10_000
    ) -> None:
        self._emit = emit
        self._snapshot = snapshot
        self._capacity = capacity
        self._decisions: OrderedDict[str, FilterDecision] = OrderedDict()
        self._lock = threading.Lock()

    def on_filter_decision(self, pod: PodFacts, decision: FilterDecision) -> None:
        if not decision.outcome.spilled or not pod.uid:
            return
        with self._lock:
            self._decisions[pod.uid] = decision
            self._decisions.move_to_end(pod.uid)
            while len(self._decisions) > self._capacity:
                self._decisions.popitem(last=False)

    def on_pod_change(self, old: PodPlacement | None, new: PodPlacement | None) -> None:
        if new is None or new.node_name is None or (old is not None and old.node_name == new.node_name):
            return
        if new.node_name not in self._snapshot().virtual_nodes:
            return
        with self._lock:
            decision = self._decisions.pop(new.uid, None)
        if decision is None:
            return  # another replica decided (and reports it), or the pod was placed without tideover
        message = f"placed on virtual node {new.node_name}: {decision.reason}"
        self._emit(PodEvent(new.namespace, new.name, new.uid, SPILLED_TO_VIRTUAL_NODE, message))
        log.info("pod %s/%s spilled to %s: %s", new.namespace, new.name, new.node_name, decision.reason)


@dataclass(slots=True)
class _Waiting:
    facts: PodFacts
    key: str | None = None  # the reason last posted
    posted_at: float | None = None


class WaitingNotifier:
    """Posts a ``WaitingForVM`` Event on each unbound pod that waits because of tideover (see the module's doc).

    Pods come from the pod watch (:meth:`on_pod_change`: the ones kube-scheduler found unschedulable); they are
    judged on each new snapshot (:meth:`on_snapshot`, from the publisher thread) by
    :func:`~extender.decide.filter.pending_reason`, at most ``per_round`` of them a round, longest unjudged first.
    Only the replica that ``leading()`` says leads posts, so replicas do not post the same Event each.
    """

    def __init__(
        self,
        emit: Callable[[PodEvent], None],
        config: TideoverConfig,
        *,
        leading: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.monotonic,
        min_interval_seconds: float = 60.0,
        repeat_seconds: float = 1800.0,
        capacity: int = 10_000,
        per_round: int = 500,
    ) -> None:
        self._emit = emit
        self._config = config
        self._leading = leading
        self._clock = clock
        self._min_interval = min_interval_seconds
        self._repeat = repeat_seconds
        self._capacity = capacity
        self._per_round = per_round
        self._pods: OrderedDict[str, _Waiting] = OrderedDict()  # by uid, least recently judged first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pods)

    def on_pod_change(self, old: PodPlacement | None, new: PodPlacement | None) -> None:
        if new is not None and new.unschedulable and new.pending_facts is not None and new.uid:
            with self._lock:
                entry = self._pods.get(new.uid)
                if entry is not None:
                    entry.facts = new.pending_facts
                elif len(self._pods) < self._capacity:
                    self._pods[new.uid] = _Waiting(new.pending_facts)
                    self._pods.move_to_end(new.uid, last=False)  # judged in the next round
            return
        gone = new if new is not None else old
        if gone is not None:
            with self._lock:
                self._pods.pop(gone.uid, None)

    def on_snapshot(self, previous: ClusterSnapshot, new: ClusterSnapshot) -> None:
        if not new.synced or not self._leading():
            return
        with self._lock:
            due = list(itertools.islice(self._pods.items(), self._per_round))
            for uid, _ in due:
                self._pods.move_to_end(uid)
        now = self._clock()
        for uid, entry in due:
            reason = pending_reason(entry.facts, new, self._config)
            if reason is None or not self._worth_posting(entry, reason.key, now):
                continue
            entry.key, entry.posted_at = reason.key, now
            facts = entry.facts
            self._emit(PodEvent(facts.namespace, facts.name, uid, WAITING_FOR_VM, reason.message))
            log.info("pod %s waits for a VM: %s", facts.key, reason.message)

    def _worth_posting(self, entry: _Waiting, key: str, now: float) -> bool:
        if entry.posted_at is None:
            return True
        since = now - entry.posted_at
        if key != entry.key:
            return since >= self._min_interval
        return since >= self._repeat
