"""Parse the status cluster-autoscaler (CA) publishes in its ConfigMap (``cluster-autoscaler-status``, key
``status``). Pure: text in, dataclasses out; no I/O and no Kubernetes client.

CA has written two formats:

* **YAML** (CA about 1.30 on; kubernetes/autoscaler PR #6375): the ``ClusterAutoscalerStatus`` type of
  ``cluster-autoscaler/clusterstate/api/types.go``: ``time``, ``autoscalerStatus`` (Initializing | Running),
  ``clusterWide{health, scaleUp, scaleDown}`` and ``nodeGroups[]{name, health{status, nodeCounts{registered{
  total, ready, notStarted, beingDeleted, unready{total}}, longUnregistered, unregistered},
  cloudProviderTarget, minSize, maxSize}, scaleUp{status, backoffInfo{errorCode, errorMessage},
  lastTransitionTime}}``. Releases have marshalled it with gopkg.in/yaml.v2 (fields in struct order, zero
  times left out) and with sigs.k8s.io/yaml (keys sorted, zero times written as ``null``, ``backoffInfo:
  {}``); both parse the same here.
* **Text** (older releases): ``Cluster-autoscaler status at <Go time>:`` then a ``Cluster-wide:`` block and
  a ``NodeGroups:`` block of ``Name:`` / ``Health:`` / ``ScaleUp:`` / ``ScaleDown:`` lines, each condition
  followed by ``LastProbeTime:`` and ``LastTransitionTime:`` lines, e.g.
  ``ScaleUp:     InProgress (ready=1 cloudProviderTarget=3)`` and ``Health:      Healthy (ready=1 unready=0
  notStarted=0 longNotStarted=0 registered=1 longUnregistered=0 cloudProviderTarget=3 (minSize=1,
  maxSize=3))``. The text has no ``unregistered``/``beingDeleted`` counts and no backoff details: those
  fields are ``None``. A text status whose whole body is ``Initializing`` (written while CA starts) gives
  ``autoscaler_status="Initializing"``.

Unknown extra fields and unknown status values are kept or ignored, never an error (CA adds fields and
values over time). Input that is neither format, or whose known fields have the wrong type, raises
:class:`AutoscalerStatusError` naming the field path (YAML) or line number (text).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Literal

import yaml

__all__ = [
    "TEXT_PREFIX",
    "AutoscalerStatus",
    "AutoscalerStatusError",
    "NodeGroupStatus",
    "parse_autoscaler_status",
    "parse_status_time",
]

TEXT_PREFIX = "Cluster-autoscaler status at"
# etcd stores at most about 1.5 MB per object, and CA truncates its status to 1 MB: anything far larger is
# not a status, and YAML of that size is slow to load.
_MAX_STATUS_CHARS = 4_000_000
_YAML_KEYS = frozenset({"nodeGroups", "clusterWide", "autoscalerStatus"})

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class AutoscalerStatusError(ValueError):
    """The status cannot be parsed; the message says what is wrong and where."""


@dataclass(frozen=True, slots=True)
class NodeGroupStatus:
    name: str
    health: str | None  # "Healthy" / "Unhealthy" ...
    registered: int | None  # nodeCounts.registered.total (text: registered=)
    ready: int | None
    not_started: int | None
    unready: int | None
    being_deleted: int | None
    long_unregistered: int | None
    unregistered: int | None
    cloud_provider_target: int | None
    min_size: int | None
    max_size: int | None
    scale_up: str | None  # raw: InProgress, NoActivity, NotNeeded, Needed, Backoff, or anything newer
    scale_up_since: datetime | None  # scaleUp.lastTransitionTime (tz-aware UTC)
    backoff_error_code: str | None
    backoff_error_message: str | None


@dataclass(frozen=True, slots=True)
class AutoscalerStatus:
    format: Literal["yaml", "text"]
    time: datetime | None
    autoscaler_status: str | None  # Initializing | Running
    cluster_scale_up: str | None
    node_groups: Mapping[str, NodeGroupStatus]  # by node group name


def parse_autoscaler_status(text: str) -> AutoscalerStatus:
    """Parse CA's status, detecting the format; raise :class:`AutoscalerStatusError` if it is neither."""
    if not isinstance(text, str):
        raise AutoscalerStatusError(f"status must be a string, got {type(text).__name__}")
    if len(text) > _MAX_STATUS_CHARS:
        raise AutoscalerStatusError(f"status is {len(text)} characters long, over {_MAX_STATUS_CHARS}")
    if not text.strip():
        raise AutoscalerStatusError("status is empty")
    dedented = textwrap.dedent(text).lstrip("\r\n")
    if dedented.lstrip().startswith(TEXT_PREFIX):
        return _parse_text(dedented)
    try:
        document = yaml.load(text, Loader=_Loader)  # a SafeLoader (C or pure Python)
    except yaml.YAMLError as exc:
        raise AutoscalerStatusError(
            f"status is not the text format (it does not start with {TEXT_PREFIX!r}) and not valid YAML: "
            f"{_describe_yaml_error(exc)}"
        ) from exc
    if isinstance(document, dict) and _YAML_KEYS & set(document):
        return _parse_yaml(document)
    if isinstance(document, dict):
        keys = ", ".join(sorted(str(key) for key in document)[:8]) or "none"
        found = f"a YAML mapping without any of them (keys: {keys})"
    else:
        found = f"YAML {type(document).__name__} {_short(document)}"
    raise AutoscalerStatusError(
        "unrecognised status: expected a YAML mapping with nodeGroups, clusterWide or autoscalerStatus, "
        f"or text starting with {TEXT_PREFIX!r}; got {found}"
    )


# ---------------------------------------------------------------------------------------------------------
# time values

# Go's time.Time.String(): "2023-11-29 13:34:01.090096765 +0000 UTC m=+1081361.519233711" (the monotonic
# "m=" part only in memory-derived values); metav1.Time in JSON/YAML: RFC 3339 "2023-12-20T10:52:04Z".
_TIME_RE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[ T](?P<clock>\d{2}:\d{2}:\d{2})(?:[.,](?P<fraction>\d+))?"
    r"\s*(?P<offset>Z|[+-]\d{2}:?\d{2})?"
    r"(?:\s+(?P<zone>[A-Za-z][A-Za-z0-9_/+-]*|[+-]\d{2,4}))?"
    r"(?:\s+m=[+-]\d+(?:\.\d+)?)?"
)


def parse_status_time(value: str) -> datetime | None:
    """Parse a time as CA writes it (Go ``time.Time`` text or RFC 3339) to an aware UTC datetime.

    Go's zero time (year 1), which CA writes for "never", gives ``None``. Raises ``ValueError`` when the
    value is not a time. Also used for the ConfigMap's ``cluster-autoscaler.kubernetes.io/last-updated``
    annotation, which is in the same Go format.
    """
    match = _TIME_RE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not a time: {value!r}")
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    naive = datetime.fromisoformat(f"{match['date']}T{match['clock']}.{fraction}")
    if naive.year == 1:
        return None
    offset = match["offset"]
    if offset is None or offset == "Z":
        tz: timezone = UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    return naive.replace(tzinfo=tz).astimezone(UTC)


def _time_value(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return None if aware.year == 1 else aware.astimezone(UTC)
    if isinstance(value, date):  # a bare YAML date: midnight UTC
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return parse_status_time(value)
        except ValueError as exc:
            raise AutoscalerStatusError(f"{where}: {exc}") from exc
    raise AutoscalerStatusError(f"{where}: expected a time, got {type(value).__name__} {_short(value)}")


# ---------------------------------------------------------------------------------------------------------
# YAML format


def _parse_yaml(document: dict[Any, Any]) -> AutoscalerStatus:
    cluster_wide = _mapping(document, "clusterWide", "")
    cluster_scale_up = _mapping(cluster_wide, "scaleUp", "clusterWide")
    groups_value = document.get("nodeGroups")
    if groups_value is None:
        groups_value = []
    if not isinstance(groups_value, list):
        raise AutoscalerStatusError(
            f"nodeGroups: expected a list, got {type(groups_value).__name__} {_short(groups_value)}"
        )
    groups: dict[str, NodeGroupStatus] = {}
    for index, item in enumerate(groups_value):
        group = _yaml_node_group(item, f"nodeGroups[{index}]")
        if group.name in groups:
            raise AutoscalerStatusError(f"nodeGroups[{index}]: node group {group.name!r} is listed twice")
        groups[group.name] = group
    return AutoscalerStatus(
        format="yaml",
        time=_time_value(document.get("time"), "time"),
        autoscaler_status=_string(document, "autoscalerStatus", ""),
        cluster_scale_up=_string(cluster_scale_up, "status", "clusterWide.scaleUp"),
        node_groups=MappingProxyType(groups),
    )


def _yaml_node_group(item: object, path: str) -> NodeGroupStatus:
    if not isinstance(item, dict):
        raise AutoscalerStatusError(f"{path}: expected a mapping, got {type(item).__name__} {_short(item)}")
    name = _string(item, "name", path)
    if not name:
        raise AutoscalerStatusError(f"{path}: node group has no name")
    path = f"{path} ({name})"
    health = _mapping(item, "health", path)
    health_path = f"{path}.health"
    counts = _mapping(health, "nodeCounts", health_path)
    counts_path = f"{health_path}.nodeCounts"
    registered = _mapping(counts, "registered", counts_path)
    registered_path = f"{counts_path}.registered"
    unready_value = registered.get("unready")
    if isinstance(unready_value, dict):  # {total, resourceUnready}
        unready = _integer(unready_value, "total", f"{registered_path}.unready")
    else:  # a plain count in some releases
        unready = _integer(registered, "unready", registered_path)
    scale_up = _mapping(item, "scaleUp", path)
    scale_up_path = f"{path}.scaleUp"
    backoff = _mapping(scale_up, "backoffInfo", scale_up_path)
    backoff_path = f"{scale_up_path}.backoffInfo"
    return NodeGroupStatus(
        name=name,
        health=_string(health, "status", health_path),
        registered=_integer(registered, "total", registered_path),
        ready=_integer(registered, "ready", registered_path),
        not_started=_integer(registered, "notStarted", registered_path),
        unready=unready,
        being_deleted=_integer(registered, "beingDeleted", registered_path),
        long_unregistered=_integer(counts, "longUnregistered", counts_path),
        unregistered=_integer(counts, "unregistered", counts_path),
        cloud_provider_target=_integer(health, "cloudProviderTarget", health_path),
        min_size=_integer(health, "minSize", health_path),
        max_size=_integer(health, "maxSize", health_path),
        scale_up=_string(scale_up, "status", scale_up_path),
        scale_up_since=_time_value(scale_up.get("lastTransitionTime"), f"{scale_up_path}.lastTransitionTime"),
        backoff_error_code=_string(backoff, "errorCode", backoff_path),
        backoff_error_message=_string(backoff, "errorMessage", backoff_path),
    )


def _field(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _mapping(container: Mapping[Any, Any], key: str, parent: str) -> Mapping[Any, Any]:
    value = container.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AutoscalerStatusError(
            f"{_field(parent, key)}: expected a mapping, got {type(value).__name__} {_short(value)}"
        )
    return value


def _string(container: Mapping[Any, Any], key: str, parent: str) -> str | None:
    value = container.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise AutoscalerStatusError(
            f"{_field(parent, key)}: expected a string, got {type(value).__name__} {_short(value)}"
        )
    return value


def _integer(container: Mapping[Any, Any], key: str, parent: str) -> int | None:
    value = container.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise AutoscalerStatusError(
            f"{_field(parent, key)}: expected an integer, got {type(value).__name__} {_short(value)}"
        )
    if value < 0:
        raise AutoscalerStatusError(f"{_field(parent, key)}: expected a count, got {value}")
    return value


# ---------------------------------------------------------------------------------------------------------
# text format

_HEADER_RE = re.compile(re.escape(TEXT_PREFIX) + r"\s+(?P<time>.+?):\s*")
_LINE_RE = re.compile(r"(?P<key>[A-Za-z][A-Za-z0-9-]*):(?:\s+(?P<value>.*))?")
_CONDITION_RE = re.compile(r"(?P<status>[^\s(]+)(?:\s+\((?P<message>.*)\))?")
_COUNT_RE = re.compile(r"\b(?P<key>[A-Za-z]+)=(?P<value>\d+)\b")
_CONDITIONS = frozenset({"Health", "ScaleUp", "ScaleDown"})


@dataclass(slots=True)
class _TextCondition:
    status: str
    counts: dict[str, int]
    last_transition: datetime | None = None


@dataclass(slots=True)
class _TextGroup:
    name: str
    line: int
    conditions: dict[str, _TextCondition]


def _parse_text(text: str) -> AutoscalerStatus:
    """The text format, a line-oriented state machine (header, then Cluster-wide and NodeGroups sections). Kept in
    one function: its states share the position, the current group and the line's error message, and the
    format's grammar reads top to bottom here as CA writes it."""
    lines = text.splitlines()
    header = _HEADER_RE.fullmatch(lines[0].strip())
    if header is None:
        raise AutoscalerStatusError(
            f"line 1: expected '{TEXT_PREFIX} <time>:', got {_short(lines[0].strip())}"
        )
    try:
        status_time = parse_status_time(header["time"])
    except ValueError as exc:
        raise AutoscalerStatusError(f"line 1: status time: {exc}") from exc

    body = [(number, line.strip()) for number, line in enumerate(lines[1:], start=2) if line.strip()]
    if [line for _, line in body] == ["Initializing"]:
        return AutoscalerStatus("text", status_time, "Initializing", None, MappingProxyType({}))

    section: Literal["cluster", "groups"] | None = None
    cluster: dict[str, _TextCondition] = {}
    groups: list[_TextGroup] = []
    current: _TextCondition | None = None
    for number, line in body:
        if line == "Cluster-wide:":
            section, current = "cluster", None
            continue
        if line == "NodeGroups:":
            section, current = "groups", None
            continue
        match = _LINE_RE.fullmatch(line)
        if match is None:
            raise AutoscalerStatusError(f"line {number}: expected 'Key: value', got {_short(line)}")
        key, value = match["key"], (match["value"] or "").strip()
        if section is None:
            raise AutoscalerStatusError(
                f"line {number}: {key!r} before any 'Cluster-wide:' or 'NodeGroups:' section"
            )
        if key == "Name" and section == "groups":
            if not value:
                raise AutoscalerStatusError(f"line {number}: node group has no name")
            groups.append(_TextGroup(value, number, {}))
            current = None
        elif key in _CONDITIONS:
            current = _text_condition(value, key, number)
            if section == "cluster":
                cluster[key] = current
            elif groups:
                groups[-1].conditions[key] = current
            else:
                raise AutoscalerStatusError(f"line {number}: {key} under NodeGroups before any 'Name:'")
        elif key in ("LastProbeTime", "LastTransitionTime"):
            try:
                when = parse_status_time(value)
            except ValueError as exc:
                raise AutoscalerStatusError(f"line {number}: {key}: {exc}") from exc
            if current is not None and key == "LastTransitionTime":
                current.last_transition = when
        # any other "Key: value" line is a field this parser does not know: ignored

    node_groups: dict[str, NodeGroupStatus] = {}
    for group in groups:
        if group.name in node_groups:
            raise AutoscalerStatusError(f"line {group.line}: node group {group.name!r} is listed twice")
        node_groups[group.name] = _text_node_group(group)
    cluster_scale_up = cluster.get("ScaleUp")
    return AutoscalerStatus(
        format="text",
        time=status_time,
        autoscaler_status=None,
        cluster_scale_up=cluster_scale_up.status if cluster_scale_up else None,
        node_groups=MappingProxyType(node_groups),
    )


def _text_condition(value: str, key: str, number: int) -> _TextCondition:
    match = _CONDITION_RE.fullmatch(value)
    if match is None:
        raise AutoscalerStatusError(f"line {number}: {key}: expected 'Status (details)', got {_short(value)}")
    counts = {m["key"]: int(m["value"]) for m in _COUNT_RE.finditer(match["message"] or "")}
    return _TextCondition(match["status"], counts)


def _text_node_group(group: _TextGroup) -> NodeGroupStatus:
    health = group.conditions.get("Health")
    scale_up = group.conditions.get("ScaleUp")
    counts = health.counts if health else {}
    target = counts.get("cloudProviderTarget")
    if target is None and scale_up is not None:
        target = scale_up.counts.get("cloudProviderTarget")
    health_status = health.status if health and health.status != "<unknown>" else None
    return NodeGroupStatus(
        name=group.name,
        health=health_status,
        registered=counts.get("registered"),
        ready=counts.get("ready"),
        not_started=counts.get("notStarted"),
        unready=counts.get("unready"),
        being_deleted=None,
        long_unregistered=counts.get("longUnregistered"),
        unregistered=None,
        cloud_provider_target=target,
        # "(minSize=0, maxSize=5)"; the first releases wrote "(min=5, max=5)"
        min_size=counts.get("minSize", counts.get("min")),
        max_size=counts.get("maxSize", counts.get("max")),
        scale_up=scale_up.status if scale_up else None,
        scale_up_since=scale_up.last_transition if scale_up else None,
        backoff_error_code=None,
        backoff_error_message=None,
    )


# ---------------------------------------------------------------------------------------------------------


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)


@dataclass(frozen=True, slots=True)
class AutoscalerStatusRead:
    """What tideover read of the autoscaler's status ConfigMap: the parsed status, when it was written, and why
    there is no usable status when there is none."""

    status: AutoscalerStatus | None
    updated_at: datetime | None = None
    problem: str | None = None

    @property
    def config_map_missing(self) -> bool:
        """No status ConfigMap at all (not one that could not be read): no cluster-autoscaler writes one here."""
        return self.status is None and self.problem in (None, NO_CONFIG_MAP)


# The problem of a read that found no ConfigMap.
NO_CONFIG_MAP = "status ConfigMap not found"
NO_STATUS_READ = AutoscalerStatusRead(None)
