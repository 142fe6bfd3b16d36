"""A local Kubernetes cluster made of real processes: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, the kwok controller (fake VMSS nodes) and the virtual-kubelet mock provider (the
AKS virtual node).

Binaries come from :mod:`e2e.harness.components` (built from Go modules, cached by version). Everything
listens on 127.0.0.1 except virtual-kubelet's kubelet API, which upstream binds on all interfaces
(``:$KUBELET_PORT``); it gets a free port of its own.

Example::

    with LocalCluster(scheduler_config=Path("sched.yaml")) as cluster:
        cluster.add_vm_node("aks-nodepool1-0")
        v1 = cluster.core_v1()
        ...
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from e2e.harness import components
from e2e.harness.pki import CertPair, Pki, write_kubeconfig

VIRTUAL_NODE_NAME = "virtual-node-aci-linux"
VIRTUAL_NODE_TAINT = ("virtual-kubelet.io/provider", "azure", "NoSchedule")
# Labels the AKS virtual node carries that the virtual-kubelet mock does not set itself.
VIRTUAL_NODE_EXTRA_LABELS = {"kubernetes.io/os": "linux", "kubernetes.azure.com/managed": "false"}
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")

SERVICE_CIDR = "10.0.0.0/16"
POD_CIDR = "10.244.0.0/16"

# Start order; stop() goes in reverse.
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
ALL_COMPONENTS = (*CONTROL_PLANE, "kwok", "virtual-kubelet")

DEFAULT_SCHEDULER_CONFIG: dict[str, Any] = {
    "apiVersion": "kubescheduler.config.k8s.io/v1",
    "kind": "KubeSchedulerConfiguration",
}


# Taints the node lifecycle controller keeps on a node until it is Ready (kube-scheduler skips a node with them).
CONDITION_TAINTS = frozenset({"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})

class ClusterError(RuntimeError):
    """The local cluster failed to start or to reach a wanted state."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGKILL this child when the thread that started it dies (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


# Ports free_port has handed out in this process: each once, though a component may not have bound it yet.
_HANDED_OUT: set[int] = set()
_LOWEST_PORT = 20000


def _ephemeral_start() -> int:
    """The first port of the kernel's range for outgoing connections (32768 by default on Linux)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port nothing listens on, for a component to bind later. Taken below the range the kernel gives outgoing
    connections: a port from bind(0) is in that range, and a client's connection could take it before the component
    binds it (kube-scheduler once exited with "address already in use" on such a port). Each port is handed out once
    per process."""
    rng = random.SystemRandom()
    high = _ephemeral_start() - 1
    for _ in range(100 if high > _LOWEST_PORT else 0):
        port = rng.randint(_LOWEST_PORT, high)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # no range below the ephemeral one: as before
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except OSError:
        return ""


@dataclass
class _Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    restarts: int = field(default=0)

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


class LocalCluster:
    """Real control-plane processes on loopback, plus kwok fake nodes and a virtual-kubelet node.

    Parameters:
        work_dir: where certificates, configs, etcd data and logs go; a new temporary directory if None.
        scheduler_config: a KubeSchedulerConfiguration file (e.g. with an ``extenders:`` section).
            A copy is written with ``clientConnection.kubeconfig`` pointing at this cluster; the
            caller's file is not modified. None: the default scheduler profile only.
        virtual_node: start the virtual-kubelet mock provider as ``virtual_node_name``.
        virtual_node_capacity: cpu / memory / pods of the virtual node.
        virtual_node_provider_id: ``spec.providerID`` of the virtual node (None: not set).
        kwok: start the kwok controller (needed by :meth:`add_vm_node`).
        binaries: component name -> binary path; missing ones come from ``components.ensure_built``.
        extra_args: component name -> extra command-line flags.
        keep_work_dir: keep the work dir after a successful stop (it is always kept after a failure).
        start_timeout: seconds allowed for each readiness wait during :meth:`start`.
        die_with_parent: have Linux kill every component when the thread that started it dies
            (even by SIGKILL), so a killed test run leaves no processes behind. Start the cluster
            from a thread that outlives it (the main thread, as pytest fixtures do).
    """

    def __init__(
        self,
        work_dir: Path | None = None,
        *,
        scheduler_config: Path | None = None,
        virtual_node: bool = True,
        virtual_node_name: str = VIRTUAL_NODE_NAME,
        virtual_node_capacity: Mapping[str, str] | None = None,
        virtual_node_provider_id: str | None = None,
        kwok: bool = True,
        binaries: Mapping[str, Path] | None = None,
        extra_args: Mapping[str, Sequence[str]] | None = None,
        keep_work_dir: bool = False,
        start_timeout: float = 90.0,
        die_with_parent: bool = True,
    ) -> None:
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="tideover-e2e-")).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir = self.work_dir / "logs"
        self.logs_dir.mkdir(exist_ok=True)
        self.scheduler_config_source = scheduler_config
        self.virtual_node_enabled = virtual_node
        self.virtual_node_name = virtual_node_name
        self.virtual_node_capacity = dict(virtual_node_capacity or {"cpu": "1000", "memory": "4Ti", "pods": "1000"})
        self.virtual_node_provider_id = virtual_node_provider_id
        self.kwok_enabled = kwok
        self.keep_work_dir = keep_work_dir
        self.start_timeout = start_timeout
        self.die_with_parent = die_with_parent
        self._binaries_override = dict(binaries or {})
        self._extra_args = {k: list(v) for k, v in (extra_args or {}).items()}
        # The mock provider's pod map has no lock, and its pod controller writes to it from
        # --pod-sync-workers goroutines (10 by default): a burst can crash it (concurrent map writes).
        self._extra_args.setdefault("virtual-kubelet", ["--pod-sync-workers=1"])
        self._binaries: dict[str, Path] = {}
        self._procs: dict[str, _Proc] = {}
        self._ports: dict[str, int] = {}
        self._api_client: k8s.ApiClient | None = None
        self._pki: Pki | None = None
        self._admin: CertPair | None = None
        self._vm_node_count: dict[str, int] = {}
        self.started_seconds: float | None = None
        self._failed = False

    # ------------------------------------------------------------------ properties

    @property
    def kubeconfig(self) -> Path:
        """Admin (system:masters) kubeconfig for this cluster."""
        return self.work_dir / "kubeconfigs" / "admin.kubeconfig"

    @property
    def api_server_url(self) -> str:
        return f"https://127.0.0.1:{self._ports['kube-apiserver']}"

    @property
    def ca_cert(self) -> Path:
        return self.work_dir / "pki" / "ca.crt"

    @property
    def scheduler_config_path(self) -> Path:
        """The rewritten copy of the scheduler configuration the scheduler actually runs with."""
        return self.work_dir / "config" / "kube-scheduler.yaml"

    def log_path(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    def log_paths(self) -> dict[str, Path]:
        return {name: proc.log for name, proc in self._procs.items()}

    def port(self, component: str) -> int:
        return self._ports[component]

    def is_running(self, component: str) -> bool:
        proc = self._procs.get(component)
        return proc is not None and proc.running

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.stop(failed=exc_type is not None)

    def start(self) -> LocalCluster:
        """Generate everything, start all processes and wait until the cluster is usable."""
        t0 = time.monotonic()
        # Children run in their own sessions, so they would outlive an interpreter that exits
        # without calling stop(); this catches normal exits and unhandled exceptions.
        atexit.register(self.stop)
        try:
            wanted = list(CONTROL_PLANE)
            if self.kwok_enabled:
                wanted.append("kwok")
            if self.virtual_node_enabled:
                wanted.append("virtual-kubelet")
            missing = [c for c in wanted if c not in self._binaries_override]
            self._binaries = {**components.ensure_built(missing), **self._binaries_override}
            self._prepare()
            for name in CONTROL_PLANE:
                self.start_component(name)
            self._wait_default_service_account()
            if self.kwok_enabled:
                self.start_component("kwok")
            if self.virtual_node_enabled:
                self.start_component("virtual-kubelet")
        except BaseException:
            self._failed = True
            self.stop(failed=True)
            raise
        self.started_seconds = time.monotonic() - t0
        return self

    def stop(self, failed: bool = False) -> None:
        """Kill every process this cluster started (process groups), in reverse start order."""
        atexit.unregister(self.stop)
        failed = failed or self._failed
        for name in reversed(list(self._procs)):
            self._terminate(self._procs[name])
        if self._api_client is not None:
            with contextlib.suppress(Exception):
                self._api_client.close()
            self._api_client = None
        if failed or self.keep_work_dir or not self._own_work_dir:
            if failed:
                print(f"[e2e.harness.cluster] logs kept in {self.logs_dir}:")
                for name, path in self.log_paths().items():
                    print(f"[e2e.harness.cluster]   {name}: {path}")
        else:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def start_component(self, name: str) -> None:
        """(Re)start one component with the arguments generated at start() and wait until it is ready."""
        proc = self._procs.get(name) or self._new_proc(name)
        self._procs[name] = proc
        if proc.running:
            return
        proc.log.parent.mkdir(parents=True, exist_ok=True)
        with proc.log.open("ab") as log:
            log.write(f"\n===== start {time.strftime('%H:%M:%S')}: {' '.join(proc.args)}\n".encode())
            log.flush()
            proc.popen = subprocess.Popen(
                proc.args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=proc.env,
                cwd=self.work_dir,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        self._wait_ready(name)

    def stop_component(self, name: str) -> None:
        proc = self._procs.get(name)
        if proc is not None:
            self._terminate(proc)

    def restart_component(self, name: str) -> None:
        self.stop_component(name)
        proc = self._procs.get(name)
        if proc is not None:
            proc.restarts += 1
        self.start_component(name)

    def restart_scheduler(self, scheduler_config: Path | None = None) -> None:
        """Restart kube-scheduler, optionally with a new KubeSchedulerConfiguration file."""
        self.stop_component("kube-scheduler")
        if scheduler_config is not None:
            self.scheduler_config_source = scheduler_config
        self._write_scheduler_config()
        self.start_component("kube-scheduler")

    # ------------------------------------------------------------------ API helpers

    def api_client(self) -> k8s.ApiClient:
        if self._api_client is None:
            self._api_client = k8s_config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._api_client

    def core_v1(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api_client())

    def add_vm_node(
        self,
        name: str,
        pool: str = "nodepool1",
        cpu: str = "2",
        memory: str = "8Gi",
        pods: str = "110",
        labels: Mapping[str, str] | None = None,
        taints: Iterable[Mapping[str, str]] | None = None,
        images: Iterable[Mapping[str, Any]] | None = None,
        instance_type: str = "Standard_D2s_v5",
        provider_id: str | None = None,
        wait_ready: bool = True,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Create a kwok fake Node that looks like an AKS VMSS node and (by default) wait until Ready.

        ``taints``: dicts with key / value / effect. ``images``: dicts as in ``status.images``
        (``{"names": [...], "sizeBytes": n}``). ``provider_id`` defaults to
        ``azure:///subscriptions/sim/resourceGroups/sim/providers/Microsoft.Compute/virtualMachineScaleSets/
        <pool>/virtualMachines/<n>`` with n counting per pool from 0. ``labels`` are added to (and may
        override) the AKS labels. Returns the Node as a dict.
        """
        if not self.kwok_enabled:
            raise ClusterError("add_vm_node needs the cluster started with kwok=True")
        index = self._vm_node_count.get(pool, 0)  # VMSS instance id within the pool
        self._vm_node_count[pool] = index + 1
        node_labels = {
            "kubernetes.azure.com/agentpool": pool,
            "agentpool": pool,
            "kubernetes.azure.com/mode": "user",
            "kubernetes.azure.com/role": "agent",
            "node.kubernetes.io/instance-type": instance_type,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": name,
            "kubernetes.io/role": "agent",
            **(labels or {}),
        }
        if node_labels.get("type") == "virtual-kubelet":
            raise ClusterError("a VM node must not carry type=virtual-kubelet")
        resources = {"cpu": cpu, "memory": memory, "pods": pods}
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": node_labels,
                "annotations": {
                    KWOK_NODE_ANNOTATION[0]: KWOK_NODE_ANNOTATION[1],
                    "node.alpha.kubernetes.io/ttl": "0",
                },
            },
            "spec": {
                "providerID": provider_id
                or (
                    "azure:///subscriptions/sim/resourceGroups/sim/providers/Microsoft.Compute/"
                    f"virtualMachineScaleSets/{pool}/virtualMachines/{index}"
                ),
                "taints": [dict(t) for t in (taints or [])],
            },
            "status": {"allocatable": resources, "capacity": resources},
        }
        if images:
            body["status"]["images"] = [dict(i) for i in images]
        created = self.core_v1().create_node(cast(Any, body), _preload_content=False)
        if not wait_ready:
            result: dict[str, Any] = json.loads(created.data)  # as created (no model round trip, no second read)
            return result
        self.wait_node_ready(name, timeout=timeout)
        return self.node(name)

    def delete_node(self, name: str) -> None:
        with contextlib.suppress(ApiException):
            self.core_v1().delete_node(name)

    def to_dict(self, obj: object) -> dict[str, Any]:
        """A client model object as the plain JSON-style dict the API server sends."""
        result: dict[str, Any] = self.api_client().sanitize_for_serialization(obj)
        return result

    def node(self, name: str) -> dict[str, Any]:
        return self.to_dict(self.core_v1().read_node(name))

    def pod(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return self.to_dict(self.core_v1().read_namespaced_pod(name, namespace))

    def create_pod(self, manifest: Mapping[str, Any], namespace: str = "default") -> dict[str, Any]:
        return self.to_dict(self.core_v1().create_namespaced_pod(namespace, cast(Any, dict(manifest))))

    def delete_pod(self, name: str, namespace: str = "default") -> None:
        with contextlib.suppress(ApiException):
            self.core_v1().delete_namespaced_pod(name, namespace, grace_period_seconds=0)

    def wait_node_ready(self, name: str, timeout: float = 60.0) -> None:
        """Wait until the node is Ready and schedulable: the node lifecycle controller removes the
        ``node.kubernetes.io/not-ready`` taint (added at creation) a moment after the kubelet (here kwok) reports
        Ready, and until then kube-scheduler treats the node as infeasible. On a busy kind cluster that moment
        was long enough for a burst to find one of two new nodes still tainted."""

        def ready() -> bool:
            try:
                node = self.node(name)
            except ApiException as exc:
                if exc.status == 404:
                    return False
                raise
            conditions = node.get("status", {}).get("conditions") or []
            taints = node.get("spec", {}).get("taints") or []
            return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions) and not any(
                t.get("key") in CONDITION_TAINTS for t in taints
            )

        self.wait_for(ready, timeout, f"node {name} Ready and without a not-ready taint")

    def wait_pod_phase(
        self,
        name: str,
        namespace: str = "default",
        phases: Iterable[str] = ("Running",),
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Wait until the pod is in one of ``phases``; return it as a dict."""
        wanted = set(phases)
        found: list[dict[str, Any]] = []

        def check() -> bool:
            pod = self.pod(name, namespace)
            if pod.get("status", {}).get("phase") in wanted:
                found.append(pod)
                return True
            return False

        self.wait_for(check, timeout, f"pod {namespace}/{name} in phase {sorted(wanted)}")
        return found[-1]

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
        """Poll ``predicate`` until true; fail early if a component died."""
        deadline = time.monotonic() + timeout
        last_exc: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if predicate():
                    return
            except (OSError, ApiException, urllib.error.URLError) as exc:
                last_exc = exc
            time.sleep(interval)
        raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_exc})")

    # ------------------------------------------------------------------ internals: preparation

    def _prepare(self) -> None:
        for name in (
            "etcd",
            "etcd-peer",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
        ):
            self._ports.setdefault(name, free_port())
        if self.virtual_node_enabled:
            for name in ("virtual-kubelet", "virtual-kubelet-metrics"):
                self._ports.setdefault(name, free_port())
        (self.work_dir / "config").mkdir(exist_ok=True)
        (self.work_dir / "kubeconfigs").mkdir(exist_ok=True)
        pki = Pki(self.work_dir / "pki")
        self._pki = pki
        self._serving = pki.issue(
            "kube-apiserver",
            "kube-apiserver",
            server=True,
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ips=("127.0.0.1", "10.0.0.1"),
        )
        self._sa = pki.service_account_keys()
        self._admin = pki.issue("admin", "tideover-admin", organizations=("system:masters",), client=True)
        kcm = pki.issue("kube-controller-manager", "system:kube-controller-manager", client=True)
        sched = pki.issue("kube-scheduler", "system:kube-scheduler", client=True)
        self._vk_serving = pki.issue(
            "virtual-kubelet",
            self.virtual_node_name,
            server=True,
            dns_names=("localhost", self.virtual_node_name),
            ips=("127.0.0.1",),
        )
        server = f"https://127.0.0.1:{self._ports['kube-apiserver']}"
        kc = self.work_dir / "kubeconfigs"
        write_kubeconfig(self.kubeconfig, server=server, ca=pki.ca.cert, client=self._admin, user="admin")
        write_kubeconfig(
            kc / "kube-controller-manager.kubeconfig",
            server=server,
            ca=pki.ca.cert,
            client=kcm,
            user="system:kube-controller-manager",
        )
        write_kubeconfig(
            kc / "kube-scheduler.kubeconfig",
            server=server,
            ca=pki.ca.cert,
            client=sched,
            user="system:kube-scheduler",
        )
        self._write_scheduler_config()
        if self.kwok_enabled:
            self._write_kwok_config()
        if self.virtual_node_enabled:
            provider: dict[str, str] = dict(self.virtual_node_capacity)
            if self.virtual_node_provider_id:
                provider["providerID"] = self.virtual_node_provider_id
            (self.work_dir / "config" / "virtual-kubelet.json").write_text(
                json.dumps({self.virtual_node_name: provider}, indent=2)
            )

    def _write_scheduler_config(self) -> None:
        if self.scheduler_config_source is None:
            doc: dict[str, Any] = json.loads(json.dumps(DEFAULT_SCHEDULER_CONFIG))
        else:
            loaded = yaml.safe_load(Path(self.scheduler_config_source).read_text())
            if not isinstance(loaded, dict) or loaded.get("kind") != "KubeSchedulerConfiguration":
                raise ClusterError(f"{self.scheduler_config_source} is not a KubeSchedulerConfiguration")
            doc = loaded
        connection = doc.setdefault("clientConnection", {})
        connection["kubeconfig"] = str(self.work_dir / "kubeconfigs" / "kube-scheduler.kubeconfig")
        # A single scheduler: leader election would only delay restarts.
        doc.setdefault("leaderElection", {}).setdefault("leaderElect", False)
        self.scheduler_config_path.parent.mkdir(parents=True, exist_ok=True)
        self.scheduler_config_path.write_text(yaml.safe_dump(doc, sort_keys=False))

    def _write_kwok_config(self) -> None:
        stages_dir = self._binaries["kwok"].parent / components.KWOK_STAGES_DIR
        stage_files = sorted(stages_dir.glob("*.yaml"))
        if not stage_files:
            raise ClusterError(f"no kwok stage files in {stages_dir}; rebuild kwok")
        docs = [f"# from {f}\n{f.read_text().strip()}\n" for f in stage_files]
        (self.work_dir / "config" / "kwok.yaml").write_text("---\n".join(docs))

    # ------------------------------------------------------------------ internals: processes

    def _new_proc(self, name: str) -> _Proc:
        builders: dict[str, Callable[[], tuple[list[str], dict[str, str]]]] = {
            "etcd": self._etcd_cmd,
            "kube-apiserver": self._apiserver_cmd,
            "kube-controller-manager": self._kcm_cmd,
            "kube-scheduler": self._scheduler_cmd,
            "kwok": self._kwok_cmd,
            "virtual-kubelet": self._vk_cmd,
        }
        if name not in builders:
            raise ClusterError(f"unknown component {name!r}")
        args, extra_env = builders[name]()
        args += self._extra_args.get(name, [])
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG",)}
        env.update(extra_env)
        return _Proc(name, args, env, self.log_path(name))

    def _bin(self, name: str) -> str:
        return str(self._binaries[name])

    def _etcd_cmd(self) -> tuple[list[str], dict[str, str]]:
        client = f"http://127.0.0.1:{self._ports['etcd']}"
        peer = f"http://127.0.0.1:{self._ports['etcd-peer']}"
        return [
            self._bin("etcd"),
            "--name=e2e",
            f"--data-dir={self.work_dir / 'etcd-data'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=e2e={peer}",
            "--initial-cluster-state=new",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ], {}

    def _apiserver_cmd(self) -> tuple[list[str], dict[str, str]]:
        pki = self.work_dir / "pki"
        return [
            self._bin("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self._ports['etcd']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self._ports['kube-apiserver']}",
            f"--tls-cert-file={self._serving.cert}",
            f"--tls-private-key-file={self._serving.key}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={self._sa.cert}",
            f"--service-account-signing-key-file={self._sa.key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            # The "kubernetes" Service endpoint would be 127.0.0.1, which Endpoints validation rejects.
            "--endpoint-reconciler-type=none",
            f"--kubelet-client-certificate={pki / 'admin.crt'}",
            f"--kubelet-client-key={pki / 'admin.key'}",
            "--profiling=false",
            "--v=1",
        ], {}

    def _kcm_cmd(self) -> tuple[list[str], dict[str, str]]:
        kc = self.work_dir / "kubeconfigs" / "kube-controller-manager.kubeconfig"
        pki = self.work_dir / "pki"
        return [
            self._bin("kube-controller-manager"),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self._ports['kube-controller-manager']}",
            "--leader-elect=false",
            f"--service-account-private-key-file={self._sa.key}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--profiling=false",
            "--v=1",
        ], {}

    def _scheduler_cmd(self) -> tuple[list[str], dict[str, str]]:
        kc = self.work_dir / "kubeconfigs" / "kube-scheduler.kubeconfig"
        return [
            self._bin("kube-scheduler"),
            f"--config={self.scheduler_config_path}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self._ports['kube-scheduler']}",
            "--v=2",
        ], {}

    def _kwok_cmd(self) -> tuple[list[str], dict[str, str]]:
        return [
            self._bin("kwok"),
            f"--kubeconfig={self.kubeconfig}",
            f"--config={self.work_dir / 'config' / 'kwok.yaml'}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION[0]}={KWOK_NODE_ANNOTATION[1]}",
            "--node-ip=127.0.0.1",
            f"--cidr={POD_CIDR}",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{self._ports['kwok']}",
        ], {"HOME": str(self.work_dir)}  # keeps ~/.kwok/kwok.yaml of the user out of it

    def _vk_cmd(self) -> tuple[list[str], dict[str, str]]:
        return self._vk_command(
            self.virtual_node_name, self.work_dir / "config" / "virtual-kubelet.json", VIRTUAL_NODE_TAINT,
            self._ports["virtual-kubelet"], self._ports["virtual-kubelet-metrics"],
        )

    def _vk_command(
        self, node_name: str, provider_config: Path, taint: tuple[str, str, str], port: int, metrics_port: int
    ) -> tuple[list[str], dict[str, str]]:
        key, value, effect = taint
        return [
            self._bin("virtual-kubelet"),
            "--provider=mock",
            f"--provider-config={provider_config}",
            f"--nodename={node_name}",
            f"--kubeconfig={self.kubeconfig}",
            "--os=linux",
            f"--metrics-addr=127.0.0.1:{metrics_port}",
            "--startup-timeout=60s",
        ], {
            "KUBELET_PORT": str(port),
            "APISERVER_CERT_LOCATION": str(self._vk_serving.cert),
            "APISERVER_KEY_LOCATION": str(self._vk_serving.key),
            "VKUBELET_TAINT_KEY": key,
            "VKUBELET_TAINT_VALUE": value,
            "VKUBELET_TAINT_EFFECT": effect,
            "VKUBELET_POD_IP": "127.0.0.1",
        }

    def _terminate(self, proc: _Proc, grace: float = 10.0) -> None:
        popen = proc.popen
        if popen is None:
            return
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(timeout=grace)
        else:
            # The leader is gone; make sure nothing it spawned in its group survives.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
        proc.popen = None

    def _check_alive(self) -> None:
        for proc in self._procs.values():
            if proc.popen is not None and proc.popen.poll() is not None:
                code = proc.popen.returncode
                raise ClusterError(f"{proc.name} exited with code {code}; log {proc.log}:\n{_tail(proc.log)}")

    # ------------------------------------------------------------------ internals: readiness

    def _ssl_context(self, client_cert: bool = True, verify: bool = True) -> ssl.SSLContext:
        if verify:
            ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        else:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if client_cert and self._admin is not None:
            ctx.load_cert_chain(str(self._admin.cert), str(self._admin.key))
        return ctx

    def _http_ok(self, url: str, ctx: ssl.SSLContext | None = None) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
                return bool(resp.status == 200)
        except urllib.error.HTTPError:
            return False
        except (urllib.error.URLError, OSError):
            return False

    def _wait_ready(self, name: str) -> None:
        timeout = self.start_timeout
        p = self._ports
        if name == "etcd":
            self.wait_for(lambda: self._http_ok(f"http://127.0.0.1:{p['etcd']}/health"), timeout, "etcd /health")
        elif name == "kube-apiserver":
            ctx = self._ssl_context()
            self.wait_for(
                lambda: self._http_ok(f"{self.api_server_url}/readyz", ctx), timeout, "kube-apiserver /readyz"
            )
        elif name in ("kube-controller-manager", "kube-scheduler"):
            ctx = self._ssl_context(client_cert=False, verify=False)  # self-signed serving certs
            # kube-scheduler's /readyz includes its informer sync; kube-controller-manager has no /readyz.
            path = "readyz" if name == "kube-scheduler" else "healthz"
            url = f"https://127.0.0.1:{p[name]}/{path}"
            self.wait_for(lambda: self._http_ok(url, ctx), timeout, f"{name} /{path}")
        elif name == "kwok":
            self.wait_for(lambda: self._http_ok(f"http://127.0.0.1:{p['kwok']}/healthz"), timeout, "kwok /healthz")
        elif name == "virtual-kubelet":
            self.wait_node_ready(self.virtual_node_name, timeout=timeout)
            self._label_virtual_node()

    def _wait_default_service_account(self) -> None:
        # The ServiceAccount admission plugin rejects pods until the controller made "default".
        def exists() -> bool:
            try:
                self.core_v1().read_namespaced_service_account("default", "default")
                return True
            except ApiException as exc:
                if exc.status == 404:
                    return False
                raise

        self.wait_for(exists, self.start_timeout, "service account default/default")

    def add_virtual_kubelet(
        self, name: str, *, labels: Mapping[str, str], capacity: Mapping[str, str],
        taint: tuple[str, str, str] = VIRTUAL_NODE_TAINT, timeout: float = 60.0,
    ) -> None:
        """Start one more virtual-kubelet mock provider (component ``virtual-kubelet-<name>``) as node ``name``,
        wait until it is Ready and add ``labels`` (the mock sets only its own). Stopped with the cluster, or by
        :meth:`stop_component`; its Node is left for :meth:`delete_node`-style cleanup by the caller."""
        component = f"virtual-kubelet-{name}"
        config = self.work_dir / "config" / f"{component}.json"
        config.write_text(json.dumps({name: dict(capacity)}, indent=2))
        args, extra_env = self._vk_command(name, config, taint, free_port(), free_port())
        args += self._extra_args.get("virtual-kubelet", [])
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG",)}
        env.update(extra_env)
        self._procs[component] = _Proc(component, args, env, self.log_path(component))
        self.start_component(component)
        self.wait_node_ready(name, timeout=timeout)
        self.core_v1().patch_node(name, {"metadata": {"labels": dict(labels)}})

    def _label_virtual_node(self) -> None:
        self.core_v1().patch_node(self.virtual_node_name, {"metadata": {"labels": VIRTUAL_NODE_EXTRA_LABELS}})


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m e2e.harness.cluster [--nodes N] [--scheduler-config FILE]``: run a cluster until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m e2e.harness.cluster", description=main.__doc__)
    parser.add_argument("--nodes", type=int, default=2, help="kwok VM nodes to add (default 2)")
    parser.add_argument("--scheduler-config", type=Path, default=None)
    parser.add_argument("--work-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    cluster = LocalCluster(args.work_dir, scheduler_config=args.scheduler_config, keep_work_dir=True)
    cluster.start()
    try:
        for i in range(args.nodes):
            cluster.add_vm_node(f"aks-nodepool1-{i}")
        print(f"cluster up in {cluster.started_seconds:.1f}s; logs in {cluster.logs_dir}")
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
