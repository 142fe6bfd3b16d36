"""Demand traces: per workload, desired replicas over time (a Job's parallelism), its pods' requests and
tideover annotations. Read from YAML (the :class:`Trace` model, camelCase keys) or CSV (one row per change).

Bad input is a :class:`TraceError` listing every problem, each naming the field (YAML: its path; CSV: row and
column), never a traceback.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from extender.simulate.bridge import format_validation_error
from extender.simulate.cluster import ClusterSpec, Duration, Int, Model, NonNegativeFloat, PositiveFloat

MAX_TRACE_BYTES = 8 << 20


class TraceError(Exception):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{source}: {len(problems)} problem(s):\n{shown}{more}")


class Step(Model):
    at_seconds: NonNegativeFloat
    replicas: Int = Field(ge=0, le=100_000)


class Workload(Model):
    name: str = Field(min_length=1, max_length=63)
    kind: Literal["Deployment", "Job"] = "Deployment"
    namespace: str = Field(default="default", min_length=1)
    cpu: PositiveFloat  # cores each pod requests
    memory_gib: PositiveFloat  # GiB each pod requests
    # tideover.io/* annotations on the pods (spill policy, priority, max-wait-seconds, caps). A tideover policy
    # that compares spill policies sets tideover.io/spill itself.
    annotations: dict[str, str] = Field(default_factory=dict)
    # The seeds' recipe: tolerate the virtual node and prefer VMs. False: the pods never reach the virtual node.
    tolerate_virtual: bool = True
    # Desired replicas (a Job: its parallelism) from each time on; the first step is the start.
    steps: list[Step] = Field(min_length=1)
    # Jobs: pods to complete, and how long one runs.
    completions: Int | None = Field(default=None, ge=1)
    run: Duration | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Workload:
        times = [step.at_seconds for step in self.steps]
        if times != sorted(times):
            raise ValueError("steps must be in time order")
        if self.kind == "Job" and (self.completions is None or self.run is None):
            raise ValueError("a Job needs completions and run (how long a pod runs)")
        if self.kind == "Deployment" and (self.completions is not None or self.run is not None):
            raise ValueError("completions and run are for Jobs; a Deployment's pods run until scaled down")
        return self


class Trace(Model):
    name: str = "trace"
    description: str = ""
    # Seconds simulated; unset: the last step plus 30 minutes.
    duration_seconds: PositiveFloat | None = None
    workloads: list[Workload] = Field(min_length=1)
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)

    @model_validator(mode="after")
    def _unique(self) -> Trace:
        keys = [(w.namespace, w.name) for w in self.workloads]
        repeated = sorted({f"{ns}/{name}" for ns, name in keys if keys.count((ns, name)) > 1})
        if repeated:
            raise ValueError(f"workload names must be unique per namespace; repeated: {', '.join(repeated)}")
        last = max(step.at_seconds for w in self.workloads for step in w.steps)
        if self.duration_seconds is not None and last >= self.duration_seconds:
            raise ValueError(f"durationSeconds {self.duration_seconds:g} must be after the last step ({last:g})")
        return self

    @property
    def duration(self) -> float:
        if self.duration_seconds is not None:
            return self.duration_seconds
        return max(step.at_seconds for w in self.workloads for step in w.steps) + 1800.0


def parse_trace(data: Any, source: str) -> Trace:
    if not isinstance(data, Mapping):
        raise TraceError(source, [f"(top level): must be a mapping, got {type(data).__name__}"])
    try:
        return Trace.model_validate(data)
    except ValidationError as error:
        raise TraceError(source, format_validation_error(error)) from None


def load_trace(path: Path, cluster: ClusterSpec | None = None) -> Trace:
    """A trace from a ``.yaml``/``.yml``/``.json`` or ``.csv`` file; ``cluster`` replaces the file's own."""
    try:
        raw = path.read_bytes() if path.stat().st_size <= MAX_TRACE_BYTES else None
    except OSError as error:
        raise TraceError(str(path), [f"cannot read: {error.strerror or error}"]) from None
    if raw is None:
        raise TraceError(str(path), [f"larger than {MAX_TRACE_BYTES} bytes"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TraceError(str(path), [f"byte {error.start}: not UTF-8 text"]) from None
    if path.suffix.lower() == ".csv":
        trace = parse_csv(text, str(path))
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise TraceError(str(path), [f"not valid YAML: {error}"]) from None
        trace = parse_trace(data, str(path))
    return trace if cluster is None else trace.model_copy(update={"cluster": cluster})


# CSV: one row per change of a workload's replicas. The workload's attributes may be given on any of its rows;
# rows that give one must agree.
CSV_REQUIRED = ("time_seconds", "workload", "replicas")
CSV_ATTRIBUTES = {
    "kind": "kind", "namespace": "namespace", "cpu": "cpu", "memory_gib": "memoryGib",
    "completions": "completions", "run_seconds": "run", "spill": "tideover.io/spill",
    "priority": "tideover.io/priority", "max_wait_seconds": "tideover.io/max-wait-seconds",
    "tolerate_virtual": "tolerateVirtual",
}


def parse_csv(text: str, source: str) -> Trace:
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    problems = [f"header: missing column {name}" for name in CSV_REQUIRED if name not in header]
    problems += [f"header: unknown column {name} (known: {', '.join([*CSV_REQUIRED, *CSV_ATTRIBUTES])})"
                 for name in header if name not in CSV_REQUIRED and name not in CSV_ATTRIBUTES]
    if problems:
        raise TraceError(source, problems)
    workloads: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(reader, start=2):
        row = {key.strip(): (value or "").strip() for key, value in row.items() if key is not None}
        _csv_row(row, number, workloads, problems)
    if problems:
        raise TraceError(source, problems)
    data = {"name": Path(source).stem, "workloads": [_csv_workload(w) for w in workloads.values()]}
    try:
        return Trace.model_validate(data)
    except ValidationError as error:
        raise TraceError(source, [_csv_location(p, list(workloads)) for p in format_validation_error(error)]) from None


def _csv_row(row: dict[str, str], number: int, workloads: dict[str, dict[str, Any]], problems: list[str]) -> None:
    name = row.get("workload", "")
    if not name:
        problems.append(f"row {number}, column workload: empty")
        return
    entry = workloads.setdefault(name, {"name": name, "steps": [], "attrs": {}, "rows": {}})
    entry["steps"].append({"atSeconds": row.get("time_seconds", ""), "replicas": row.get("replicas", "")})
    for column, key in CSV_ATTRIBUTES.items():
        value = row.get(column, "")
        if not value:
            continue
        previous = entry["attrs"].get(key)
        if previous is not None and previous != value:
            problems.append(f"row {number}, column {column}: {value!r} differs from {previous!r} on row "
                            f"{entry['rows'][key]} for workload {name}")
            continue
        entry["attrs"][key] = value
        entry["rows"].setdefault(key, number)


def _csv_workload(entry: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": entry["name"], "steps": entry["steps"]}
    annotations = {}
    for key, value in entry["attrs"].items():
        if key.startswith("tideover.io/"):
            annotations[key] = value
        elif key == "run":
            out["run"] = {"medianSeconds": value}
        elif key == "tolerateVirtual":
            out[key] = value.lower() in ("true", "yes", "1")
        else:
            out[key] = value
    out["annotations"] = annotations
    return out


def _csv_location(problem: str, names: list[str]) -> str:
    """``workloads[0].steps[2].replicas: ...`` -> ``workload web, change 3, column replicas: ...``."""
    path, _, message = problem.partition(": ")
    parts = path.replace("]", "").split(".")
    head = parts[0]
    if head.startswith("workloads[") and len(names) > int(head.removeprefix("workloads[")):
        where = f"workload {names[int(head.removeprefix('workloads['))]}"
        rest = parts[1:]
        if rest and rest[0].startswith("steps["):
            where += f", change {int(rest[0].removeprefix('steps[')) + 1}"
            rest = rest[1:]
        columns = {"atSeconds": "time_seconds", "memoryGib": "memory_gib", "run": "run_seconds"}
        column = columns.get(rest[0], rest[0]) if rest else ""
        return f"{where}{', column ' + column if column else ''}: {message}"
    return problem
