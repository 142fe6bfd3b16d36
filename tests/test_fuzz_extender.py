"""Fuzzing the extender's wire types through the ASGI app (issue 11), with a fixed seed and a bounded case budget.

Requests are mostly well formed, with junk in any field often enough that every error path is taken: quantities,
annotations, tolerations, affinity, node lists (both forms, duplicates, unknown names, both forms disagreeing) and
arbitrary JSON in their place. Whatever arrives, the extender must:

- never answer 5xx, and answer 400 only with an ``Error`` naming the field;
- in filter, list every requested node exactly once, kept or failed, and no other (for the form the request used;
  with both forms, the ``NodeNames`` reply lists only names sent there);
- in prioritize, score exactly the requested nodes, in order, with whole numbers 0..10;
- give the same answer to the same request;
- answer each request within a bound.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extender.decide.guards import SpillLedger
from extender.edge.app import ExtenderService, create_app
from extender.model.config import TideoverConfig
from extender.model.keys import GATE_TAINT
from extender.model.snapshot import ClusterSnapshot, empty_snapshot
from extender.telemetry.metrics import Metrics
from tests.support.edge import asgi_post
from tests.support.factories import (
    NOW,
    SEED_AFFINITY,
    SEED_TOLERATION,
    VIRTUAL_NODE,
    VIRTUAL_TAINT,
    status_yaml,
    virtual_node,
    vm_node,
)
from tests.support.factories import snapshot as make_snapshot

Json = dict[str, Any]

# Per request: far above the ~1 ms these take, far below kube-scheduler's extender timeout (2 s in config/).
MAX_SECONDS_PER_REQUEST = 1.0
# The case budget: about 10 s for the whole module on this project's 2-core machine.
EXAMPLES = 150
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # a fixed seed: CI runs the same cases every time
    database=None,  # nothing written to the work tree
    deadline=None,  # the bound per request is asserted below, on the request alone
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CONFIG = TideoverConfig()
VM_NAMES = ("aks-nodepool1-000000", "aks-nodepool1-000001", "aks-nodepool2-000000")
NODES: dict[str, Json] = {
    VM_NAMES[0]: vm_node(VM_NAMES[0], images=[("nginx:1.27", 70_000_000)]),
    VM_NAMES[1]: vm_node(VM_NAMES[1], cpu="1"),
    VM_NAMES[2]: vm_node(VM_NAMES[2], "nodepool2", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]),
    VIRTUAL_NODE: virtual_node(),
    "virtual-node-2": virtual_node("virtual-node-2", taints=(VIRTUAL_TAINT, GATE_TAINT)),
}
SNAPSHOTS: dict[str, ClusterSnapshot] = {
    "gate-closed": make_snapshot(list(NODES.values()), status_yaml("NoActivity", registered=2)),
    "scaling-up": make_snapshot(list(NODES.values()), status_yaml("InProgress", registered=2, target=4)),
    "backoff": make_snapshot(list(NODES.values()), status_yaml("Backoff", registered=2, backoff_code="Quota")),
    "not-synced": empty_snapshot(CONFIG, NOW),
}

# -- strategies ---------------------------------------------------------------------------------------------------

junk = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def maybe_junk(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``valid``, sometimes anything at all."""
    return st.integers(0, 7).flatmap(lambda pick: junk if pick == 3 else valid)


quantities = maybe_junk(st.sampled_from(
    ["100m", "500m", "1", "2", "3.5", "64Mi", "512Mi", "2Gi", "1e3", "0", 0, 2, 0.25, "-1", "1e400", "lots", 10**20]
))
images = st.sampled_from(["nginx:1.27", "docker.io/library/nginx:1.27", "registry.example/app@sha256:ab", "", "redis"])
containers = st.lists(
    st.fixed_dictionaries(
        {"name": st.text(min_size=1, max_size=5), "image": maybe_junk(images)},
        optional={"resources": maybe_junk(st.fixed_dictionaries({}, optional={
            "requests": maybe_junk(st.fixed_dictionaries({}, optional={"cpu": quantities, "memory": quantities})),
            "limits": maybe_junk(st.fixed_dictionaries({}, optional={"cpu": quantities, "memory": quantities})),
        }))},
    ),
    max_size=4,
)
tolerations = st.just([SEED_TOLERATION]) | st.lists(maybe_junk(st.sampled_from([
    SEED_TOLERATION, {"operator": "Exists"}, {"key": "tideover.io/spill-window", "operator": "Exists"},
    {"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}, {"key": 5}, {"operator": "Bogus"},
])), max_size=3)
annotations = st.dictionaries(
    st.sampled_from(["tideover.io/spill", "tideover.io/priority", "tideover.io/max-wait-seconds",
                     "tideover.io/max-virtual-replicas", "tideover.io/max-virtual-percent", "other"]),
    st.sampled_from(["never", "while-pending", "when-full", "economy", "critical", "standard", "0", "1", "25",
                     "120", "-3", "1e400", "nan", "", "bogus"]),
    max_size=3,
)
affinities = maybe_junk(st.sampled_from([
    SEED_AFFINITY,
    {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.azure.com/agentpool", "operator": "In", "values": ["nodepool2"]}]}
    ]}}},
    {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "type", "operator": "Gt", "values": ["x"]}]}]}}},
]))
pods = st.fixed_dictionaries(
    {
        "metadata": maybe_junk(st.fixed_dictionaries(
            {"name": st.sampled_from(["web-1", "web-2", "batch"]), "namespace": st.sampled_from(["default", "team"])},
            optional={
                "uid": st.sampled_from(["uid-1", "uid-2", ""]),
                "annotations": maybe_junk(annotations),
                "labels": maybe_junk(st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2)),
                "ownerReferences": maybe_junk(st.just([
                    {"kind": "ReplicaSet", "name": "web-5d8f", "uid": "uid-rs", "controller": True}
                ])),
            },
        )),
        "spec": maybe_junk(st.fixed_dictionaries(
            {"containers": maybe_junk(containers)},
            optional={
                "initContainers": maybe_junk(containers),
                "tolerations": maybe_junk(tolerations),
                "affinity": affinities,
                "nodeSelector": maybe_junk(st.sampled_from([{"kubernetes.azure.com/agentpool": "nodepool1"},
                                                            {"type": "virtual-kubelet"}, {}])),
                "overhead": maybe_junk(st.fixed_dictionaries({}, optional={"cpu": quantities})),
                "volumes": maybe_junk(st.sampled_from([[{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}],
                                                       [{"name": "e", "emptyDir": {}}]])),
            },
        )),
    },
)
names = st.sampled_from([*NODES, "unknown-1", "unknown-2"])
only_virtual = st.lists(st.sampled_from([VIRTUAL_NODE, "virtual-node-2"]), unique=True, min_size=1)  # VMs are full
name_lists = st.one_of(
    only_virtual,
    st.lists(names, unique=True, max_size=7),  # the usual case
    st.lists(names, max_size=7),  # duplicates now and then
    st.lists(maybe_junk(names), max_size=4),
)


def node_item(name: str) -> Json:
    return NODES.get(name) or vm_node(name)


@st.composite
def extender_args(draw: st.DrawFn, form: str) -> tuple[Any, list[str] | None, list[str] | None]:
    """(the request body, the Nodes names sent, the NodeNames sent) for ``form`` 'names', 'nodes' or 'both'."""
    pod_obj = draw(pods)
    node_names = draw(name_lists) if form in ("names", "both") else None
    nodes = draw(only_virtual | st.lists(names, unique=True, max_size=6)) if form in ("nodes", "both") else None
    body: Json = {"Pod": pod_obj}
    if node_names is not None:
        body["NodeNames"] = node_names
    if nodes is not None:
        body["Nodes"] = {"metadata": {}, "items": [node_item(n) for n in nodes]}
    return body, nodes, node_names


# -- the properties ------------------------------------------------------------------------------------------------


def _app(snapshot_name: str) -> tuple[Any, ExtenderService]:
    snap = SNAPSHOTS[snapshot_name]
    service = ExtenderService(CONFIG, lambda: snap, Metrics())
    return create_app(service, ready=lambda: snap.synced), service


APPS = {name: _app(name) for name in SNAPSHOTS}


def _post(app: Any, verb: str, body: bytes) -> tuple[int, bytes]:
    start = time.perf_counter()
    reply = asgi_post(app, f"/{verb}", iter([body]))
    seconds = time.perf_counter() - start
    assert seconds < MAX_SECONDS_PER_REQUEST, f"{verb} took {seconds:.2f}s"
    return reply.status, reply.body


def _sent(body: Any) -> tuple[list[str] | None, list[str] | None]:
    """The Nodes names and the NodeNames of a body made of junk, where the server took it."""
    if not isinstance(body, dict):
        return None, None
    items = body.get("Nodes", {}).get("items") if isinstance(body.get("Nodes"), dict) else None
    nodes = [item["metadata"]["name"] for item in items or ()] if body.get("Nodes") is not None else None
    node_names = body.get("NodeNames")
    return nodes, node_names if isinstance(node_names, list) else None


def _check(snapshot_name: str, body: Any, nodes: list[str] | None, node_names: list[str] | None) -> None:
    app, service = APPS[snapshot_name]
    service.spills = SpillLedger()  # each case starts with no recent spills: the same case, the same answer
    encoded = json.dumps(body).encode()  # stdlib json: NaN, Infinity and huge integers reach the server too
    for verb in ("filter", "prioritize"):
        status, reply_bytes = _post(app, verb, encoded)
        assert status in (200, 400), (status, reply_bytes[:300])
        again = _post(app, verb, encoded)
        assert again == (status, reply_bytes), "the same request got a different answer"
        reply = orjson.loads(reply_bytes)
        if status == 400:
            assert isinstance(reply, dict) and set(reply) == {"Error"}
            field, _, problem = reply["Error"].partition(": ")
            assert field and problem and "Traceback" not in problem, reply
            continue
        requested = nodes if nodes is not None else node_names
        assert requested is not None and len(set(requested)) == len(requested), "a duplicate must be a 400"
        if verb == "filter":
            _check_filter(reply, requested, nodes, node_names)
        else:
            # Every candidate in order with its score, or none when all would score the same (a constant).
            assert [entry["Host"] for entry in reply] in ([], requested)
            assert all(type(entry["Score"]) is int and 0 <= entry["Score"] <= 10 for entry in reply), reply
            assert not reply or len({entry["Score"] for entry in reply}) > 1, reply


def _check_filter(reply: Json, requested: list[str], nodes: list[str] | None, node_names: list[str] | None) -> None:
    assert set(reply) == {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}
    if reply["Error"]:
        assert reply["Nodes"] is None and reply["NodeNames"] is None
        return
    kept = (
        [item["metadata"]["name"] for item in reply["Nodes"]["items"]] if nodes is not None else reply["NodeNames"]
    )
    failed = [*reply["FailedNodes"], *reply["FailedAndUnresolvableNodes"]]
    counts = Counter([*kept, *failed])
    assert counts == Counter(requested) and set(counts.values()) <= {1}, (requested, kept, failed)
    if nodes is not None and node_names is not None:  # both forms: the NodeNames reply names only what was sent there
        assert set(reply["NodeNames"]) <= set(node_names) & set(kept)
    elif nodes is not None:
        assert reply["NodeNames"] is None
    else:
        assert reply["Nodes"] is None


snapshot_names = st.sampled_from(sorted(SNAPSHOTS))


@FUZZ_SETTINGS
@given(snapshot_names, extender_args("names"))
def test_fuzz_the_node_names_form(snapshot_name: str, case: tuple[Any, list[str] | None, list[str] | None]) -> None:
    _check(snapshot_name, *case)


@FUZZ_SETTINGS
@given(snapshot_names, extender_args("nodes"))
def test_fuzz_the_full_nodes_form(snapshot_name: str, case: tuple[Any, list[str] | None, list[str] | None]) -> None:
    _check(snapshot_name, *case)


@FUZZ_SETTINGS
@given(snapshot_names, st.fixed_dictionaries({}, optional={"Pod": junk, "NodeNames": junk, "Nodes": junk}) | junk)
def test_fuzz_any_json_in_place_of_the_body(snapshot_name: str, body: Any) -> None:
    _check(snapshot_name, body, *_sent(body))


@FUZZ_SETTINGS
@given(snapshot_names, extender_args("both"))
def test_fuzz_both_forms_at_once(snapshot_name: str, case: tuple[Any, list[str] | None, list[str] | None]) -> None:
    _check(snapshot_name, *case)


def _answers(snapshot_name: str, verb: str, shaped: bytes, spaced: bytes) -> tuple[tuple[int, Any], tuple[int, Any]]:
    """The answers to one request in kube-scheduler's shape and in another, each with no recent spills."""
    app, service = APPS[snapshot_name]
    answers = []
    for body in (shaped, spaced):
        service.spills = SpillLedger()
        status, reply = _post(app, verb, body)
        answers.append((status, orjson.loads(reply)))
    return answers[0], answers[1]


@FUZZ_SETTINGS
@given(snapshot_names, extender_args("names"))
def test_fuzz_kube_schedulers_shape_of_body(snapshot_name: str,
                                            case: tuple[Any, list[str] | None, list[str] | None]) -> None:
    # A body in the shape kube-scheduler writes is read in parts, through memos of the texts read last (shared by
    # every case of the run); the answers must be those to the same request decoded whole: filter's, then
    # prioritize's for the list filter kept (which filter remembered).
    body = case[0]

    def shaped(names: Any) -> bytes:  # Go's encoding/json: every field, in order, no spaces
        return json.dumps({"Pod": body["Pod"], "Nodes": None, "NodeNames": names}, separators=(",", ":")).encode()

    def spaced(names: Any) -> bytes:
        return json.dumps({"Pod": body["Pod"], "NodeNames": names}).encode()

    in_parts, whole = _answers(snapshot_name, "filter", shaped(body["NodeNames"]), spaced(body["NodeNames"]))
    assert in_parts == whole
    status, reply = in_parts
    if status == 200 and not reply["Error"]:
        kept = reply["NodeNames"]
        in_parts, whole = _answers(snapshot_name, "prioritize", shaped(kept), spaced(kept))
        assert in_parts == whole
