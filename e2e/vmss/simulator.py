"""A simulated Azure VM Scale Set that cluster-autoscaler drives over its ``externalgrpc`` protocol.

The cloud side of CA's externalgrpc cloud provider (service ``CloudProvider`` of
``cluster-autoscaler/cloudprovider/externalgrpc/protos/externalgrpc.proto``), served with grpcio on
``127.0.0.1:<port>`` without TLS. CA is the client; this process is the cloud.

Model
-----
* Node groups are AKS pools (``nodepool1``) with a min size, a max size and a target size (the number of
  instances not being deleted). Their ``NodeGroup.id``, as CA sees it in its status ConfigMap, is the
  scale set's AKS name ``aks-<pool>-<8 digits>-vmss`` (``GroupConfig.aks_group_id``; off: the pool name).
  Requests accept either.
* ``NodeGroupIncreaseSize`` adds instances in state *creating*. Each boots for the group's
  provisioning delay, then registers as a Node through a :class:`NodeRegistrar` (in the e2e cluster: a
  kwok fake Node with ``spec.providerID`` = the instance id, which kwok makes Ready) and turns *running*.
* ``NodeGroupDeleteNodes`` and ``NodeGroupDecreaseTargetSize`` remove instances and delete their Nodes
  (``deletion_delay`` > 0 keeps them *deleting* that long first).
* Faults per group (:class:`Faults`): a quota error on scale-up, either as an error of
  ``NodeGroupIncreaseSize`` itself (``quota="increase"``: CA registers a failed scale-up and backs off
  at once) or as instances that stay *creating* with error info ``QuotaExceeded``/out-of-resources
  (``quota="instances"``: CA first reports the scale-up InProgress, then Backoff, and deletes the
  failed instances); a slower boot (``boot_delay``); VMs that register but never become Ready
  (``never_ready``: the Node lacks the kwok annotation, so kwok leaves it alone, and carries
  ``Ready=False`` plus the ``node.kubernetes.io/not-ready:NoSchedule`` taint a kubelet registers with);
  VMs that never register (``never_register``: the instance stays *creating* with no error info, as a
  VMSS allocation that never lands, so CA reports the scale-up InProgress until its
  ``max-node-provision-time``: kubernetes/autoscaler#8323).
* State is kept in the process and, with ``state_file``, persisted as JSON after every change, so
  both CA and the simulator can restart. Times are wall-clock (``time.time``) for that reason.
* Faults change at run time through :meth:`VmssSimulator.set_faults` (in-process) or a JSON
  ``faults_file`` that is re-read whenever it changes: ``{"nodepool1": {"quota": "instances"}}``;
  the file is the whole desired fault state (a group it does not name has no faults).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import grpc

from e2e.vmss.protos import Stubs, load

log = logging.getLogger("e2e.vmss")

KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "mc_tideover-sim_tideover_westeurope"
GPU_LABEL = "kubernetes.azure.com/accelerator"
QUOTA_MESSAGE = (
    "Operation could not be completed as it results in exceeding approved standardDSv5Family Cores quota "
    "(simulated by tideover's VMSS simulator)"
)
# cloudprovider.InstanceErrorClass values (cluster-autoscaler/cloudprovider/cloud_provider.go)
OUT_OF_RESOURCES_ERROR_CLASS = 1
OTHER_ERROR_CLASS = 99

InstanceState = Literal["creating", "running", "deleting"]
QuotaMode = Literal["increase", "instances"]


class SimulatorError(Exception):
    """An RPC that fails; ``code`` becomes the gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Faults:
    """Injectable faults of one node group. The default is a healthy scale set."""

    quota: QuotaMode | None = None  # scale-ups fail with a quota error, see the module docstring
    quota_error_code: str = "QuotaExceeded"
    quota_error_message: str = QUOTA_MESSAGE
    boot_delay: float | None = None  # seconds; overrides the group's provisioning delay for new instances
    never_ready: bool = False  # new instances register as Nodes that never become Ready
    never_register: bool = False  # new instances stay creating, without an error, and never register

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Faults:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault field(s) {sorted(unknown)}; known: {sorted(known)}")
        faults = cls(**{k: v for k, v in data.items() if k in known})
        if faults.quota not in (None, "increase", "instances"):
            raise ValueError(f"quota must be null, 'increase' or 'instances', not {faults.quota!r}")
        return faults


@dataclass
class GroupConfig:
    """One VMSS-backed node pool."""

    name: str = "nodepool1"
    min_size: int = 1
    max_size: int = 5
    provisioning_delay: float = 20.0  # seconds from IncreaseSize to the Node's registration
    initial: int = 0  # instances created (and registered at once) when the group is new
    instance_type: str = "Standard_D2s_v5"
    cpu: str = "2"
    memory: str = "8Gi"
    pods: str = "110"
    mode: str = "user"
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)
    aks_group_id: bool = True  # report the node group as aks-<pool>-<digits>-vmss (AKS's name), else as the pool

    def __post_init__(self) -> None:
        if not 0 <= self.min_size <= self.max_size:
            raise ValueError(f"group {self.name}: need 0 <= min ({self.min_size}) <= max ({self.max_size})")
        if not self.min_size <= self.initial <= self.max_size and self.initial != 0:
            raise ValueError(f"group {self.name}: initial {self.initial} outside [{self.min_size}, {self.max_size}]")

    @property
    def scale_set_name(self) -> str:
        # AKS names scale sets aks-<pool>-<8 digits>-vmss; the digits are stable per pool here.
        return f"aks-{self.name}-{zlib.crc32(self.name.encode()) % 100_000_000:08d}-vmss"

    @property
    def group_id(self) -> str:
        """The node group's id as CA sees it (``NodeGroup.id``, the name in CA's status ConfigMap)."""
        return self.scale_set_name if self.aks_group_id else self.name

    def node_labels(self) -> dict[str, str]:
        """Labels of this pool's nodes (the same as e2e.harness.cluster.LocalCluster.add_vm_node sets)."""
        return {
            "kubernetes.azure.com/agentpool": self.name,
            "agentpool": self.name,
            "kubernetes.azure.com/mode": self.mode,
            "kubernetes.azure.com/role": "agent",
            "node.kubernetes.io/instance-type": self.instance_type,
            "beta.kubernetes.io/instance-type": self.instance_type,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/role": "agent",
            "type": "kwok",
            **self.labels,
        }

    def resources(self) -> dict[str, str]:
        return {"cpu": self.cpu, "memory": self.memory, "pods": self.pods}


@dataclass
class Instance:
    group: str
    index: int
    id: str  # the Azure resource id as a providerID: equals the Node's spec.providerID
    name: str  # the Node name
    state: InstanceState
    created_at: float
    boot_at: float | None  # when the VM finishes booting and registers; None: never (failed)
    registered: bool = False
    never_ready: bool = False
    error_code: str = ""
    error_message: str = ""
    error_class: int = 0
    delete_at: float | None = None  # for state "deleting"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Instance:
        return cls(**data)


@dataclass
class NodeSpec:
    """What a booted instance registers as: enough to build the v1.Node (see :meth:`manifest`)."""

    name: str
    provider_id: str
    labels: dict[str, str]
    annotations: dict[str, str]
    taints: list[dict[str, str]]
    resources: dict[str, str]
    conditions: list[dict[str, str]]
    instance_id: str = ""

    @property
    def kwok_managed(self) -> bool:
        return self.annotations.get(KWOK_ANNOTATION[0]) == KWOK_ANNOTATION[1]

    def manifest(self) -> dict[str, Any]:
        status: dict[str, Any] = {"allocatable": dict(self.resources), "capacity": dict(self.resources)}
        if self.conditions:
            status["conditions"] = [dict(c) for c in self.conditions]
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": dict(self.labels), "annotations": dict(self.annotations)},
            "spec": {"providerID": self.provider_id, "taints": [dict(t) for t in self.taints]},
            "status": status,
        }


class NodeRegistrar(Protocol):
    """Makes booted instances appear as Nodes (and go away). Both calls must be idempotent."""

    def register(self, node: NodeSpec) -> None: ...

    def deregister(self, name: str) -> None: ...


class KubeNodeRegistrar:
    """Registers instances as kwok fake Nodes through the Kubernetes API (kubernetes Python client)."""

    def __init__(self, kubeconfig: str | os.PathLike[str]) -> None:
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config

        self._api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        self._core = k8s.CoreV1Api(self._api_client)

    def register(self, node: NodeSpec) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._core.create_node(cast(Any, node.manifest()))
        except ApiException as exc:
            if exc.status != 409:  # already there (e.g. the simulator restarted mid-registration)
                raise

    def deregister(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._core.delete_node(name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._api_client.close()


def _b36(n: int, width: int = 6) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out.rjust(width, "0")


@dataclass
class _Group:
    config: GroupConfig
    instances: list[Instance] = field(default_factory=list)
    next_index: int = 0

    def live(self) -> list[Instance]:
        return [i for i in self.instances if i.state != "deleting"]

    @property
    def target_size(self) -> int:
        return len(self.live())


@dataclass(frozen=True)
class Event:
    """One thing the simulator did; kept in memory for tests and timelines."""

    at: float
    kind: str  # increase, increase-failed, boot, register, delete, decrease, faults, ...
    group: str
    detail: str


class VmssSimulator:
    """The simulated scale sets. Thread-safe; drive time with :meth:`tick` or :meth:`start_ticker`."""

    def __init__(
        self,
        groups: Iterable[GroupConfig],
        registrar: NodeRegistrar,
        *,
        state_file: Path | None = None,
        faults_file: Path | None = None,
        deletion_delay: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registrar = registrar
        self._clock = clock
        self.state_file = Path(state_file) if state_file else None
        self.faults_file = Path(faults_file) if faults_file else None
        self.deletion_delay = deletion_delay
        self._lock = threading.RLock()
        self._groups: dict[str, _Group] = {}
        self.events: list[Event] = []
        self._faults_mtime: float | None = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        configs = list(groups)
        names = [c.name for c in configs]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"need at least one node group and unique names, got {names}")
        saved = self._read_state()
        for cfg in configs:
            group = _Group(cfg)
            if cfg.name in saved:
                state = saved[cfg.name]
                group.next_index = int(state["next_index"])
                group.instances = [Instance.from_json(i) for i in state["instances"]]
                saved_faults = state.get("faults")
                # Faults given on the command line win over saved ones.
                if isinstance(saved_faults, dict) and cfg.faults == Faults():
                    cfg.faults = Faults.from_json(saved_faults)
            self._groups[cfg.name] = group
        now = self._clock()
        for group in self._groups.values():
            if group.config.name not in saved:
                for _ in range(group.config.initial):
                    inst = self._new_instance(group, now, boot_delay=0.0, never_ready=False)
                    group.instances.append(inst)
                if group.config.initial:
                    self._event("initial", group.config.name, f"{group.config.initial} instance(s), booted at once")
        self._reload_faults_file()
        self._save()
        # Instances registered before a restart are registered again (idempotently), so their Nodes exist.
        for inst in self._all_instances():
            if inst.registered and inst.state != "deleting":
                self._registrar.register(self._node_spec(inst))
        self.tick()

    # ------------------------------------------------------------------ inspection (tests, CLI)

    def group_names(self) -> list[str]:
        return list(self._groups)

    def config(self, group: str) -> GroupConfig:
        return self._group(group).config

    def instances(self, group: str) -> list[Instance]:
        with self._lock:
            return [dataclasses.replace(i) for i in self._group(group).instances]

    def target_size(self, group: str) -> int:
        with self._lock:
            return self._group(group).target_size

    def faults(self, group: str) -> Faults:
        with self._lock:
            return dataclasses.replace(self._group(group).config.faults)

    # ------------------------------------------------------------------ fault control

    def set_faults(self, group: str, **changes: Any) -> Faults:
        """Change some fault fields of a group (e.g. ``quota="instances"``, ``boot_delay=60``)."""
        with self._lock:
            cfg = self._group(group).config
            merged = {**cfg.faults.to_json(), **changes}
            cfg.faults = Faults.from_json(merged)
            self._event("faults", group, json.dumps(cfg.faults.to_json(), sort_keys=True))
            self._save()
            return dataclasses.replace(cfg.faults)

    def clear_faults(self, group: str | None = None) -> None:
        with self._lock:
            for name in [group] if group else list(self._groups):
                self._group(name).config.faults = Faults()
                self._event("faults", name, "cleared")
            self._save()

    # ------------------------------------------------------------------ the CloudProvider operations

    def node_group_for_provider_id(self, provider_id: str) -> str | None:
        with self._lock:
            if not provider_id:
                return None
            for name, group in self._groups.items():
                if any(i.id == provider_id for i in group.instances):
                    return name
            return None

    def increase_size(self, group: str, delta: int) -> None:
        self.tick()
        with self._lock:
            g = self._group(group)
            cfg = g.config
            if delta <= 0:
                raise SimulatorError(grpc.StatusCode.INVALID_ARGUMENT, f"size increase must be positive, got {delta}")
            if g.target_size + delta > cfg.max_size:
                raise SimulatorError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"size increase too large: target {g.target_size} + {delta} > max {cfg.max_size}",
                )
            faults = cfg.faults
            now = self._clock()
            if faults.quota == "increase":
                self._event("increase-failed", group, f"+{delta}: {faults.quota_error_code}")
                raise SimulatorError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED, f"{faults.quota_error_code}: {faults.quota_error_message}"
                )
            delay = cfg.provisioning_delay if faults.boot_delay is None else faults.boot_delay
            new = []
            for _ in range(delta):
                inst = self._new_instance(g, now, boot_delay=delay, never_ready=faults.never_ready)
                if faults.never_register:
                    inst.boot_at = None  # no error either: CA sees an instance still creating
                if faults.quota == "instances":
                    inst.boot_at = None
                    inst.error_code = faults.quota_error_code
                    inst.error_message = faults.quota_error_message
                    inst.error_class = OUT_OF_RESOURCES_ERROR_CLASS
                new.append(inst)
            g.instances.extend(new)
            self._event(
                "increase",
                group,
                f"+{delta} -> target {g.target_size} ({', '.join(i.name for i in new)}; "
                f"{'fail ' + faults.quota_error_code if faults.quota else f'boot {delay:g}s'}"
                f"{'; never ready' if faults.never_ready else ''}"
                f"{'; never registers' if faults.never_register else ''})",
            )
            self._save()

    def delete_nodes(self, group: str, nodes: Iterable[tuple[str, str]]) -> None:
        """Delete instances given as (providerID, node name) pairs; all must belong to ``group``."""
        self.tick()
        with self._lock:
            g = self._group(group)
            victims: list[Instance] = []
            for provider_id, name in nodes:
                match = [
                    i for i in g.live() if (provider_id and i.id == provider_id) or (not provider_id and i.name == name)
                ]
                if not match:
                    raise SimulatorError(
                        grpc.StatusCode.NOT_FOUND, f"node {name!r} ({provider_id!r}) does not belong to group {group}"
                    )
                if match[0] not in victims:
                    victims.append(match[0])
            if g.target_size - len(victims) < g.config.min_size:
                raise SimulatorError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"min size reached: deleting {len(victims)} of {g.target_size} would go below {g.config.min_size}",
                )
            self._start_deletion(g, victims, "delete")
        self._apply_deletions()

    def decrease_target_size(self, group: str, delta: int) -> None:
        """Drop instances that have not registered yet (never existing Nodes); ``delta`` is negative."""
        self.tick()
        with self._lock:
            g = self._group(group)
            if delta >= 0:
                raise SimulatorError(grpc.StatusCode.INVALID_ARGUMENT, f"size decrease must be negative, got {delta}")
            pending = [i for i in g.live() if not i.registered]
            if -delta > len(pending):
                raise SimulatorError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"attempt to delete existing nodes: decrease by {-delta} but only {len(pending)} not registered "
                    f"(target {g.target_size})",
                )
            # Newest first; failed instances before booting ones.
            pending.sort(key=lambda i: (i.error_code == "", -i.index))
            self._start_deletion(g, pending[:-delta], "decrease")
        self._apply_deletions()

    def template_node(self, group: str) -> Any:
        """The pool's template node as a k8s.io.api.core.v1.Node protobuf message."""
        stubs = load()
        cfg = self._group(group).config
        node = stubs.core_v1.Node()
        node.metadata.name = f"template-node-for-{cfg.name}"
        node.metadata.labels.update(cfg.node_labels())
        for key, value in cfg.resources().items():
            node.status.capacity[key].string = value
            node.status.allocatable[key].string = value
        for t in cfg.taints:
            taint = node.spec.taints.add()
            taint.key = t["key"]
            taint.value = t.get("value", "")
            taint.effect = t["effect"]
        cond = node.status.conditions.add()
        cond.type = "Ready"
        cond.status = "True"
        cond.reason = "KubeletReady"
        return node

    def refresh(self) -> None:
        self.tick()

    # ------------------------------------------------------------------ time

    def tick(self) -> None:
        """Advance the simulation to now: boot due instances, finish due deletions, reload faults."""
        self._reload_faults_file()
        now = self._clock()
        with self._lock:
            due = [
                i
                for i in self._all_instances()
                if i.state == "creating" and not i.registered and i.boot_at is not None and i.boot_at <= now
            ]
            specs = [(i, self._node_spec(i)) for i in due]
        for inst, spec in specs:
            try:
                self._registrar.register(spec)
            except Exception as exc:  # retried on the next tick
                log.warning("registering %s failed (will retry): %s", inst.name, exc)
                continue
            with self._lock:
                current = self._find(inst.group, inst.id)
                if current is None or current.state == "deleting":
                    gone = True
                else:
                    gone = False
                    current.registered = True
                    current.state = "running"
                    boot = now - current.created_at
                    self._event(
                        "register",
                        inst.group,
                        f"{inst.name} after {boot:.1f}s{' (never ready)' if current.never_ready else ''}",
                    )
                    self._save()
            if gone:  # deleted while it was registering
                with contextlib.suppress(Exception):
                    self._registrar.deregister(inst.name)
        self._apply_deletions()

    def start_ticker(self, interval: float = 0.25) -> None:
        if self._ticker is not None:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.tick()
                except Exception:
                    log.exception("tick failed")

        self._ticker = threading.Thread(target=run, name="vmss-ticker", daemon=True)
        self._ticker.start()

    def stop_ticker(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None

    # ------------------------------------------------------------------ internals

    def _group(self, name: str) -> _Group:
        """A group by pool name or by its node group id (``aks-<pool>-<digits>-vmss``)."""
        group = self._groups.get(name) or next(
            (g for g in self._groups.values() if g.config.group_id == name), None
        )
        if group is None:
            raise SimulatorError(grpc.StatusCode.NOT_FOUND, f"node group {name!r} not found")
        return group

    def _all_instances(self) -> list[Instance]:
        return [i for g in self._groups.values() for i in g.instances]

    def _find(self, group: str, instance_id: str) -> Instance | None:
        g = self._groups.get(group)
        return next((i for i in g.instances if i.id == instance_id), None) if g else None

    def _new_instance(self, g: _Group, now: float, *, boot_delay: float, never_ready: bool) -> Instance:
        cfg = g.config
        index = g.next_index
        g.next_index += 1
        provider_id = (
            f"azure:///subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
            f"Microsoft.Compute/virtualMachineScaleSets/{cfg.scale_set_name}/virtualMachines/{index}"
        )
        return Instance(
            group=cfg.name,
            index=index,
            id=provider_id,
            name=f"{cfg.scale_set_name}{_b36(index)}",
            state="creating",
            created_at=now,
            boot_at=now + boot_delay,
            never_ready=never_ready,
        )

    def _node_spec(self, inst: Instance) -> NodeSpec:
        cfg = self._groups[inst.group].config
        labels = {**cfg.node_labels(), "kubernetes.io/hostname": inst.name}
        annotations = {"node.alpha.kubernetes.io/ttl": "0"}
        taints = [dict(t) for t in cfg.taints]
        conditions: list[dict[str, str]] = []
        if inst.never_ready:
            # Not managed by kwok: nothing ever posts Ready=True for it.
            taints.append(dict(NOT_READY_TAINT))
            conditions.append(
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "KubeletNotReady",
                    "message": "simulated VM fault: the kubelet never became ready",
                }
            )
        else:
            annotations[KWOK_ANNOTATION[0]] = KWOK_ANNOTATION[1]
        return NodeSpec(
            name=inst.name,
            provider_id=inst.id,
            labels=labels,
            annotations=annotations,
            taints=taints,
            resources=cfg.resources(),
            conditions=conditions,
            instance_id=inst.id,
        )

    def _start_deletion(self, g: _Group, victims: list[Instance], kind: str) -> None:
        now = self._clock()
        for inst in victims:
            inst.state = "deleting"
            inst.delete_at = now + self.deletion_delay
        self._event(
            kind, g.config.name, f"-{len(victims)} -> target {g.target_size} ({', '.join(i.name for i in victims)})"
        )
        self._save()

    def _apply_deletions(self) -> None:
        now = self._clock()
        with self._lock:
            done = [i for i in self._all_instances() if i.state == "deleting" and (i.delete_at or 0) <= now]
        for inst in done:
            if inst.registered:
                try:
                    self._registrar.deregister(inst.name)
                except Exception as exc:  # retried on the next tick
                    log.warning("deleting node %s failed (will retry): %s", inst.name, exc)
                    continue
            with self._lock:
                g = self._groups[inst.group]
                g.instances = [i for i in g.instances if i.id != inst.id]
                self._event("deleted", inst.group, inst.name)
                self._save()

    def _event(self, kind: str, group: str, detail: str) -> None:
        ev = Event(self._clock(), kind, group, detail)
        self.events.append(ev)
        log.info("%s %s: %s", group, kind, detail)

    # ------------------------------------------------------------------ persistence

    def _read_state(self) -> dict[str, dict[str, Any]]:
        if self.state_file is None or not self.state_file.is_file():
            return {}
        data = json.loads(self.state_file.read_text())
        groups: dict[str, dict[str, Any]] = data.get("groups", {})
        return groups

    def _save(self) -> None:
        if self.state_file is None:
            return
        with self._lock:
            data = {
                "version": 1,
                "saved_at": self._clock(),
                "groups": {
                    name: {
                        "config": {k: v for k, v in dataclasses.asdict(g.config).items() if k != "faults"},
                        "faults": g.config.faults.to_json(),
                        "target_size": g.target_size,
                        "next_index": g.next_index,
                        "instances": [i.to_json() for i in g.instances],
                    }
                    for name, g in self._groups.items()
                },
            }
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_name(f".{self.state_file.name}.tmp")
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, self.state_file)

    def _reload_faults_file(self) -> None:
        if self.faults_file is None:
            return
        try:
            mtime = self.faults_file.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self._faults_mtime:
            return
        try:
            data = json.loads(self.faults_file.read_text() or "{}")
            parsed = {name: Faults.from_json(spec or {}) for name, spec in data.items()}
            unknown = set(parsed) - set(self._groups)
            if unknown:
                raise ValueError(f"unknown node group(s) {sorted(unknown)}")
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.error("ignoring faults file %s: %s", self.faults_file, exc)
            self._faults_mtime = mtime
            return
        with self._lock:
            self._faults_mtime = mtime
            for name, g in self._groups.items():
                new = parsed.get(name, Faults())
                if new != g.config.faults:
                    g.config.faults = new
                    self._event(
                        "faults", name, f"from {self.faults_file.name}: {json.dumps(new.to_json(), sort_keys=True)}"
                    )
            self._save()


# ---------------------------------------------------------------------------------------------
# gRPC service


class CloudProviderServicer:
    """The ``CloudProvider`` service of externalgrpc.proto, backed by a :class:`VmssSimulator`."""

    def __init__(self, sim: VmssSimulator, stubs: Stubs) -> None:
        self.sim = sim
        self.pb = stubs.pb2
        self.calls: dict[str, int] = {}
        self._calls_lock = threading.Lock()

    def _count(self, method: str) -> None:
        with self._calls_lock:
            self.calls[method] = self.calls.get(method, 0) + 1

    def _run(self, method: str, context: grpc.ServicerContext, fn: Callable[[], Any]) -> Any:
        self._count(method)
        try:
            return fn()
        except SimulatorError as exc:
            log.info("%s -> %s: %s", method, exc.code.name, exc.message)
            context.abort(exc.code, exc.message)
            raise  # unreachable: abort raises

    def _group_msg(self, name: str) -> Any:
        cfg = self.sim.config(name)
        debug = (
            f"{cfg.name} ({cfg.scale_set_name}): min={cfg.min_size} max={cfg.max_size} "
            f"target={self.sim.target_size(name)} vm={cfg.instance_type}"
        )
        return self.pb.NodeGroup(id=cfg.group_id, minSize=cfg.min_size, maxSize=cfg.max_size, debug=debug)

    # --- cloud provider

    def NodeGroups(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._run(
            "NodeGroups",
            context,
            lambda: self.pb.NodeGroupsResponse(nodeGroups=[self._group_msg(n) for n in self.sim.group_names()]),
        )

    def NodeGroupForNode(self, request: Any, context: grpc.ServicerContext) -> Any:
        def run() -> Any:
            name = self.sim.node_group_for_provider_id(request.node.providerID)
            if name is None:
                return self.pb.NodeGroupForNodeResponse(nodeGroup=self.pb.NodeGroup(id=""))
            return self.pb.NodeGroupForNodeResponse(nodeGroup=self._group_msg(name))

        return self._run("NodeGroupForNode", context, run)

    def PricingNodePrice(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._count("PricingNodePrice")
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "pricing is not simulated")

    def PricingPodPrice(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._count("PricingPodPrice")
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "pricing is not simulated")

    def GPULabel(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._run("GPULabel", context, lambda: self.pb.GPULabelResponse(label=GPU_LABEL))

    def GetAvailableGPUTypes(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._run("GetAvailableGPUTypes", context, lambda: self.pb.GetAvailableGPUTypesResponse())

    def Cleanup(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._run("Cleanup", context, lambda: self.pb.CleanupResponse())

    def Refresh(self, request: Any, context: grpc.ServicerContext) -> Any:
        def run() -> Any:
            self.sim.refresh()
            return self.pb.RefreshResponse()

        return self._run("Refresh", context, run)

    # --- node group

    def NodeGroupTargetSize(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._run(
            "NodeGroupTargetSize",
            context,
            lambda: self.pb.NodeGroupTargetSizeResponse(targetSize=self.sim.target_size(request.id)),
        )

    def NodeGroupIncreaseSize(self, request: Any, context: grpc.ServicerContext) -> Any:
        def run() -> Any:
            self.sim.increase_size(request.id, request.delta)
            return self.pb.NodeGroupIncreaseSizeResponse()

        return self._run("NodeGroupIncreaseSize", context, run)

    def NodeGroupDeleteNodes(self, request: Any, context: grpc.ServicerContext) -> Any:
        def run() -> Any:
            self.sim.delete_nodes(request.id, [(n.providerID, n.name) for n in request.nodes])
            return self.pb.NodeGroupDeleteNodesResponse()

        return self._run("NodeGroupDeleteNodes", context, run)

    def NodeGroupDecreaseTargetSize(self, request: Any, context: grpc.ServicerContext) -> Any:
        def run() -> Any:
            self.sim.decrease_target_size(request.id, request.delta)
            return self.pb.NodeGroupDecreaseTargetSizeResponse()

        return self._run("NodeGroupDecreaseTargetSize", context, run)

    def NodeGroupNodes(self, request: Any, context: grpc.ServicerContext) -> Any:
        states = {
            "creating": self.pb.InstanceStatus.instanceCreating,
            "running": self.pb.InstanceStatus.instanceRunning,
            "deleting": self.pb.InstanceStatus.instanceDeleting,
        }

        def run() -> Any:
            out = []
            for inst in self.sim.instances(request.id):
                status = self.pb.InstanceStatus(instanceState=states[inst.state])
                if inst.error_code:
                    status.errorInfo.errorCode = inst.error_code
                    status.errorInfo.errorMessage = inst.error_message
                    status.errorInfo.instanceErrorClass = inst.error_class or OTHER_ERROR_CLASS
                out.append(self.pb.Instance(id=inst.id, status=status))
            return self.pb.NodeGroupNodesResponse(instances=out)

        return self._run("NodeGroupNodes", context, run)

    def NodeGroupTemplateNodeInfo(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._run(
            "NodeGroupTemplateNodeInfo",
            context,
            lambda: self.pb.NodeGroupTemplateNodeInfoResponse(nodeInfo=self.sim.template_node(request.id)),
        )

    def NodeGroupGetOptions(self, request: Any, context: grpc.ServicerContext) -> Any:
        # CA (externalgrpc_node_group.go GetOptions) maps UNIMPLEMENTED to ErrNotImplemented and then
        # uses its command-line defaults for the group.
        self._count("NodeGroupGetOptions")
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "per-group options are not simulated; CA uses its defaults")


class VmssServer:
    """A :class:`VmssSimulator` served over gRPC on ``host:port`` (port 0: a free one), plaintext."""

    def __init__(
        self, sim: VmssSimulator, port: int = 0, host: str = "127.0.0.1", max_workers: int = 8, tick: float = 0.25
    ) -> None:
        self.sim = sim
        self.stubs = load()
        self.servicer = CloudProviderServicer(sim, self.stubs)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="vmss-rpc"))
        self.stubs.pb2_grpc.add_CloudProviderServicer_to_server(self.servicer, self._server)
        self.host = host
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"could not bind {host}:{port}")
        self._tick = tick

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> VmssServer:
        self._server.start()
        if self._tick > 0:
            self.sim.start_ticker(self._tick)
        log.info("VMSS simulator serving CloudProvider on %s (plaintext)", self.address)
        return self

    def stop(self, grace: float = 1.0) -> None:
        self.sim.stop_ticker()
        self._server.stop(grace).wait()

    def wait(self) -> None:
        self._server.wait_for_termination()

    def __enter__(self) -> VmssServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
