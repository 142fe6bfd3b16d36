"""What the alert and dashboard tests share: the metric names tideover exports, and the pinned promtool."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from e2e.harness import components

# The metrics `tideover serve` exports (extender/telemetry/metrics.py), as Prometheus names them (counters get _total,
# histograms _bucket/_count/_sum), and Prometheus's own `up`.
EXPORTED = {
    "up", "tideover_decisions_total", "tideover_request_duration_seconds_bucket",
    "tideover_request_duration_seconds_count", "tideover_request_duration_seconds_sum", "tideover_bad_requests_total",
    "tideover_invalid_annotations_total", "tideover_unknown_nodes_total", "tideover_deletion_cost_patches_total",
    "tideover_returns_total", "tideover_virtual_pod_seconds_total", "tideover_virtual_spend_dollars_total",
    "tideover_pods_on_virtual_nodes", "tideover_capacity_pending", "tideover_capacity_eta_seconds",
    "tideover_cluster_view_synced", "tideover_cluster_view_last_sync_age_seconds",
    "tideover_namespace_virtual_spend_dollars_per_hour", "tideover_namespace_spend_cap_dollars_per_hour",
    "tideover_scale_up_stuck",
}
METRIC = re.compile(r"\b(up|tideover_[a-z_]+)\b")


def promtool() -> Path:
    if not (components.tool_dir("prometheus") / "promtool").is_file() and shutil.which("go") is None:
        pytest.skip("promtool is not built and Go is not installed to build it")
    return components.build_tool("prometheus") / "promtool"


