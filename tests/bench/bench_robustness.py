"""What issue 11 asked to be measured: the largest valid request, /healthz meanwhile, config loading, WaitingForVM.

    .venv/bin/python -m tests.bench.bench_robustness

Prints numbers; asserts nothing (the bounds are asserted by the unit tests). Each figure is the best or the median
of a few runs, so a busy machine shows in the spread, not in the figure.

- the largest valid request (1,000 containers, tolerations and affinity expressions; 15,000 NodeNames): its time
  through the ASGI app, and /healthz's while it runs (answered in a worker thread, issue 11);
- a large request's hand-off to that thread, against answering on the event loop (why bodies up to 128 KiB are
  answered inline);
- reading a configuration file near the 1 MiB cap with libyaml (CSafeLoader) and with PyYAML's pure-Python
  parser, and refusing a 50 MB one;
- one WaitingNotifier round (500 unschedulable pods judged against the snapshot).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import yaml

from extender.controllers.events import PodEvent, WaitingNotifier
from extender.edge.wire import MAX_NODES
from extender.model.config import ConfigError, TideoverConfig, load_config
from extender.model.keys import GATE_TAINT
from extender.model.snapshot import pod_placement
from tests.support.edge import harness, largest_valid_pod, names_args, poll_healthz_during
from tests.support.factories import (
    VIRTUAL_NODE,
    VIRTUAL_TAINT,
    cluster,
    pod,
    snapshot,
    status_yaml,
    unschedulable,
    virtual_node,
)


def largest_request() -> None:
    h = harness()
    names = ["vm-1", "vm-2", VIRTUAL_NODE, *(f"unknown-{i}" for i in range(MAX_NODES - 3))]
    body = orjson.dumps(names_args(largest_valid_pod(), names))
    print(f"largest valid request: {len(body) / 1024:.0f} KiB (1,000 containers, tolerations, affinity "
          f"expressions; {MAX_NODES} NodeNames)")
    for verb in ("filter", "prioritize"):
        async def post(client: Any, verb: str = verb) -> float:
            start = time.perf_counter()
            response = await client.post(f"/{verb}", content=body)
            assert response.status_code == 200
            return time.perf_counter() - start

        runs = [asyncio.run(poll_healthz_during(h.app, post)) for _ in range(6)][1:]
        seconds = [run[0] for run in runs]
        healthz = [latency for run in runs for latency in run[1]]
        meanwhile = "none answered (it waited for the whole request)"
        if healthz:
            median, worst = statistics.median(healthz) * 1000, max(healthz) * 1000
            meanwhile = f"{len(healthz)} answers, median {median:.1f} ms, max {worst:.1f} ms"
        took = statistics.median(seconds) * 1000
        print(f"  {verb:<10} {took:6.1f} ms (median of 5); /healthz meanwhile: {meanwhile}")


def hand_off() -> None:
    worker = ThreadPoolExecutor(max_workers=1)

    async def measure() -> list[float]:
        loop = asyncio.get_running_loop()
        times = []
        for _ in range(2000):
            start = time.perf_counter()
            await loop.run_in_executor(worker, int, 1)
            times.append(time.perf_counter() - start)
        return sorted(times[200:])

    times = asyncio.run(measure())
    print(f"hand-off to the worker thread: p50 {times[len(times) // 2] * 1e6:.0f} us, "
          f"p99 {times[int(len(times) * 0.99)] * 1e6:.0f} us")
    worker.shutdown()


def config_loading() -> None:
    with tempfile.TemporaryDirectory() as folder:
        big = Path(folder) / "big.yaml"
        lines = ["virtualNodes:", "  namespaceSpendCapsPerHour:"]
        lines += [f"    team-{i:06d}: {i % 7 + 0.5}" for i in range(34_000)]
        big.write_text("\n".join(lines) + "\n")
        text = big.read_text()
        print(f"config file of {big.stat().st_size / 2**20:.2f} MiB, {34_000} keys:")
        for name, loader in (("CSafeLoader (libyaml)", getattr(yaml, "CSafeLoader", None)),
                             ("SafeLoader (pure Python)", yaml.SafeLoader)):
            if loader is None:
                print(f"  {name}: not available in this PyYAML")
                continue
            seconds = min(_timed(lambda loader=loader: yaml.load(text, Loader=loader)) for _ in range(3))
            print(f"  parse with {name:<25} {seconds * 1000:7.0f} ms")
        seconds = min(_timed(lambda: load_config(big)) for _ in range(3))
        print(f"  load_config (parse, duplicate keys, validation)  {seconds * 1000:5.0f} ms")
        huge = Path(folder) / "huge.yaml"
        with huge.open("w") as out:
            for i in range(2_500_000):
                out.write(f"k{i}: {i}\n")
        start = time.perf_counter()
        try:
            load_config(huge)
        except ConfigError as error:
            elapsed = time.perf_counter() - start
            size = huge.stat().st_size / 1e6
            print(f"  a {size:.0f} MB file: refused in {elapsed * 1000:.2f} ms ({error.problems[0]})")


def waiting_round() -> None:
    snap = snapshot([*cluster(3)[:-1], virtual_node(taints=(VIRTUAL_TAINT, GATE_TAINT))],
                    status_yaml("NoActivity", registered=3))
    events: list[PodEvent] = []
    notifier = WaitingNotifier(events.append, TideoverConfig(), per_round=500)
    for i in range(500):
        notifier.on_pod_change(None, pod_placement(unschedulable(pod(f"web-{i}", uid=f"u{i}"))))
    seconds = _timed(lambda: notifier.on_snapshot(snap, snap))
    again = _timed(lambda: notifier.on_snapshot(snap, snap))
    print(f"WaitingNotifier: 500 pending pods judged in {seconds * 1000:.1f} ms ({len(events)} Events posted); "
          f"the next round, nothing new to say: {again * 1000:.1f} ms")


def _timed(action: Any) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    largest_request()
    hand_off()
    config_loading()
    waiting_round()


if __name__ == "__main__":
    main()
