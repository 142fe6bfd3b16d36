"""Issue 16 (2): the spill ledger records only pods tideover's cluster view holds (a known uid in a known namespace,
Pending, unbound), so a forged /filter changes nothing; a real pod the watch has not delivered yet is waited for, and
after server.podWatchGraceSeconds answered unrecorded."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import pytest

from extender.cluster.view import ClusterView
from extender.edge.app import ExtenderService, create_app
from extender.model.config import TideoverConfig, parse_config
from extender.model.objects import pod_facts
from extender.telemetry.metrics import Metrics
from tests.support.edge import TestClient, default_nodes, names_args
from tests.support.factories import VIRTUAL_NODE, pod, snapshot, status_yaml

PENDING = status_yaml("InProgress", target=4)
SPILL = "spill-capacity-pending"
NOT_SEEN = "withheld-pod-not-seen"


class _NoApi:
    """The view is fed through its store here; nothing may call the API."""


def _view(*pods: dict[str, Any]) -> ClusterView:
    view = ClusterView(_NoApi(), TideoverConfig())  # type: ignore[arg-type]
    view._replace("pods", list(pods))
    return view


def _with(obj: dict[str, Any], **changes: Any) -> dict[str, Any]:
    copy = orjson.loads(orjson.dumps(obj))
    for path, value in changes.items():
        section, key = path.split("__")
        copy[section][key] = value
    return copy


def test_the_view_holds_a_pending_unbound_pod_by_uid_namespace_name_and_owner() -> None:
    real = pod("web-1")
    view = _view(real)
    assert view.holds_pending(pod_facts(real))
    assert not view.holds_pending(pod_facts(pod("web-1", uid="uid-forged")))  # unknown uid
    assert not view.holds_pending(pod_facts(pod("web-1", "other", uid=real["metadata"]["uid"])))  # other namespace
    assert not view.holds_pending(pod_facts(pod("web-2", uid=real["metadata"]["uid"])))  # other name
    assert not view.holds_pending(pod_facts(pod("web-1", owner=("ReplicaSet", "someone-else"))))  # other owner


@pytest.mark.parametrize(
    "change",
    [{"spec__nodeName": "vm-1"}, {"status__phase": "Running"}, {"metadata__deletionTimestamp": "2026-01-01T00:00:00Z"}],
    ids=["bound", "running", "terminating"],
)
def test_a_bound_running_or_terminating_pod_is_not_held_as_pending(change: dict[str, Any]) -> None:
    real = pod("web-1")
    assert not _view(_with(real, **change)).holds_pending(pod_facts(real))


def test_a_watch_event_is_seen_before_the_next_snapshot() -> None:
    view = _view()
    obj = pod("web-1")
    assert not view.holds_pending(pod_facts(obj))
    view._apply("pods", "ADDED", obj)  # the publisher has not rebuilt the snapshot
    assert view.holds_pending(pod_facts(obj))


def _client(view: ClusterView, config: TideoverConfig | None = None) -> tuple[TestClient, ExtenderService, Metrics]:
    config = config or TideoverConfig()
    snap = snapshot(default_nodes(), PENDING)
    metrics = Metrics()
    service = ExtenderService(config, lambda: snap, metrics, pod_seen=view.holds_pending)
    return TestClient(create_app(service, ready=lambda: True)), service, metrics


def _filter(client: TestClient, obj: dict[str, Any]) -> dict[str, Any]:
    """The pod's only candidate is the virtual node (kube-scheduler's filters found no VM): a spill, when allowed."""
    response = client.post("/filter", content=orjson.dumps(names_args(obj, [VIRTUAL_NODE])))
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


def _outcome(metrics: Metrics, outcome: str) -> float:
    return metrics.registry.get_sample_value("tideover_decisions_total", {"verb": "filter", "outcome": outcome}) or 0.0


NO_GRACE = parse_config({"server": {"podWatchGraceSeconds": 0}}, "test")


def test_a_seen_pod_spills_and_enters_the_ledger() -> None:
    real = pod("web-1")
    client, service, metrics = _client(_view(real), NO_GRACE)
    assert _filter(client, real)["NodeNames"] == [VIRTUAL_NODE]
    assert len(service.spills) == 1
    assert _outcome(metrics, SPILL) == 1


def test_forged_pods_are_answered_but_change_nothing() -> None:
    real = pod("web-1")
    client, service, metrics = _client(_view(real), NO_GRACE)
    _filter(client, real)  # the real pod's spill is in the ledger
    forgeries = [
        pod(f"forged-{i}", "team-b", uid=f"uid-forged-{i}", owner=("ReplicaSet", "victim")) for i in range(20)
    ] + [pod("web-1", "team-b", uid=real["metadata"]["uid"])]  # a real uid in another namespace
    for forged in forgeries:
        assert _filter(client, forged)["NodeNames"] == [VIRTUAL_NODE]  # answered as any pod, after the grace
    assert len(service.spills) == 1  # only the real pod: the forged uid did not remove it either
    assert _outcome(metrics, NOT_SEEN) == 0  # the withheld answer only means "wait for the watch"


def test_a_pod_the_watch_delivers_during_the_grace_is_answered_as_seen() -> None:
    view = _view()
    obj = pod("web-1")
    client, service, _ = _client(view, parse_config({"server": {"podWatchGraceSeconds": 5}}, "test"))
    delivered = threading.Timer(0.3, view._apply, ("pods", "ADDED", obj))
    delivered.start()
    started = time.monotonic()
    reply = _filter(client, obj)
    waited = time.monotonic() - started
    delivered.join()
    assert reply["NodeNames"] == [VIRTUAL_NODE]
    assert len(service.spills) == 1
    assert 0.3 <= waited < 2.0


def test_a_pod_never_delivered_is_answered_after_the_grace_unrecorded() -> None:
    client, service, metrics = _client(_view(), parse_config({"server": {"podWatchGraceSeconds": 0.2}}, "test"))
    started = time.monotonic()
    reply = _filter(client, pod("web-1"))
    assert time.monotonic() - started >= 0.2
    assert reply["NodeNames"] == [VIRTUAL_NODE]  # not held back: a real pod whose watch event is late still spills
    assert len(service.spills) == 0
    assert _outcome(metrics, SPILL) == 1


def test_an_unseen_pod_that_would_not_spill_is_answered_at_once() -> None:
    client, _, metrics = _client(_view(), parse_config({"server": {"podWatchGraceSeconds": 5}}, "test"))
    started = time.monotonic()
    reply = _filter(client, pod("web-1", tolerate_virtual=False))
    assert time.monotonic() - started < 1.0
    assert reply["NodeNames"] == [VIRTUAL_NODE]
    assert _outcome(metrics, NOT_SEEN) == 0
