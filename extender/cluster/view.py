"""The cluster view: list and watch Nodes, Pods and the autoscaler's status ConfigMap in the background, and
Karpenter's NodeClaims and NodePools when ``autoscaler.capacitySignal`` may use them (karpenter, auto).

Watches run in daemon threads with the official client's ``watch`` (raw dicts, no model
deserialisation: the same JSON shape the extender wire carries). A publisher thread folds changes into
a new immutable :class:`~extender.model.snapshot.ClusterSnapshot` (coalescing bursts, and at least every
``refresh_seconds`` so time-based facts stay fresh); the request path only reads the latest one.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from extender.cluster.tally import PodTally
from extender.model.autoscaler_status import NO_STATUS_READ, AutoscalerStatusRead
from extender.model.config import TideoverConfig
from extender.model.karpenter import (
    GROUP,
    NOT_WATCHED,
    VERSION,
    KarpenterRead,
    NodeClaimFacts,
    NodePoolFacts,
    nodeclaim_facts,
    nodepool_facts,
)
from extender.model.objects import NodeFacts, ObjectError, PodFacts, node_facts
from extender.model.snapshot import (
    ClusterSnapshot,
    NodeIndex,
    PodPlacement,
    build_snapshot,
    empty_snapshot,
    index_nodes,
    pod_placement,
    read_autoscaler_config_map,
)

log = logging.getLogger("tideover.clusterview")

SnapshotListener = Callable[[ClusterSnapshot, ClusterSnapshot], None]
PodListener = Callable[[PodPlacement | None, PodPlacement | None], None]

# Objects per page of the initial lists (the API server's chunking; etcd-backed lists honour it).
LIST_PAGE = 500
KARPENTER_RESOURCES = ("nodeclaims", "nodepools")
# Seconds between looks for Karpenter's CRDs while they are not served (auto: the cluster may gain them).
CRD_RETRY_SECONDS = 30.0


@contextlib.contextmanager
def _collector_paused(pause: bool) -> Iterator[None]:
    """No automatic garbage collection meanwhile (when ``pause``). A list of pods makes one long-lived object (and a
    few containers) per pod, and each full collection walks all that the store holds so far: at 150,000 pods, the
    collections made during the list took about half of the sync (tests.bench.bench_scale). The objects are then
    collected once and frozen (see ``_run_watch``)."""
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _WatchExpired(Exception):
    pass


class _OrjsonWatch(watch.Watch):
    """The client's watch (its stream, reconnection and error handling), decoding each event line with orjson
    instead of the standard library's json: half the cost of an event (3.9 KB pod event: 11 µs against 23 µs), and
    every pod change in the cluster is one. The objects stay raw dicts, as with ``deserialize=False``, and an ERROR
    event lacks the ``raw_object`` the client's deserialisation would add (see ``_watch_once``)."""

    def unmarshal_event(self, data: str, return_type: Any) -> Any:
        return orjson.loads(data) if data and not data.isspace() else None


@dataclass
class _Store:
    nodes: dict[str, NodeFacts] = field(default_factory=dict)
    pods: dict[str, PodPlacement] = field(default_factory=dict)
    autoscaler: AutoscalerStatusRead = NO_STATUS_READ
    nodeclaims: dict[str, NodeClaimFacts] = field(default_factory=dict)
    nodepools: dict[str, NodePoolFacts] = field(default_factory=dict)
    nodeclaims_served: bool = False  # the NodeClaim CRD answered the last list
    karpenter_problem: str = "NodeClaims not listed yet"  # why not, when it did not


class ClusterView:
    RESOURCES = ("nodes", "pods", "autoscaler-status")

    def __init__(
        self,
        core: client.CoreV1Api,
        config: TideoverConfig,
        *,
        custom: client.CustomObjectsApi | None = None,
        refresh_seconds: float = 2.0,
        coalesce_seconds: float = 0.05,
        watch_timeout_seconds: int = 300,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._core = core
        self._config = config
        self._custom = custom
        # Karpenter's objects are watched only when the configured capacity signal can use them.
        self._karpenter = config.autoscaler.capacity_signal != "cluster-autoscaler"
        self._resources = self.RESOURCES + (KARPENTER_RESOURCES if self._karpenter else ())
        self._refresh_seconds = refresh_seconds
        self._coalesce_seconds = coalesce_seconds
        self._watch_timeout = watch_timeout_seconds
        self._now = now
        self._lock = threading.Lock()
        self._store = _Store()
        self._nodes_version = 0  # bumped on every node change; the NodeIndex is rebuilt only then
        self._node_index: tuple[int, NodeIndex] | None = None
        # The pods' counts for the snapshot, kept per event (extender/cluster/tally.py); None: count afresh at the
        # next rebuild (after a relist, or when the virtual nodes change).
        self._tally: PodTally | None = None
        self._synced: set[str] = set()
        self._last_sync: dict[str, float] = {}
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watches: list[watch.Watch] = []
        self._snapshot = empty_snapshot(config, now())
        self._snapshot_listeners: list[SnapshotListener] = []
        self._pod_listeners: list[PodListener] = []

    # -- reading -----------------------------------------------------------------------------------
    def snapshot(self) -> ClusterSnapshot:
        return self._snapshot  # one reference read: the request path never waits on the lock

    def ready(self) -> bool:
        return self._snapshot.synced

    def holds_pending(self, pod: PodFacts) -> bool:
        """Whether the pod watch delivered this pod (its uid, with the namespace, name and controller owner the request
        gives), Pending and not bound. Reads the live store, which each watch event updates ahead of the next
        snapshot, so a pod kube-scheduler has just seen is found; one dict read, without the lock (the request path
        never waits on it)."""
        placement = self._store.pods.get(pod.uid) if pod.uid else None
        return (
            placement is not None
            and (placement.namespace, placement.name, placement.owner_uid) == (pod.namespace, pod.name, pod.owner_uid)
            and placement.node_name is None
            and placement.phase in (None, "Pending")
            and not placement.terminating
        )

    def sync_ages(self) -> dict[str, float]:
        now = time.monotonic()
        return {resource: now - at for resource, at in self._last_sync.items()}

    def add_snapshot_listener(self, listener: SnapshotListener) -> None:
        """Called from the publisher thread with (previous, new) after each rebuild."""
        self._snapshot_listeners.append(listener)

    def add_pod_listener(self, listener: PodListener) -> None:
        """Called from the pod watch thread with (old, new) placements; None for added/deleted."""
        self._pod_listeners.append(listener)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        autoscaler = self._config.autoscaler
        specs: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
            ("nodes", self._core.list_node, {}),
            ("pods", self._core.list_pod_for_all_namespaces, {}),
            (
                "autoscaler-status",
                self._core.list_namespaced_config_map,
                {
                    "namespace": autoscaler.status_namespace,
                    "field_selector": f"metadata.name={autoscaler.status_config_map}",
                },
            ),
        ]
        if self._karpenter:
            custom = self._custom or client.CustomObjectsApi(self._core.api_client)
            specs += [(plural, custom.list_cluster_custom_object, {"group": GROUP, "version": VERSION,
                                                                   "plural": plural})
                      for plural in KARPENTER_RESOURCES]
        for resource, list_fn, kwargs in specs:
            thread = threading.Thread(
                target=self._run_watch, args=(resource, list_fn, kwargs), name=f"watch-{resource}", daemon=True
            )
            self._threads.append(thread)
        self._threads.append(threading.Thread(target=self._run_publisher, name="snapshot-publisher", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._dirty.set()
        for w in list(self._watches):
            w.stop()

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return True
            time.sleep(0.05)
        return self.ready()

    # -- applying changes --------------------------------------------------------------------------
    def _replace(self, resource: str, items: list[Any]) -> None:
        with self._lock:
            if resource == "nodes":
                self._store.nodes = {}
                self._nodes_version += 1
                for item in items:
                    self._apply_node("ADDED", item)
            elif resource == "pods":
                old = self._store.pods
                pods: dict[str, PodPlacement] = {}
                self._tally = None
                for item in items:  # placements (from _list), or raw pods
                    placement = item if isinstance(item, PodPlacement) else pod_placement(item)
                    pods[placement.uid] = placement
                self._store.pods = pods  # whole: holds_pending reads it without the lock
                for uid, placement in self._store.pods.items():
                    self._notify_pod(old.get(uid), placement)
                for uid in old.keys() - self._store.pods.keys():  # deleted while the watch was down
                    self._notify_pod(old[uid], None)
            elif resource in KARPENTER_RESOURCES:
                getattr(self._store, resource).clear()
                if resource == "nodeclaims":
                    self._store.nodeclaims_served = True
                for item in items:
                    self._apply_karpenter(resource, "ADDED", item)
            else:
                self._apply_status(items[0] if items else None)

    def _apply(self, resource: str, kind: str, obj: Mapping[str, Any]) -> None:
        with self._lock:
            if resource == "nodes":
                self._apply_node(kind, obj)
            elif resource == "pods":
                placement = pod_placement(obj)
                old = self._store.pods.get(placement.uid)
                if kind == "DELETED":
                    self._store.pods.pop(placement.uid, None)
                    self._count(old, None)
                    self._notify_pod(old, None)
                else:
                    self._store.pods[placement.uid] = placement
                    self._count(old, placement)
                    self._notify_pod(old, placement)
            elif resource in KARPENTER_RESOURCES:
                self._apply_karpenter(resource, kind, obj)
            else:
                self._apply_status(None if kind == "DELETED" else obj)

    def _apply_karpenter(self, resource: str, kind: str, obj: Mapping[str, Any]) -> None:
        facts = nodeclaim_facts(obj) if resource == "nodeclaims" else nodepool_facts(obj)
        store: dict[str, Any] = getattr(self._store, resource)
        if kind == "DELETED":
            store.pop(facts.name, None)
        else:
            store[facts.name] = facts

    def _count(self, old: PodPlacement | None, new: PodPlacement | None) -> None:
        if self._tally is not None and old != new:
            self._tally.replace(old, new)

    def _notify_pod(self, old: PodPlacement | None, new: PodPlacement | None) -> None:
        if old == new:
            return
        for listener in self._pod_listeners:
            try:
                listener(old, new)
            except Exception:
                log.exception("pod listener failed")

    def _apply_node(self, kind: str, obj: Mapping[str, Any]) -> None:
        """Store the node's facts. The node index is rebuilt (``_nodes_version``) only when they changed: most node
        events are status heartbeats, which change nothing tideover reads."""
        name = (obj.get("metadata") or {}).get("name")
        if kind == "DELETED":
            if isinstance(name, str) and self._store.nodes.pop(name, None) is not None:
                self._nodes_version += 1
            return
        try:
            facts = node_facts(obj)
        except ObjectError as error:
            log.warning("ignoring node %s: %s", name, error)
            return
        if self._store.nodes.get(facts.name) != facts:
            self._store.nodes[facts.name] = facts
            self._nodes_version += 1

    def _apply_status(self, config_map: Mapping[str, Any] | None) -> None:
        read = read_autoscaler_config_map(config_map)
        if read.problem and config_map is not None:
            log.warning("cannot use the autoscaler status: %s", read.problem)
        self._store.autoscaler = read

    # -- threads -----------------------------------------------------------------------------------
    def _run_watch(self, resource: str, list_fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        backoff = 0.5
        resource_version: str | None = None
        while not self._stopping.is_set():
            try:
                if resource_version is None:
                    with _collector_paused(resource == "pods"):
                        items, resource_version = self._list(resource, list_fn, kwargs)
                        self._replace(resource, items)
                        del items
                    self._mark_synced(resource)
                    if resource == "pods":
                        # The store is long-lived: keep the collector from walking it again and again (at 150,000
                        # pods a full collection takes long enough to show in the request path's p99).
                        gc.collect()
                        gc.freeze()
                resource_version = self._watch_once(resource, list_fn, kwargs, resource_version)
                backoff = 0.5
            except _WatchExpired:
                log.info("watch of %s expired (410 Gone); relisting", resource)
                resource_version = None
            except ApiException as error:
                if error.status == 410:
                    resource_version = None
                    continue
                if error.status in (403, 404) and resource in KARPENTER_RESOURCES:
                    self._not_served(resource, error.status)
                    resource_version = None
                    self._stopping.wait(CRD_RETRY_SECONDS)
                    continue
                log.warning(
                    "watch of %s failed: %s %s; retrying in %.1fs", resource, error.status, error.reason, backoff
                )
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except Exception as error:  # connection errors: back off and reconnect
                if self._stopping.is_set():
                    break
                log.warning("watch of %s failed: %s; retrying in %.1fs", resource, error, backoff)
                self._stopping.wait(backoff * (1 + random.random() / 2))
                backoff = min(backoff * 2, 30.0)

    def _list(
        self, resource: str, list_fn: Callable[..., Any], kwargs: dict[str, Any]
    ) -> tuple[list[Any], str]:
        """Every object, read LIST_PAGE at a time (pods as placements, converted page by page, so that only one
        page of raw JSON is alive at once: a single list of 150,000 pods is gigabytes as Python objects), and the
        list's resourceVersion. An expired continue token is a 410, which relists from the start."""
        items: list[Any] = []
        token: str | None = None
        while True:
            page_kwargs = {**kwargs, "limit": LIST_PAGE, **({"_continue": token} if token else {})}
            data = orjson.loads(list_fn(_preload_content=False, **page_kwargs).data)
            page = data.get("items") or []
            items.extend(map(pod_placement, page) if resource == "pods" else page)
            metadata = data.get("metadata") or {}
            token = metadata.get("continue") or None
            if token is None:
                return items, str(metadata["resourceVersion"])

    def _watch_once(
        self, resource: str, list_fn: Callable[..., Any], kwargs: dict[str, Any], resource_version: str
    ) -> str:
        w = _OrjsonWatch()
        self._watches.append(w)
        try:
            stream = w.stream(
                list_fn, resource_version=resource_version, timeout_seconds=self._watch_timeout,
                allow_watch_bookmarks=True, **kwargs,
            )
            try:
                for event in stream:
                    if not isinstance(event, dict):  # a blank line
                        continue
                    kind: str = event.get("type") or ""
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        raise _WatchExpired
                    version = (obj.get("metadata") or {}).get("resourceVersion")
                    if kind != "BOOKMARK":
                        self._apply(resource, kind, obj)
                    if version:
                        resource_version = version
                    self._mark_synced(resource)
                    if self._stopping.is_set():
                        break
            except KeyError as error:
                # The client looks for event['raw_object'] on ERROR events, which only its own deserialisation
                # adds: the KeyError *is* the ERROR event (in practice 410 Gone).
                if error.args == ("raw_object",):
                    raise _WatchExpired from None
                raise
        finally:
            with contextlib.suppress(ValueError):
                self._watches.remove(w)
        return resource_version

    def _not_served(self, resource: str, status: int) -> None:
        """Karpenter's CRD is not installed (404), or tideover may not read it (403: the chart grants it only for
        capacitySignal karpenter or auto): nothing to read, and nothing to wait for before serving."""
        problem = (f"{resource} (karpenter.sh/v1) are not served: Karpenter's CRDs are not installed" if status == 404
                   else f"{resource} (karpenter.sh/v1) may not be read (403 Forbidden): check the RBAC")
        with self._lock:
            getattr(self._store, resource).clear()
            if resource == "nodeclaims":
                self._store.nodeclaims_served = False
                self._store.karpenter_problem = problem
        if resource not in self._synced:
            log.log(logging.INFO if status == 404 else logging.WARNING, "cluster view: %s; looking again every %.0fs",
                    problem, CRD_RETRY_SECONDS)
        self._mark_synced(resource)

    def _karpenter_read(self) -> KarpenterRead:
        """What the store holds of Karpenter (under the lock)."""
        if not self._karpenter:
            return NOT_WATCHED
        store = self._store
        if not store.nodeclaims_served:
            return KarpenterRead(served=False, problem=store.karpenter_problem)
        return KarpenterRead(served=True, claims=tuple(store.nodeclaims.values()), nodepools=dict(store.nodepools))

    def _mark_synced(self, resource: str) -> None:
        self._last_sync[resource] = time.monotonic()
        if resource not in self._synced:
            self._synced.add(resource)
            log.info("cluster view: %s synced", resource)
        self._dirty.set()

    def _run_publisher(self) -> None:
        while not self._stopping.is_set():
            self._dirty.wait(self._refresh_seconds)
            if self._stopping.is_set():
                break
            # Let a burst of events land before rebuilding.
            time.sleep(self._coalesce_seconds)
            self._dirty.clear()
            try:
                self.rebuild()
            except Exception:
                log.exception("snapshot rebuild failed; keeping the previous one")

    def rebuild(self) -> ClusterSnapshot:
        with self._lock:
            version = self._nodes_version
            nodes = None if self._node_index and self._node_index[0] == version else list(self._store.nodes.values())
        previous = self._snapshot
        if nodes is not None or self._node_index is None:
            self._node_index = (version, index_nodes(self._config, nodes or []))
        node_index = self._node_index[1]
        with self._lock:
            if self._tally is None or self._tally.virtual_nodes != node_index.virtual_nodes:
                pricing = self._config.virtual_nodes.pricing
                self._tally = PodTally.of(self._store.pods.values(), node_index.virtual_nodes, pricing)
            counts = self._tally.counts()
            autoscaler = self._store.autoscaler
            karpenter = self._karpenter_read()
            synced = all(resource in self._synced for resource in self._resources)
        new = build_snapshot(
            config=self._config, nodes=node_index, counts=counts, autoscaler=autoscaler,
            now=self._now(), synced=synced, history=previous.pending_history, karpenter=karpenter,
        )
        self._snapshot = new
        for listener in self._snapshot_listeners:
            try:
                listener(previous, new)
            except Exception:
                log.exception("snapshot listener failed")
        return new
