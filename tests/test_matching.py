"""Table-driven tests for extender.decide.matching (upstream kube-scheduler taint/toleration + node affinity)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pytest

from extender.decide.matching import (
    describe_taint,
    node_selector_term_matches,
    pod_fits_template,
    required_node_affinity_mismatch,
    tolerates_all,
    toleration_tolerates,
    untolerated_taint,
)

Json = dict[str, Any]

# The AKS virtual node (ACI) taint and the two tolerations the seed workloads carry.
VK_TAINT: Json = {"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}
VK_TOL_EXISTS: Json = {"key": "virtual-kubelet.io/provider", "operator": "Exists"}
VK_TOL_EQUAL: Json = {
    "key": "virtual-kubelet.io/provider",
    "value": "azure",
    "operator": "Equal",
    "effect": "NoSchedule",
}
VK_LABELS = {"type": "virtual-kubelet", "kubernetes.io/role": "agent", "kubernetes.io/os": "linux"}
POOL_LABELS = {"kubernetes.azure.com/agentpool": "nodepool1", "kubernetes.io/os": "linux"}

NS: Json = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
NE: Json = {"key": "dedicated", "value": "gpu", "effect": "NoExecute"}
PNS: Json = {"key": "dedicated", "value": "gpu", "effect": "PreferNoSchedule"}
NO_VALUE: Json = {"key": "dedicated", "effect": "NoSchedule"}


def req_affinity(*terms: Any) -> Json:
    """A pod spec whose only constraint is required node affinity with the given terms."""
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
            }
        }
    }


def expr(key: str, operator: str, *values: str) -> Json:
    requirement: Json = {"key": key, "operator": operator}
    if values:
        requirement["values"] = list(values)
    return requirement


def term(*expressions: Json, fields: Sequence[Json] = ()) -> Json:
    t: Json = {"matchExpressions": list(expressions)}
    if fields:
        t["matchFields"] = list(fields)
    return t


def name_field(operator: str, *values: str) -> Json:
    return {"key": "metadata.name", "operator": operator, "values": list(values)}


# ------------------------------------------------------------------------------------ toleration_tolerates

TOLERATION_CASES = [
    pytest.param({"operator": "Exists"}, NS, True, id="empty-key-exists-tolerates-NoSchedule"),
    pytest.param({"operator": "Exists"}, NE, True, id="empty-key-exists-tolerates-NoExecute"),
    pytest.param(
        {"operator": "Exists"}, {"key": "anything"}, True, id="empty-key-exists-tolerates-bare-taint"
    ),
    pytest.param(
        {"operator": "Exists", "effect": "NoSchedule"}, NE, False, id="empty-key-exists-effect-limited"
    ),
    pytest.param({"key": "dedicated", "operator": "Exists"}, NE, True, id="empty-effect-matches-NoExecute"),
    pytest.param({"key": "dedicated", "operator": "Exists"}, PNS, True, id="empty-effect-matches-Prefer"),
    pytest.param(
        {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, NS, False, id="effect-mismatch"
    ),
    pytest.param({"key": "other", "operator": "Exists"}, NS, False, id="key-mismatch"),
    pytest.param({"key": "dedicated", "operator": "Equal", "value": "gpu"}, NS, True, id="equal-same-value"),
    pytest.param(
        {"key": "dedicated", "operator": "Equal", "value": "cpu"}, NS, False, id="equal-other-value"
    ),
    pytest.param({"key": "dedicated", "operator": "Equal"}, NS, False, id="equal-no-value-vs-valued-taint"),
    pytest.param(
        {"key": "dedicated", "operator": "Equal"}, NO_VALUE, True, id="equal-no-value-vs-bare-taint"
    ),
    pytest.param(
        {"key": "dedicated", "operator": "Equal", "value": "gpu"},
        NO_VALUE,
        False,
        id="equal-value-vs-bare-taint",
    ),
    pytest.param({"key": "dedicated", "value": "gpu"}, NS, True, id="missing-operator-means-equal"),
    pytest.param(
        {"key": "dedicated", "operator": None, "value": "gpu"}, NS, True, id="null-operator-means-equal"
    ),
    pytest.param({"key": "dedicated", "value": "cpu"}, NS, False, id="missing-operator-value-differs"),
    pytest.param(
        {"key": "dedicated", "operator": "Exists", "value": "x"}, NS, True, id="exists-ignores-value"
    ),
    pytest.param({"operator": "Equal"}, NO_VALUE, True, id="empty-key-equal-empty-value-upstream-quirk"),
    pytest.param({"operator": "Equal"}, NS, False, id="empty-key-equal-empty-value-vs-valued"),
    pytest.param(
        {"key": "dedicated", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30},
        NE,
        True,
        id="tolerationSeconds-still-tolerates",
    ),
    pytest.param(
        {"key": "dedicated", "operator": "equal", "value": "gpu"}, NS, False, id="operator-is-case-sensitive"
    ),
    pytest.param(
        {"key": "n", "operator": "Gt", "value": "1"},
        {"key": "n", "value": "5", "effect": "NoSchedule"},
        False,
        id="Gt-toleration-feature-gate-off",
    ),
    pytest.param(
        {"key": "n", "operator": "Lt", "value": "9"},
        {"key": "n", "value": "5", "effect": "NoSchedule"},
        False,
        id="Lt-toleration-feature-gate-off",
    ),
    pytest.param(VK_TOL_EXISTS, VK_TAINT, True, id="aks-vk-seed-exists"),
    pytest.param(VK_TOL_EQUAL, VK_TAINT, True, id="aks-vk-seed-equal"),
    pytest.param({**VK_TOL_EQUAL, "value": "aws"}, VK_TAINT, False, id="aks-vk-wrong-provider"),
    pytest.param({**VK_TOL_EQUAL, "effect": "NoExecute"}, VK_TAINT, False, id="aks-vk-wrong-effect"),
    pytest.param(
        {"key": "virtual-kubelet.io/provider", "operator": "Exists"},
        {"key": "kubernetes.azure.com/scalesetpriority", "value": "spot", "effect": "NoSchedule"},
        False,
        id="aks-vk-toleration-vs-spot-taint",
    ),
    pytest.param(
        {"key": "dedicated", "value": 5}, {**NS, "value": 5}, False, id="malformed-non-string-value"
    ),
    pytest.param({"key": ["dedicated"], "operator": "Exists"}, NS, False, id="malformed-non-string-key"),
    pytest.param({"operator": ["Exists"]}, NS, False, id="malformed-non-string-operator"),
    pytest.param("Exists", NS, False, id="malformed-toleration-not-object"),
    pytest.param({"operator": "Exists"}, None, False, id="malformed-taint-not-object"),
]


@pytest.mark.parametrize(("toleration", "taint", "expected"), TOLERATION_CASES)
def test_toleration_tolerates(toleration: Any, taint: Any, expected: bool) -> None:
    assert toleration_tolerates(toleration, taint) is expected


# --------------------------------------------------------------------------------------- untolerated_taint

UNTOLERATED_CASES = [
    pytest.param(None, [NS], None, 0, id="no-tolerations-NoSchedule"),
    pytest.param([], [NE], None, 0, id="no-tolerations-NoExecute"),
    pytest.param(None, [PNS], None, None, id="PreferNoSchedule-ignored"),
    pytest.param(None, [PNS, NE], None, 1, id="PreferNoSchedule-skipped-then-NoExecute"),
    pytest.param(None, None, None, None, id="no-taints"),
    pytest.param(None, [], None, None, id="empty-taints"),
    pytest.param([VK_TOL_EXISTS], [VK_TAINT, NS], None, 1, id="first-tolerated-second-not"),
    pytest.param(None, [NE, NS], None, 0, id="returns-first-in-node-order"),
    pytest.param([{"operator": "Exists"}], [NS, NE, VK_TAINT], None, None, id="tolerate-everything"),
    pytest.param([VK_TOL_EQUAL], [VK_TAINT], None, None, id="aks-vk-seed-equal"),
    pytest.param([VK_TOL_EXISTS], [VK_TAINT], None, None, id="aks-vk-seed-exists"),
    pytest.param(
        [{"key": "other", "operator": "Exists"}], [VK_TAINT], None, 0, id="aks-vk-unrelated-toleration"
    ),
    pytest.param(None, [NS, PNS], ("PreferNoSchedule",), 1, id="custom-effects"),
    pytest.param(None, [NS, PNS], "PreferNoSchedule", 1, id="custom-effect-as-string"),
    pytest.param(None, [{"key": "x", "effect": "Bogus"}], None, None, id="unknown-effect-not-filtered"),
    pytest.param(None, ["garbage", NS], None, 1, id="non-object-taint-skipped"),
    pytest.param("garbage", [NS], None, 0, id="malformed-tolerations-count-as-none"),
]


@pytest.mark.parametrize(("tolerations", "taints", "effects", "expected_index"), UNTOLERATED_CASES)
def test_untolerated_taint(
    tolerations: Any, taints: Any, effects: Collection[str] | None, expected_index: int | None
) -> None:
    if effects is None:
        result = untolerated_taint(tolerations, taints)
    else:
        result = untolerated_taint(tolerations, taints, effects)
    if expected_index is None:
        assert result is None
    else:
        assert result is taints[expected_index]


@pytest.mark.parametrize(
    ("tolerations", "taints", "expected"),
    [
        pytest.param([VK_TOL_EXISTS], [VK_TAINT, PNS], True, id="vk-tolerated-prefer-ignored"),
        pytest.param([VK_TOL_EXISTS], [VK_TAINT, NE], False, id="NoExecute-untolerated"),
        pytest.param(None, [], True, id="nothing-to-tolerate"),
    ],
)
def test_tolerates_all(tolerations: Any, taints: Any, expected: bool) -> None:
    assert tolerates_all(tolerations, taints) is expected


@pytest.mark.parametrize(
    ("taint", "expected"),
    [
        pytest.param(VK_TAINT, "virtual-kubelet.io/provider=azure:NoSchedule", id="key-value-effect"),
        pytest.param(NO_VALUE, "dedicated:NoSchedule", id="no-value"),
        pytest.param({"key": "k", "value": "v"}, "k=v:", id="no-effect"),
        pytest.param({"key": "k"}, "k", id="key-only"),
        pytest.param("junk", "<malformed taint 'junk'>", id="malformed"),
    ],
)
def test_describe_taint(taint: Any, expected: str) -> None:
    assert describe_taint(taint) == expected


# ------------------------------------------------------------------------------ node_selector_term_matches

LBL = {"zone": "eastus-1", "gpu-count": "4", "tier": "gold", "weird": "abc"}

TERM_CASES = [
    pytest.param(term(expr("zone", "In", "eastus-1", "eastus-2")), None, True, id="In-hit"),
    pytest.param(term(expr("zone", "In", "westus-1")), None, False, id="In-miss"),
    pytest.param(term(expr("absent", "In", "x")), None, False, id="In-label-missing"),
    pytest.param(term(expr("zone", "NotIn", "eastus-1")), None, False, id="NotIn-value-listed"),
    pytest.param(term(expr("zone", "NotIn", "westus-1")), None, True, id="NotIn-value-not-listed"),
    pytest.param(term(expr("absent", "NotIn", "x")), None, True, id="NotIn-label-missing-matches"),
    pytest.param(term(expr("tier", "Exists")), None, True, id="Exists-present"),
    pytest.param(term(expr("absent", "Exists")), None, False, id="Exists-absent"),
    pytest.param(term(expr("absent", "DoesNotExist")), None, True, id="DoesNotExist-absent"),
    pytest.param(term(expr("tier", "DoesNotExist")), None, False, id="DoesNotExist-present"),
    pytest.param(term(expr("gpu-count", "Gt", "3")), None, True, id="Gt-greater"),
    pytest.param(term(expr("gpu-count", "Gt", "4")), None, False, id="Gt-equal-is-not-greater"),
    pytest.param(term(expr("gpu-count", "Gt", "007")), None, False, id="Gt-leading-zeros-parsed"),
    pytest.param(term(expr("gpu-count", "Gt", "0003")), None, True, id="Gt-leading-zeros-parsed-true"),
    pytest.param(term(expr("gpu-count", "Lt", "5")), None, True, id="Lt-less"),
    pytest.param(term(expr("gpu-count", "Lt", "4")), None, False, id="Lt-equal-is-not-less"),
    pytest.param(term(expr("weird", "Gt", "1")), None, False, id="Gt-non-integer-label"),
    pytest.param(term(expr("absent", "Lt", "100")), None, False, id="Lt-label-missing"),
    pytest.param(term(expr("gpu-count", "Gt", "9223372036854775807")), None, False, id="Gt-int64-max"),
    pytest.param(term(expr("gpu-count", "Lt", "9223372036854775808")), None, False, id="Lt-int64-overflow"),
    pytest.param(term(expr("gpu-count", "Gt", "abc")), None, False, id="Gt-non-integer-value"),
    pytest.param(term(expr("gpu-count", "Gt", "9" * 5000)), None, False, id="Gt-huge-value-no-crash"),
    pytest.param(term(expr("gpu-count", "Gt", "0" * 30 + "3")), None, True, id="Gt-many-leading-zeros"),
    pytest.param(term(expr("gpu-count", "Gt", "1_0")), None, False, id="Gt-underscore-not-integer"),
    pytest.param(term(expr("gpu-count", "Gt", "-1")), None, False, id="Gt-negative-is-invalid-label-value"),
    pytest.param(term(expr("gpu-count", "Gt", "1", "2")), None, False, id="Gt-two-values"),
    pytest.param(term(expr("zone", "In")), None, False, id="In-without-values"),
    pytest.param(term(expr("tier", "Exists", "gold")), None, False, id="Exists-with-values"),
    pytest.param(term(expr("tier", "Equals", "gold")), None, False, id="unknown-operator"),
    pytest.param(term(expr("zone", "In", "eastus 1", "eastus-1")), None, False, id="invalid-label-value"),
    pytest.param(term(expr("-zone", "DoesNotExist")), None, False, id="invalid-label-key"),
    pytest.param(term(expr("/zone", "DoesNotExist")), None, False, id="label-key-empty-prefix"),
    pytest.param(term(expr("Example.com/zone", "DoesNotExist")), None, False, id="label-key-upper-prefix"),
    pytest.param(term(expr("example.com/zone", "DoesNotExist")), None, True, id="label-key-valid-prefix"),
    pytest.param(term(expr("z" * 64, "DoesNotExist")), None, False, id="label-key-name-too-long"),
    pytest.param(
        term(expr("zone", "In", "eastus-1"), expr("tier", "In", "gold")), None, True, id="AND-all-match"
    ),
    pytest.param(
        term(expr("zone", "In", "eastus-1"), expr("tier", "In", "bronze")), None, False, id="AND-one-fails"
    ),
    pytest.param(
        term(expr("zone", "In", "eastus-1"), expr("t", "Bad")), None, False, id="AND-malformed-sinks-term"
    ),
    pytest.param({}, None, False, id="empty-term-matches-nothing"),
    pytest.param({"matchExpressions": [], "matchFields": []}, None, False, id="empty-lists-match-nothing"),
    pytest.param(None, None, False, id="null-term-matches-nothing"),
    pytest.param(term(fields=[name_field("In", "aks-1")]), "aks-1", True, id="matchFields-In-hit"),
    pytest.param(term(fields=[name_field("In", "aks-1")]), "aks-2", False, id="matchFields-In-miss"),
    pytest.param(term(fields=[name_field("In", "aks-1")]), None, False, id="matchFields-In-future-node"),
    pytest.param(term(fields=[name_field("NotIn", "aks-1")]), "aks-1", False, id="matchFields-NotIn-same"),
    pytest.param(term(fields=[name_field("NotIn", "aks-1")]), None, True, id="matchFields-NotIn-future-node"),
    pytest.param(term(fields=[name_field("In", "a", "b")]), "a", False, id="matchFields-two-values"),
    pytest.param(term(fields=[name_field("Exists")]), "a", False, id="matchFields-Exists-unsupported"),
    pytest.param(
        term(expr("tier", "In", "gold"), fields=[name_field("In", "aks-1")]),
        "aks-1",
        True,
        id="fields-AND-labels",
    ),
    pytest.param(
        term(expr("tier", "In", "bronze"), fields=[name_field("In", "aks-1")]),
        "aks-1",
        False,
        id="fields-AND-labels-label-fails",
    ),
    pytest.param({"matchExpressions": {"key": "tier"}}, None, False, id="malformed-expressions-not-list"),
    pytest.param(
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": "gold"}]},
        None,
        False,
        id="malformed-values-string",
    ),
    pytest.param("tier=gold", None, False, id="malformed-term-not-object"),
]


@pytest.mark.parametrize(("t", "node_name", "expected"), TERM_CASES)
def test_node_selector_term_matches(t: Any, node_name: str | None, expected: bool) -> None:
    assert node_selector_term_matches(t, LBL, node_name) is expected


# ------------------------------------------------------------------------- required_node_affinity_mismatch

VK_NOT_IN = term(expr("type", "NotIn", "virtual-kubelet"))
POOL_IN = term(expr("kubernetes.azure.com/agentpool", "In", "nodepool1"))

# (pod_spec, labels, node_name, expected): expected None = matches, str = exact reason, ("~", s) = substring.
MISMATCH_CASES = [
    pytest.param({}, POOL_LABELS, None, None, id="no-constraints"),
    pytest.param({"nodeSelector": None, "affinity": None}, POOL_LABELS, None, None, id="null-constraints"),
    pytest.param({"nodeSelector": {}}, POOL_LABELS, None, None, id="empty-nodeSelector"),
    pytest.param(
        {"nodeSelector": {"kubernetes.azure.com/agentpool": "nodepool1"}},
        POOL_LABELS,
        None,
        None,
        id="selector-hit",
    ),
    pytest.param(
        {"nodeSelector": {"kubernetes.azure.com/agentpool": "gpupool"}},
        POOL_LABELS,
        None,
        "nodeSelector kubernetes.azure.com/agentpool=gpupool does not match (node has nodepool1)",
        id="selector-miss",
    ),
    pytest.param(
        {"nodeSelector": {"kubernetes.azure.com/agentpool": "gpupool"}},
        VK_LABELS,
        None,
        "nodeSelector kubernetes.azure.com/agentpool=gpupool does not match (node has no such label)",
        id="selector-label-missing",
    ),
    pytest.param(
        {"nodeSelector": {"kubernetes.io/os": "linux", "kubernetes.azure.com/agentpool": "x"}},
        POOL_LABELS,
        None,
        ("~", "agentpool=x does not match"),
        id="selector-entries-ANDed",
    ),
    pytest.param(
        req_affinity(VK_NOT_IN),
        VK_LABELS,
        "virtual-node-aci-linux",
        "required node affinity: no term matches (type NotIn [virtual-kubelet])",
        id="affinity-excludes-virtual-node",
    ),
    pytest.param(req_affinity(VK_NOT_IN), POOL_LABELS, None, None, id="affinity-NotIn-absent-label"),
    pytest.param(
        {**req_affinity(POOL_IN), "nodeSelector": {"kubernetes.io/os": "linux"}},
        POOL_LABELS,
        None,
        None,
        id="selector-AND-affinity-both-match",
    ),
    pytest.param(
        {**req_affinity(POOL_IN), "nodeSelector": {"kubernetes.io/os": "windows"}},
        POOL_LABELS,
        None,
        "nodeSelector kubernetes.io/os=windows does not match (node has linux)",
        id="selector-AND-affinity-selector-fails",
    ),
    pytest.param(
        {**req_affinity(term(expr("kubernetes.azure.com/agentpool", "In", "gpu"))), "nodeSelector": {}},
        POOL_LABELS,
        None,
        "required node affinity: no term matches (kubernetes.azure.com/agentpool In [gpu])",
        id="selector-AND-affinity-affinity-fails",
    ),
    pytest.param(
        req_affinity(term(expr("zone", "In", "a")), POOL_IN),
        POOL_LABELS,
        None,
        None,
        id="terms-ORed-second-matches",
    ),
    pytest.param(
        req_affinity(term(expr("zone", "In", "a", "b")), term(expr("gpu", "Exists"))),
        POOL_LABELS,
        None,
        "required node affinity: no term matches (term 0: zone In [a, b]; term 1: gpu Exists)",
        id="terms-ORed-none-match",
    ),
    pytest.param(req_affinity({}, POOL_IN), POOL_LABELS, None, None, id="empty-term-skipped"),
    pytest.param(
        req_affinity({}),
        POOL_LABELS,
        None,
        "required node affinity: no term matches (empty term matches nothing)",
        id="only-empty-term",
    ),
    pytest.param(
        req_affinity(),
        POOL_LABELS,
        None,
        "required node affinity: no nodeSelectorTerms (matches no node)",
        id="empty-terms-list",
    ),
    pytest.param(
        {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}}},
        POOL_LABELS,
        None,
        "required node affinity: no nodeSelectorTerms (matches no node)",
        id="required-without-terms",
    ),
    pytest.param(
        req_affinity(term(fields=[name_field("In", "aks-nodepool1-0")])),
        POOL_LABELS,
        "aks-nodepool1-0",
        None,
        id="matchFields-pinned-node",
    ),
    pytest.param(
        req_affinity(term(fields=[name_field("In", "aks-nodepool1-0")])),
        POOL_LABELS,
        None,
        "required node affinity: no term matches (metadata.name In [aks-nodepool1-0])",
        id="matchFields-pinned-pod-vs-template",
    ),
    pytest.param(
        {
            "affinity": {
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 100, "preference": term(expr("zone", "In", "nowhere"))}
                    ]
                }
            }
        },
        POOL_LABELS,
        None,
        None,
        id="preferred-affinity-ignored",
    ),
    pytest.param(
        {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [POOL_IN]},
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {"weight": 1, "preference": term(expr("zone", "In", "nowhere"))}
                    ],
                }
            },
        },
        POOL_LABELS,
        None,
        None,
        id="required-matches-preferred-fails",
    ),
    pytest.param(
        {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}}},
        POOL_LABELS,
        None,
        None,
        id="pod-anti-affinity-not-node-affinity",
    ),
    # --- malformed input: never raises, never matches, reason names the problem
    pytest.param(
        req_affinity(term(expr("tier", "Foo", "x"))),
        POOL_LABELS,
        None,
        "required node affinity: no term matches (malformed matchExpressions[0]: "
        "operator 'Foo' is not supported (expected one of In, NotIn, Exists, DoesNotExist, Gt, Lt))",
        id="malformed-unknown-operator",
    ),
    pytest.param(
        req_affinity(term(expr("gpu-count", "Gt", "four"))),
        {"gpu-count": "8"},
        None,
        "required node affinity: no term matches "
        "(malformed matchExpressions[0]: Gt value 'four' is not an integer)",
        id="malformed-Gt-non-integer",
    ),
    pytest.param(
        req_affinity(term(expr("gpu-count", "Lt", "1", "2"))),
        {"gpu-count": "0"},
        None,
        ("~", "Lt requires exactly one value, got 2"),
        id="malformed-Lt-two-values",
    ),
    pytest.param(
        req_affinity(term(expr("zone", "NotIn"))),
        POOL_LABELS,
        None,
        ("~", "NotIn requires at least one value"),
        id="malformed-NotIn-no-values",
    ),
    pytest.param(
        req_affinity(term(expr("zone", "DoesNotExist", "x"))),
        POOL_LABELS,
        None,
        ("~", "DoesNotExist must not have values"),
        id="malformed-DoesNotExist-with-values",
    ),
    pytest.param(
        req_affinity(term(expr("a/b/c", "Exists"))),
        POOL_LABELS,
        None,
        ("~", "'a/b/c' is not a valid label key"),
        id="malformed-label-key",
    ),
    pytest.param(
        req_affinity(term(expr("/zone", "Exists"))),
        POOL_LABELS,
        None,
        ("~", "key '/zone' has an empty prefix"),
        id="malformed-label-key-empty-prefix",
    ),
    pytest.param(
        req_affinity(term(expr("zone", "NotIn", "not valid"))),
        POOL_LABELS,
        None,
        ("~", "value 'not valid' is not a valid label value"),
        id="malformed-label-value",
    ),
    pytest.param(
        req_affinity(term(expr("zone", "In", "x"), expr("zone", "Bogus"))),
        POOL_LABELS,
        None,
        ("~", "malformed matchExpressions[1]: operator 'Bogus'"),
        id="malformation-reported-over-mismatch",
    ),
    pytest.param(
        req_affinity(term(expr("tier", "Foo")), POOL_IN),
        POOL_LABELS,
        None,
        None,
        id="malformed-term-other-matches",
    ),
    pytest.param(
        req_affinity({"matchExpressions": [{"key": "zone", "operator": "In", "values": [1]}]}),
        POOL_LABELS,
        None,
        ("~", "values must be strings, got 1"),
        id="malformed-non-string-value",
    ),
    pytest.param(
        req_affinity(term(fields=[{"key": "metadata.name", "operator": "Exists"}])),
        POOL_LABELS,
        "n1",
        ("~", "operator 'Exists' is not supported for matchFields"),
        id="malformed-matchFields-operator",
    ),
    pytest.param(
        req_affinity({"matchExpressions": "zone=a"}),
        POOL_LABELS,
        None,
        ("~", "matchExpressions must be a list, got str"),
        id="malformed-matchExpressions-type",
    ),
    pytest.param(
        req_affinity(["zone"]),
        POOL_LABELS,
        None,
        ("~", "malformed term: expected an object, got list"),
        id="malformed-term-type",
    ),
    pytest.param(
        {
            "affinity": {
                "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": {}}}
            }
        },
        POOL_LABELS,
        None,
        "malformed nodeSelectorTerms: expected a list, got dict",
        id="malformed-terms-type",
    ),
    pytest.param(
        {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}}},
        POOL_LABELS,
        None,
        ("~", "malformed requiredDuringSchedulingIgnoredDuringExecution"),
        id="malformed-required-type",
    ),
    pytest.param(
        {"affinity": {"nodeAffinity": "x"}},
        POOL_LABELS,
        None,
        ("~", "malformed nodeAffinity"),
        id="malformed-nodeAffinity-type",
    ),
    pytest.param(
        {"affinity": []},
        POOL_LABELS,
        None,
        "malformed affinity: expected an object, got list",
        id="malformed-affinity-type",
    ),
    pytest.param(
        {"nodeSelector": ["a=b"]},
        POOL_LABELS,
        None,
        "malformed nodeSelector: expected an object, got list",
        id="malformed-nodeSelector-type",
    ),
    pytest.param(
        {"nodeSelector": {"kubernetes.io/os": 1}},
        POOL_LABELS,
        None,
        ("~", "malformed nodeSelector entry"),
        id="malformed-nodeSelector-value",
    ),
    pytest.param(
        None, POOL_LABELS, None, "malformed pod spec: expected an object, got null", id="malformed-pod-spec"
    ),
]


@pytest.mark.parametrize(("pod_spec", "labels", "node_name", "expected"), MISMATCH_CASES)
def test_required_node_affinity_mismatch(
    pod_spec: Any, labels: Mapping[str, str], node_name: str | None, expected: str | tuple[str, str] | None
) -> None:
    reason = required_node_affinity_mismatch(pod_spec, labels, node_name)
    if expected is None:
        assert reason is None
    elif isinstance(expected, tuple):
        assert reason is not None
        assert expected[1] in reason
    else:
        assert reason == expected


# -------------------------------------------------------------------------------------- pod_fits_template

SEED_EXISTS: Json = {"tolerations": [VK_TOL_EXISTS]}
SEED_EQUAL: Json = {"tolerations": [VK_TOL_EQUAL]}
GPU_TAINT: Json = {"key": "sku", "value": "gpu", "effect": "NoSchedule"}
GPU_LABELS = {"kubernetes.azure.com/agentpool": "gpupool", "accelerator": "nvidia"}
VK_UNTOLERATED = "untolerated taint virtual-kubelet.io/provider=azure:NoSchedule"

FITS_CASES = [
    pytest.param(SEED_EXISTS, VK_LABELS, [VK_TAINT], [], id="vk-seed-exists-fits"),
    pytest.param(SEED_EQUAL, VK_LABELS, [VK_TAINT], [], id="vk-seed-equal-fits"),
    pytest.param({}, VK_LABELS, [VK_TAINT], [VK_UNTOLERATED], id="vk-no-toleration"),
    pytest.param({"tolerations": None}, VK_LABELS, [VK_TAINT], [VK_UNTOLERATED], id="vk-null-tolerations"),
    pytest.param(
        {**SEED_EXISTS, **req_affinity(VK_NOT_IN)},
        VK_LABELS,
        [VK_TAINT],
        ["required node affinity: no term matches (type NotIn [virtual-kubelet])"],
        id="vk-tolerated-but-affinity-excludes",
    ),
    pytest.param({**SEED_EXISTS, **req_affinity(VK_NOT_IN)}, POOL_LABELS, [], [], id="pool-template-fits"),
    pytest.param({}, POOL_LABELS, [PNS], [], id="PreferNoSchedule-not-a-reason"),
    pytest.param({}, POOL_LABELS, None, [], id="null-taints"),
    pytest.param(
        {"nodeSelector": {"accelerator": "nvidia"}, "tolerations": [{"key": "sku", "operator": "Exists"}]},
        GPU_LABELS,
        [GPU_TAINT],
        [],
        id="gpu-pool-fits",
    ),
    pytest.param(
        {"nodeSelector": {"accelerator": "nvidia"}},
        GPU_LABELS,
        [GPU_TAINT, PNS, NE],
        ["untolerated taint sku=gpu:NoSchedule", "untolerated taint dedicated=gpu:NoExecute"],
        id="all-untolerated-taints-listed",
    ),
    pytest.param(
        {"nodeSelector": {"accelerator": "amd"}, **req_affinity(term(expr("zone", "Exists")))},
        GPU_LABELS,
        [GPU_TAINT],
        [
            "nodeSelector accelerator=amd does not match (node has nvidia)",
            "required node affinity: no term matches (zone Exists)",
            "untolerated taint sku=gpu:NoSchedule",
        ],
        id="selector-affinity-and-taint-all-reported",
    ),
    pytest.param(
        SEED_EXISTS,
        VK_LABELS,
        {"key": "x"},
        ["malformed node taints: expected a list, got dict"],
        id="bad-taints",
    ),
    pytest.param(
        "spec", VK_LABELS, [], ["malformed pod spec: expected an object, got str"], id="bad-pod-spec"
    ),
]


@pytest.mark.parametrize(("pod_spec", "labels", "taints", "expected"), FITS_CASES)
def test_pod_fits_template(
    pod_spec: Any, labels: Mapping[str, str], taints: Any, expected: list[str]
) -> None:
    assert pod_fits_template(pod_spec, labels, taints) == expected


@pytest.mark.parametrize(
    ("node_name", "expected"),
    [
        pytest.param("aks-nodepool1-0", [], id="existing-pinned-node"),
        pytest.param(
            None,
            ["required node affinity: no term matches (metadata.name In [aks-nodepool1-0])"],
            id="template-has-no-name-yet",
        ),
    ],
)
def test_pod_fits_template_daemonset_pinning(node_name: str | None, expected: list[str]) -> None:
    # DaemonSet pods are pinned with matchFields metadata.name; they must never "fit" a pool template.
    spec = {
        **req_affinity(term(fields=[name_field("In", "aks-nodepool1-0")])),
        "tolerations": [{"operator": "Exists"}],
    }
    assert pod_fits_template(spec, POOL_LABELS, [NS], node_name) == expected


def test_inputs_are_not_mutated() -> None:
    spec = {**SEED_EXISTS, **req_affinity(VK_NOT_IN, POOL_IN), "nodeSelector": {"kubernetes.io/os": "linux"}}
    taints = [VK_TAINT, PNS]
    labels = dict(VK_LABELS)
    before = repr((spec, taints, labels))
    assert pod_fits_template(spec, labels, taints, "virtual-node-aci-linux") == [
        "required node affinity: no term matches (term 0: type NotIn [virtual-kubelet]; "
        "term 1: kubernetes.azure.com/agentpool In [nodepool1])"
    ]
    assert repr((spec, taints, labels)) == before
