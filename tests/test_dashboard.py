"""The Grafana dashboard (charts/tideover/files/tideover-dashboard.json): the panels issue 13 asks for, every query
valid PromQL (promtool parses them, as recording rules, with the pinned Prometheus) over metrics tideover exports,
and the chart's ConfigMap carrying it. e2e/scenarios/test_observability_e2e.py evaluates every query against a real
Prometheus scraping a real tideover during a burst."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from e2e.harness import chart
from tests.support.observability import EXPORTED, METRIC, promtool

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "charts" / "tideover" / "files" / "tideover-dashboard.json"
# What the issue lists, by panel title.
REQUIRED_PANELS = (
    "Spill window and stuck scale-ups per pool", "Capacity state per pool", "Capacity ETA per pool",
    "Pods on virtual nodes",
    "Decisions by outcome", "Virtual pod-seconds", "Estimated virtual spend", "Returns to VMs by outcome",
    "Request latency p50 / p99 per verb", "Cluster view sync age",
)


def _dashboard() -> dict[str, object]:
    data: dict[str, object] = json.loads(DASHBOARD.read_text())
    return data


def _targets() -> list[tuple[str, str]]:
    panels = _dashboard()["panels"]
    assert isinstance(panels, list)
    return [(p["title"], t["expr"]) for p in panels for t in p["targets"]]


def test_dashboard_has_the_panels_the_issue_lists() -> None:
    panels = _dashboard()["panels"]
    assert isinstance(panels, list)
    titles = [p["title"] for p in panels]
    assert set(REQUIRED_PANELS) <= set(titles)
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    assert all(p["targets"] and p["datasource"]["uid"] == "${datasource}" for p in panels)


def test_dashboard_queries_are_valid_promql_over_exported_metrics(tmp_path: Path) -> None:
    used = {name for _, expr in _targets() for name in METRIC.findall(expr)}
    assert used <= EXPORTED, sorted(used - EXPORTED)
    rules = [{"record": f"dashboard:query_{index}", "expr": expr.replace("$__rate_interval", "1m").replace(
        "$job", "tideover")} for index, (_, expr) in enumerate(_targets())]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = subprocess.run([str(promtool()), "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_chart_provisions_the_dashboard_when_asked() -> None:
    objects = [o for o in yaml.safe_load_all(chart.template(sets={"grafanaDashboard.enabled": "true"})) if o]
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "tideover-dashboard"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["tideover-dashboard.json"]) == _dashboard()
    default = [o for o in yaml.safe_load_all(chart.template()) if o and o["metadata"]["name"] == "tideover-dashboard"]
    assert not default, "only when grafanaDashboard.enabled"
