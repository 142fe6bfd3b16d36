"""Latency of tideover's extender verbs, in process and over loopback. Prints numbers; asserts nothing.

    python -m tests.bench.bench_extender [--nodes 100,1000,5000] [--requests N] [--budget SECONDS]
                                         [--loopback | --no-loopback] [--profile]

For each cluster size (VM nodes plus the AKS virtual node), each verb and each request form
(``NodeNames`` as with ``nodeCacheCapable: true``, full ``Nodes`` as without), it measures:

- ``service``: ``ExtenderService.filter(body)`` / ``.prioritize(body)`` alone (parse, decide, build reply);
- ``asgi``: the FastAPI app called as an ASGI application in an asyncio loop, with a minimal request
  (routing, body reading, parsing, the decision, JSON encoding, metrics) -- no sockets;
- ``loopback``: a uvicorn server in a child process on 127.0.0.1, sent one request at a time on a keep-alive
  ``http.client`` connection, as kube-scheduler calls an extender once per scheduling cycle;
- ``loopback-noop``: the same requests to the do-nothing extender (``--noop``, on by default): what any HTTP
  extender in Python costs, so that the difference is tideover's own.

Each case is warmed up, then timed request by request. NodeNames cases run to the request count; full
Nodes cases (megabytes a request) also stop at ``--budget`` seconds, and report how many they made.
The target is p99 < 2 ms at 1,000 nodes with NodeNames in process (``asgi``); when it is missed (or with
``--profile``) the case is profiled.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import http.client
import io
import math
import os
import pstats
import socket
import subprocess
import sys
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI

from e2e.bench.cpu import cpu_use
from extender.edge.app import ExtenderService, create_app
from extender.model.config import TideoverConfig
from extender.model.snapshot import ClusterSnapshot
from extender.telemetry.metrics import Metrics
from tests.support.factories import NOW, iso, pod, snapshot, status_yaml, virtual_node, vm_node

Json = dict[str, Any]

REPO = Path(__file__).resolve().parents[2]
TARGET_NODES = 1000
TARGET_P99_MS = 2.0
POOLS = ("nodepool1", "nodepool2")
APP_IMAGE = "myregistry.azurecr.io/shop/web:2.4.1"
SIDECAR_IMAGE = "mcr.microsoft.com/oss/envoyproxy/envoy:v1.29.2"
# What an AKS node typically has pulled: system images, each reported under a digest and a tag.
SYSTEM_IMAGES: tuple[tuple[str, int], ...] = (
    ("mcr.microsoft.com/oss/kubernetes/kube-proxy:v1.30.5", 75_000_000),
    ("mcr.microsoft.com/oss/kubernetes/pause:3.6", 300_000),
    ("mcr.microsoft.com/oss/calico/node:v3.26.3", 95_000_000),
    ("mcr.microsoft.com/oss/calico/cni:v3.26.3", 90_000_000),
    ("mcr.microsoft.com/oss/calico/typha:v3.26.3", 30_000_000),
    ("mcr.microsoft.com/oss/kubernetes-csi/azuredisk-csi:v1.30.3", 120_000_000),
    ("mcr.microsoft.com/oss/kubernetes-csi/azurefile-csi:v1.30.5", 110_000_000),
    ("mcr.microsoft.com/oss/kubernetes-csi/csi-node-driver-registrar:v2.11.1", 10_000_000),
    ("mcr.microsoft.com/oss/kubernetes-csi/livenessprobe:v2.13.1", 9_000_000),
    ("mcr.microsoft.com/oss/kubernetes/azure-cloud-node-manager:v1.30.4", 30_000_000),
    ("mcr.microsoft.com/oss/kubernetes/ip-masq-agent:v2.5.0.12", 25_000_000),
    ("mcr.microsoft.com/azuremonitor/containerinsights/ciprod:3.1.22", 300_000_000),
    ("mcr.microsoft.com/oss/kubernetes/coredns:v1.9.4", 15_000_000),
    ("mcr.microsoft.com/oss/kubernetes/metrics-server:v0.6.3", 28_000_000),
    ("mcr.microsoft.com/containernetworking/azure-cns:v1.5.32", 60_000_000),
    ("mcr.microsoft.com/oss/kubernetes/konnectivity/proxy-agent:v0.0.37", 20_000_000),
    ("mcr.microsoft.com/aks/ip-masq-agent-v2:v0.1.11", 22_000_000),
    ("mcr.microsoft.com/oss/kubernetes/autoscaler/cluster-proportional-autoscaler:v1.8.9", 18_000_000),
    (SIDECAR_IMAGE, 60_000_000),
)
CONDITIONS = (
    ("MemoryPressure", "KubeletHasSufficientMemory"),
    ("DiskPressure", "KubeletHasNoDiskPressure"),
    ("PIDPressure", "KubeletHasSufficientPID"),
    ("KernelDeadlock", "KernelHasNoDeadlock"),
    ("FrequentKubeletRestart", "NoFrequentKubeletRestart"),
    ("FilesystemCorruptionProblem", "FilesystemIsOK"),
    ("VMEventScheduled", "NoVMEventScheduled"),
)


# --------------------------------------------------------------------------------------------------
# The cluster and the pod
# --------------------------------------------------------------------------------------------------


def _digest(image: str) -> str:
    return hashlib.sha256(image.encode()).hexdigest()


def aks_node(index: int, pool: str) -> Json:
    """An AKS VM node about as large as a real one (about 5 KB of JSON)."""
    name = f"aks-{pool}-12345678-vmss{index:06x}"
    zone = f"eastus2-{index % 3 + 1}"
    labels = {
        "agentpool": pool,
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": "Standard_D4s_v5",
        "beta.kubernetes.io/os": "linux",
        "failure-domain.beta.kubernetes.io/region": "eastus2",
        "failure-domain.beta.kubernetes.io/zone": zone,
        "kubernetes.azure.com/cluster": "MC_rg-shop_aks-shop_eastus2",
        "kubernetes.azure.com/consolidated-additional-properties": _digest(pool)[:36],
        "kubernetes.azure.com/kubelet-identity-client-id": _digest("kubelet")[:36],
        "kubernetes.azure.com/node-image-version": "AKSUbuntu-2204gen2containerd-202411.12.0",
        "kubernetes.azure.com/nodepool-type": "VirtualMachineScaleSets",
        "kubernetes.azure.com/os-sku": "Ubuntu",
        "kubernetes.azure.com/role": "agent",
        "kubernetes.azure.com/storageprofile": "managed",
        "kubernetes.azure.com/storagetier": "Premium_LRS",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/role": "agent",
        "node-role.kubernetes.io/agent": "",
        "storageprofile": "managed",
        "storagetier": "Premium_LRS",
        "topology.disk.csi.azure.com/zone": zone,
        "topology.kubernetes.io/region": "eastus2",
        "topology.kubernetes.io/zone": zone,
    }
    created = NOW - timedelta(days=3, minutes=index)
    node = vm_node(name, pool, cpu="3860m", memory="12880Mi", labels=labels, created=created)
    node["metadata"]["annotations"] = {
        "csi.volume.kubernetes.io/nodeid": orjson.dumps(
            {"disk.csi.azure.com": name, "file.csi.azure.com": name}
        ).decode(),
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    node["metadata"]["uid"] = _digest(name)[:36]
    node["metadata"]["resourceVersion"] = str(1_000_000 + index)
    node["spec"]["podCIDR"] = f"10.244.{index % 256}.0/24"
    node["spec"]["podCIDRs"] = [f"10.244.{index % 256}.0/24"]
    images = list(SYSTEM_IMAGES)
    if index % 2 == 0:  # half the nodes already have the app's image
        images.append((APP_IMAGE, 180_000_000))
    node["status"]["images"] = [
        {"names": [f"{image.rsplit(':', 1)[0]}@sha256:{_digest(image)}", image], "sizeBytes": size}
        for image, size in images
    ]
    node["status"]["capacity"] = {
        "cpu": "4",
        "memory": "16375120Ki",
        "pods": "110",
        "ephemeral-storage": "129886128Ki",
    }
    node["status"]["conditions"] = [
        *(
            {
                "type": kind,
                "status": "False",
                "reason": reason,
                "message": f"kubelet reports {reason}",
                "lastHeartbeatTime": iso(NOW),
                "lastTransitionTime": iso(created),
            }
            for kind, reason in CONDITIONS
        ),
        *node["status"]["conditions"],
    ]
    node["status"]["addresses"] = [
        {"type": "InternalIP", "address": f"10.224.{index // 250}.{index % 250 + 4}"},
        {"type": "Hostname", "address": name},
    ]
    node["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": 10250}}
    node["status"]["nodeInfo"] = {
        "architecture": "amd64",
        "bootID": _digest(f"boot-{name}")[:36],
        "containerRuntimeVersion": "containerd://1.7.22-1",
        "kernelVersion": "5.15.0-1074-azure",
        "kubeProxyVersion": "v1.30.5",
        "kubeletVersion": "v1.30.5",
        "machineID": _digest(f"machine-{name}")[:32],
        "operatingSystem": "linux",
        "osImage": "Ubuntu 22.04.5 LTS",
        "systemUUID": _digest(f"uuid-{name}")[:36],
    }
    return node


def cluster_nodes(count: int) -> list[Json]:
    return [aks_node(i, POOLS[i % len(POOLS)]) for i in range(count)] + [virtual_node()]


def realistic_pod() -> Json:
    """A pending Deployment pod with the seed's toleration and affinity, an app container and a sidecar."""
    obj = pod("web-5d8f9c7b6-x7k2p", "shop", cpu="500m", memory="512Mi", image=APP_IMAGE)
    metadata, spec = obj["metadata"], obj["spec"]
    metadata["generateName"] = "web-5d8f9c7b6-"
    metadata["labels"] = {"app": "web", "pod-template-hash": "5d8f9c7b6", "app.kubernetes.io/part-of": "shop"}
    metadata["annotations"] = {
        "kubectl.kubernetes.io/restartedAt": iso(NOW),
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
    }
    app = spec["containers"][0]
    app.update(
        {
            "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
            "env": [{"name": f"SHOP_SETTING_{i}", "value": f"value-{i}"} for i in range(8)],
            "resources": {
                "requests": {"cpu": "500m", "memory": "512Mi"},
                "limits": {"cpu": "1", "memory": "1Gi"},
            },
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5},
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/shop"},
                {
                    "name": "kube-api-access-abcde",
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                },
            ],
            "imagePullPolicy": "IfNotPresent",
            "terminationMessagePath": "/dev/termination-log",
        }
    )
    spec["containers"].append(
        {
            "name": "envoy",
            "image": SIDECAR_IMAGE,
            "args": ["-c", "/etc/envoy/envoy.yaml", "--log-level", "warn"],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            "ports": [{"containerPort": 15001, "name": "proxy", "protocol": "TCP"}],
        }
    )
    spec["tolerations"] += [
        {
            "key": f"node.kubernetes.io/{key}",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        }
        for key in ("not-ready", "unreachable")
    ]
    spec.update(
        {
            "volumes": [{"name": "config", "configMap": {"name": "web-config"}}],
            "serviceAccountName": "web",
            "schedulerName": "default-scheduler",
            "priority": 0,
            "enableServiceLinks": True,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
        }
    )
    obj["status"] = {
        "phase": "Pending",
        "qosClass": "Burstable",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
    }
    return obj


# --------------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    verb: str  # filter | prioritize
    form: str  # names | nodes
    body: bytes


def cases(nodes: Sequence[Json]) -> list[Case]:
    names = [node["metadata"]["name"] for node in nodes]
    the_pod = realistic_pod()
    by_names = orjson.dumps({"Pod": the_pod, "Nodes": None, "NodeNames": names})
    by_nodes = orjson.dumps(
        {"Pod": the_pod, "Nodes": {"metadata": {}, "items": list(nodes)}, "NodeNames": None}
    )
    return [
        Case("filter", "names", by_names),
        Case("filter", "nodes", by_nodes),
        Case("prioritize", "names", by_names),
        Case("prioritize", "nodes", by_nodes),
    ]


def build(count: int) -> tuple[list[Json], ClusterSnapshot, ExtenderService, FastAPI]:
    config = TideoverConfig()
    nodes = cluster_nodes(count)
    status = status_yaml("NoActivity", group=POOLS[0], registered=(count + 1) // 2)
    snap = snapshot(nodes, status, config=config)
    metrics = Metrics()
    metrics.watch_snapshot(lambda: snap, lambda: {"nodes": 1.0})
    service = ExtenderService(config, lambda: snap, metrics)
    return nodes, snap, service, create_app(service, ready=lambda: True)


# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    warmup: int  # requests, capped at a quarter of the budget
    requests: int
    budget_seconds: float  # a case stops early past this, reporting the requests it made


@dataclass
class Result:
    nodes: int
    verb: str
    form: str
    path: str
    body_bytes: int
    times_ms: list[float]
    full_gcs: int | None  # generation-2 collections in this process while timing; None: another process
    server_cpu_ms: float | None = None  # loopback: the server process's CPU per request (all its threads)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.times_ms)
        return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def _full_collections() -> int:
    collections: int = gc.get_stats()[2]["collections"]
    return collections


def time_sync(call: Callable[[], None], plan: Plan) -> tuple[list[float], int]:
    warm_until = time.perf_counter() + plan.budget_seconds / 4
    for _ in range(plan.warmup):
        call()
        if time.perf_counter() > warm_until:
            break
    times: list[float] = []
    gcs = _full_collections()
    deadline = time.perf_counter() + plan.budget_seconds
    for _ in range(plan.requests):
        started = time.perf_counter()
        call()
        ended = time.perf_counter()
        times.append((ended - started) * 1000)
        if ended > deadline:
            break
    return times, _full_collections() - gcs


def _scope(path: str, body: bytes) -> MutableMapping[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8888),
    }


async def _asgi_once(app: FastAPI, path: str, body: bytes) -> int:
    """One request through the ASGI app, as a server would hand it over: the body in one message."""
    status = 0
    sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if sent:  # the app would only ask again to learn of a disconnect
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(_scope(path, body), receive, send)
    return status


def time_asgi(app: FastAPI, case: Case, plan: Plan) -> tuple[list[float], int]:
    path = f"/{case.verb}"

    async def run() -> tuple[list[float], int]:
        warm_until = time.perf_counter() + plan.budget_seconds / 4
        for _ in range(plan.warmup):
            _check(await _asgi_once(app, path, case.body), case)
            if time.perf_counter() > warm_until:
                break
        times: list[float] = []
        gcs = _full_collections()
        deadline = time.perf_counter() + plan.budget_seconds
        for _ in range(plan.requests):
            started = time.perf_counter()
            status = await _asgi_once(app, path, case.body)
            ended = time.perf_counter()
            _check(status, case)
            times.append((ended - started) * 1000)
            if ended > deadline:
                break
        return times, _full_collections() - gcs

    return asyncio.run(run())


def _check(status: int, case: Case) -> None:
    if status != 200:
        raise RuntimeError(f"{case.verb}/{case.form}: HTTP {status}")


def service_call(service: ExtenderService, case: Case) -> Callable[[], None]:
    handler = service.filter if case.verb == "filter" else service.prioritize

    def call() -> None:
        status, _ = handler(case.body)
        _check(status, case)

    return call


# --------------------------------------------------------------------------------------------------
# Loopback: uvicorn in a child process
# --------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve(count: int, port: int) -> None:
    """Child process: the same app over the same cluster, served by uvicorn as ``tideover serve`` does."""
    import uvicorn

    _, _, _, app = build(count)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, log_config=None, proxy_headers=False
    )
    uvicorn.Server(config).run()


class LoopbackServer:
    """tideover's app over ``count`` nodes in a child process; with ``noop``, the do-nothing extender of the
    throughput benchmark (e2e/bench/noop_extender.py: bare ASGI, orjson, every node kept and scored 0) instead,
    under the same uvicorn settings: the floor of any Python HTTP extender, for a side-by-side ratio."""

    def __init__(self, count: int, noop: bool = False) -> None:
        self.port = _free_port()
        command = [sys.executable, "-m", "tests.bench.bench_extender", "--serve", str(count), "--port", str(self.port)]
        if noop:
            command = [
                sys.executable, "-m", "uvicorn", "e2e.bench.noop_extender:app", "--host", "127.0.0.1",
                "--port", str(self.port), "--no-access-log", "--no-proxy-headers", "--log-level", "warning",
            ]
        self.process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 120
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the benchmark server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the benchmark server did not start within 120 s") from None
                time.sleep(0.1)
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def reconnect(self) -> None:
        """A fresh keep-alive connection: uvicorn closes one idle for 5 s (its timeout_keep_alive)."""
        self.connection.close()
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def post(self, case: Case) -> None:
        self.connection.request(
            "POST", f"/{case.verb}", body=case.body, headers={"Content-Type": "application/json"}
        )
        response = self.connection.getresponse()
        response.read()
        _check(response.status, case)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def time_loopback(server: LoopbackServer, case: Case, plan: Plan) -> tuple[list[float], None, float]:
    """The times, and the server process's CPU milliseconds per request (over the warm-up and the timed calls)."""
    server.reconnect()
    calls = 0

    def post() -> None:
        nonlocal calls
        calls += 1
        server.post(case)

    before = cpu_use(server.process.pid)
    times, _ = time_sync(post, plan)
    used = cpu_use(server.process.pid) - before
    return times, None, 1000 * (used.main + used.others) / max(calls, 1)


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def table(results: Sequence[Result]) -> str:
    header = (
        "nodes",
        "verb",
        "form",
        "path",
        "body",
        "requests",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "gen2 gc",
        "server CPU ms/req",
    )
    rows = [header]
    for r in results:
        rows.append(
            (
                f"{r.nodes:,}",
                r.verb,
                r.form,
                r.path,
                _size(r.body_bytes),
                f"{len(r.times_ms):,}",
                f"{r.percentile(0.50):.3f}",
                f"{r.percentile(0.90):.3f}",
                f"{r.percentile(0.99):.3f}",
                f"{max(r.times_ms):.3f}",
                "-" if r.full_gcs is None else str(r.full_gcs),
                "-" if r.server_cpu_ms is None else f"{r.server_cpu_ms:.3f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    left = {1, 2, 3}
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _load() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def _size(count: int) -> str:
    if count >= 1 << 20:
        return f"{count / (1 << 20):.1f} MiB"
    return f"{count / 1024:.1f} KiB"


# Where tideover's own code is, for the profile's second listing.
OWN_CODE = r"(api|wire|decisions|snapshot|objects|annotations|matching|combine|cost|latency)\.py|orjson"


def profile(app: FastAPI, case: Case, requests: int) -> str:
    profiler = cProfile.Profile()

    async def run() -> None:
        for _ in range(requests):
            await _asgi_once(app, f"/{case.verb}", case.body)

    asyncio.run(run())  # warm
    profiler.enable()
    asyncio.run(run())
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    out.write(f"cProfile: {requests} {case.verb}/{case.form} requests through the ASGI app, by own time\n")
    stats.sort_stats("tottime").print_stats(15)
    out.write(f"tideover's code and orjson, by cumulative time ({case.verb}/{case.form})\n")
    stats.sort_stats("cumulative").print_stats(OWN_CODE, 20)
    return "\n".join(line for line in out.getvalue().splitlines() if line.strip())


def plan_for(count: int, case: Case, requests: int | None, budget: float) -> Plan:
    total = requests if requests is not None else (2000 if count <= 1000 else 500)
    # NodeNames cases run to their count (the cap is only a safety net); full Nodes cases, whose bodies
    # are megabytes, stop at the budget.
    seconds = 30.0 if case.form == "names" else budget
    return Plan(warmup=max(5, min(200, total // 10)), requests=total, budget_seconds=seconds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", default="100,1000,5000", help="VM node counts, comma-separated")
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help="timed requests per case and path (default 2000 up to 1,000 nodes, 500 above)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=2.0,
        help="seconds after which a full-Nodes case stops early, reporting the requests it made (default 2)",
    )
    parser.add_argument(
        "--loopback",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure over loopback through uvicorn in a child process (default on)",
    )
    parser.add_argument(
        "--noop",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --loopback, also time the do-nothing extender (e2e/bench/noop_extender.py) on the same requests "
        "(path loopback-noop; default on)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile the target cases even if they are met"
    )
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve, args.port)
        return 0

    counts = [int(part) for part in args.nodes.split(",") if part.strip()]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {_load()}; "
        f"VM nodes {counts} (+1 virtual node)",
        flush=True,
    )
    results: list[Result] = []
    target_cases: dict[str, Case] = {}
    target_app: FastAPI | None = None
    started = time.perf_counter()
    for count in counts:
        built = time.perf_counter()
        nodes, _, service, app = build(count)
        print(f"{count:,} nodes: snapshot and app built in {time.perf_counter() - built:.2f}s", flush=True)
        if count == TARGET_NODES:
            target_app = app
        server = LoopbackServer(count) if args.loopback else None
        floor = LoopbackServer(count, noop=True) if args.loopback and args.noop else None
        try:
            for case in cases(nodes):
                plan = plan_for(count, case, args.requests, args.budget)
                measured: list[tuple[str, list[float], int | None, float | None]] = [
                    ("service", *time_sync(service_call(service, case), plan), None),
                    ("asgi", *time_asgi(app, case, plan), None),
                ]
                if server is not None:
                    measured.append(("loopback", *time_loopback(server, case, plan)))
                if floor is not None:
                    measured.append(("loopback-noop", *time_loopback(floor, case, plan)))
                for path, times, gcs, cpu in measured:
                    results.append(Result(count, case.verb, case.form, path, len(case.body), times, gcs, cpu))
                if count == TARGET_NODES and case.form == "names":
                    target_cases[case.verb] = case
                print(f"  {case.verb} {case.form}: done", flush=True)
        finally:
            for running in (server, floor):
                if running is not None:
                    running.stop()

    print()
    print(table(results))
    print(
        f"\nmeasured in {time.perf_counter() - started:.0f}s; load average now {_load()} "
        "(other processes on the machine inflate p99 and max)"
    )
    print("gen2 gc: full garbage collections in this process while the case was timed; server CPU: the loopback "
          "server's CPU per request (all its threads, user and system; the clock ticks every 10 ms, so short cases "
          "are coarse)")
    print()
    missed: list[str] = []
    for verb in ("filter", "prioritize"):
        target = next(
            (
                r
                for r in results
                if r.nodes == TARGET_NODES and r.verb == verb and r.form == "names" and r.path == "asgi"
            ),
            None,
        )
        if target is None:
            print(f"target ({verb}): not measured (include {TARGET_NODES} in --nodes)")
            continue
        p99 = target.percentile(0.99)
        met = p99 < TARGET_P99_MS
        if not met:
            missed.append(verb)
        print(
            f"target p99 < {TARGET_P99_MS:g} ms at {TARGET_NODES:,} nodes, NodeNames, in process, {verb}: "
            f"{'MET' if met else 'NOT MET'} (p99 {p99:.3f} ms, p50 {target.percentile(0.5):.3f} ms, "
            f"{len(target.times_ms):,} requests)"
        )
    if target_app is not None:
        for verb in ("filter", "prioritize"):
            if verb in target_cases and (verb in missed or args.profile):
                print()
                print(profile(target_app, target_cases[verb], 500))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
