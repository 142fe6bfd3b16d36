"""End-to-end (issue 13): a real Prometheus (built from its Go module, e2e/versions.toml [prometheus]) scrapes a real
``tideover serve`` through a burst (pods spill to the virtual node while the simulated VMSS scales up, then move back
to the new VMs), and every query of the Grafana dashboard and every alert expression is evaluated through
Prometheus's HTTP API and must find data.

Alert expressions are evaluated as written where the burst makes them true (the spill window open: the
``TideoverSpillWindowOpenTooLong`` comparison itself, without its ``for``); where a healthy burst cannot make them
true (tideover down, absent, stale, returns failing, p99 above 100 ms, spend above the cap) their inner expression is
evaluated without the threshold or the failure filter: ``ALERT_INNER`` below names each and why.
Prometheus also loads the rules file itself: every rule must be healthy (evaluated without error).

On the local-process stack (e2e/harness/autoscaled.py); not on kind (Prometheus would need to reach the cluster's pods).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from e2e.harness import components
from e2e.harness.autoscaled import AutoscaledStack, wait_until
from e2e.harness.cluster import _die_with_parent, free_port
from e2e.harness.stacks import end_stack
from e2e.harness.tideover import ROOT
from e2e.harness.workloads import Namespace, deployment
from e2e.kind.target import make_autoscaled_stack
from e2e.vmss.simulator import GroupConfig

pytestmark = [pytest.mark.e2e]

DASHBOARD = ROOT / "charts" / "tideover" / "files" / "tideover-dashboard.json"
RULES = ROOT / "charts" / "tideover" / "files" / "tideover-alerts.yaml"
BOOT_SECONDS = 20.0
REPLICAS = 6
SCRAPE = "1s"
RATE_WINDOW = "10s"  # the dashboard's $__rate_interval here (Grafana makes it >= 4 scrape intervals)
OVERRIDES = {
    "controllers": {"deletionCost": {"enabled": True},
                    "returnToVm": {"stableSeconds": 5, "minPodAgeSeconds": 5, "intervalSeconds": 1}},
    # A cap for every namespace, so the cap gauge the spend alert compares against has a series.
    "virtualNodes": {"defaultNamespaceSpendCapPerHour": 100.0},
}
# As e2e/scenarios/test_returns_e2e.py: virtual-kubelet's mock provider and concurrent pods.
VK_ARGS = ["--pod-sync-workers=1"]
J = 'job="tideover"'
# Alert -> the expressions evaluated for it, and why not the rule's own expression.
ALERT_INNER: dict[str, tuple[list[str], str]] = {
    "TideoverDown": ([f"up{{{J}}}"], "up == 0 needs a replica down; up itself is evaluated"),
    "TideoverAbsent": ([f"up{{{J}}}"], "absent(up) is empty while tideover is scraped; up itself is evaluated"),
    "TideoverNotReadyWhileCalled": (
        [f"tideover_cluster_view_synced{{{J}}}", f"rate(tideover_request_duration_seconds_count{{{J}}}[5m]) > 0"],
        "synced == 0 needs an unsynced replica: synced is evaluated, and the 'called' part as written"),
    "TideoverClusterViewStale": (
        [f"max by (instance, resource) (tideover_cluster_view_last_sync_age_seconds{{{J}}})"],
        "without > 900: a healthy view is fresh"),
    "TideoverSpillWindowOpenTooLong": (
        [f"max by (pool) (tideover_capacity_pending{{{J}}}) == 1"], "as written (the burst opens the window)"),
    "TideoverScaleUpStuck": (
        [f"max by (pool) (tideover_scale_up_stuck{{{J}}})"], "without == 1: a healthy burst's scale-up lands"),
    "TideoverNamespaceSpendAboveCap": (
        [f"max by (namespace) (tideover_namespace_virtual_spend_dollars_per_hour{{{J}}}) / on (namespace) "
         f"max by (namespace) (tideover_namespace_spend_cap_dollars_per_hour{{{J}}})"],
        "the spend-to-cap ratio instead of spend > cap: tideover keeps spend under the cap"),
    "TideoverReturnsFailing": (
        [f"sum by (outcome) (rate(tideover_returns_total{{{J}}}[15m]))"],
        "every outcome instead of outcome=error, without > 0: a healthy return has no error"),
    "TideoverRequestLatencyHigh": (
        [f"histogram_quantile(0.99, sum by (le, verb) (rate(tideover_request_duration_seconds_bucket{{{J}}}[5m])))"],
        "without > 0.1: tideover answers in milliseconds"),
}
_METRIC = re.compile(r"\b(up|tideover_[a-z_]+)\b")


class Prometheus:
    """The real Prometheus server scraping one target, with the alert rules loaded."""

    def __init__(self, work: Path, target: str) -> None:
        self.work = work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": SCRAPE, "evaluation_interval": SCRAPE},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "tideover", "static_configs": [{"targets": [target]}]}],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log_path = work / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Prometheus:
        binary = components.build_tool("prometheus") / "prometheus"
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(binary), f"--config.file={self.work / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.work / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"Prometheus did not become ready in 30 s; log {self.log_path}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def range_series(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        """The series of ``expr`` over [start, end] with at least one sample that is a number."""
        data = self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step="1")
        return [s for s in data["result"] if any(v[1] not in ("NaN", "+Inf", "-Inf") for v in s["values"])]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every dashboard target, its variables replaced as Grafana would."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"].replace("$__rate_interval", RATE_WINDOW).replace("$job", "tideover"))
        for panel in dashboard["panels"] for target in panel["targets"]
    ]


@pytest.fixture(scope="module")
def burst(e2e: object) -> Iterator[tuple[Prometheus, float, float]]:
    """The burst, recorded by Prometheus: (prometheus, start, end) in wall-clock seconds. ``e2e`` (conftest.py) skips
    it unless end-to-end tests are on."""
    work = Path(tempfile.mkdtemp(prefix="tideover-observability-"))
    stack = make_autoscaled_stack(work, target="local", provisioning_seconds=BOOT_SECONDS,
                                  tideover_overrides=OVERRIDES, cluster_extra_args={"virtual-kubelet": VK_ARGS})
    prometheus: Prometheus | None = None
    failed = True
    try:
        stack.start()
        prometheus = Prometheus(work, stack.tideover.url.removeprefix("http://")).start()
        start = time.time()
        _run_burst(stack)
        time.sleep(5)  # a few more scrapes and rule evaluations after the last change
        yield prometheus, start, time.time()
        failed = False
    finally:
        if prometheus is not None:
            prometheus.stop()
        end_stack(stack, work, failed, " (prometheus.log among them)")


def _run_burst(stack: AutoscaledStack) -> None:
    """1 -> REPLICAS pods while one VM has room for 2: the rest spill while the scale-up is pending, then move back
    to the new VMs."""
    stack.start_pool(GroupConfig(name="nodepool1", min_size=1, max_size=4, initial=1,
                                 provisioning_delay=BOOT_SECONDS, cpu="2", memory="8Gi"))
    name = f"o-{uuid.uuid4().hex[:8]}"
    stack.core.create_namespace(cast(Any, {"metadata": {"name": name}}))
    ns = Namespace(stack.cluster, name)
    try:
        ns.create_deployment(deployment("web", 1, cpu="1"))
        wait_until(stack, lambda: len(ns.running_on()) == 1, 60, "the first replica to run")
        ns.scale("web", REPLICAS)
        wait_until(stack, lambda: ns.summary()["virtual"] > 0, 60, "pods to spill to the virtual node")
        wait_until(stack, lambda: ns.summary() == {"vm": REPLICAS}, BOOT_SECONDS + 120,
                   "every pod back on a VM after the scale-up")
    finally:
        ns.delete()
        stack.cluster.wait_for(lambda: not stack.core.list_namespaced_pod(name).items, 60, f"the pods of {name} to go")
        stack.stop_pool()


def test_every_dashboard_query_finds_data(burst: tuple[Prometheus, float, float]) -> None:
    prometheus, start, end = burst
    queries = dashboard_queries()
    assert len(queries) >= 12
    empty = [f"{title}: {expr}" for title, expr in queries if not prometheus.range_series(expr, start, end)]
    assert not empty, "dashboard queries without data during the burst:\n" + "\n".join(empty)


def test_every_alert_expression_finds_data(burst: tuple[Prometheus, float, float]) -> None:
    prometheus, start, end = burst
    rules = {rule["alert"]: rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    assert set(ALERT_INNER) == set(rules), "ALERT_INNER must name every alert of the rules file"
    empty = []
    for alert, (expressions, why) in ALERT_INNER.items():
        used = set(_METRIC.findall(rules[alert]["expr"]))
        assert used <= set(_METRIC.findall(" ".join(expressions))), f"{alert}: evaluate each metric it uses"
        for expr in expressions:
            if not prometheus.range_series(expr, start, end):
                empty.append(f"{alert} ({why}): {expr}")
    assert not empty, "alert expressions without data during the burst:\n" + "\n".join(empty)


def test_prometheus_loads_and_evaluates_every_rule(burst: tuple[Prometheus, float, float]) -> None:
    prometheus, _, _ = burst
    groups = prometheus.api("rules")["groups"]
    loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
    expected = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    assert set(loaded) == expected
    unhealthy = {name: rule.get("lastError") for name, rule in loaded.items() if rule["health"] != "ok"}
    assert not unhealthy, unhealthy
