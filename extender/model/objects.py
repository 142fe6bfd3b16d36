"""Facts read from Pod and Node objects in their JSON shape.

The same shape arrives on the extender wire (the scheduler's v1.Pod), from the watch (raw objects)
and from a ``kubectl get -o yaml`` dump, so one parser serves the server, the cluster view and
``tideover explain``. Problems in fields tideover needs raise :class:`ObjectError` naming the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from extender.model.keys import CCE_POLICY, INJECT_KUBE_PROXY

Json = Mapping[str, Any]

EMPTY: Mapping[str, str] = {}

# isinstance(value, OBJECT): a JSON object. Decoded JSON gives dicts, which the first type answers at C speed;
# isinstance with Mapping alone runs the ABC's check in Python each time (11 calls in a filter request).
OBJECT = (dict, Mapping)


class ObjectError(ValueError):
    """A field of a Kubernetes object is missing or of the wrong type."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def _mapping(obj: Json, key: str, path: str) -> Json:
    value = obj.get(key)
    if value is None:
        return EMPTY
    if not isinstance(value, OBJECT):
        raise ObjectError(f"{path}.{key}", f"must be an object, got {type(value).__name__}")
    return value


def _list(obj: Json, key: str, path: str) -> Sequence[Any]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ObjectError(f"{path}.{key}", f"must be a list, got {type(value).__name__}")
    return value


def _str_map(obj: Json, key: str, path: str) -> Mapping[str, str]:
    value = _mapping(obj, key, path)
    for k, v in value.items():
        if not isinstance(v, str):
            raise ObjectError(f"{path}.{key}.{k}", f"must be a string, got {type(v).__name__}")
    return value


def _str(obj: Json, key: str, path: str, default: str = "") -> str:
    value = obj.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ObjectError(f"{path}.{key}", f"must be a string, got {type(value).__name__}")
    return value


@lru_cache(maxsize=4096)
def _quantity_cached(text: str) -> float:
    return float(parse_quantity(text))


def _shown(value: Any, limit: int = 40) -> str:
    """A value for a message, cut short: an error about a 400-digit number need not print it."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def quantity(value: Any, field: str) -> float:
    """A Kubernetes resource quantity ("500m", "2Gi", 3) as a float in base units."""
    if isinstance(value, bool):
        raise ObjectError(field, "must be a quantity, got a boolean")
    if isinstance(value, int | float | Decimal):
        try:
            result = float(value)
        except OverflowError:  # an int of 400 digits: no float holds it
            raise ObjectError(field, "is not a finite, non-negative quantity (too large)") from None
    elif isinstance(value, str):
        try:
            result = _quantity_cached(value)
        except (ValueError, InvalidOperation, TypeError, OverflowError):
            raise ObjectError(field, f"{_shown(value)} is not a resource quantity") from None
    else:
        raise ObjectError(field, f"must be a quantity, got {type(value).__name__}")
    # "NaN", "Infinity" and "1e400" parse as floats; none is a quantity anyone can request.
    if not math.isfinite(result) or result < 0:
        raise ObjectError(field, f"{_shown(value)} is not a finite, non-negative quantity")
    return result


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp from the API (``2026-11-22T10:00:00Z``), or None."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    return _parse_time_text(value)


@lru_cache(maxsize=1024)  # the pods of a burst are created within a few seconds: a few texts, read many times
def _parse_time_text(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


# Go's time.Time.String(): "2026-11-22 10:00:00.123456789 +0000 UTC"
_GO_TIME = re.compile(r"^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d+))? ([+-]\d{4})")


def parse_go_time(text: str | None) -> datetime | None:
    if not text:
        return None
    match = _GO_TIME.match(text.strip())
    if match is None:
        return None
    day, clock, fraction, offset = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    sign = 1 if offset[0] == "+" else -1
    tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
    parsed = datetime.fromisoformat(f"{day}T{clock}").replace(microsecond=micros, tzinfo=tz)
    return parsed.astimezone(UTC)


def normalise_image(name: str) -> str:
    """Canonical image reference, so ``nginx`` and ``docker.io/library/nginx:latest`` compare equal
    (the kubelet reports the fully qualified form in ``status.images``)."""
    ref = name.strip()
    if "@" not in ref:
        last = ref.rsplit("/", 1)[-1]
        if ":" not in last:
            ref += ":latest"
    first, _, rest = ref.partition("/")
    if not rest:
        return "docker.io/library/" + ref
    if "." not in first and ":" not in first and first != "localhost":
        return "docker.io/" + ref
    return ref


@dataclass(frozen=True, slots=True)
class PodFacts:
    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    spec: Json
    tolerations: tuple[Json, ...]
    cpu: float  # cores requested (the larger of the containers' sum and any init container, plus overhead)
    memory: float  # bytes requested, likewise
    images: tuple[str, ...]  # normalised, de-duplicated, app containers and init containers
    owner_kind: str | None
    owner_name: str | None
    owner_uid: str | None
    node_name: str | None
    phase: str | None
    created: datetime | None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def kube_proxy_sidecar(self) -> bool:
        return kube_proxy_injected(self.annotations)


def kube_proxy_injected(annotations: Mapping[str, Any]) -> bool:
    """Whether virtual nodes v2 add their kube-proxy sidecar to the pod's container group (and so to its cost): yes
    unless the pod's ``microsoft.containerinstance.virtualnode.injectkubeproxy`` is "false", or it is a confidential
    pod (it has a ``ccepolicy``), which never gets one (virtualnodesOnAzureContainerInstances, PodCustomizations.md)."""
    if annotations.get(CCE_POLICY):
        return False
    return str(annotations.get(INJECT_KUBE_PROXY, "")).strip().lower() != "false"


def _requests(container: Json, path: str) -> tuple[float, float]:
    resources = _mapping(container, "resources", path)
    requests = _mapping(resources, "requests", f"{path}.resources")
    limits = _mapping(resources, "limits", f"{path}.resources")
    # The API server defaults requests to limits; objects from a dump or a test may not have been defaulted.
    values = []
    for resource in ("cpu", "memory"):
        source = "requests" if resource in requests else "limits"
        raw = (requests if source == "requests" else limits).get(resource)
        values.append(quantity(raw, f"{path}.resources.{source}.{resource}") if raw is not None else 0.0)
    return values[0], values[1]


# Bounds on one pod, far beyond any real pod, so that the work per request is bounded: past them the request is
# refused (400) with the limit named. Kubernetes sets no count limits of its own here; a pod spec near these
# sizes would exceed etcd's 1.5 MiB object limit long before.
MAX_CONTAINERS = 1_000  # containers + initContainers
MAX_TOLERATIONS = 1_000
MAX_AFFINITY_TERMS = 1_000  # node-affinity terms and their match expressions/fields, required and preferred


def _affinity_terms(spec: Json) -> int:
    """How many node-affinity terms and expressions the pod carries (malformed shapes count as none here; the
    matching code reports them)."""
    affinity = spec.get("affinity")
    node_affinity = affinity.get("nodeAffinity") if isinstance(affinity, OBJECT) else None
    if not isinstance(node_affinity, OBJECT):
        return 0
    terms: list[Any] = []
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if isinstance(required, OBJECT) and isinstance(required.get("nodeSelectorTerms"), list):
        terms += required["nodeSelectorTerms"]
    preferred = node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution")
    if isinstance(preferred, list):
        terms += [p.get("preference") for p in preferred if isinstance(p, OBJECT)]
    count = len(terms)
    for term in terms:
        if isinstance(term, OBJECT):
            for key in ("matchExpressions", "matchFields"):
                value = term.get(key)
                count += len(value) if isinstance(value, list) else 0
    return count


def check_pod_limits(spec: Json, spec_path: str) -> None:
    """Refuse a pod beyond the bounds above, naming the bound."""
    containers = sum(len(v) for v in (spec.get("containers"), spec.get("initContainers")) if isinstance(v, list))
    if containers > MAX_CONTAINERS:
        raise ObjectError(f"{spec_path}.containers", f"{containers} containers and initContainers: more than the "
                          f"limit of {MAX_CONTAINERS} a request may carry")
    tolerations = spec.get("tolerations")
    if isinstance(tolerations, list) and len(tolerations) > MAX_TOLERATIONS:
        raise ObjectError(f"{spec_path}.tolerations", f"{len(tolerations)} tolerations: more than the limit of "
                          f"{MAX_TOLERATIONS} a request may carry")
    terms = _affinity_terms(spec)
    if terms > MAX_AFFINITY_TERMS:
        raise ObjectError(f"{spec_path}.affinity.nodeAffinity", f"{terms} terms and expressions: more than the "
                          f"limit of {MAX_AFFINITY_TERMS} a request may carry")


def pod_requests(spec: Json, spec_path: str = "spec") -> tuple[float, float]:
    """(cores, bytes) the pod requests, as kube-scheduler counts them: the larger of the containers' sum and the
    largest init container, plus the pod overhead. Raises :class:`ObjectError` naming a field it cannot read."""
    cpu = memory = init_cpu = init_memory = 0.0
    for field in ("containers", "initContainers"):
        for index, container in enumerate(_list(spec, field, spec_path)):
            item_path = f"{spec_path}.{field}[{index}]"
            if not isinstance(container, OBJECT):
                raise ObjectError(item_path, f"must be an object, got {type(container).__name__}")
            c_cpu, c_memory = _requests(container, item_path)
            if field == "containers":
                cpu += c_cpu
                memory += c_memory
            else:
                init_cpu = max(init_cpu, c_cpu)
                init_memory = max(init_memory, c_memory)
    overhead = _mapping(spec, "overhead", spec_path)
    cpu = max(cpu, init_cpu) + (quantity(overhead["cpu"], f"{spec_path}.overhead.cpu") if "cpu" in overhead else 0)
    memory = max(memory, init_memory) + (
        quantity(overhead["memory"], f"{spec_path}.overhead.memory") if "memory" in overhead else 0
    )
    return cpu, memory


@dataclass(frozen=True, slots=True)
class PodOwner:
    """The pod's controller owner (else its first owner reference): what "its workload" means everywhere."""

    kind: str | None = None
    name: str | None = None
    uid: str | None = None


NO_OWNER = PodOwner()


def pod_owner(metadata: Json, meta_path: str = "metadata") -> PodOwner:
    kind = name = uid = None
    for index, ref in enumerate(_list(metadata, "ownerReferences", meta_path)):
        # The controller; until one is found, the first reference that names anything.
        if isinstance(ref, OBJECT) and (ref.get("controller") or (kind is None and name is None and uid is None)):
            ref_path = f"{meta_path}.ownerReferences[{index}]"
            kind = _str(ref, "kind", ref_path) or None
            name = _str(ref, "name", ref_path) or None
            uid = _str(ref, "uid", ref_path) or None
    return NO_OWNER if kind is None and name is None and uid is None else PodOwner(kind, name, uid)


def pod_namespace(metadata: Json, meta_path: str = "metadata") -> str:
    """The pod's namespace; a pod without one (a manifest, a test object) is in "default", as kubectl puts it."""
    return _str(metadata, "namespace", meta_path, "default") or "default"


@dataclass(frozen=True, slots=True)
class SpecFacts:
    """What :func:`pod_facts` reads of a pod's spec: the same for every pod of a workload's template."""

    tolerations: tuple[Json, ...]
    cpu: float
    memory: float
    images: tuple[str, ...]
    node_name: str | None


def spec_facts(spec: Json, spec_path: str = "Pod.spec") -> SpecFacts:
    check_pod_limits(spec, spec_path)
    cpu, memory = pod_requests(spec, spec_path)
    images: dict[str, None] = {}  # insertion-ordered set: linear de-duplication
    for field in ("containers", "initContainers"):
        for index, container in enumerate(_list(spec, field, spec_path)):
            image = _str(container, "image", f"{spec_path}.{field}[{index}]")
            if image:
                images[normalise_image(image)] = None
    tolerations = _list(spec, "tolerations", spec_path)
    for index, toleration in enumerate(tolerations):
        if not isinstance(toleration, OBJECT):
            raise ObjectError(f"{spec_path}.tolerations[{index}]", "must be an object")
    return SpecFacts(tuple(tolerations), cpu, memory, tuple(images), _str(spec, "nodeName", spec_path) or None)


@dataclass(frozen=True, slots=True)
class SharedFacts:
    """What :func:`pod_facts` reads of the parts of a pod that a workload's replicas share: its spec, its controller,
    its labels and annotations (the pod template's, and the ReplicaSet's pod-template-hash)."""

    spec: SpecFacts
    owner: PodOwner
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


def shared_facts(metadata: Json, spec: Json, path: str = "Pod") -> SharedFacts:
    meta_path = f"{path}.metadata"
    return SharedFacts(
        spec_facts(spec, f"{path}.spec"), pod_owner(metadata, meta_path),
        _str_map(metadata, "labels", meta_path), _str_map(metadata, "annotations", meta_path),
    )


# (metadata, spec, path) -> SharedFacts: shared_facts, or a memo of it.
SharedReader = Callable[[Json, Json, str], SharedFacts]


def pod_facts(pod: Any, path: str = "Pod", read_shared: SharedReader = shared_facts) -> PodFacts:
    """The pod's facts; ``read_shared`` reads what replicas share (:func:`shared_facts`, or a memo of it)."""
    if not isinstance(pod, OBJECT):
        raise ObjectError(path, f"must be an object, got {type(pod).__name__}")
    metadata = _mapping(pod, "metadata", path)
    spec = _mapping(pod, "spec", path)
    status = _mapping(pod, "status", path)
    meta_path = f"{path}.metadata"
    shared = read_shared(metadata, spec, path)
    read, owner = shared.spec, shared.owner
    return PodFacts(
        namespace=pod_namespace(metadata, meta_path),
        name=_str(metadata, "name", meta_path) or _str(metadata, "generateName", meta_path),
        uid=_str(metadata, "uid", meta_path),
        labels=shared.labels,
        annotations=shared.annotations,
        spec=spec,
        tolerations=read.tolerations,
        cpu=read.cpu,
        memory=read.memory,
        images=read.images,
        owner_kind=owner.kind,
        owner_name=owner.name,
        owner_uid=owner.uid,
        node_name=read.node_name,
        phase=_str(status, "phase", f"{path}.status") or None,
        created=parse_time(metadata.get("creationTimestamp")),
    )


@dataclass(frozen=True, slots=True)
class NodeFacts:
    name: str
    labels: Mapping[str, str]
    taints: tuple[Json, ...]
    allocatable_cpu: float  # cores
    allocatable_memory: float  # bytes
    allocatable_pods: float | None  # pod slots; None when the node does not say
    ready: bool
    ready_since: datetime | None  # lastTransitionTime of Ready=True
    created: datetime | None
    unschedulable: bool
    provider_id: str | None
    images: Mapping[str, float]  # normalised image name -> size in bytes
    annotations: Mapping[str, str]


def node_facts(node: Any, path: str = "Node") -> NodeFacts:
    if not isinstance(node, OBJECT):
        raise ObjectError(path, f"must be an object, got {type(node).__name__}")
    metadata = _mapping(node, "metadata", path)
    spec = _mapping(node, "spec", path)
    status = _mapping(node, "status", path)
    name = _str(metadata, "name", f"{path}.metadata")
    if not name:
        raise ObjectError(f"{path}.metadata.name", "is required")
    allocatable = _mapping(status, "allocatable", f"{path}.status") or _mapping(status, "capacity", f"{path}.status")
    ready, ready_since = False, None
    for condition in _list(status, "conditions", f"{path}.status"):
        if isinstance(condition, OBJECT) and condition.get("type") == "Ready":
            ready = condition.get("status") == "True"
            ready_since = parse_time(condition.get("lastTransitionTime")) if ready else None
    images: dict[str, float] = {}
    for index, entry in enumerate(_list(status, "images", f"{path}.status")):
        if not isinstance(entry, OBJECT):
            continue
        size = entry.get("sizeBytes")
        size_bytes = 0.0
        if isinstance(size, int | float) and not isinstance(size, bool):
            try:
                size_bytes = float(size)
            except OverflowError:  # an int of hundreds of digits
                size_bytes = math.inf
            if not math.isfinite(size_bytes) or size_bytes < 0:
                raise ObjectError(f"{path}.status.images[{index}].sizeBytes", "is not a finite, non-negative size")
        names = entry.get("names")
        if isinstance(names, list):
            for image_name in names:
                if isinstance(image_name, str) and "@" not in image_name:
                    images[normalise_image(image_name)] = size_bytes
    taints: list[Json] = []
    for index, taint in enumerate(_list(spec, "taints", f"{path}.spec")):
        if isinstance(taint, OBJECT):
            for key in ("key", "value", "effect"):  # compared and hashed by the matching code
                _str(taint, key, f"{path}.spec.taints[{index}]")
            taints.append(taint)
    return NodeFacts(
        name=name,
        labels=_str_map(metadata, "labels", f"{path}.metadata"),
        taints=tuple(taints),
        allocatable_cpu=quantity(allocatable.get("cpu", 0), f"{path}.status.allocatable.cpu"),
        allocatable_memory=quantity(allocatable.get("memory", 0), f"{path}.status.allocatable.memory"),
        allocatable_pods=(
            quantity(allocatable["pods"], f"{path}.status.allocatable.pods") if "pods" in allocatable else None
        ),
        ready=ready,
        ready_since=ready_since,
        created=parse_time(metadata.get("creationTimestamp")),
        unschedulable=bool(spec.get("unschedulable", False)),
        provider_id=_str(spec, "providerID", f"{path}.spec") or None,
        images=images,
        annotations=_str_map(metadata, "annotations", f"{path}.metadata"),
    )


@dataclass(frozen=True, slots=True)
class ConfigMapFacts:
    namespace: str
    name: str
    annotations: Mapping[str, str]
    data: Mapping[str, str]


def config_map_facts(config_map: Any, path: str = "ConfigMap") -> ConfigMapFacts:
    if not isinstance(config_map, OBJECT):
        raise ObjectError(path, f"must be an object, got {type(config_map).__name__}")
    metadata = _mapping(config_map, "metadata", path)
    meta_path = f"{path}.metadata"
    return ConfigMapFacts(
        namespace=_str(metadata, "namespace", meta_path),
        name=_str(metadata, "name", meta_path),
        annotations=_str_map(metadata, "annotations", meta_path),
        data=_str_map(config_map, "data", path),
    )
