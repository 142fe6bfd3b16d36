"""tideover's alerts (charts/tideover/files/tideover-alerts.yaml): `promtool check rules` and `promtool test rules`
(tests/alerts/tideover-alerts.test.yaml: each alert on synthetic series), with the pinned Prometheus
(e2e/versions.toml [prometheus], built on first use; skipped without Go); every metric they use is one tideover
exports; the chart's PrometheusRule carries the same groups.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from e2e.harness import chart, components
from tests.support.observability import EXPORTED, METRIC, promtool

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "charts" / "tideover" / "files" / "tideover-alerts.yaml"
RULE_TESTS = ROOT / "tests" / "alerts" / "tideover-alerts.test.yaml"
def _run(*args: str) -> str:
    proc = subprocess.run([str(promtool()), *args], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"promtool {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def _rules() -> list[dict[str, str]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    out = _run("check", "rules", str(RULES))
    assert f"SUCCESS: {len(_rules())} rules found" in out


def test_promtool_test_rules() -> None:
    assert "SUCCESS" in _run("test", "rules", str(RULE_TESTS))


def test_every_alert_has_a_unit_test() -> None:
    tested = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert tested == {rule["alert"] for rule in _rules()}, "each alert needs a test in which it fires"


def test_alerts_use_exported_metrics_only() -> None:
    used = {name for rule in _rules() for name in METRIC.findall(rule["expr"])}
    assert used <= EXPORTED, f"not exported by tideover: {sorted(used - EXPORTED)}"


def test_exported_names_are_the_registry_s() -> None:
    """EXPORTED is what a Metrics registry with a snapshot exports (so the list above cannot go stale)."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from extender.model.config import TideoverConfig
    from extender.telemetry.metrics import Metrics
    from tests.support.factories import snapshot, status_yaml, virtual_node, vm_node

    config = TideoverConfig.model_validate({"virtualNodes": {"namespaceSpendCapsPerHour": {"batch": 5.0}}})
    snap = replace(snapshot([vm_node("vm-1"), virtual_node()], status_yaml("InProgress", target=4)),
                   virtual_spend_by_namespace={"batch": 1.0})
    metrics = Metrics()
    metrics.watch_snapshot(lambda: snap, lambda: {"nodes": 1.0}, config.virtual_nodes)
    metrics.decisions.labels("filter", "vm-fits").inc()
    metrics.request_seconds.labels("filter").observe(0.001)
    for counter in (metrics.bad_requests.labels("filter", "400"), metrics.invalid_annotations.labels("x"),
                    metrics.unknown_nodes.labels("filter"), metrics.returns.labels("evicted"),
                    metrics.deletion_cost_patches, metrics.virtual_pod_seconds, metrics.virtual_spend):
        counter.inc()
    text = generate_latest(metrics.registry).decode()
    names = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    names = {n for n in names if not n.endswith("_created")}
    assert EXPORTED - {"up"} == names


def test_chart_prometheus_rule_carries_the_rules_file() -> None:
    if not (components.tool_dir("helm") / "helm").is_file() and shutil.which("go") is None:
        pytest.skip("helm is not built and Go is not installed to build it")
    rendered = chart.template(sets={"prometheusRule.enabled": "true"})
    (rule,) = [o for o in yaml.safe_load_all(rendered) if o and o["kind"] == "PrometheusRule"]
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
