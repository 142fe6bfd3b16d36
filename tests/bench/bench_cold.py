"""What a pod's two requests cost tideover's server with its CPU caches cold, as in a cluster, beside the do-nothing
extender. Prints numbers; asserts nothing.

    python -m tests.bench.bench_cold [--nodes 1000] [--candidates 420] [--pods 400] [--evict-mib 64]

In the throughput benchmark (e2e/bench/throughput.py) tideover's handlers used four to six times the CPU they use in a
loop: between two requests kube-scheduler, the API server and etcd run on the same cores and evict the interpreter's
code and tideover's data from the caches. This benchmark reproduces that in one process, so that a change to the
request path can be judged on it without the cluster's noise: before each request it sums an array larger than the
caches (``--evict-mib``), copies the request's body (which the server has just read from its socket, so the body
itself is in the caches), then times the request's thread CPU. ``hot`` is the same without the eviction.

Cluster: ``--nodes`` VM nodes of one pool at one price and the virtual node (the throughput benchmark's cluster); each
pod is new (uid and resourceVersion), its candidates a window of ``--candidates`` VM nodes that moves from pod to pod
as kube-scheduler's does, and for ``tolerating`` pods the virtual node among them. Per pod: tideover's filter on the
candidates, then its prioritize on what filter kept, each with its reply encoded (``ExtenderService``, the code the
server runs once a body is read); ``noop-empty``: the do-nothing extender's handlers (``e2e/bench/noop_extender.py``,
prioritize listing no node) with the body decoded and the reply encoded. HTTP is left out: both pay it alike.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from e2e.bench import noop_extender
from extender.edge.app import ExtenderService
from extender.model.config import TideoverConfig
from extender.telemetry.metrics import Metrics
from tests.support.factories import VIRTUAL_NODE, cluster, pod, snapshot

Handler = Callable[[bytes], bytes]
KINDS = ("plain", "tolerating")


@dataclass(frozen=True)
class Request:
    filter_body: bytes
    prioritize_body: bytes  # the candidates filter keeps: every VM


def requests(kind: str, nodes: Sequence[str], candidates: int, count: int) -> list[Request]:
    vms = [name for name in nodes if name != VIRTUAL_NODE]
    made = []
    for index in range(count):
        obj = pod(f"web-{index}", uid=f"uid-{kind}-{index}", tolerate_virtual=kind == "tolerating")
        obj["metadata"]["resourceVersion"] = str(1000 + index)
        start = index * candidates
        window = [vms[(start + k) % len(vms)] for k in range(min(candidates, len(vms)))]
        half = len(window) // 2
        sent = [*window[:half], VIRTUAL_NODE, *window[half:]] if kind == "tolerating" else window
        # The body as kube-scheduler writes it (Go's encoding/json: every field of ExtenderArgs, in order).
        made.append(Request(orjson.dumps({"Pod": obj, "Nodes": None, "NodeNames": sent}),
                            orjson.dumps({"Pod": obj, "Nodes": None, "NodeNames": window})))
    return made


def tideover_handlers(node_count: int) -> tuple[Handler, Handler, list[str]]:
    config = TideoverConfig()
    snap = snapshot(cluster(node_count), config=config)
    service = ExtenderService(config, lambda: snap, Metrics())

    def verb(call: Callable[[bytes], tuple[int, object] | None]) -> Handler:
        def handle(body: bytes) -> bytes:
            reply = call(body)
            assert reply is not None and reply[0] == 200, reply
            return orjson.dumps(reply[1])
        return handle

    return verb(service.filter), verb(service.prioritize), list(snap.nodes)


def noop_handlers() -> tuple[Handler, Handler]:
    def filter_(body: bytes) -> bytes:
        return orjson.dumps(noop_extender._filter(orjson.loads(body)))

    def prioritize(body: bytes) -> bytes:
        return orjson.dumps(noop_extender._prioritize_empty(orjson.loads(body)))

    return filter_, prioritize


def measure(
    handlers: tuple[Handler, Handler], made: Sequence[Request], evict: np.ndarray | None
) -> tuple[float, float]:
    """Median thread CPU in µs of (filter, prioritize) per pod."""
    filter_, prioritize = handlers
    times: tuple[list[float], list[float]] = ([], [])
    for request in made:
        for handler, body, sink in ((filter_, request.filter_body, times[0]),
                                    (prioritize, request.prioritize_body, times[1])):
            if evict is not None:
                evict.sum()
            received = bytes(bytearray(body))  # a new copy, in the caches: as the server has just read it
            started = time.thread_time()
            handler(received)
            sink.append(time.thread_time() - started)
    return statistics.median(times[0]) * 1e6, statistics.median(times[1]) * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_cold", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--candidates", type=int, default=420, help="kube-scheduler sends 420 at 1,000 nodes")
    parser.add_argument("--pods", type=int, default=400)
    parser.add_argument("--evict-mib", type=int, default=64, help="the array summed before each request (MiB)")
    args = parser.parse_args(argv)
    evict = np.ones(args.evict_mib * 1024 * 1024 // 8)
    filter_, prioritize, nodes = tideover_handlers(args.nodes)
    servers = {"tideover": (filter_, prioritize), "noop-empty": noop_handlers()}
    print(f"{args.nodes} nodes, {args.candidates} candidates, {args.pods} pods a case; thread CPU per request, median "
          f"(µs); cold: {args.evict_mib} MiB summed before each request")
    print(f"{'kind':11} {'server':11} {'caches':6} {'filter':>7} {'prioritize':>10} {'per pod':>8}")
    gc.collect()
    for kind in KINDS:
        warm_up = requests(kind, nodes, args.candidates, 20)
        for caches in ("hot", "cold"):
            for server, handlers in servers.items():
                measure(handlers, warm_up, None)
                made = requests(kind, nodes, args.candidates, args.pods)  # new pods each time: no memo carries over
                f, p = measure(handlers, made, evict if caches == "cold" else None)
                print(f"{kind:11} {server:11} {caches:6} {f:7.0f} {p:10.0f} {f + p:8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
