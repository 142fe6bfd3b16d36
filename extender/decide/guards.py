"""Virtual-node guards: which pods may never spill, and how many may.

Pure functions of the pod, the snapshot and the config; :func:`extender.decide.filter.decide_filter` applies them
only once a virtual node is the pod's last option (never on the fast path), whatever the spill policy.

* **Compatibility** (:func:`incompatibilities`): a pod the provider cannot run is never spilled, so it waits
  for a VM instead of failing on ACI. DaemonSet pods never spill; every other rule comes from the provider
  profile in config (``virtualNodes.profiles``, built-in ``aci``; see :class:`~extender.model.config.ProviderProfile`
  for the reason behind each default). Every problem is named, each one something a person can change.
* **Capacity** (:func:`virtual_capacity_problems`): the ACI subnet's IPs (``virtualNodes.subnet``), the
  workload's share (``tideover.io/max-virtual-replicas`` and ``tideover.io/max-virtual-percent``) and the
  namespace's estimated spend (``virtualNodes.namespaceSpendCapsPerHour``).
* **Room per virtual node** (:func:`full_virtual_nodes`): each virtual node holds ``virtualNodes.maxPodsPerNode``
  pods (else its allocatable pods); virtual nodes v2 hold 200 each.

A workload is the pod's controller owner: for a Deployment that is its ReplicaSet, so during a rollout the
old and the new ReplicaSet are capped separately. A pod without an owner is a workload of one.

kube-scheduler binds a pod asynchronously, and the snapshot shows the binding a little later (watch latency
plus the cluster view's coalescing). Within that window a burst of one workload would see the same count
and spill past its cap, so the capacity checks also count the spills tideover allowed that the snapshot does
not show yet (:class:`RecentSpills`, kept by a :class:`SpillLedger`). Per virtual node too: tideover does not know
which of the virtual nodes it kept kube-scheduler will pick, so a recent spill counts against each of them until
the snapshot shows where it went. That is stricter than the truth for a moment (a burst over two empty nodes of
200 may place 200 before the snapshot catches up, not 400), never looser: no node takes more than it holds.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

from extender.model.config import ProviderProfile, TideoverConfig, VirtualSubnet
from extender.model.keys import MAX_VIRTUAL_PERCENT, MAX_VIRTUAL_REPLICAS, OS_LABELS
from extender.model.objects import OBJECT, PodFacts
from extender.model.policy import WorkloadPolicy
from extender.model.snapshot import ClusterSnapshot

DAEMON_SET = "DaemonSet"
# Container resources every provider offers; anything else must be in the profile's extendedResources.
BASE_RESOURCES = ("cpu", "memory", "ephemeral-storage")
PROBES = ("livenessProbe", "readinessProbe")
PROBE_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
# Spend is compared with this tolerance, so a pod that brings a namespace exactly to its cap may spill.
SPEND_EPSILON = 1e-9

_EMPTY: Mapping[str, Any] = {}


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, OBJECT) else _EMPTY


def _seq(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else ()


def _names(items: Sequence[str]) -> str:
    return ", ".join(items) if items else "none"


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(kind, name, container) for the app containers, then the init containers."""
    for kind, key in (("container", "containers"), ("init container", "initContainers")):
        for index, item in enumerate(_seq(spec.get(key))):
            container = _map(item)
            name = container.get("name")
            yield kind, name if isinstance(name, str) and name else f"#{index}", container


# -- compatibility ---------------------------------------------------------------------------------------


def _daemon_set(pod: PodFacts, spec: Mapping[str, Any], profile: ProviderProfile, key: str) -> list[str]:
    if pod.owner_kind != DAEMON_SET:
        return []
    return [f"it belongs to DaemonSet {pod.owner_name or '?'}, and DaemonSet pods never run on virtual nodes"]


def _operating_system(pod: PodFacts, spec: Mapping[str, Any], profile: ProviderProfile, key: str) -> list[str]:
    offered = {name.lower() for name in profile.operating_systems}
    wanted: list[tuple[str, str]] = []
    os_name = _map(spec.get("os")).get("name")
    if isinstance(os_name, str) and os_name:
        wanted.append((os_name, "spec.os.name"))
    selector = _map(spec.get("nodeSelector"))
    for label in OS_LABELS:
        value = selector.get(label)
        if isinstance(value, str) and value:
            wanted.append((value, f"nodeSelector {label}"))
    return [
        f"it runs on {value} ({where}) and profile {key} offers {_names(profile.operating_systems)}"
        for value, where in wanted
        if value.lower() not in offered
    ]


def _volumes(pod: PodFacts, spec: Mapping[str, Any], profile: ProviderProfile, key: str) -> list[str]:
    unsupported: list[str] = []
    drivers: list[str] = []
    for index, item in enumerate(_seq(spec.get("volumes"))):
        volume = _map(item)
        given = volume.get("name")
        name = given if isinstance(given, str) and given else f"#{index}"
        sources = [source for source in volume if source != "name"]
        source = sources[0] if sources else "emptyDir"  # the API server defaults a volume without a source
        if source not in profile.volume_types:
            unsupported.append(f"volume {name} uses {source}")
        elif source == "csi":
            driver = _map(volume.get("csi")).get("driver")
            if driver not in profile.csi_drivers:
                drivers.append(f"volume {name} uses csi driver {driver}")
    reasons = []
    if unsupported:
        reasons.append(f"{', '.join(unsupported)} (profile {key} allows {_names(profile.volume_types)})")
    if drivers:
        reasons.append(f"{', '.join(drivers)} (profile {key} allows csi drivers {_names(profile.csi_drivers)})")
    return reasons


def _host_namespaces(pod: PodFacts, spec: Mapping[str, Any], profile: ProviderProfile, key: str) -> list[str]:
    allowed = {"hostNetwork": profile.host_network, "hostPID": profile.host_pid, "hostIPC": profile.host_ipc}
    return [
        f"it sets {field_name}: true (profile {key} has no host to share)"
        for field_name, ok in allowed.items()
        if spec.get(field_name) is True and not ok
    ]


def _host_ports(pod: PodFacts, spec: Mapping[str, Any], profile: ProviderProfile, key: str) -> list[str]:
    if profile.host_ports:
        return []
    reasons = []
    for kind, name, container in _containers(spec):
        ports = [
            port["hostPort"] for port in map(_map, _seq(container.get("ports")))
            if type(port.get("hostPort")) is int and port["hostPort"] > 0
        ]
        if ports:
            listed = ", ".join(str(port) for port in ports)
            reasons.append(f"{kind} {name} asks for hostPort {listed} (profile {key} has no host ports)")
    return reasons


def _capability(name: Any) -> str:
    return str(name).upper().removeprefix("CAP_")


def _privileges(pod: PodFacts, spec: Mapping[str, Any], profile: ProviderProfile, key: str) -> list[str]:
    allowed = {_capability(name) for name in profile.allowed_capabilities}
    reasons = []
    for kind, name, container in _containers(spec):
        context = _map(container.get("securityContext"))
        if context.get("privileged") is True and not profile.privileged:
            reasons.append(f"{kind} {name} is privileged (profile {key} runs no privileged containers)")
        added = [_capability(c) for c in _seq(_map(context.get("capabilities")).get("add"))]
        extra = [] if "ALL" in allowed else [c for c in added if c not in allowed]
        if extra:
            reasons.append(
                f"{kind} {name} adds capabilities {', '.join(extra)} "
                f"(profile {key} allows {_names(sorted(allowed))})"
            )
    return reasons


def _extended_resources(pod: PodFacts, spec: Mapping[str, Any], profile: ProviderProfile, key: str) -> list[str]:
    advertised = set(profile.extended_resources)
    wanted: list[str] = []
    for _, _, container in _containers(spec):
        resources = _map(container.get("resources"))
        for section in ("requests", "limits"):
            for resource in _map(resources.get(section)):
                if resource not in BASE_RESOURCES and resource not in advertised and resource not in wanted:
                    wanted.append(resource)
    if not wanted:
        return []
    offered = ", ".join([*BASE_RESOURCES, *profile.extended_resources])
    return [f"it requests {', '.join(wanted)} (profile {key} advertises {offered})"]


def _init_containers(pod: PodFacts, spec: Mapping[str, Any], profile: ProviderProfile, key: str) -> list[str]:
    inits = [(name, container) for kind, name, container in _containers(spec) if kind == "init container"]
    if not inits or profile.init_containers == "allowed":
        return []
    if profile.init_containers == "forbidden":
        return [f"it has init containers ({', '.join(n for n, _ in inits)}) and profile {key} runs none"]
    reasons = []
    for name, container in inits:
        resources = _map(container.get("resources"))
        used = [
            what
            for what, present in (
                ("resources", bool(_map(resources.get("requests")) or _map(resources.get("limits")))),
                ("ports", bool(_seq(container.get("ports")))),
                *((probe, probe in container) for probe in PROBES),
            )
            if present
        ]
        if used:
            reasons.append(
                f"init container {name} sets {', '.join(used)} "
                f"(profile {key} runs init containers only without resources, ports or probes)"
            )
    return reasons


def _probes(pod: PodFacts, spec: Mapping[str, Any], profile: ProviderProfile, key: str) -> list[str]:
    reasons = []
    for kind, name, container in _containers(spec):
        if kind != "container":  # init containers: _init_containers
            continue
        for probe_name in PROBES:
            probe = _map(container.get(probe_name))
            handlers = [h for h in PROBE_HANDLERS if h in probe and h not in profile.probe_handlers]
            if handlers:
                reasons.append(
                    f"container {name}'s {probe_name} uses {', '.join(handlers)} "
                    f"(profile {key} runs {_names(profile.probe_handlers)} probes)"
                )
        if "startupProbe" in container and not profile.startup_probes:
            reasons.append(f"container {name} has a startupProbe (profile {key} does not run startup probes)")
    return reasons


def _lifecycle_hooks(pod: PodFacts, spec: Mapping[str, Any], profile: ProviderProfile, key: str) -> list[str]:
    if profile.lifecycle_hooks:
        return []
    reasons = []
    for kind, name, container in _containers(spec):
        hooks = [hook for hook in ("postStart", "preStop") if hook in _map(container.get("lifecycle"))]
        if hooks:
            reasons.append(f"{kind} {name} has a {' and a '.join(hooks)} hook (profile {key} runs no lifecycle hooks)")
    return reasons


def _host_aliases(pod: PodFacts, spec: Mapping[str, Any], profile: ProviderProfile, key: str) -> list[str]:
    if profile.host_aliases or not _seq(spec.get("hostAliases")):
        return []
    return [f"it sets hostAliases (profile {key} does not support them)"]


def _args_without_command(pod: PodFacts, spec: Mapping[str, Any], profile: ProviderProfile, key: str) -> list[str]:
    if profile.args_without_command:
        return []
    return [
        f"{kind} {name} sets args without command (profile {key} needs both: set command to the image's entrypoint)"
        for kind, name, container in _containers(spec)
        if _seq(container.get("args")) and not _seq(container.get("command"))
    ]


Rule = Callable[[PodFacts, Mapping[str, Any], ProviderProfile, str], list[str]]

# In the order reasons are given: the ones no setting can change first.
RULES: tuple[Rule, ...] = (
    _daemon_set,
    _operating_system,
    _volumes,
    _host_namespaces,
    _host_ports,
    _privileges,
    _extended_resources,
    _init_containers,
    _probes,
    _lifecycle_hooks,
    _host_aliases,
    _args_without_command,
)


def incompatibilities(pod: PodFacts, profile: ProviderProfile, key: str = "aci") -> list[str]:
    """Every reason the provider described by ``profile`` (named ``key`` in config) cannot run ``pod``;
    empty when it can. Never raises on an odd spec: a field of the wrong type counts as absent."""
    spec = pod.spec
    reasons: list[str] = []
    for rule in RULES:
        reasons.extend(rule(pod, spec, profile, key))
    return reasons


def incompatibility_reason(reasons: Sequence[str], profile: ProviderProfile, key: str) -> str:
    return f"{profile.name_for(key)} cannot run this pod: " + "; ".join(reasons)


# -- capacity --------------------------------------------------------------------------------------------


class CapacityGuard(StrEnum):
    SUBNET = "subnet"
    WORKLOAD = "workload"
    NAMESPACE_SPEND = "namespace-spend"


@dataclass(frozen=True, slots=True)
class CapacityProblem:
    guard: CapacityGuard
    reason: str


@dataclass(frozen=True, slots=True)
class RecentSpills:
    """Spills tideover allowed whose pods the snapshot does not show on a virtual node yet."""

    pods: int = 0
    by_owner: Mapping[str, int] = field(default_factory=dict)  # owner uid -> recent spills
    spend_by_namespace: Mapping[str, float] = field(default_factory=dict)  # USD per hour
    # Virtual node -> recent spills that may land on it (each counts on every virtual node its filter kept).
    by_node: Mapping[str, int] = field(default_factory=dict)


NO_RECENT_SPILLS = RecentSpills()


def full_virtual_nodes(
    candidates: Sequence[str], snapshot: ClusterSnapshot, max_pods_per_node: int | None,
    recent_spills: RecentSpills = NO_RECENT_SPILLS,
) -> dict[str, str]:
    """The virtual ``candidates`` with no room for one more pod, each with the reason: the pods bound to it plus the
    recent spills that may land on it reach what it holds (``max_pods_per_node``, else its allocatable pods; a node
    that says neither is never full)."""
    full: dict[str, str] = {}
    for name in candidates:
        bound, capacity = snapshot.virtual_node_room(name, max_pods_per_node)
        recent = recent_spills.by_node.get(name, 0)
        if capacity is None or bound + recent < capacity:
            continue
        if recent:
            full[name] = (f"virtual node {name} is full: {bound} of {capacity:.0f} pods, and {recent} pod(s) "
                          "tideover let spill there are not bound yet")
        else:
            full[name] = f"virtual node {name} is full: {bound} of {capacity:.0f} pods"
    return full


def subnet_problem(on_virtual: int, subnet: VirtualSubnet) -> str | None:
    """Why one more pod may not go to the virtual side, given ``on_virtual`` pods there now; None if it may.

    A pod may spill while ``on_virtual + 1 <= limit - reserve``, the limit being the subnet's usable IPs
    (2^(32-prefix) - 5) or ``maxPods``, whichever is smaller.
    """
    limit = subnet.limit
    if limit is None or on_virtual + 1 <= limit - subnet.reserve:
        return None
    if subnet.cidr is not None and subnet.usable_ips == limit:
        source = f"the ACI subnet {subnet.cidr} has {limit} usable IPs"
    else:
        source = f"virtualNodes.subnet.maxPods is {limit}"
    return (
        f"{source}; {on_virtual} pod(s) are on virtual nodes and {subnet.reserve} are kept in reserve "
        f"(virtualNodes.subnet.reserve), so no more may spill"
    )


def percent_cap(percent: float, owner_pods: int) -> int:
    """Pods of a workload of ``owner_pods`` pods that may be on virtual nodes at ``percent``: rounded down,
    so a workload capped at 25% never has more than a quarter of its pods there (20 pods: 5; 3 pods: 0)."""
    return math.floor(percent * owner_pods / 100 + 1e-9)


def workload_cap_problem(on_virtual: int, owner_pods: int, policy: WorkloadPolicy, workload: str) -> str | None:
    """Why one more of the workload's pods may not go to a virtual node; None if it may.

    ``on_virtual``: the workload's pods on virtual nodes now. ``owner_pods``: all its active pods (not
    Succeeded/Failed), this one included. The pod may spill while ``on_virtual + 1`` is at most
    ``max-virtual-replicas`` and at most :func:`percent_cap` of ``owner_pods``.
    """
    problems = []
    replicas = policy.max_virtual_replicas
    if replicas is not None and on_virtual + 1 > replicas:
        problems.append(f"{MAX_VIRTUAL_REPLICAS}={replicas} allows {replicas}")
    percent = policy.max_virtual_percent
    if percent is not None:
        allowed = percent_cap(percent, owner_pods)
        if on_virtual + 1 > allowed:
            problems.append(f"{MAX_VIRTUAL_PERCENT}={percent:g} allows {allowed} of {owner_pods}")
    if not problems:
        return None
    return f"{workload} has {on_virtual} pod(s) on virtual nodes and " + " and ".join(problems)


def namespace_spend_problem(namespace: str, current: float, cost: float, config: TideoverConfig) -> str | None:
    """Why the pod's spill would take its namespace past its spend cap; None if it would not (or no cap)."""
    virtual_nodes = config.virtual_nodes
    cap = virtual_nodes.namespace_spend_cap(namespace)
    if cap is None or current + cost <= cap + SPEND_EPSILON:
        return None
    key = (
        "virtualNodes.namespaceSpendCapsPerHour"
        if namespace in virtual_nodes.namespace_spend_caps_per_hour
        else "virtualNodes.defaultNamespaceSpendCapPerHour"
    )
    return (
        f"namespace {namespace}'s pods on virtual nodes cost an estimated ${current:.4f}/h, and this pod's "
        f"${cost:.4f}/h would take it past its cap of ${cap:.4f}/h ({key})"
    )


def _workload(pod: PodFacts) -> str:
    if pod.owner_uid:
        return f"{pod.owner_kind or 'owner'} {pod.owner_name or pod.owner_uid}"
    return "this pod (it has no owner)"


def virtual_capacity_problems(
    pod: PodFacts,
    snapshot: ClusterSnapshot,
    config: TideoverConfig,
    policy: WorkloadPolicy,
    cost_per_hour: float,
    recent_spills: RecentSpills = NO_RECENT_SPILLS,
) -> list[CapacityProblem]:
    """Every capacity guard that stops ``pod`` from spilling now (empty: it may spill), subnet first.

    Counts the active pods on virtual nodes in ``snapshot`` plus the recent spills (``recent_spills``).
    """
    problems: list[CapacityProblem] = []
    subnet = subnet_problem(snapshot.virtual_pod_count + recent_spills.pods, config.virtual_nodes.subnet)
    if subnet is not None:
        problems.append(CapacityProblem(CapacityGuard.SUBNET, subnet))

    if policy.max_virtual_replicas is not None or policy.max_virtual_percent is not None:
        if pod.owner_uid:
            owned = snapshot.owned_pods.get(pod.owner_uid, frozenset())
            owner_pods = len(owned) + (0 if pod.uid and pod.uid in owned else 1)
            on_virtual = snapshot.virtual_pods_by_owner.get(pod.owner_uid, 0) + recent_spills.by_owner.get(
                pod.owner_uid, 0
            )
        else:
            owner_pods, on_virtual = 1, 0
        workload = workload_cap_problem(on_virtual, owner_pods, policy, _workload(pod))
        if workload is not None:
            problems.append(CapacityProblem(CapacityGuard.WORKLOAD, workload))

    current = snapshot.virtual_spend_by_namespace.get(pod.namespace, 0.0) + recent_spills.spend_by_namespace.get(
        pod.namespace, 0.0
    )
    spend = namespace_spend_problem(pod.namespace, current, cost_per_hour, config)
    if spend is not None:
        problems.append(CapacityProblem(CapacityGuard.NAMESPACE_SPEND, spend))
    return problems


# -- recent spills ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Spill:
    owner_uid: str | None
    namespace: str
    cost_per_hour: float
    at: float  # the ledger's clock
    nodes: frozenset[str] = frozenset()  # the virtual nodes the filter kept: where the pod may land


_N = TypeVar("_N", int, float)


class _Without(Mapping[str, _N]):
    """``base`` with ``amount`` taken off each of ``keys`` (the pod being filtered left out), without copying
    ``base``; a value that reaches zero reads as absent."""

    __slots__ = ("_amount", "_base", "_keys")

    def __init__(self, base: Mapping[str, _N], keys: Collection[str | None], amount: _N) -> None:
        self._base: Mapping[str, _N] = base
        self._keys = keys
        self._amount: _N = amount

    def __getitem__(self, key: str) -> _N:
        value = self._base[key]
        if key in self._keys:
            value = value - self._amount
            if value <= 1e-12:
                raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return (key for key in self._base if key in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except KeyError:
            return False
        return True


class SpillLedger:
    """The spills tideover allowed, until the snapshot shows their pods on a virtual node.

    The HTTP edge calls :meth:`settle` after each filter decision and passes :meth:`view` to
    ``decide_filter``. An entry ends when the snapshot shows the pod on a virtual node (from then on the
    snapshot counts it), when the pod is filtered again (it was not bound), or after ``ttl_seconds`` (the
    bind failed or the pod went away; meanwhile the caps are stricter, never looser). Thread-safe.

    Indexed: the totals per workload and per namespace are kept as entries come and go, expiry walks a queue in
    time order, and the snapshot's virtual pods are matched once per snapshot, not per request; so a view costs
    the same whatever the number of unrelated spills in the window.
    """

    def __init__(self, ttl_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._spills: dict[str, _Spill] = {}
        self._order: deque[tuple[float, str]] = deque()  # (at, uid) in settle order, stale ones included
        self._by_owner: dict[str, int] = {}
        self._spend: dict[str, float] = {}
        self._by_node: dict[str, int] = {}
        self._matched: frozenset[str] | None = None  # the snapshot's virtual pod uids last matched

    def __len__(self) -> int:
        return len(self._spills)

    def settle(
        self, pod: PodFacts, spilled: bool, cost_per_hour: float | None, nodes: Iterable[str] = ()
    ) -> None:
        """Record the filter's verdict for ``pod``: a spill is remembered (with ``nodes``, the virtual nodes the
        filter kept for it), anything else forgets the pod."""
        if not pod.uid:
            return
        with self._lock:
            self._remove(pod.uid)
            if spilled:
                spill = _Spill(pod.owner_uid, pod.namespace, cost_per_hour or 0.0, self._clock(), frozenset(nodes))
                self._spills[pod.uid] = spill
                self._order.append((spill.at, pod.uid))
                if spill.owner_uid:
                    self._by_owner[spill.owner_uid] = self._by_owner.get(spill.owner_uid, 0) + 1
                self._spend[spill.namespace] = self._spend.get(spill.namespace, 0.0) + spill.cost_per_hour
                for node in spill.nodes:
                    self._by_node[node] = self._by_node.get(node, 0) + 1

    def view(self, snapshot: ClusterSnapshot, exclude_uid: str | None = None) -> RecentSpills:
        """The spills the snapshot does not show yet, except ``exclude_uid`` (the pod being filtered)."""
        if not self._spills:
            return NO_RECENT_SPILLS
        with self._lock:
            self._expire(self._clock())
            self._forget_shown(snapshot.virtual_pod_uids)
            if not self._spills:
                return NO_RECENT_SPILLS
            excluded = self._spills.get(exclude_uid) if exclude_uid else None
            by_owner, spend = MappingProxyType(self._by_owner), MappingProxyType(self._spend)
            by_node = MappingProxyType(self._by_node)
            if excluded is None:
                return RecentSpills(len(self._spills), by_owner, spend, by_node)
            return RecentSpills(
                len(self._spills) - 1,
                _Without(by_owner, (excluded.owner_uid,), 1),
                _Without(spend, (excluded.namespace,), excluded.cost_per_hour),
                _Without(by_node, excluded.nodes, 1),
            )

    def _remove(self, uid: str) -> None:
        spill = self._spills.pop(uid, None)
        if spill is None:
            return
        if spill.owner_uid in self._by_owner:
            self._by_owner[spill.owner_uid] -= 1
            if self._by_owner[spill.owner_uid] <= 0:
                del self._by_owner[spill.owner_uid]
        if spill.namespace in self._spend:
            self._spend[spill.namespace] -= spill.cost_per_hour
            if self._spend[spill.namespace] <= 1e-12:
                del self._spend[spill.namespace]
        for node in spill.nodes:
            self._by_node[node] -= 1
            if self._by_node[node] <= 0:
                del self._by_node[node]

    def _expire(self, now: float) -> None:
        while self._order and now - self._order[0][0] > self.ttl_seconds:
            at, uid = self._order.popleft()
            spill = self._spills.get(uid)
            if spill is not None and spill.at == at:  # not settled again since
                self._remove(uid)

    def _forget_shown(self, shown: frozenset[str]) -> None:
        if shown is self._matched:
            return
        smaller = shown if len(shown) < len(self._spills) else list(self._spills)
        for uid in smaller:
            if uid in shown and uid in self._spills:
                self._remove(uid)
        self._matched = shown
