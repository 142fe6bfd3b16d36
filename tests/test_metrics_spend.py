"""The per-namespace spend gauges the spend alert compares (issue 13): the spend rate of each namespace's pods on
virtual nodes, and its cap (explicit, or the default cap of a namespace that spends)."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from extender.model.config import TideoverConfig, parse_config
from extender.telemetry.metrics import Metrics
from tests.support.factories import snapshot, status_yaml, virtual_node, vm_node


def _gauges(metrics: Metrics, name: str) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    return {
        sample.labels["namespace"]: sample.value
        for family in text_string_to_metric_families(text) if family.name == name
        for sample in family.samples
    }


def _config(**virtual_nodes: object) -> TideoverConfig:
    return parse_config({"virtualNodes": virtual_nodes}, "test")


def test_spend_rate_and_caps_per_namespace() -> None:
    config = _config(namespaceSpendCapsPerHour={"batch": 5.0, "idle": 1.0}, defaultNamespaceSpendCapPerHour=2.0)
    snap = replace(snapshot([vm_node("vm-1"), virtual_node()], status_yaml("NoActivity")),
                   virtual_spend_by_namespace={"batch": 6.5, "web": 0.25})
    metrics = Metrics()
    metrics.watch_snapshot(lambda: snap, lambda: {}, config.virtual_nodes)
    assert _gauges(metrics, "tideover_namespace_virtual_spend_dollars_per_hour") == {"batch": 6.5, "web": 0.25}
    # batch and idle: their own caps; web spends and has the default cap; namespaces that spend nothing and have no
    # cap of their own are not listed.
    assert _gauges(metrics, "tideover_namespace_spend_cap_dollars_per_hour") == {"batch": 5.0, "idle": 1.0, "web": 2.0}


def test_no_cap_no_cap_gauge() -> None:
    snap = replace(snapshot([vm_node("vm-1"), virtual_node()], status_yaml("NoActivity")),
                   virtual_spend_by_namespace={"web": 0.25})
    metrics = Metrics()
    metrics.watch_snapshot(lambda: snap, lambda: {}, _config().virtual_nodes)
    assert _gauges(metrics, "tideover_namespace_spend_cap_dollars_per_hour") == {}
    assert _gauges(metrics, "tideover_namespace_virtual_spend_dollars_per_hour") == {"web": 0.25}
