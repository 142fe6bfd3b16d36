"""The cluster view and the request path at Kubernetes' documented limits: 5,000 nodes, 150,000 pods.

    python -m tests.bench.bench_scale [--nodes 5000] [--pods 150000] [--events-per-second 100] [--seconds 20]
                                      [--candidates N] [--shapes K] [--owner-sizes 30,1000,10000]

The real :class:`~extender.cluster.view.ClusterView` runs with its own watch threads and publisher; only the API
server is synthetic: list calls answer JSON bodies (pages when asked for them) and watch calls stream JSON event
lines, so the kubernetes client's watch code, the view's event handling and the snapshot builds are the ones in
production. It prints:

- initial sync: from ``start()`` until the view is ready (every list read, the first snapshot published), and
  the resident memory then (VmRSS) and at its peak (VmHWM);
- one snapshot build after sync (``rebuild()``);
- first, apart from the rest (``--owner-sizes``): the cost of one pod event in the view, for ReplicaSets of several
  sizes (the cost must not grow with the size of the pod's workload);
- while pod events arrive at ``--events-per-second`` (adds, bindings, updates, deletes, and probes: pods bound to
  the virtual node): the lag from a probe's event to the first snapshot that shows it, and the latency of
  ``ExtenderService.filter`` / ``.prioritize`` (parse, decide, reply, JSON encoding) for a pending pod that
  tolerates the virtual node, with every node a candidate (or ``--candidates``), p50 / p99 / max; meanwhile the
  leading replica's controller rounds run in the same process, against a fake API (``--no-controllers``: not), and
  their durations are printed.

Targets (issue 12): p99 < 5 ms for both verbs during the churn, lag < 1 s, RSS < 1.5 GiB. It asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import queue
import random
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from extender.cluster.view import ClusterView
from extender.controllers.loop import ControllerLoop
from extender.edge.app import ExtenderService
from extender.model.config import TideoverConfig
from extender.model.snapshot import ClusterSnapshot
from extender.telemetry.metrics import Metrics
from tests.bench.bench_extender import POOLS, aks_node, realistic_pod
from tests.support.factories import NOW, VIRTUAL_NODE, iso, virtual_node
from tests.support.fakes import FakeKube

Json = dict[str, Any]
OWNER_SIZE = 30  # pods per ReplicaSet
VIRTUAL_SHARE = 0.002  # of the pods, on the virtual node


def _rss() -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status.read().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


class Synthetic:
    """The objects: nodes as large as AKS's, running pods of ReplicaSets spread over them."""

    def __init__(self, nodes: int, pods: int, owner_size: int = OWNER_SIZE) -> None:
        self.owner_size = owner_size
        self.node_names = [aks_node(i, POOLS[i % len(POOLS)])["metadata"]["name"] for i in range(nodes)]
        self.pod_count = pods
        template = realistic_pod()
        template["metadata"].pop("generateName", None)
        template["status"] = {
            "phase": "Running", "qosClass": "Burstable", "hostIP": "10.240.0.4", "podIP": "10.244.1.9",
            "startTime": iso(NOW),
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": iso(NOW)}
                           for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
        }
        self.template = template
        self.version = itertools.count(1000)

    def node(self, index: int) -> Json:
        return aks_node(index, POOLS[index % len(POOLS)])

    def nodes_list(self) -> list[Json]:
        return [self.node(i) for i in range(len(self.node_names))] + [virtual_node()]

    def pod(self, index: int, node: str | None, phase: str = "Running") -> Json:
        owner = f"web-{index // self.owner_size:05d}"
        metadata = {
            **self.template["metadata"], "name": f"{owner}-{index:06d}", "namespace": f"team-{index % 50:02d}",
            "uid": f"pod-{index:07d}", "resourceVersion": str(next(self.version)),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                 "uid": f"rs-{owner}", "controller": True}],
        }
        spec = {**self.template["spec"]}
        if node is not None:
            spec["nodeName"] = node
        status = self.template["status"] if phase == "Running" else {"phase": phase}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}

    def placed(self, index: int) -> str:
        if random.random() < VIRTUAL_SHARE:
            return VIRTUAL_NODE
        return self.node_names[index % len(self.node_names)]


class _List:
    def __init__(self, data: bytes) -> None:
        self.data = data


class _Stream:
    """A watch response: JSON event lines from a queue, until closed."""

    status = 200

    def __init__(self, events: queue.Queue[bytes | None]) -> None:
        self._events = events
        self._closed = False

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        while not self._closed:
            line = self._events.get()
            if line is None:
                return
            yield line

    def close(self) -> None:
        self._closed = True

    def release_conn(self) -> None:
        pass


class FakeCoreV1:
    """The three calls the cluster view makes, answered from :class:`Synthetic` objects."""

    def __init__(self, objects: Synthetic) -> None:
        self.objects = objects
        self.pod_events: queue.Queue[bytes | None] = queue.Queue()
        self.idle: queue.Queue[bytes | None] = queue.Queue()
        self.pages = 0
        self.serving_seconds = 0.0  # spent making list bodies: the API server's work, not the view's

    def _page(self, items: list[Json]) -> _List:
        return _List(orjson.dumps({"metadata": {"resourceVersion": "999"}, "items": items}))

    def list_node(self, **kwargs: Any) -> Any:
        if kwargs.get("watch"):
            return _Stream(self.idle)
        return self._page(self.objects.nodes_list())

    def list_pod_for_all_namespaces(self, **kwargs: Any) -> Any:
        if kwargs.get("watch"):
            return _Stream(self.pod_events)
        started = time.perf_counter()
        total = self.objects.pod_count
        start = int(kwargs.get("_continue") or 0)
        limit = kwargs.get("limit") or total
        end = min(total, start + limit)
        self.pages += 1
        more = b',"continue":"%d"' % end if end < total else b""
        items = b",".join(orjson.dumps(self.objects.pod(i, self.objects.placed(i))) for i in range(start, end))
        body = b'{"metadata":{"resourceVersion":"999"%s},"items":[%s]}' % (more, items)
        self.serving_seconds += time.perf_counter() - started
        return _List(body)

    def list_namespaced_config_map(self, namespace: str, **kwargs: Any) -> Any:
        if kwargs.get("watch"):
            return _Stream(self.idle)
        return self._page([])

    def stop(self) -> None:
        self.pod_events.put(None)
        self.idle.put(None)
        self.idle.put(None)


class Churn:
    """Pod events at a steady rate: a new pending pod, its binding to a VM, an update and a delete of older pods, and
    every tenth event a probe bound to the virtual node (its lag is measured, then it is deleted).

    Every event line is made before the clock starts (:meth:`prepare`): a real API server encodes them in another
    process, so the churn thread only hands ready lines to the watch, and the view's own work is what competes with
    the request path for the interpreter lock."""

    def __init__(self, api: FakeCoreV1, objects: Synthetic, rate: float) -> None:
        self.api = api
        self.objects = objects
        self.interval = 1.0 / rate
        self.sent = 0
        self.probes: dict[str, float] = {}  # uid -> when its event was sent
        self.lags: list[float] = []
        self._lines: list[tuple[bytes, str | None]] = []  # (event line, the probe's uid)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._next = objects.pod_count
        self._thread = threading.Thread(target=self._run, daemon=True, name="churn")

    def _line(self, kind: str, pod: Json, probe: bool = False) -> tuple[bytes, str | None]:
        return orjson.dumps({"type": kind, "object": pod}) + b"\n", pod["metadata"]["uid"] if probe else None

    def _steps(self) -> Iterator[tuple[bytes, str | None]]:
        names = self.objects.node_names
        while True:
            index = self._next
            self._next += 1
            home = names[index % min(97, len(names))]  # the new pod's node
            yield self._line("ADDED", self.objects.pod(index, None, phase="Pending"))
            yield self._line("MODIFIED", self.objects.pod(index, home, phase="Running"))
            old = random.randrange(self.objects.pod_count)
            yield self._line("MODIFIED", self.objects.pod(old, names[old % len(names)]))
            yield self._line("DELETED", self.objects.pod(random.randrange(self.objects.pod_count), None))
            yield self._line("ADDED", self.objects.pod(10_000_000 + index, VIRTUAL_NODE), probe=True)
            for _ in range(4):
                yield self._line("MODIFIED", self.objects.pod(index, home))

    def prepare(self, seconds: float) -> None:
        """Make the event lines for ``seconds`` of churn (and a second more)."""
        self._lines = list(itertools.islice(self._steps(), int((seconds + 1) / self.interval)))

    def _run(self) -> None:
        started = time.monotonic()
        for count, (line, probe) in enumerate(self._lines, start=1):
            if self._stopping.is_set():
                return
            if probe is not None:
                with self._lock:
                    self.probes[probe] = time.monotonic()
            self.api.pod_events.put(line)
            self.sent += 1
            delay = started + count * self.interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def on_snapshot(self, previous: ClusterSnapshot, new: ClusterSnapshot) -> None:
        now = time.monotonic()
        with self._lock:
            seen = [uid for uid in self.probes if uid in new.virtual_pod_uids]
            for uid in seen:
                self.lags.append(now - self.probes.pop(uid))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()


class Controllers:
    """The leading replica's controller rounds (deletion costs, returns to VMs), every
    ``controllers.returnToVm.intervalSeconds`` as in production, writing to a fake API; each round's duration kept.
    They share the process with the request path, as they do in tideover."""

    def __init__(self, view: ClusterView, config: TideoverConfig) -> None:
        self.loop = ControllerLoop(FakeKube(), config, view.snapshot, lambda _event: None, Metrics())
        self.interval = config.controllers.return_to_vm.interval_seconds
        self.rounds: list[float] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="controllers")

    def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.perf_counter()
            self.loop.round()
            self.rounds.append(time.perf_counter() - started)
            self._stopping.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()


def _ms(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def pod_bodies(names: Sequence[str], shapes: int) -> list[bytes]:
    """Request bodies for ``shapes`` workloads whose pods differ in their CPU request (prioritize keeps per-node
    models per pod shape: with more shapes than its cache holds, every request computes them afresh)."""
    bodies = []
    for shape in range(shapes):
        pod = realistic_pod()
        pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = f"{100 + shape}m"
        bodies.append(orjson.dumps({"Pod": pod, "NodeNames": names}))
    return bodies


def measure(
    nodes: int, pods: int, rate: float, seconds: float, candidates: int | None = None, shapes: int = 1,
    with_controllers: bool = True,
) -> None:
    random.seed(12)
    rss_before, _ = _rss()
    config = TideoverConfig()
    objects = Synthetic(nodes, pods)
    api = FakeCoreV1(objects)
    view = ClusterView(api, config)  # type: ignore[arg-type]
    churn = Churn(api, objects, rate)
    view.add_snapshot_listener(churn.on_snapshot)
    started = time.monotonic()
    view.start()
    if not view.wait_synced(600):
        raise SystemExit("the view did not sync within 600 s")
    synced = time.monotonic() - started
    gc.collect()
    rss, peak = _rss()
    print(f"{nodes} nodes, {pods} pods ({api.pages} list page(s) of pods)")
    print(f"initial sync: {synced - api.serving_seconds:.1f} s in the view ({synced:.1f} s with the synthetic API "
          f"server making the list bodies); RSS {rss:.0f} MiB (peak {peak:.0f} MiB; {rss_before:.0f} MiB before)")
    builds = []
    for _ in range(5):
        t0 = time.perf_counter()
        view.rebuild()
        builds.append(time.perf_counter() - t0)
    print(f"snapshot build after sync: median {1000 * statistics.median(builds):.1f} ms")

    names = [*objects.node_names[:candidates], VIRTUAL_NODE]
    bodies = itertools.cycle(pod_bodies(names, shapes))
    service = ExtenderService(config, view.snapshot, Metrics())
    timings: dict[str, list[float]] = {"filter": [], "prioritize": []}
    churn.prepare(seconds)
    controllers = Controllers(view, config) if with_controllers else None
    gc.collect()
    churn.start()
    if controllers is not None:
        controllers.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = next(bodies)
        for verb, call in (("filter", service.filter), ("prioritize", service.prioritize)):
            t0 = time.perf_counter()
            status, payload = call(body)
            orjson.dumps(payload)
            timings[verb].append(time.perf_counter() - t0)
            assert status == 200, payload
        time.sleep(0.002)
    churn.stop()
    if controllers is not None:
        controllers.stop()
    time.sleep(1.0)  # the last probes reach a snapshot
    view.stop()
    api.stop()
    rss, peak = _rss()
    print(f"churn: {churn.sent} pod events in {seconds:.0f} s ({churn.sent / seconds:.0f}/s); RSS {rss:.0f} MiB "
          f"(peak {peak:.0f} MiB)")
    lags = churn.lags or [float("nan")]
    print(f"lag pod event -> snapshot ({len(churn.lags)} probes): p50 {_ms(lags, 0.5):.0f} ms, "
          f"p99 {_ms(lags, 0.99):.0f} ms, max {1000 * max(lags):.0f} ms")
    if controllers is not None:
        rounds = controllers.rounds or [float("nan")]
        print(f"controller rounds ({len(controllers.rounds)}, one every {controllers.interval:g} s): median "
              f"{1000 * statistics.median(rounds):.0f} ms, max {1000 * max(rounds):.0f} ms")
    for verb, values in timings.items():
        print(f"{verb:10} ({len(names)} candidates, {shapes} pod shape(s), {len(values)} calls): "
              f"p50 {_ms(values, 0.5):.2f} ms, p99 {_ms(values, 0.99):.2f} ms, max {1000 * max(values):.2f} ms")


EVENTS_PER_SNAPSHOT = 50  # the publisher's rebuilds, one per burst of watch events


def event_cost(owner_size: int, events: int = 3000) -> float:
    """Microseconds per pod event (decoding the line, then the view's handling, with a snapshot published every
    EVENTS_PER_SNAPSHOT events) while one ReplicaSet of ``owner_size`` running pods gains pods: each new pod is added
    Pending, bound, then Running, as a scale-up goes."""
    objects = Synthetic(100, owner_size, owner_size=owner_size + events)  # the new pods join the same ReplicaSet
    view = ClusterView(None, TideoverConfig())  # type: ignore[arg-type]
    view._replace("nodes", objects.nodes_list())
    view._replace("pods", [objects.pod(i, objects.node_names[i % 100]) for i in range(owner_size)])
    for resource in view.RESOURCES:
        view._mark_synced(resource)
    view.rebuild()
    lines: list[bytes] = []
    for index in range(owner_size, owner_size + events // 3):
        home = objects.node_names[index % 100]
        for kind, node, phase in (("ADDED", None, "Pending"), ("MODIFIED", home, "Pending"),
                                  ("MODIFIED", home, "Running")):
            lines.append(orjson.dumps({"type": kind, "object": objects.pod(index, node, phase=phase)}))
    gc.collect()
    started = time.perf_counter()
    for count, line in enumerate(lines, start=1):
        event = orjson.loads(line)
        view._apply("pods", event["type"], event["object"])
        if count % EVENTS_PER_SNAPSHOT == 0:
            view.rebuild()
    return (time.perf_counter() - started) / len(lines) * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--events-per-second", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--candidates", type=int, default=None,
                        help="VM nodes per request (default: all; kube-scheduler sends about 500 at 5,000 nodes)")
    parser.add_argument("--shapes", type=int, default=1,
                        help="workloads whose pods differ in requests, in turn (default 1; over 256, prioritize's "
                             "per-shape cache never hits)")
    parser.add_argument("--owner-sizes", default="30,1000,10000",
                        help="ReplicaSet sizes for the cost of a pod event (comma-separated; empty: skip)")
    parser.add_argument("--controllers", action=argparse.BooleanOptionalAction, default=True,
                        help="run the leading replica's controller rounds beside the requests (default: on)")
    args = parser.parse_args(argv)
    for size in (int(size) for size in args.owner_sizes.split(",") if size):
        print(f"pod event cost, one ReplicaSet of {size} pods scaling up: {event_cost(size):.1f} µs per event "
              f"(a snapshot every {EVENTS_PER_SNAPSHOT} events)")
    measure(args.nodes, args.pods, args.events_per_second, args.seconds, args.candidates, args.shapes,
            args.controllers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
