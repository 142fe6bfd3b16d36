"""Per-workload steering through pod annotations (set them in the pod template).

- ``tideover.io/spill``: ``never`` | ``while-pending`` (default) | ``when-full``
- ``tideover.io/priority``: ``critical`` | ``standard`` (default) | ``economy``
- ``tideover.io/max-wait-seconds``: seconds; overrides the priority class's wait budget
- ``tideover.io/max-virtual-replicas``: a whole number >= 0; at most this many pods of the pod's workload
  (its controller owner) on virtual nodes at once
- ``tideover.io/max-virtual-percent``: 0 to 100; at most this share of the workload's pods on virtual nodes

An invalid value never blocks a pod: it falls back to the default, and the problem is reported in the
decision's reason, the log and the ``tideover_invalid_annotations_total`` metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from extender.model.keys import MAX_VIRTUAL_PERCENT, MAX_VIRTUAL_REPLICAS, MAX_WAIT_SECONDS, PREFIX, PRIORITY, SPILL


class SpillPolicy(StrEnum):
    NEVER = "never"
    # Spill only while VM capacity the pod could use is pending (a scale-up in progress).
    WHILE_PENDING = "while-pending"
    # Spill whenever no VM fits: the seeds' plain toleration behaviour, for work that must run now.
    WHEN_FULL = "when-full"


class Priority(StrEnum):
    CRITICAL = "critical"
    STANDARD = "standard"
    ECONOMY = "economy"


@dataclass(frozen=True, slots=True)
class AnnotationProblem:
    annotation: str
    value: str
    problem: str

    def __str__(self) -> str:
        return f"annotation {self.annotation}={self.value!r} {self.problem}"


@dataclass(frozen=True, slots=True)
class WorkloadPolicy:
    spill: SpillPolicy = SpillPolicy.WHILE_PENDING
    priority: Priority = Priority.STANDARD
    max_wait_seconds: float | None = None
    max_virtual_replicas: int | None = None  # pods of the workload on virtual nodes at once, at most
    max_virtual_percent: float | None = None  # percent (0..100) of the workload's pods, at most
    problems: tuple[AnnotationProblem, ...] = ()


DEFAULT_POLICY = WorkloadPolicy()

_E = TypeVar("_E", bound=StrEnum)


def _choice(
    annotations: Mapping[str, str], key: str, enum: type[_E], default: _E, problems: list[AnnotationProblem]
) -> _E:
    raw = annotations.get(key)
    if raw is None:
        return default
    try:
        return enum(raw.strip().lower())
    except ValueError:
        allowed = " | ".join(member.value for member in enum)
        problems.append(AnnotationProblem(key, raw, f"is not one of {allowed}; using {default.value}"))
        return default


def workload_policy(annotations: Mapping[str, str] | None) -> WorkloadPolicy:
    """Read a pod's tideover annotations. Never raises: bad values are defaulted and recorded."""
    if not annotations:
        return DEFAULT_POLICY
    if not any(key.startswith(PREFIX) for key in annotations):
        return DEFAULT_POLICY
    problems: list[AnnotationProblem] = []
    spill = _choice(annotations, SPILL, SpillPolicy, SpillPolicy.WHILE_PENDING, problems)
    priority = _choice(annotations, PRIORITY, Priority, Priority.STANDARD, problems)
    max_wait: float | None = None
    raw_wait = annotations.get(MAX_WAIT_SECONDS)
    if raw_wait is not None:
        try:
            max_wait = float(raw_wait.strip())
        except ValueError:
            max_wait = None
        if max_wait is None or not math.isfinite(max_wait) or max_wait < 0:
            problems.append(
                AnnotationProblem(
                    MAX_WAIT_SECONDS, raw_wait, "is not a non-negative number of seconds; using the class budget"
                )
            )
            max_wait = None
    return WorkloadPolicy(
        spill=spill,
        priority=priority,
        max_wait_seconds=max_wait,
        max_virtual_replicas=_max_virtual_replicas(annotations, problems),
        max_virtual_percent=_max_virtual_percent(annotations, problems),
        problems=tuple(problems),
    )


def _max_virtual_replicas(annotations: Mapping[str, str], problems: list[AnnotationProblem]) -> int | None:
    raw = annotations.get(MAX_VIRTUAL_REPLICAS)
    if raw is None:
        return None
    text = raw.strip()
    if text.isascii() and text.isdigit():  # digits only: no sign, decimal point or exponent
        try:
            return int(text)
        except ValueError:  # more digits than int() takes
            pass
    problems.append(AnnotationProblem(MAX_VIRTUAL_REPLICAS, raw, "is not a whole number >= 0; no replica cap"))
    return None


def _max_virtual_percent(annotations: Mapping[str, str], problems: list[AnnotationProblem]) -> float | None:
    raw = annotations.get(MAX_VIRTUAL_PERCENT)
    if raw is None:
        return None
    try:
        percent = float(raw.strip().removesuffix("%").strip())
    except ValueError:
        percent = math.nan
    if not 0 <= percent <= 100:  # also NaN
        problems.append(AnnotationProblem(MAX_VIRTUAL_PERCENT, raw, "is not a number from 0 to 100; no percent cap"))
        return None
    return percent
