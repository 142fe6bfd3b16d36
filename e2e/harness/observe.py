"""Watch-driven observation of a scenario's cluster: every change of its pods, PodDisruptionBudgets, Deployments
and nodes is seen (list+watch, not sampled), with the time it arrived. The scenarios assert on what was seen
(a PDB never violated, the nodes that were protected, when pods left the virtual node)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch

from e2e.harness.autoscaled import NODE_GROUP, VIRTUAL, AutoscaledStack, GroupStatus, PodRecord, clock, group_status
from e2e.vmss.autoscaler import STATUS_CONFIGMAP, STATUS_NAMESPACE
from extender.model.keys import GATE, SCALE_DOWN_DISABLED, TO_BE_DELETED


class Watcher:
    """One list+watch in a thread: ``on_sync(items, at)`` after each (re)list, ``on_event(type, obj, at)`` for
    every change the API server sends, in order. Objects are the API's JSON (camelCase dicts)."""

    def __init__(
        self,
        kubeconfig: Path,
        list_call: Callable[[Any], Callable[..., Any]],
        namespace: str | None,
        on_sync: Callable[[list[dict[str, Any]], float], None],
        on_event: Callable[[str, dict[str, Any], float], None],
        **list_kwargs: Any,
    ) -> None:
        self._kubeconfig = kubeconfig
        self._list_kwargs = list_kwargs
        self._list_call = list_call
        self._namespace = namespace
        self._on_sync = on_sync
        self._on_event = on_event
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._thread = threading.Thread(target=self._run, name="e2e-watch", daemon=True)
        self.errors = 0

    def start(self) -> Watcher:
        self._thread.start()
        if not self._synced.wait(15):
            raise RuntimeError("a watch did not list in 15 s")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        api_client = k8s_config.new_client_from_config(config_file=str(self._kubeconfig))
        fn = self._list_call(api_client)
        args = [self._namespace] if self._namespace else []
        version: str | None = None
        try:
            while not self._stop.is_set():
                try:
                    if version is None:
                        response = fn(*args, _preload_content=False, **self._list_kwargs)
                        listed = json.loads(response.data)
                        version = listed["metadata"]["resourceVersion"]
                        self._on_sync(listed.get("items") or [], time.time())
                        self._synced.set()
                    stream = watch.Watch()
                    for event in stream.stream(fn, *args, resource_version=version, timeout_seconds=2,
                                               deserialize=False, **self._list_kwargs):
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":
                            version = None
                            break
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        self._on_event(event["type"], obj, time.time())
                        if self._stop.is_set():
                            stream.stop()
                            break
                except Exception:  # 410 Gone, a dropped connection: list again
                    self.errors += 1
                    version = None
                    self._stop.wait(0.2)
        finally:
            api_client.close()


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


SUMMARY_COALESCE_SECONDS = 0.25


@dataclass
class PodState:
    node: str | None
    ready: bool
    terminating: bool
    running: bool = False


@dataclass
class Observer:
    """Every change, as the watches deliver it, of the namespace's pods, its PDB and Deployment, the nodes and
    cluster-autoscaler's status ConfigMap, with the time it arrived:

    - ``timeline``: one line per change a person follows (CA's scale-up state, tideover's gate, VM nodes registering
      and turning Ready, the pods' summary: pending / on VMs / on the virtual node), plus the test's ``mark``s;
    - ``statuses`` / ``scale_up``: every status CA's node group had / when each scaleUp value was first seen;
    - ``gate``: (time, closed) at every change of the virtual node's gate taint;
    - ``vm_registered`` / ``vm_ready``: node -> when it was first seen / first seen Ready;
    - ``records``: pod -> when it was first seen, bound (and where) and Running;

    - ``ready``: (time, pods Ready and not terminating) at every change: what the disruption controller
      counts as healthy;
    - ``pdb``: (time, currentHealthy, desiredHealthy, disruptionsAllowed) at every status the PDB had;
    - ``pdb_evictions``: (time, pod) for every pod the Eviction API added to the PDB's disruptedPods;
    - ``available``: (time, the Deployment's availableReplicas) at every status it had;
    - ``left_virtual``: pod -> when it started to leave the virtual node (terminating, or gone);
    - ``landed``: pod -> (time, node) when it was first seen bound;
    - ``protection``: node -> [(time, carries scale-down-disabled=true)] at every change;
    - ``node_deleted`` / ``ca_deleting``: node -> when it was deleted / when CA tainted it for deletion.
    """

    stack: AutoscaledStack
    namespace: str
    app: str = "web"
    pods: dict[str, PodState] = field(default_factory=dict)
    ready: list[tuple[float, int]] = field(default_factory=list)
    pdb: list[tuple[float, int, int, int]] = field(default_factory=list)
    pdb_evictions: list[tuple[float, str]] = field(default_factory=list)
    available: list[tuple[float, int]] = field(default_factory=list)
    left_virtual: dict[str, float] = field(default_factory=dict)
    landed: dict[str, tuple[float, str]] = field(default_factory=dict)
    protection: dict[str, list[tuple[float, bool]]] = field(default_factory=dict)
    node_deleted: dict[str, float] = field(default_factory=dict)
    ca_deleting: dict[str, float] = field(default_factory=dict)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    statuses: list[tuple[float, GroupStatus]] = field(default_factory=list)
    scale_up: dict[str, float] = field(default_factory=dict)
    gate: list[tuple[float, bool]] = field(default_factory=list)
    vm_registered: dict[str, float] = field(default_factory=dict)
    vm_ready: dict[str, float] = field(default_factory=dict)
    records: dict[str, PodRecord] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._disrupted_seen: set[tuple[str, str]] = set()
        self._summary: tuple[int, int, int] | None = None
        self._summary_line: int | None = None  # index in the timeline of the last summary line
        self._summary_since = 0.0  # when that line was first written
        kubeconfig = self.stack.cluster.kubeconfig
        ns = self.namespace
        self._watchers = [
            Watcher(kubeconfig, lambda c: k8s.CoreV1Api(c).list_namespaced_config_map, STATUS_NAMESPACE,
                    self._each(self._status), self._status, field_selector=f"metadata.name={STATUS_CONFIGMAP}"),
            Watcher(kubeconfig, lambda c: k8s.CoreV1Api(c).list_namespaced_pod, ns, self._pods_synced, self._pod),
            Watcher(kubeconfig, lambda c: k8s.PolicyV1Api(c).list_namespaced_pod_disruption_budget, ns,
                    self._each(self._pdb), self._pdb),
            Watcher(kubeconfig, lambda c: k8s.AppsV1Api(c).list_namespaced_deployment, ns,
                    self._each(self._deployment), self._deployment),
            Watcher(kubeconfig, lambda c: k8s.CoreV1Api(c).list_node, None, self._each(self._node), self._node),
        ]

    def start(self) -> Observer:
        for watcher in self._watchers:
            watcher.start()
        return self

    def stop(self) -> None:
        for watcher in self._watchers:
            watcher.stop()

    # ---- queries (thread-safe copies)

    def on_virtual(self) -> set[str]:
        """Pods bound to the virtual node, terminating ones included."""
        with self._lock:
            return {name for name, p in self.pods.items() if p.node == VIRTUAL}

    def ready_count(self) -> int:
        with self._lock:
            return sum(1 for p in self.pods.values() if p.ready and not p.terminating)

    def protected_nodes(self) -> set[str]:
        with self._lock:
            return {node for node, changes in self.protection.items() if changes and changes[-1][1]}

    def copy(self, attribute: str) -> Any:
        with self._lock:
            value = getattr(self, attribute)
            return dict(value) if isinstance(value, dict) else list(value)

    def mark(self, message: str, at: float | None = None) -> None:
        """A line of the test's own in the timeline (what it did, and when)."""
        with self._lock:
            self.timeline.append((time.time() if at is None else at, message))

    def sorted_timeline(self) -> list[tuple[float, str]]:
        with self._lock:
            return sorted(self.timeline, key=lambda item: item[0])

    def first(self, scale_up: str) -> float | None:
        """When CA's node group was first seen with this scaleUp status."""
        with self._lock:
            return self.scale_up.get(scale_up)

    def latest_status(self) -> GroupStatus | None:
        with self._lock:
            return self.statuses[-1][1] if self.statuses else None

    def gate_changes(self) -> list[tuple[float, bool]]:
        with self._lock:
            return list(self.gate)

    def pod_records(self) -> dict[str, PodRecord]:
        with self._lock:
            return {name: PodRecord(**vars(record)) for name, record in self.records.items()}

    def print_timeline(self, origin: float, *, title: str = "", prefix: str = "[e2e]   ") -> None:
        """The timeline, each line's time in seconds from ``origin``."""
        if title:
            print(title)
        for at, message in self.sorted_timeline():
            print(f"{prefix}{at - origin:+7.1f}s  {message}")

    # ---- watch handlers

    @staticmethod
    def _each(handler: Callable[[str, dict[str, Any], float], None]) -> Callable[[list[dict[str, Any]], float], None]:
        def sync(items: list[dict[str, Any]], at: float) -> None:
            for item in items:
                handler("SYNC", item, at)

        return sync

    def _pods_synced(self, items: list[dict[str, Any]], at: float) -> None:
        with self._lock:
            names = {item["metadata"]["name"] for item in items}
            for gone in set(self.pods) - names:
                self._pod_gone(gone, at)
            for item in items:
                self._pod_seen(item, at)
            self._record_ready(at)
            self._record_summary(at)

    def _pod(self, kind: str, pod: dict[str, Any], at: float) -> None:
        with self._lock:
            if kind == "DELETED":
                self._pod_gone(pod["metadata"]["name"], at)
            else:
                self._pod_seen(pod, at)
            self._record_ready(at)
            self._record_summary(at)

    def _pod_seen(self, pod: dict[str, Any], at: float) -> None:
        metadata, spec = pod["metadata"], pod.get("spec") or {}
        name = metadata["name"]
        running = (pod.get("status") or {}).get("phase") == "Running"
        state = PodState(spec.get("nodeName"), pod_ready(pod), bool(metadata.get("deletionTimestamp")), running)
        self.pods[name] = state
        if not state.terminating:
            record = self.records.setdefault(name, PodRecord(name, created=at))
            if state.node and record.node is None:
                record.node, record.scheduled = state.node, at
            if running and record.running is None:
                record.running = at
        if state.node and name not in self.landed:
            self.landed[name] = (at, state.node)
        if state.node == VIRTUAL and state.terminating:
            self.left_virtual.setdefault(name, at)

    def _pod_gone(self, name: str, at: float) -> None:
        state = self.pods.pop(name, None)
        if state is not None and state.node == VIRTUAL:
            self.left_virtual.setdefault(name, at)

    def _record_ready(self, at: float) -> None:
        count = sum(1 for p in self.pods.values() if p.ready and not p.terminating)
        if not self.ready or self.ready[-1][1] != count:
            self.ready.append((at, count))

    def _record_summary(self, at: float) -> None:
        live = [p for p in self.pods.values() if not p.terminating]
        pending = sum(1 for p in live if not p.node)
        virtual = sum(1 for p in live if p.node == VIRTUAL)
        summary = (pending, len(live) - pending - virtual, virtual)
        if summary == self._summary:
            return
        self._summary = summary
        line = (at, f"pods: {pending} pending, {summary[1]} on VMs, {virtual} on the virtual node")
        # A burst changes the summary at every pod: within SUMMARY_COALESCE_SECONDS the last line is replaced, so
        # the timeline reads as a person follows it (the counts settle), not as a line per pod.
        # Only while nothing else happened in between: a line never moves past another event.
        last = len(self.timeline) - 1
        if self._summary_line == last >= 0 and at - self._summary_since < SUMMARY_COALESCE_SECONDS:
            self.timeline[last] = line
        else:
            self._summary_line, self._summary_since = len(self.timeline), at
            self.timeline.append(line)

    def _status(self, kind: str, config_map: dict[str, Any], at: float) -> None:
        if kind == "DELETED":
            return
        group = self.stack.pool.config.group_id if self.stack.pool else NODE_GROUP
        status = group_status(config_map.get("data"), group)
        with self._lock:
            if status is None or (self.statuses and self.statuses[-1][1] == status):
                return
            previous = self.statuses[-1][1] if self.statuses else None
            self.statuses.append((at, status))
            if status.scale_up and status.scale_up not in self.scale_up:
                self.scale_up[status.scale_up] = at
            if previous is not None and (previous.scale_up, previous.since, previous.error_code) == (
                status.scale_up, status.since, status.error_code
            ):
                return
            since = f" (lastTransitionTime {clock(status.since)})" if status.since else ""
            detail = f": {status.error_code}" if status.error_code else ""
            self.timeline.append((at, f"CA status: scaleUp {status.scale_up}{detail}{since}; target {status.target}, "
                                      f"max {status.max_size}"))

    def _pdb(self, kind: str, pdb: dict[str, Any], at: float) -> None:
        if kind == "DELETED" or pdb["metadata"]["name"] != self.app:
            return
        status = pdb.get("status") or {}
        with self._lock:
            if "desiredHealthy" in status:
                entry = (at, int(status.get("currentHealthy") or 0), int(status.get("desiredHealthy") or 0),
                         int(status.get("disruptionsAllowed") or 0))
                if not self.pdb or self.pdb[-1][1:] != entry[1:]:
                    self.pdb.append(entry)
            for pod, when in (status.get("disruptedPods") or {}).items():
                if (pod, when) not in self._disrupted_seen:
                    self._disrupted_seen.add((pod, when))
                    self.pdb_evictions.append((at, pod))

    def _deployment(self, kind: str, dep: dict[str, Any], at: float) -> None:
        if kind == "DELETED" or dep["metadata"]["name"] != self.app:
            return
        available = int((dep.get("status") or {}).get("availableReplicas") or 0)
        with self._lock:
            if not self.available or self.available[-1][1] != available:
                self.available.append((at, available))

    def _node(self, kind: str, node: dict[str, Any], at: float) -> None:
        metadata = node["metadata"]
        name = metadata["name"]
        with self._lock:
            if kind == "DELETED":
                self.node_deleted.setdefault(name, at)
                return
            protected = (metadata.get("annotations") or {}).get(SCALE_DOWN_DISABLED) == "true"
            changes = self.protection.setdefault(name, [])
            if (changes and changes[-1][1] != protected) or (not changes and protected):
                changes.append((at, protected))
            taints = (node.get("spec") or {}).get("taints") or []
            if any(t.get("key") == TO_BE_DELETED for t in taints):
                self.ca_deleting.setdefault(name, at)
            self._node_timeline(node, taints, at)

    def _node_timeline(self, node: dict[str, Any], taints: list[dict[str, Any]], at: float) -> None:
        metadata = node["metadata"]
        name = metadata["name"]
        if name == VIRTUAL:
            closed = any(t.get("key") == GATE for t in taints)
            if not self.gate or self.gate[-1][1] != closed:
                self.gate.append((at, closed))
                window = (metadata.get("annotations") or {}).get(GATE, "")
                self.timeline.append((at, f"virtual node gate {'CLOSED' if closed else 'OPEN'}: {window}"))
            return
        if name not in self.vm_registered:
            self.vm_registered[name] = at
            self.timeline.append((at, f"VM node {name} registered"))
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        if ready and name not in self.vm_ready:
            self.vm_ready[name] = at
            self.timeline.append((at, f"VM node {name} Ready"))


@contextlib.contextmanager
def observing(stack: AutoscaledStack, namespace: str) -> Iterator[Observer]:
    observer = Observer(stack, namespace).start()
    try:
        yield observer
    finally:
        observer.stop()


def lowest(series: Sequence[tuple[Any, ...]], start: float, end: float, index: int = 1) -> tuple[float, Any]:
    """(time, value) of the lowest value of ``series`` in effect during [start, end]."""
    in_effect = [entry for entry in series if entry[0] <= start][-1:] + [e for e in series if start < e[0] <= end]
    if not in_effect:
        raise AssertionError("no observation in the window")
    worst = min(in_effect, key=lambda entry: entry[index])
    return worst[0], worst[index]


