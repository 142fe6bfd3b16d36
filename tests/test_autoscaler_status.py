"""Tests for extender.model.autoscaler_status: real-shaped CA status samples and malformed input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from extender.model.autoscaler_status import (
    AutoscalerStatusError,
    NodeGroupStatus,
    parse_autoscaler_status,
    parse_status_time,
)

DATA = Path(__file__).parent / "data" / "autoscaler_status"


def load_sample(name: str) -> str:
    """A sample's status text. The header of ``#`` lines at the top of a .txt sample is not status."""
    text = (DATA / name).read_text(encoding="utf-8")
    if name.endswith(".txt"):
        lines = text.splitlines()
        while lines and lines[0].startswith("#"):
            lines.pop(0)
        text = "\n".join(lines) + "\n"
    return text


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


AKS_USER = "aks-user-25795745-vmss"
GKE_PR_GROUP = (
    "https://www.googleapis.com/compute/v1/projects/sample-project/zones/us-central1-c/"
    "instanceGroups/gke-sample-cluster-default-pool-40ce0341-grp"
)
GKE_TRACE_GROUP = (
    "https://www.googleapis.com/compute/v1/projects/gca-gke-2025/zones/asia-southeast1-a/"
    "instanceGroups/gke-dbs-mgmt-primary-gpu-pool-98cd300e-grp"
)
EKS_GROUP = "eks-ue1-prod-XXXX-worker-group-staging-120200506102140590500000013"


@pytest.mark.parametrize(
    ("sample", "fmt", "time", "autoscaler_status", "cluster_scale_up", "groups"),
    [
        pytest.param(
            "yaml_inprogress_gke_pr6375.yaml", "yaml", utc(2023, 12, 20, 10, 52, 4, 558615), "Running",
            "InProgress", [GKE_PR_GROUP], id="yaml-inprogress",
        ),
        pytest.param(
            "yaml_target_above_registered_aks.yaml", "yaml", utc(2026, 10, 2, 15, 43, 15, 448135), None,
            None, [AKS_USER], id="yaml-target-above-registered",
        ),
        pytest.param(
            "yaml_at_max_noactivity_aks.yaml", "yaml", utc(2026, 10, 2, 14, 29, 22, 999645), "Running",
            "NoActivity", [AKS_USER], id="yaml-at-max-noactivity",
        ),
        pytest.param(
            "yaml_noactivity_gke.yaml", "yaml", utc(2026, 9, 15, 4, 5, 52, 354884), "Running",
            "NoActivity", [GKE_TRACE_GROUP], id="yaml-noactivity",
        ),
        pytest.param(
            "yaml_backoff_upstream_test.yaml", "yaml", utc(2023, 11, 24, 4, 28, 19, 546750), "Running",
            "NoActivity", ["sample-node-group"], id="yaml-backoff",
        ),
        pytest.param(
            "yaml_initializing.yaml", "yaml", utc(2026, 10, 2, 13, 58, 31, 204519), "Initializing",
            None, [], id="yaml-initializing",
        ),
        pytest.param(
            "text_inprogress_aro.txt", "text", utc(2021, 10, 6, 20, 30, 12, 218337), None,
            "InProgress", ["MachineSet/openshift-machine-api/memory-node-zone1"], id="text-inprogress",
        ),
        pytest.param(
            "text_inprogress_aks_from_zero.txt", "text", utc(2023, 11, 29, 13, 34, 29, 1925), None,
            "InProgress", ["aks-cpunp-38371103-vmss"], id="text-inprogress-from-zero",
        ),
        pytest.param(
            "text_noactivity_aks.txt", "text", utc(2018, 7, 25, 22, 59, 22, 661669), None,
            "NoActivity", ["nodepool1"], id="text-noactivity",
        ),
        pytest.param(
            "text_backoff_eks.txt", "text", utc(2020, 5, 6, 14, 29, 52, 629229), None,
            "NoActivity", [EKS_GROUP], id="text-backoff",
        ),
        pytest.param(
            "text_initializing.txt", "text", utc(2019, 9, 2, 14, 54, 1, 734214), "Initializing",
            None, [], id="text-initializing",
        ),
    ],
)
def test_sample_top_level(
    sample: str,
    fmt: str,
    time: datetime,
    autoscaler_status: str | None,
    cluster_scale_up: str | None,
    groups: list[str],
) -> None:
    status = parse_autoscaler_status(load_sample(sample))
    assert status.format == fmt
    assert status.time == time
    assert status.time is not None and status.time.tzinfo == UTC
    assert status.autoscaler_status == autoscaler_status
    assert status.cluster_scale_up == cluster_scale_up
    assert list(status.node_groups) == groups


def _group(name: str, **fields: Any) -> NodeGroupStatus:
    base: dict[str, Any] = {
        "health": None, "registered": None, "ready": None, "not_started": None, "unready": None,
        "being_deleted": None, "long_unregistered": None, "unregistered": None,
        "cloud_provider_target": None, "min_size": None, "max_size": None, "scale_up": None,
        "scale_up_since": None, "backoff_error_code": None, "backoff_error_message": None,
    }
    base.update(fields)
    return NodeGroupStatus(name=name, **base)


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        pytest.param(
            "yaml_inprogress_gke_pr6375.yaml",
            _group(
                GKE_PR_GROUP, health="Healthy", registered=7, ready=7, not_started=0,
                long_unregistered=0, unregistered=0, cloud_provider_target=8, min_size=0, max_size=10,
                scale_up="InProgress", scale_up_since=utc(2023, 12, 20, 10, 52, 4, 558615),
            ),
            id="yaml-inprogress",
        ),
        pytest.param(
            "yaml_target_above_registered_aks.yaml",
            _group(
                AKS_USER, health="Healthy", registered=2, ready=2, not_started=0, unregistered=0,
                cloud_provider_target=3, min_size=2, max_size=3, scale_up="InProgress",
                scale_up_since=utc(2026, 10, 2, 15, 43, 12),
            ),
            id="yaml-target-above-registered",
        ),
        pytest.param(
            "yaml_at_max_noactivity_aks.yaml",
            _group(
                AKS_USER, health="Healthy", registered=3, ready=3, cloud_provider_target=3, min_size=2,
                max_size=3, scale_up="NoActivity",
            ),
            id="yaml-at-max-noactivity",
        ),
        pytest.param(
            "yaml_noactivity_gke.yaml",
            _group(
                GKE_TRACE_GROUP, health="Healthy", registered=1, ready=1, not_started=0, unready=0,
                long_unregistered=0, unregistered=0, cloud_provider_target=1, min_size=0, max_size=2,
                scale_up="NoActivity", scale_up_since=utc(2026, 9, 15, 3, 30, 51),
            ),
            id="yaml-noactivity",
        ),
        pytest.param(
            "yaml_backoff_upstream_test.yaml",
            _group(
                "sample-node-group", health="Healthy", registered=11, ready=4, not_started=3, unready=2,
                being_deleted=1, long_unregistered=1, unregistered=2, cloud_provider_target=8, min_size=2,
                max_size=12, scale_up="Backoff", scale_up_since=utc(2023, 11, 23, 14, 52, 2),
                backoff_error_code="QUOTA_EXCEEDED",
                backoff_error_message=(
                    "Instance 'sample-node-group-40ce0341-t28s' creation failed: Quota 'CPUS' exceeded. "
                    "Limit: 57.0 in region us-central1."
                ),
            ),
            id="yaml-backoff",
        ),
        pytest.param(
            "text_inprogress_aro.txt",
            _group(
                "MachineSet/openshift-machine-api/memory-node-zone1", health="Healthy", registered=1,
                ready=1, not_started=0, unready=0, long_unregistered=0, cloud_provider_target=3,
                min_size=1, max_size=3, scale_up="InProgress",
                scale_up_since=utc(2021, 10, 6, 20, 29, 46, 561893),
            ),
            id="text-inprogress",
        ),
        pytest.param(
            "text_inprogress_aks_from_zero.txt",
            _group(
                "aks-cpunp-38371103-vmss", health="Healthy", registered=0, ready=0, not_started=0,
                unready=0, long_unregistered=0, cloud_provider_target=1, min_size=0, max_size=10,
                scale_up="InProgress", scale_up_since=utc(2023, 11, 29, 13, 34, 1, 90096),
            ),
            id="text-inprogress-from-zero",
        ),
        pytest.param(
            "text_noactivity_aks.txt",
            _group(
                "nodepool1", health="Healthy", registered=1, ready=1, not_started=0, unready=0,
                long_unregistered=0, cloud_provider_target=1, min_size=1, max_size=5, scale_up="NoActivity",
                scale_up_since=utc(2018, 7, 25, 0, 38, 36, 413728),
            ),
            id="text-noactivity",
        ),
        pytest.param(
            "text_backoff_eks.txt",
            _group(
                EKS_GROUP, health="Healthy", registered=0, ready=0, not_started=0, unready=0,
                long_unregistered=0, cloud_provider_target=0, min_size=0, max_size=3, scale_up="Backoff",
                scale_up_since=utc(2020, 5, 6, 14, 28, 31, 57935),
            ),
            id="text-backoff",
        ),
    ],
)
def test_sample_node_group(sample: str, expected: NodeGroupStatus) -> None:
    status = parse_autoscaler_status(load_sample(sample))
    assert status.node_groups[expected.name] == expected


def test_node_groups_are_read_only() -> None:
    status = parse_autoscaler_status(load_sample("yaml_noactivity_gke.yaml"))
    with pytest.raises(TypeError):
        status.node_groups["extra"] = status.node_groups[GKE_TRACE_GROUP]  # type: ignore[index]


LENIENT_YAML_NEW_FIELDS = """\
time: 2026-01-05 10:00:00 +0000 UTC
autoscalerStatus: Running
somethingNew: {a: 1}
nodeGroups:
- name: np1
  futureField: [1, 2]
  health:
    status: Healthy
    nodeCounts:
      registered: {total: 2, ready: 1, unready: 1, shiny: 3}
    cloudProviderTarget: 4
  scaleUp:
    status: HasDynamicHeadroom
    backoffInfo: {errorCode: "", errorMessage: ""}
    lastTransitionTime: null
"""

LENIENT_YAML_NULLS = """\
autoscalerStatus: Running
clusterWide: null
nodeGroups:
- name: np2
  health: null
  scaleUp:
    backoffInfo: null
    lastTransitionTime: 2026-01-05T09:58:00+02:00
"""

# The 2017 layout (kubernetes-retired/contrib PR #2409): "(min=5, max=5)", zero times, "<unknown>" health.
LENIENT_TEXT = (
    "Cluster-autoscaler status at 2017-02-23 10:00:00 +0100 CET:\n"
    "Cluster-wide:\n"
    "  Health:      <unknown>\n"
    "  Mystery:     Value (x=1)\n"
    "\n"
    "NodeGroups:\n"
    "  Name:        ng1\n"
    "  Health:      Unhealthy (ready=0 unready=1 notStarted=0 longNotStarted=0 registered=1 "
    "cloudProviderTarget=5 (min=5, max=5))\n"
) + """\
               LastProbeTime:      0001-01-01 00:00:00 +0000 UTC
               LastTransitionTime: 0001-01-01 00:00:00 +0000 UTC
  ScaleUp:     NoActivity
"""


@pytest.mark.parametrize(
    ("text", "group", "expected"),
    [
        pytest.param(
            LENIENT_YAML_NEW_FIELDS, "np1",
            _group("np1", health="Healthy", registered=2, ready=1, unready=1, cloud_provider_target=4,
                   scale_up="HasDynamicHeadroom"),
            id="yaml-unknown-fields-and-values-kept-or-ignored",
        ),
        pytest.param(
            LENIENT_YAML_NULLS, "np2",
            _group("np2", scale_up_since=utc(2026, 1, 5, 7, 58)),
            id="yaml-null-sections-and-unquoted-time",
        ),
        pytest.param(
            LENIENT_TEXT, "ng1",
            _group("ng1", health="Unhealthy", registered=1, ready=0, not_started=0, unready=1,
                   cloud_provider_target=5, min_size=5, max_size=5, scale_up="NoActivity"),
            id="text-2017-layout-zero-times-unknown-lines",
        ),
        pytest.param(
            "\n".join("    " + line for line in load_sample("text_noactivity_aks.txt").splitlines()),
            "nodepool1",
            _group("nodepool1", health="Healthy", registered=1, ready=1, not_started=0, unready=0,
                   long_unregistered=0, cloud_provider_target=1, min_size=1, max_size=5,
                   scale_up="NoActivity", scale_up_since=utc(2018, 7, 25, 0, 38, 36, 413728)),
            id="text-indented-as-in-configmap-yaml",
        ),
        pytest.param(
            load_sample("text_inprogress_aro.txt").replace("\n", "\r\n"),
            "MachineSet/openshift-machine-api/memory-node-zone1",
            _group("MachineSet/openshift-machine-api/memory-node-zone1", health="Healthy", registered=1,
                   ready=1, not_started=0, unready=0, long_unregistered=0, cloud_provider_target=3,
                   min_size=1, max_size=3, scale_up="InProgress",
                   scale_up_since=utc(2021, 10, 6, 20, 29, 46, 561893)),
            id="text-crlf",
        ),
    ],
)
def test_lenient_parsing(text: str, group: str, expected: NodeGroupStatus) -> None:
    assert parse_autoscaler_status(text).node_groups[group] == expected


def test_lenient_text_cluster_wide_and_time() -> None:
    status = parse_autoscaler_status(LENIENT_TEXT)
    assert status.time == utc(2017, 2, 23, 9, 0)
    assert status.cluster_scale_up is None


YAML_GROUP = "nodeGroups:\n- name: a\n"
HEADER = "Cluster-autoscaler status at 2020-01-01 00:00:00 +0000 UTC:\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "status is empty", id="empty"),
        pytest.param(" \n\t\n", "status is empty", id="blank"),
        pytest.param("hello world", "unrecognised status", id="plain-string"),
        pytest.param("hello world", "got YAML str 'hello world'", id="plain-string-says-what"),
        pytest.param("- a\n- b\n", "got YAML list", id="yaml-list"),
        pytest.param("foo: bar\n", "without any of them (keys: foo)", id="yaml-mapping-other-keys"),
        pytest.param("nodeGroups: [\n", "not valid YAML", id="yaml-syntax"),
        pytest.param("a: 1\n b: 2\n", "line 2, column 3", id="yaml-syntax-says-where"),
        pytest.param("nodeGroups: 5\n", "nodeGroups: expected a list, got int 5", id="groups-not-list"),
        pytest.param(
            "nodeGroups:\n- 3\n", "nodeGroups[0]: expected a mapping, got int 3", id="group-not-map"
        ),
        pytest.param("nodeGroups:\n- health: {}\n", "nodeGroups[0]: node group has no name", id="no-name"),
        pytest.param("nodeGroups:\n- name: 7\n", "nodeGroups[0].name: expected a string, got int 7",
                     id="name-not-string"),
        pytest.param(
            YAML_GROUP + "  health:\n    cloudProviderTarget: three\n",
            "nodeGroups[0] (a).health.cloudProviderTarget: expected an integer, got str 'three'",
            id="count-not-int",
        ),
        pytest.param(
            YAML_GROUP + "  health:\n    maxSize: true\n",
            "nodeGroups[0] (a).health.maxSize: expected an integer, got bool True",
            id="count-bool",
        ),
        pytest.param(
            YAML_GROUP + "  health:\n    nodeCounts:\n      registered:\n        total: -1\n",
            "nodeGroups[0] (a).health.nodeCounts.registered.total: expected a count, got -1",
            id="count-negative",
        ),
        pytest.param(
            YAML_GROUP + "  health: [1]\n",
            "nodeGroups[0] (a).health: expected a mapping, got list [1]",
            id="health-not-map",
        ),
        pytest.param(
            YAML_GROUP + "  scaleUp:\n    status: 5\n",
            "nodeGroups[0] (a).scaleUp.status: expected a string, got int 5",
            id="scale-up-not-string",
        ),
        pytest.param(
            YAML_GROUP + "  scaleUp:\n    lastTransitionTime: yesterday\n",
            "nodeGroups[0] (a).scaleUp.lastTransitionTime: not a time: 'yesterday'",
            id="transition-not-time",
        ),
        pytest.param(
            YAML_GROUP + "  scaleUp:\n    lastTransitionTime: 12\n",
            "nodeGroups[0] (a).scaleUp.lastTransitionTime: expected a time, got int 12",
            id="transition-number",
        ),
        pytest.param("autoscalerStatus: Running\ntime: soon\n", "time: not a time: 'soon'", id="bad-time"),
        pytest.param(YAML_GROUP + "- name: a\n", "nodeGroups[1]: node group 'a' is listed twice",
                     id="duplicate-group"),
        pytest.param("clusterWide: 3\n", "clusterWide: expected a mapping, got int 3", id="cluster-not-map"),
        pytest.param(
            "Cluster-autoscaler status at yesterday:\n", "line 1: status time: not a time: 'yesterday'",
            id="text-bad-header-time",
        ),
        pytest.param(
            "Cluster-autoscaler status at 2020-01-01 00:00:00 +0000 UTC\nCluster-wide:\n",
            "line 1: expected 'Cluster-autoscaler status at <time>:'",
            id="text-header-without-colon",
        ),
        pytest.param(
            HEADER + "Cluster-wide:\n  not a status line\n",
            "line 3: expected 'Key: value', got 'not a status line'",
            id="text-garbage-line",
        ),
        pytest.param(
            HEADER + "Health: Healthy\n",
            "line 2: 'Health' before any 'Cluster-wide:' or 'NodeGroups:' section",
            id="text-no-section",
        ),
        pytest.param(
            HEADER + "NodeGroups:\n  Health: Healthy\n",
            "line 3: Health under NodeGroups before any 'Name:'",
            id="text-health-before-name",
        ),
        pytest.param(
            HEADER + "NodeGroups:\n  Name:\n",
            "line 3: node group has no name",
            id="text-empty-name",
        ),
        pytest.param(
            HEADER + "NodeGroups:\n  Name: a\n  ScaleUp:\n",
            "line 4: ScaleUp: expected 'Status (details)', got ''",
            id="text-empty-condition",
        ),
        pytest.param(
            HEADER + "NodeGroups:\n  Name: a\n"
            "  ScaleUp: InProgress (ready=1 cloudProviderTarget=2)\n    LastTransitionTime: last tuesday\n",
            "line 5: LastTransitionTime: not a time: 'last tuesday'",
            id="text-bad-transition-time",
        ),
        pytest.param(
            HEADER + "NodeGroups:\n  Name: a\n  Name: a\n",
            "line 4: node group 'a' is listed twice",
            id="text-duplicate-group",
        ),
        pytest.param("x" * 4_000_001, "characters long", id="too-long"),
    ],
)
def test_garbage_is_rejected_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(AutoscalerStatusError) as caught:
        parse_autoscaler_status(text)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_non_string_is_rejected() -> None:
    with pytest.raises(AutoscalerStatusError, match="status must be a string, got bytes"):
        parse_autoscaler_status(b"nodeGroups: []")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2023-11-29 13:34:01.090096765 +0000 UTC m=+1081361.519233711",
                     utc(2023, 11, 29, 13, 34, 1, 90096), id="go-with-monotonic"),
        pytest.param("2018-07-25 00:38:36.41372897 +0000 UTC", utc(2018, 7, 25, 0, 38, 36, 413728),
                     id="go-8-digit-fraction"),
        pytest.param("2026-10-02 15:43:15 +0200 CEST", utc(2026, 10, 2, 13, 43, 15), id="go-offset-zone"),
        pytest.param("2026-10-02 15:43:15 -0330 -0330", utc(2026, 10, 2, 19, 13, 15), id="go-numeric-zone"),
        pytest.param(
            "2023-12-20T10:52:04.558615784Z", utc(2023, 12, 20, 10, 52, 4, 558615), id="rfc3339-nanos"
        ),
        pytest.param("2026-01-05T09:58:00+02:00", utc(2026, 1, 5, 7, 58), id="rfc3339-offset"),
        pytest.param("0001-01-01 00:00:00 +0000 UTC", None, id="go-zero-time"),
        pytest.param("0001-01-01T00:00:00Z", None, id="rfc3339-zero-time"),
    ],
)
def test_parse_status_time(value: str, expected: datetime | None) -> None:
    parsed = parse_status_time(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo == UTC


@pytest.mark.parametrize("value", ["", "tomorrow", "2026-10-02", "2026-10-02 25:00:00 +0000 UTC"])
def test_parse_status_time_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        parse_status_time(value)


def test_yaml_datetime_values_become_utc() -> None:
    text = "autoscalerStatus: Running\ntime: 2026-01-05T12:00:00+05:00\n"
    status = parse_autoscaler_status(text)
    assert status.time == datetime(2026, 1, 5, 12, tzinfo=timezone(timedelta(hours=5)))
    assert status.time is not None and status.time.tzinfo == UTC
