"""Scheduling throughput: the real kube-scheduler on kwok nodes, with and without scheduler extenders.

For each configuration and kind of pod, a ReplicaSet of M pods is created while kube-scheduler is stopped;
then the scheduler starts and the time from the first binding to the last is measured (a watch on the pods),
giving pods per second. Rounds alternate the configurations in one run on one cluster, so that the ratios
compare like with like on a shared machine; the table shows the best round of each (the least disturbed).

    python -m e2e.bench.throughput --nodes 1000 --pods 1000 --rounds 3

Configurations (``--configs``): none (no extender), noop (e2e/bench/noop_extender.py: filter + prioritize,
the floor of any HTTP extender), noop-filter (the same, filter only), noop-empty (the same, its prioritize listing
no node, as tideover's does when every candidate scores the same), tideover (config/scheduler-config.yaml's
extender entry as shipped), tideover-filter (without prioritizeVerb), tideover-managed (managedResources:
only pods requesting MANAGED_RESOURCE are sent to tideover; the tolerating pods request it, the others not).
Kinds (``--kinds``): plain (pods that do not tolerate the virtual node) and tolerating (the seeds' workloads:
they tolerate the virtual node's taint and prefer VMs). An extender runs only during its own rounds, so its
background work (watches, snapshot rebuilds) is counted against it.

It prints numbers and asserts nothing (the e2e test e2e/scenarios/test_throughput_bench.py runs a tiny size).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from kubernetes import client as k8s
from kubernetes import watch

from e2e.bench.cpu import CpuUse, cpu_use
from e2e.harness.cluster import LocalCluster, free_port
from e2e.harness.tideover import ROOT, SCHEDULER_CONFIG, TideoverProcess
from e2e.harness.workloads import pod_spec

CONFIGS = ("none", "noop", "noop-filter", "noop-empty", "tideover", "tideover-filter", "tideover-managed")
KINDS = ("plain", "tolerating")
NAMESPACE = "bench"
# The extended resource of the tideover-managed configuration: no node advertises it, and the scheduler
# ignores it (ignoredByScheduler), so it only says "send this pod to tideover".
MANAGED_RESOURCE = "tideover.io/spill-candidate"
SCHEDULER_QPS = 5000

# tideover as the benchmark runs it: one VM pool at one price (the kwok nodes), and no gate taint, so that
# the virtual node stays a candidate for the tolerating pods (no cluster-autoscaler runs here).
TIDEOVER_CONFIG: dict[str, Any] = {
    "apiVersion": "tideover.io/v1alpha1",
    "kind": "TideoverConfiguration",
    "vmPools": {"pools": [{"name": "nodepool1", "pricePerHour": 0.096}], "provisioningSeconds": 30},
    "virtualNodes": {"gateTaint": False},
    "server": {"host": "127.0.0.1"},
}


@dataclass
class Result:
    config: str
    kind: str
    pods_per_second: list[float] = field(default_factory=list)
    cpu: list[CpuUse] = field(default_factory=list)  # the extender's, per round, from the scheduler's start

    def cpu_ms_per_pod(self, pods: int) -> str:
        """Median CPU milliseconds per pod: main thread + other threads."""
        if not self.cpu:
            return "-"
        main = statistics.median(use.main for use in self.cpu) * 1000 / pods
        others = statistics.median(use.others for use in self.cpu) * 1000 / pods
        return f"{main:.2f} + {others:.2f}"

    @property
    def best(self) -> float:
        return max(self.pods_per_second)


# ---------------------------------------------------------------------------------------------- configurations


def shipped_extender() -> dict[str, Any]:
    """The extender entry of config/scheduler-config.yaml, as users deploy it."""
    doc = yaml.safe_load(SCHEDULER_CONFIG.read_text())
    (entry,) = doc["extenders"]
    return dict(entry)


def scheduler_config(config: str, url: str | None) -> dict[str, Any]:
    """The KubeSchedulerConfiguration of one configuration (kubeconfig and leader election: LocalCluster)."""
    doc: dict[str, Any] = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"qps": SCHEDULER_QPS, "burst": SCHEDULER_QPS},
        "profiles": [{"schedulerName": "default-scheduler"}],
    }
    if config == "none":
        return doc
    entry = shipped_extender()  # the same verbs and settings for the floor as for tideover
    entry["urlPrefix"] = url
    if config.endswith("-filter"):
        entry.pop("prioritizeVerb", None)
        entry.pop("weight", None)
    if config.endswith("-managed"):
        entry["managedResources"] = [{"name": MANAGED_RESOURCE, "ignoredByScheduler": True}]
    doc["extenders"] = [entry]
    return doc


def pod_template(kind: str, config: str) -> dict[str, Any]:
    spec = pod_spec(cpu="1", tolerate_virtual=kind == "tolerating")
    if kind == "tolerating" and config.endswith("-managed"):
        container = spec["containers"][0]
        container["resources"] = copy.deepcopy(container["resources"])
        for section in ("requests", "limits"):
            container["resources"].setdefault(section, {})[MANAGED_RESOURCE] = "1"
    return spec


def replica_set(name: str, replicas: int, spec: dict[str, Any]) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": spec}},
    }


# ---------------------------------------------------------------------------------------------- extenders


@contextlib.contextmanager
def noop_extender(work_dir: Path, app: str = "app") -> Iterator[tuple[str, int]]:
    port = free_port()
    log = (work_dir / "noop-extender.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", f"e2e.bench.noop_extender:{app}", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url + "/healthz", process, 30.0)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def served(url: str, pods: int) -> str:
    """What tideover answered in a round, from its /metrics (a process per round): requests per pod and verb, the
    server's time per request (from the body read to the reply encoded), and prioritize's outcomes."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    count: dict[str, float] = {}
    seconds: dict[str, float] = {}
    outcomes: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            verb = sample.labels.get("verb", "")
            if sample.name == "tideover_request_duration_seconds_count":
                count[verb] = sample.value
            elif sample.name == "tideover_request_duration_seconds_sum":
                seconds[verb] = sample.value
            elif sample.name == "tideover_decisions_total" and verb == "prioritize":
                outcomes[sample.labels["outcome"]] = sample.value
    parts = [f"{verb} {count[verb] / pods:.2f}/pod, {1000 * seconds.get(verb, 0.0) / max(count[verb], 1):.3f} ms each"
             for verb in sorted(count)]
    return "; ".join(parts) + f"; prioritize outcomes {dict(sorted(outcomes.items()))}"


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@contextlib.contextmanager
def sampled(pid: int | None, output: Path | None, gil: bool = False) -> Iterator[None]:
    """py-spy samples the process (its threads, idle ones left out) into ``output`` (collapsed stacks); with ``gil``,
    only the thread holding the GIL (what the event loop waits for when a request arrives)."""
    if pid is None or output is None:
        yield
        return
    spy = subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--rate", "250", "--format", "raw",
         "--nonblocking", "--output", str(output), *(["--gil"] if gil else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(5)


@contextlib.contextmanager
def extender_for(
    config: str, cluster: LocalCluster, work_dir: Path, profile: Path | None = None, gil: bool = False
) -> Iterator[tuple[str | None, int | None]]:
    """The extender's URL and process id (None, None for ``none``)."""
    if config == "none":
        yield None, None
    elif config.startswith("noop"):
        with noop_extender(work_dir, "app_empty" if config == "noop-empty" else "app") as (url, pid):
            yield url, pid
    else:
        run_dir = work_dir / f"tideover-{time.monotonic_ns()}"
        run_dir.mkdir()
        process = TideoverProcess(cluster.kubeconfig, run_dir, TIDEOVER_CONFIG).start(timeout=120.0)
        try:
            with sampled(process.pid, profile, gil):
                yield process.url, process.pid
        finally:
            process.stop()


# ---------------------------------------------------------------------------------------------- the cluster


def add_nodes(cluster: LocalCluster, count: int, timeout: float) -> None:
    def add(index: int) -> None:
        cluster.add_vm_node(
            f"vm-{index:05d}", cpu="16", memory="64Gi", pods="110", wait_ready=False,
            provider_id=("azure:///subscriptions/sim/resourceGroups/sim/providers/Microsoft.Compute/"
                         f"virtualMachineScaleSets/nodepool1/virtualMachines/{index}"),
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(add, range(count)))
    cluster.wait_for(lambda: ready_vm_nodes(cluster) >= count, timeout, f"{count} kwok nodes Ready", interval=1.0)


def ready_vm_nodes(cluster: LocalCluster) -> int:
    data = orjson.loads(cluster.core_v1().list_node(_preload_content=False).data)
    return sum(
        1 for node in data["items"]
        if node["metadata"]["name"].startswith("vm-")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))
    )


def pod_count(core: k8s.CoreV1Api) -> int:
    data = orjson.loads(core.list_namespaced_pod(NAMESPACE, _preload_content=False).data)
    return len(data["items"])


class BindingClock:
    """Watches the namespace's pods and records when each is first seen bound to a node. A watch that fails is
    resumed from a new list (pods found bound in it get the time of that list, and ``relists`` counts it)."""

    def __init__(self, core: k8s.CoreV1Api) -> None:
        self._core = core
        self.bound: dict[str, float] = {}
        self.relists = 0
        self.errors: list[str] = []
        self._stopping = threading.Event()
        self._watch: watch.Watch | None = None
        self._version = self._list()
        self._thread = threading.Thread(target=self._run, daemon=True, name="binding-clock")
        self._thread.start()

    def _list(self) -> str:
        data = orjson.loads(self._core.list_namespaced_pod(NAMESPACE, _preload_content=False).data)
        now = time.monotonic()
        for pod in data["items"]:
            if pod["spec"].get("nodeName"):
                self.bound.setdefault(pod["metadata"]["name"], now)
        return str(data["metadata"]["resourceVersion"])

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._watch = watch.Watch()
            try:
                for event in self._watch.stream(
                    self._core.list_namespaced_pod, NAMESPACE, resource_version=self._version, deserialize=False,
                    timeout_seconds=3600, allow_watch_bookmarks=True,
                ):
                    pod = event.get("object") or {}
                    version = (pod.get("metadata") or {}).get("resourceVersion")
                    if version:
                        self._version = version
                    if event.get("type") in ("ADDED", "MODIFIED") and (pod.get("spec") or {}).get("nodeName"):
                        self.bound.setdefault(pod["metadata"]["name"], time.monotonic())
            except Exception as error:  # 410 Gone, a dropped connection: list again and go on
                if self._stopping.is_set():
                    return
                self.errors.append(repr(error))
                self.relists += 1
                with contextlib.suppress(Exception):
                    self._version = self._list()

    def stop(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()


def one_round(
    cluster: LocalCluster, config: str, kind: str, pods: int, work_dir: Path, timeout: float,
    profile_dir: Path | None = None, gil: bool = False,
) -> tuple[float, CpuUse]:
    """Pods per second from the first binding to the last, for one configuration and kind of pod, and the CPU the
    extender used from the scheduler's start until the last binding."""
    core = cluster.core_v1()
    apps = k8s.AppsV1Api(cluster.api_client())
    cluster.stop_component("kube-scheduler")
    name = f"{config}-{kind}"
    apps.create_namespaced_replica_set(NAMESPACE, replica_set(name, pods, pod_template(kind, config)))
    cluster.wait_for(lambda: pod_count(core) >= pods, timeout, f"{pods} pods of {name} created", interval=0.5)
    clock = BindingClock(core)
    try:
        profile = profile_dir / f"{config}-{kind}-{time.monotonic_ns()}.txt" if profile_dir else None
        with extender_for(config, cluster, work_dir, profile, gil) as (url, pid):
            path = work_dir / f"scheduler-{config}.yaml"
            path.write_text(yaml.safe_dump(scheduler_config(config, url), sort_keys=False))
            cluster.scheduler_config_source = path
            cluster._write_scheduler_config()
            before = cpu_use(pid)
            cluster.start_component("kube-scheduler")
            cluster.wait_for(lambda: len(clock.bound) >= pods, timeout, f"{pods} pods of {name} bound", interval=0.2)
            used = cpu_use(pid) - before
            cluster.stop_component("kube-scheduler")
            if config.startswith("tideover") and url is not None:
                print(f"  {name}: {served(url, pods)}", file=sys.stderr)
    finally:
        clock.stop()
    if clock.relists:
        print(f"  (binding clock: watch resumed {clock.relists} time(s): {clock.errors[:2]})", file=sys.stderr)
    times = sorted(clock.bound.values())
    apps.delete_namespaced_replica_set(name, NAMESPACE, propagation_policy="Background")
    core.delete_collection_namespaced_pod(NAMESPACE, grace_period_seconds=0)
    cluster.wait_for(lambda: pod_count(core) == 0, timeout, f"pods of {name} deleted", interval=0.5)
    return (len(times) - 1) / max(times[-1] - times[0], 1e-6), used


# ---------------------------------------------------------------------------------------------- report


def ratio(results: dict[tuple[str, str], Result], config: str, kind: str, base: str) -> str:
    """Best round over best round, and the median of the per-round ratios. Within a round the configurations run
    back to back, so one round's ratio sees about the same load on the machine: the paired figure is the steadier."""
    if (base, kind) not in results or (config, kind) not in results:
        return "-"
    mine, theirs = results[config, kind].pods_per_second, results[base, kind].pods_per_second
    paired = statistics.median(a / b for a, b in zip(mine, theirs, strict=False))
    return f"{max(mine) / max(theirs):.2f} / {paired:.2f}"


def report(
    results: dict[tuple[str, str], Result], configs: Sequence[str], kinds: Sequence[str], pods: int
) -> str:
    lines = ["| configuration | kind | pods/s, best | pods/s, median | rounds | vs none: best / paired "
             "| vs noop: best / paired | vs noop-empty: best / paired "
             "| extender CPU ms per pod: main thread + others (median) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for config in configs:
        for kind in kinds:
            result = results[config, kind]
            rounds = " ".join(f"{v:.0f}" for v in result.pods_per_second)
            lines.append(
                f"| {config} | {kind} | {result.best:.0f} | {statistics.median(result.pods_per_second):.0f} "
                f"| {rounds} | {ratio(results, config, kind, 'none')} | {ratio(results, config, kind, 'noop')} "
                f"| {ratio(results, config, kind, 'noop-empty')} | {result.cpu_ms_per_pod(pods)} |"
            )
    return "\n".join(lines)


def run(
    nodes: int, pods: int, rounds: int, configs: Sequence[str], kinds: Sequence[str],
    progress: Callable[[str], None] = print, timeout: float = 600.0, profile_dir: Path | None = None,
    gil: bool = False,
) -> dict[tuple[str, str], Result]:
    results = {(c, k): Result(c, k) for c in configs for k in kinds}
    extra = {
        # The ReplicaSet controller creates a round's pods quickly; kwok renews the node leases rarely and the node
        # lifecycle controller waits an hour before calling a node lost: on 2 shared cores kwok cannot renew 5,000
        # leases every 10 s, and nodes marked NotReady (tainted) would leave the scheduler's candidates mid-run.
        "kube-controller-manager": [
            "--kube-api-qps=1000", "--kube-api-burst=1000", "--node-monitor-grace-period=1h",
        ],
        "kwok": ["--node-lease-duration-seconds=600"],
    }
    with LocalCluster(extra_args=extra, start_timeout=180.0) as cluster:
        work_dir = cluster.work_dir / "bench"
        work_dir.mkdir()
        started = time.monotonic()
        add_nodes(cluster, nodes, timeout)
        progress(f"{nodes} kwok nodes Ready in {time.monotonic() - started:.0f}s")
        cluster.core_v1().create_namespace({"metadata": {"name": NAMESPACE}})
        cluster.wait_for(lambda: _has_service_account(cluster.core_v1()), 60, "service account bench/default")
        for round_ in range(rounds):
            order = list(configs[round_ % len(configs):]) + list(configs[:round_ % len(configs)])
            for kind in kinds:
                for config in order:
                    rate, cpu = one_round(cluster, config, kind, pods, work_dir, timeout, profile_dir, gil)
                    results[config, kind].pods_per_second.append(rate)
                    if config != "none":
                        results[config, kind].cpu.append(cpu)
                    progress(f"round {round_ + 1}/{rounds} {kind:10} {config:17} {rate:7.1f} pods/s; extender CPU "
                             f"{cpu.main:.2f} s main thread + {cpu.others:.2f} s other threads")
    return results


def _has_service_account(core: k8s.CoreV1Api) -> bool:
    try:
        core.read_namespaced_service_account("default", NAMESPACE)
        return True
    except k8s.ApiException:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.bench.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000, help="kwok nodes of 16 CPU (default 1000)")
    parser.add_argument("--pods", type=int, default=1000, help="pods per round (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every configuration (default 3)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {','.join(CONFIGS)}")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample tideover with py-spy during its rounds; collapsed stacks into DIR")
    parser.add_argument("--profile-gil", action="store_true",
                        help="with --profile: sample only the thread holding the GIL (py-spy --gil)")
    args = parser.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = [c for c in configs if c not in CONFIGS] + [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown configuration or kind: {', '.join(unknown)}")
    # SIGTERM unwinds like Ctrl-C, so the cluster is stopped (a background job ignores SIGINT).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results = run(args.nodes, args.pods, args.rounds, configs, kinds, profile_dir=args.profile, gil=args.profile_gil)
    print(f"\n{args.nodes} nodes, {args.pods} pods a round, {args.rounds} rounds; ratios: best round over best round, "
          "and the median of the rounds' ratios (paired: the configurations of one round run back to back); the "
          "extender's CPU per pod from the scheduler's start to the last binding (its main thread answers the verbs)\n")
    print(report(results, configs, kinds, args.pods))
    return 0


if __name__ == "__main__":
    sys.exit(main())
