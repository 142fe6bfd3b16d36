"""``tideover simulate``: run a scenario or trace under each policy and print or write the comparison."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import ValidationError

from extender.simulate.bridge import ConfigError, TideoverConfig, format_validation_error, load_config
from extender.simulate.cluster import ClusterSpec
from extender.simulate.engine import simulate
from extender.simulate.policies import Policy, select
from extender.simulate.report import Comparison, summary_lines, table, write_report
from extender.simulate.results import summarize
from extender.simulate.scenarios import SCENARIOS, scenario
from extender.simulate.trace import Trace, TraceError, load_trace


def compare(trace: Trace, config: TideoverConfig, policies: Sequence[Policy], seed: int) -> Comparison:
    """Every policy on the same trace, cluster and seed."""
    started = time.perf_counter()
    results = [summarize(simulate(trace, config, policy, seed)) for policy in policies]
    return Comparison(trace, seed, results, time.perf_counter() - started)


def load_cluster(path: Path) -> ClusterSpec:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise TraceError(str(path), [f"cannot read: {error}"]) from None
    try:
        return ClusterSpec.model_validate(data or {})
    except ValidationError as error:
        raise TraceError(str(path), format_validation_error(error)) from None


def with_duration(trace: Trace, seconds: float | None) -> Trace:
    if seconds is None:
        return trace
    data = trace.model_dump(by_alias=True)
    data["durationSeconds"] = seconds
    try:
        return Trace.model_validate(data)
    except ValidationError as error:
        raise TraceError("--duration", format_validation_error(error)) from None


def run(
    *, scenario_name: str | None, trace_path: Path | None, cluster_path: Path | None, config_path: Path | None,
    seed: int, policies: str | None, report: Path | None, as_json: bool, duration: float | None = None,
) -> int:
    try:
        config = load_config(config_path)
        cluster = load_cluster(cluster_path) if cluster_path else None
        if trace_path is not None:
            trace = load_trace(trace_path, cluster)
        else:
            trace = scenario(scenario_name or "seed-001", seed)
            if cluster is not None:
                trace = trace.model_copy(update={"cluster": cluster})
        trace = with_duration(trace, duration)
        chosen = select([key.strip() for key in policies.split(",") if key.strip()] if policies else None)
    except (ConfigError, TraceError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    comparison = compare(trace, config, chosen, seed)
    if report is not None:
        try:
            written = write_report(comparison, report)
        except RuntimeError as error:  # no matplotlib
            print(f"error: {error}", file=sys.stderr)
            return 2
        if not as_json:
            print(f"wrote {', '.join(str(p) for p in written)}")
    if as_json:
        print(json.dumps(comparison.as_json(series=False), indent=1))
    else:
        print("\n".join(summary_lines(comparison)))
        print()
        print(table(comparison))
    return 0


def scenario_names() -> list[str]:
    return list(SCENARIOS)
