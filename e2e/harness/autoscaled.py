"""The autoscaled end-to-end stack: the real kube-scheduler (config/scheduler-config.yaml pointed at tideover),
the real ``tideover serve``, the simulated VMSS (:mod:`e2e.vmss`, served in-process over gRPC) and the real
cluster-autoscaler (a subprocess with the externalgrpc provider). :mod:`e2e.harness.observe` watches what each
of them does. Used by the autoscaled scenarios and ``python -m e2e.demo``.

The cluster and tideover live as long as the stack; a *pool* (a fresh simulator with one node group, and a
fresh cluster-autoscaler against it) lives for one scenario: :meth:`AutoscaledStack.start_pool` and
:meth:`AutoscaledStack.stop_pool`. CA keeps its backoff and scale-up bookkeeping in memory, so a restart per
scenario keeps scenarios independent; its status ConfigMap is deleted in between, so tideover never reads a
previous scenario's status.

Times are wall-clock (``time.time()``) throughout, because CA's status carries wall-clock
``lastTransitionTime`` values and everything runs on this host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from e2e.harness import components
from e2e.harness.cluster import VIRTUAL_NODE_NAME, LocalCluster, _die_with_parent, free_port
from e2e.harness.tideover import TideoverProcess, scheduler_config
from e2e.vmss.autoscaler import STATUS_CONFIGMAP, STATUS_NAMESPACE, AutoscalerOptions, ca_command, write_cloud_config
from e2e.vmss.simulator import GroupConfig, KubeNodeRegistrar, VmssServer, VmssSimulator
from extender.model.keys import GATE

POOL = "nodepool1"
NODE_GROUP = GroupConfig(name=POOL).group_id  # as CA names it: aks-nodepool1-<8 digits>-vmss
POOL_LABEL = "kubernetes.azure.com/agentpool"
CAPACITY_PENDING = "tideover.io/capacity-pending"
VIRTUAL = VIRTUAL_NODE_NAME


def tideover_config(provisioning_seconds: float) -> dict[str, Any]:
    """tideover's configuration for the stack: the one pool, with its price.

    The simulator reports its node group as AKS does (``NodeGroup.id`` is ``aks-nodepool1-<8 digits>-vmss``, the
    name in CA's status ConfigMap), and ``nodeGroup`` is left unset: tideover maps the pool to it by AKS's naming
    (extender/model/snapshot.py ``resolve_node_group``), as it does on a real AKS cluster.
    """
    return {
        "apiVersion": "tideover.io/v1alpha1",
        "kind": "TideoverConfiguration",
        "vmPools": {
            "pools": [{"name": POOL, "pricePerHour": 0.096}],
            "provisioningSeconds": provisioning_seconds,
        },
        # The simulated VMs boot in tens of seconds: an ETA floor of a minute (the default, meant for real
        # VMSS boots of minutes) would make every ETA read "~60s".
        "autoscaler": {"overdueFloorSeconds": 5},
        # virtual-kubelet's mock provider stores the Pod object of every update, status included
        # (mock.go UpdatePod), so the pod-deletion-cost patch tideover puts on a pod that just landed on the
        # virtual node, arriving before the mock's first status sync, resets the pod to Pending for good. A
        # mock artifact (ACI's provider keeps its own status); the scenarios here do not scale down, so the
        # deletion cost is off.
        "controllers": {"deletionCost": {"enabled": False}},
        "server": {"host": "127.0.0.1"},
    }


def merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, mappings recursively."""
    out = dict(base)
    for key, value in override.items():
        current = out.get(key)
        out[key] = merged(current, value) if isinstance(current, Mapping) and isinstance(value, Mapping) else value
    return out


def autoscaler_options() -> AutoscalerOptions:
    """Short loops for tests. Scale-down is off: the scenarios are about scale-up, and an empty new VM being
    removed mid-scenario would only add noise."""
    return AutoscalerOptions(scan_interval="1s", scale_down_enabled=False, max_node_provision_time="2m")


# ---------------------------------------------------------------------------------------------- CA status


def parse_time(value: object) -> float | None:
    """An RFC 3339 time as CA writes it (nanoseconds, ``Z``) -> epoch seconds."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python parses at most microseconds: cut the fraction to 6 digits, keep the offset
        digits = "".join(ch for ch in rest if ch.isdigit())
        offset = rest[len(digits):]
        text = f"{head}.{digits[:6]}{offset}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclass(frozen=True)
class GroupStatus:
    """One node group in CA's status ConfigMap (YAML format of CA >= 1.30), read independently of tideover."""

    scale_up: str | None
    since: float | None  # scaleUp.lastTransitionTime, epoch seconds
    target: int | None
    min_size: int | None
    max_size: int | None
    registered: int | None
    ready: int | None
    error_code: str | None
    error_message: str | None

    def describe(self) -> str:
        text = f"scaleUp {self.scale_up}, target {self.target}/max {self.max_size}, registered {self.registered}"
        if self.error_code:
            text += f", backoff {self.error_code}"
        return text


def read_group_status(core: k8s.CoreV1Api, group: str = NODE_GROUP) -> GroupStatus | None:
    try:
        cm = core.read_namespaced_config_map(STATUS_CONFIGMAP, STATUS_NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return group_status(cm.data, group)


def group_status(data: Mapping[str, str] | None, group: str = NODE_GROUP) -> GroupStatus | None:
    """The node group's entry in the status ConfigMap's ``data`` (None when absent or unreadable)."""
    try:
        doc = yaml.safe_load((data or {}).get("status") or "")
    except yaml.YAMLError:
        return None
    if not isinstance(doc, dict):
        return None
    for item in doc.get("nodeGroups") or []:
        if not isinstance(item, dict) or item.get("name") != group:
            continue
        health = item.get("health") or {}
        scale_up = item.get("scaleUp") or {}
        registered = ((health.get("nodeCounts") or {}).get("registered") or {})
        backoff = scale_up.get("backoffInfo") or {}
        return GroupStatus(
            scale_up=scale_up.get("status"),
            since=parse_time(scale_up.get("lastTransitionTime")),
            target=health.get("cloudProviderTarget"),
            min_size=health.get("minSize"),
            max_size=health.get("maxSize"),
            registered=registered.get("total"),
            ready=registered.get("ready"),
            error_code=backoff.get("errorCode"),
            error_message=backoff.get("errorMessage"),
        )
    return None


# ---------------------------------------------------------------------------------------------- processes


class AutoscalerProcess:
    """cluster-autoscaler in a subprocess (its own session, killed with the test run), log in a file."""

    def __init__(self, kubeconfig: Path, work_dir: Path, vmss_port: int, options: AutoscalerOptions) -> None:
        self.binary = components.binary_path("cluster-autoscaler")
        self.cloud_config = write_cloud_config(work_dir / "ca-cloud-config.yaml", vmss_port)
        self.log_path = work_dir / "cluster-autoscaler.log"
        self.command = ca_command(
            self.binary, kubeconfig=kubeconfig, cloud_config=self.cloud_config, metrics_port=free_port(),
            options=options,
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> AutoscalerProcess:
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start {time.strftime('%H:%M:%S')}: {' '.join(self.command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        return self

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def check(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"cluster-autoscaler exited with {self._process.returncode}; log {self.log_path}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


@dataclass
class Pool:
    """A running simulated scale set and the cluster-autoscaler driving it."""

    config: GroupConfig
    sim: VmssSimulator
    server: VmssServer
    registrar: KubeNodeRegistrar
    autoscaler: AutoscalerProcess
    log_handler: logging.Handler
    work_dir: Path

    @property
    def vmss_log(self) -> Path:
        return self.work_dir / "vmss.log"


# ---------------------------------------------------------------------------------------------- the stack


class AutoscaledStack:
    """Cluster + tideover for the stack's life; :meth:`start_pool` / :meth:`stop_pool` per scenario."""

    def __init__(
        self,
        work_dir: Path,
        *,
        provisioning_seconds: float = 20.0,
        keep_work_dir: bool = False,
        tideover_overrides: Mapping[str, Any] | None = None,
        cluster_extra_args: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """``cluster_extra_args``: more command-line arguments per cluster component (LocalCluster's
        ``extra_args``), e.g. ``{"virtual-kubelet": ["--pod-sync-workers=1"]}``."""
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()  # the scheduler needs tideover's URL before tideover (which needs the API) starts
        self.cluster = LocalCluster(
            work_dir / "cluster",
            scheduler_config=scheduler_config(f"http://127.0.0.1:{port}", work_dir / "scheduler.yaml"),
            keep_work_dir=keep_work_dir,
            extra_args=cluster_extra_args,
        )
        config = merged(tideover_config(provisioning_seconds), tideover_overrides or {})
        self.tideover_config = config  # what the running tideover (and any replica) was started with
        self.tideover = TideoverProcess(self.cluster.kubeconfig, work_dir, config=config, port=port)
        self.replicas: list[TideoverProcess] = []  # more ``tideover serve`` processes (start_replica)
        self.pool: Pool | None = None
        self._pool_runs = 0

    @property
    def core(self) -> k8s.CoreV1Api:
        return self.cluster.core_v1()

    def start(self) -> AutoscaledStack:
        components.ensure_built(["cluster-autoscaler"])
        self.cluster.start()
        self.tideover.start()
        return self

    def stop(self, failed: bool = False) -> None:
        try:
            self.stop_pool()
        finally:
            self.stop_replicas()
            self.tideover.stop()
            self.cluster.stop(failed=failed)

    def log_paths(self) -> dict[str, Path]:
        paths = {**self.cluster.log_paths(), "tideover": self.tideover.log_path}
        for index, replica in enumerate(self.replicas, start=2):
            paths[f"tideover-{index}"] = replica.log_path
        if self.pool is not None:
            paths["cluster-autoscaler"] = self.pool.autoscaler.log_path
            paths["vmss"] = self.pool.vmss_log
        return paths

    # ------------------------------------------------------------------ tideover: config, replicas, the Lease

    def restart_tideover(self, config: Mapping[str, Any] | None = None, timeout: float = 30.0) -> None:
        """Restart the scheduler's tideover (same port) with ``config`` (default: the current one), and let the
        new process take the controllers' Lease at once.

        ``tideover serve`` does not release the Lease when it stops, so a new process would wait out the old
        holder's lease duration (15 s by default) before running the controllers; this deletes the Lease
        instead, as a graceful release would. Replicas are stopped first (one might take the Lease)."""
        self.stop_replicas()
        self.tideover.stop()
        if config is not None:
            self.tideover_config = dict(config)
        self.tideover = TideoverProcess(
            self.cluster.kubeconfig, self.work_dir, config=self.tideover_config, port=self.tideover.port
        )
        self.delete_lease()
        self.tideover.start(timeout)
        self.cluster.wait_for(lambda: self.lease_holder() == self.identity(self.tideover), timeout,
                              "the restarted tideover to take the Lease")

    def start_replica(self) -> TideoverProcess:
        """One more ``tideover serve`` with the same config and kubeconfig, on its own port and work dir. The
        scheduler does not call it; it stands for the Lease like any replica."""
        index = len(self.replicas) + 2
        replica_dir = self.work_dir / f"tideover-{index}"
        replica_dir.mkdir(parents=True, exist_ok=True)
        replica = TideoverProcess(self.cluster.kubeconfig, replica_dir, config=self.tideover_config)
        self.replicas.append(replica)
        return replica.start()

    def stop_replicas(self) -> None:
        replicas, self.replicas = self.replicas, []
        for replica in replicas:
            replica.stop()

    def lease_ref(self) -> tuple[str, str]:
        """(namespace, name) of the controllers' Lease, as configured."""
        controllers = self.tideover_config.get("controllers") or {}
        return (str(controllers.get("leaseNamespace") or "kube-system"),
                str(controllers.get("leaseName") or "tideover-controllers"))

    def lease(self) -> dict[str, Any] | None:
        namespace, name = self.lease_ref()
        try:
            lease = k8s.CoordinationV1Api(self.cluster.api_client()).read_namespaced_lease(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return self.cluster.to_dict(lease)

    def lease_holder(self) -> str | None:
        lease = self.lease()
        return None if lease is None else (lease.get("spec") or {}).get("holderIdentity")

    def delete_lease(self) -> None:
        namespace, name = self.lease_ref()
        with contextlib.suppress(ApiException):
            k8s.CoordinationV1Api(self.cluster.api_client()).delete_namespaced_lease(name, namespace)

    @staticmethod
    def identity(process: TideoverProcess) -> str:
        """The Lease identity of ``process`` (a ``tideover serve`` process, or a replica in the kind cluster)."""
        return process.lease_identity()

    def leader_and_survivor(self) -> tuple[TideoverProcess, TideoverProcess]:
        """Two replicas, the first holding the controllers' Lease. Here the leader is a second process that the
        scheduler does not call (so killing it does not also take the scheduler's extender away): the
        scheduler's tideover is stopped, its Lease deleted (tideover does not release it when it stops) so the
        replica takes it at its next retry, and the scheduler's tideover started again."""
        replica = self.start_replica()
        self.tideover.stop()
        self.delete_lease()
        self.cluster.wait_for(lambda: self.lease_holder() == self.identity(replica), 15, "the replica to lead")
        self.tideover.start()
        return replica, self.tideover

    # ------------------------------------------------------------------ pools

    def start_pool(self, config: GroupConfig, options: AutoscalerOptions | None = None, timeout: float = 60.0) -> Pool:
        """A fresh simulator with ``config`` (its ``initial`` nodes registered and Ready), then a fresh CA;
        returns once CA's status lists the group and tideover has closed the gate (nothing pending)."""
        if self.pool is not None:
            raise RuntimeError("a pool is already running; stop_pool() first")
        self._pool_runs += 1
        pool_dir = self.work_dir / f"pool-{self._pool_runs}-{config.name}"
        pool_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(pool_dir / "vmss.log")
        handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(levelname)s %(message)s", "%H:%M:%S"))
        vmss_logger = logging.getLogger("e2e.vmss")
        vmss_logger.addHandler(handler)
        vmss_logger.setLevel(logging.INFO)
        self._delete_status()
        registrar = KubeNodeRegistrar(self.cluster.kubeconfig)
        sim = VmssSimulator([config], registrar)
        server = VmssServer(sim).start()
        autoscaler = AutoscalerProcess(self.cluster.kubeconfig, pool_dir, server.port, options or autoscaler_options())
        self.pool = Pool(config, sim, server, registrar, autoscaler, handler, pool_dir)
        for instance in sim.instances(config.name):
            self.cluster.wait_node_ready(instance.name, timeout=timeout)
        autoscaler.start()

        def status_lists_group() -> bool:
            autoscaler.check()
            return read_group_status(self.core, config.group_id) is not None

        self.cluster.wait_for(status_lists_group, timeout, f"cluster-autoscaler's status to list {config.group_id}")
        self.cluster.wait_for(lambda: self.gate_closed(), timeout, "tideover to close the spill window")
        return self.pool

    def stop_pool(self) -> None:
        """Stop CA and the simulator, delete the pool's nodes and CA's status."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        try:
            pool.autoscaler.stop()
            pool.server.stop()
            for name in self.node_names(f"{POOL_LABEL}={pool.config.name}"):
                pool.registrar.deregister(name)

            def pool_nodes_gone() -> bool:
                return not self.node_names(f"{POOL_LABEL}={pool.config.name}")

            self.cluster.wait_for(pool_nodes_gone, 60, f"the nodes of {pool.config.name} to go")
            self._delete_status()
        finally:
            pool.registrar.close()
            logging.getLogger("e2e.vmss").removeHandler(pool.log_handler)
            pool.log_handler.close()

    def _delete_status(self) -> None:
        with contextlib.suppress(ApiException):
            self.core.delete_namespaced_config_map(STATUS_CONFIGMAP, STATUS_NAMESPACE)

    # ------------------------------------------------------------------ observations

    def node_names(self, selector: str | None = None) -> set[str]:
        listed = self.cluster.to_dict(self.core.list_node(label_selector=selector))
        return {n["metadata"]["name"] for n in listed.get("items") or []}

    def group_status(self) -> GroupStatus | None:
        return read_group_status(self.core, self.pool.config.group_id if self.pool else NODE_GROUP)

    def virtual_node(self) -> dict[str, Any]:
        return self.cluster.node(VIRTUAL)

    def gate_closed(self) -> bool:
        """The virtual node carries tideover's gate taint, and its annotation says the window is closed."""
        node = self.virtual_node()
        tainted = any(t.get("key") == GATE for t in (node.get("spec") or {}).get("taints") or [])
        window = ((node.get("metadata") or {}).get("annotations") or {}).get(GATE, "")
        return tainted and window.startswith("closed")

    def gate_open(self) -> bool:
        node = self.virtual_node()
        tainted = any(t.get("key") == GATE for t in (node.get("spec") or {}).get("taints") or [])
        window = ((node.get("metadata") or {}).get("annotations") or {}).get(GATE, "")
        return not tainted and window.startswith("open")

    def spill_window(self) -> str:
        """The virtual node's ``tideover.io/spill-window`` annotation (``open|closed since ...: reason``)."""
        return str(((self.virtual_node().get("metadata") or {}).get("annotations") or {}).get(GATE, ""))

    def check_alive(self) -> None:
        if not self.tideover.running:
            raise RuntimeError(f"tideover is not running; log {self.tideover.log_path}")
        if self.pool is not None:
            self.pool.autoscaler.check()


# ---------------------------------------------------------------------------------------------- recorder


@dataclass
class PodRecord:
    name: str
    created: float | None = None  # first seen
    node: str | None = None
    scheduled: float | None = None  # first seen with a node
    running: float | None = None  # first seen Running


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"


def wait_until(
    stack: AutoscaledStack, predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2
) -> float:
    """Poll ``predicate`` (checking that tideover and CA are alive); return the wall time it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_alive()
        with contextlib.suppress(ApiException, OSError):
            if predicate():
                return time.time()
        time.sleep(interval)
    status = stack.group_status()
    raise AssertionError(
        f"timed out after {timeout:.0f}s waiting for {what}; CA: {status.describe() if status else 'no status'}; "
        f"gate: {stack.spill_window()!r}"
    )


def pod_events(stack: AutoscaledStack, namespace: str) -> dict[str, list[tuple[float, str, str]]]:
    """pod name -> [(time, reason, message)] sorted by time."""
    out: dict[str, list[tuple[float, str, str]]] = {}
    listed = stack.cluster.to_dict(stack.core.list_namespaced_event(namespace))
    for event in listed.get("items") or []:
        obj = event.get("involvedObject") or {}
        if obj.get("kind") != "Pod":
            continue
        stamp = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or ""
        out.setdefault(obj.get("name", ""), []).append(
            (parse_time(stamp) or 0.0, event.get("reason") or "", event.get("message") or "")
        )
    for items in out.values():
        items.sort(key=lambda item: item[0])
    return out
