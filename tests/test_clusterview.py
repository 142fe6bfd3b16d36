"""The cluster view's list/watch loop with the real client `watch` over scripted API responses.

The fake stands in for the HTTP responses only; the kubernetes client's Watch, the view's relist on
410 Gone, its reconnect after errors and the snapshot publisher are the real code.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from kubernetes.client.rest import ApiException

from extender.cluster.view import ClusterView
from extender.model.config import TideoverConfig
from extender.model.snapshot import ClusterSnapshot
from tests.support.factories import NOW, VIRTUAL_NODE, pod, status_config_map, status_yaml, virtual_node, vm_node


class _Response:
    def __init__(self, body: bytes = b"", lines: list[Any] | None = None, hold: float = 0.0) -> None:
        """``lines``: watch events (dicts, encoded here) or raw bytes sent as they are."""
        self.data = body
        self.status = 200
        self._lines = lines or []
        self._hold = hold

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        for line in self._lines:
            yield line if isinstance(line, bytes) else orjson.dumps(line) + b"\n"
        time.sleep(self._hold)  # an open watch with nothing to say, until the server times it out

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


def _list_body(items: list[dict[str, Any]], version: str) -> bytes:
    return orjson.dumps({"metadata": {"resourceVersion": version}, "items": items})


class FakeCoreV1Api:
    """Serves scripted list and watch responses per resource; records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.lists: dict[str, list[Callable[[], _Response]]] = {"nodes": [], "pods": [], "cms": []}
        self.watches: dict[str, list[Callable[[], _Response]]] = {"nodes": [], "pods": [], "cms": []}

    def _serve(self, resource: str, kwargs: dict[str, Any]) -> _Response:
        watching = kwargs.get("watch", False)
        self.calls.append((resource, kwargs))
        queue = self.watches[resource] if watching else self.lists[resource]
        if not queue:
            return _Response(lines=[], hold=0.05) if watching else _Response(_list_body([], "1"))
        return queue.pop(0)()

    def list_node(self, **kwargs: Any) -> Any:
        """:return: V1NodeList"""
        return self._serve("nodes", kwargs)

    def list_pod_for_all_namespaces(self, **kwargs: Any) -> Any:
        """:return: V1PodList"""
        return self._serve("pods", kwargs)

    def list_namespaced_config_map(self, namespace: str, **kwargs: Any) -> Any:
        """:return: V1ConfigMapList"""
        return self._serve("cms", {"namespace": namespace, **kwargs})


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


@pytest.fixture
def api() -> FakeCoreV1Api:
    return FakeCoreV1Api()


def _view(api: FakeCoreV1Api) -> ClusterView:
    return ClusterView(api, TideoverConfig(), refresh_seconds=0.05, coalesce_seconds=0.0, watch_timeout_seconds=1,
                       now=lambda: NOW)


def test_lists_watches_and_publishes_a_synced_snapshot(api: FakeCoreV1Api) -> None:
    api.lists["nodes"].append(lambda: _Response(_list_body([vm_node("vm-1"), virtual_node()], "10")))
    api.lists["pods"].append(lambda: _Response(_list_body([pod("a", node_name=VIRTUAL_NODE)], "20")))
    status = status_config_map(status_yaml("InProgress", target=3))
    api.lists["cms"].append(lambda: _Response(_list_body([status], "30")))
    added = vm_node("vm-2")
    added["metadata"]["resourceVersion"] = "11"
    api.watches["nodes"].append(lambda: _Response(lines=[{"type": "ADDED", "object": added}], hold=0.05))
    view = _view(api)
    assert not view.ready()
    view.start()
    try:
        _wait_for(lambda: view.ready() and "vm-2" in view.snapshot().nodes)
        snap: ClusterSnapshot = view.snapshot()
        assert snap.virtual_nodes == (VIRTUAL_NODE,)
        assert snap.pods_on_virtual_nodes == {VIRTUAL_NODE: 1}
        assert snap.pools["nodepool1"].capacity.pending
        # The status ConfigMap is watched by name, in the configured namespace.
        cm_call = next(kwargs for resource, kwargs in api.calls if resource == "cms")
        assert cm_call["namespace"] == "kube-system"
        assert cm_call["field_selector"] == "metadata.name=cluster-autoscaler-status"
        # The watch resumes from the list's resourceVersion, with bookmarks.
        node_watch = next(kwargs for resource, kwargs in api.calls if resource == "nodes" and kwargs.get("watch"))
        assert node_watch["resource_version"] == "10"
        assert node_watch["allow_watch_bookmarks"] is True
        assert set(view.sync_ages()) == {"nodes", "pods", "autoscaler-status"}
    finally:
        view.stop()


def test_a_blank_line_in_a_watch_is_skipped_not_an_error(api: FakeCoreV1Api) -> None:
    # The events are decoded with orjson (extender.cluster.view._OrjsonWatch); a blank line between two events must
    # neither stop the watch nor lose the event after it.
    api.lists["nodes"].append(lambda: _Response(_list_body([vm_node("vm-1")], "10")))
    first, second = vm_node("vm-2"), vm_node("vm-3")
    first["metadata"]["resourceVersion"], second["metadata"]["resourceVersion"] = "11", "12"
    lines = [{"type": "ADDED", "object": first}, b"\n", b"  \n", {"type": "ADDED", "object": second}]
    api.watches["nodes"].append(lambda: _Response(lines=lines, hold=0.05))
    view = _view(api)
    view.start()
    try:
        _wait_for(lambda: {"vm-2", "vm-3"} <= set(view.snapshot().nodes))

        def node_calls(watching: bool) -> list[dict[str, Any]]:
            return [kw for resource, kw in api.calls if resource == "nodes" and bool(kw.get("watch")) == watching]

        _wait_for(lambda: len(node_calls(True)) >= 2)
        assert node_calls(True)[1]["resource_version"] == "12"  # resumed after the last event
        assert len(node_calls(False)) == 1  # and never relisted
    finally:
        view.stop()


def test_relists_after_410_gone(api: FakeCoreV1Api) -> None:
    api.lists["nodes"].append(lambda: _Response(_list_body([vm_node("vm-1")], "10")))
    # The watch answers with an ERROR event (expired resourceVersion): the view must relist.
    api.watches["nodes"].append(lambda: _Response(lines=[
        {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}
    ]))
    api.lists["nodes"].append(lambda: _Response(_list_body([vm_node("vm-9")], "50")))
    view = _view(api)
    view.start()
    try:
        _wait_for(lambda: set(view.snapshot().nodes) == {"vm-9"})
        node_lists = [kw for resource, kw in api.calls if resource == "nodes" and not kw.get("watch")]
        assert len(node_lists) == 2
    finally:
        view.stop()


def test_reconnects_after_an_api_error_and_deleted_objects_leave(api: FakeCoreV1Api) -> None:
    def fail() -> _Response:
        raise ApiException(status=500, reason="Internal Server Error")

    api.lists["nodes"].append(fail)
    api.lists["nodes"].append(lambda: _Response(_list_body([vm_node("vm-1"), vm_node("vm-2")], "10")))
    api.watches["nodes"].append(lambda: _Response(lines=[{"type": "DELETED", "object": vm_node("vm-2")}], hold=0.05))
    view = _view(api)
    view.start()
    try:
        _wait_for(lambda: set(view.snapshot().nodes) == {"vm-1"}, timeout=8)
    finally:
        view.stop()


def test_pod_listeners_see_bindings(api: FakeCoreV1Api) -> None:
    unbound = pod("a")
    bound = pod("a", node_name=VIRTUAL_NODE)
    bound["metadata"]["resourceVersion"] = "21"
    api.lists["pods"].append(lambda: _Response(_list_body([unbound], "20")))
    api.watches["pods"].append(lambda: _Response(lines=[{"type": "MODIFIED", "object": bound}], hold=0.05))
    seen: list[tuple[str | None, str | None]] = []
    done = threading.Event()

    def listener(old: Any, new: Any) -> None:
        seen.append((old.node_name if old else None, new.node_name if new else None))
        if new is not None and new.node_name:
            done.set()

    view = _view(api)
    view.add_pod_listener(listener)
    view.start()
    try:
        assert done.wait(5)
        assert seen == [(None, None), (None, VIRTUAL_NODE)]
    finally:
        view.stop()


def test_a_pod_deleted_while_the_watch_was_down_is_reported_gone_after_the_relist(api: FakeCoreV1Api) -> None:
    """Issue 11: listeners that keep pods (the WaitingForVM notifier) must hear of a pod that a relist no longer
    shows, or they would go on posting about a pod that is gone."""
    api.lists["pods"].append(lambda: _Response(_list_body([pod("a"), pod("b")], "20")))
    api.watches["pods"].append(lambda: _Response(lines=[
        {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}
    ]))
    api.lists["pods"].append(lambda: _Response(_list_body([pod("a")], "50")))
    gone: list[str] = []
    done = threading.Event()

    def listener(old: Any, new: Any) -> None:
        if new is None:
            gone.append(old.name)
            done.set()

    view = _view(api)
    view.add_pod_listener(listener)
    view.start()
    try:
        assert done.wait(5)
        assert gone == ["b"]
    finally:
        view.stop()


class FakeCustomObjectsApi(FakeCoreV1Api):
    """Karpenter's NodeClaims and NodePools, scripted like the core resources; ``served=False``: their CRDs are not
    installed (every list answers 404)."""

    def __init__(self, served: bool = True, refused: int = 404) -> None:
        super().__init__()
        self.served = served
        self.refused = refused
        for plural in ("nodeclaims", "nodepools"):
            self.lists[plural], self.watches[plural] = [], []

    def list_cluster_custom_object(self, group: str, version: str, plural: str, **kwargs: Any) -> Any:
        assert (group, version) == ("karpenter.sh", "v1")
        if not self.served:
            self.calls.append((plural, kwargs))
            raise ApiException(status=self.refused, reason="Not Found" if self.refused == 404 else "Forbidden")
        return self._serve(plural, kwargs)


def _karpenter_view(api: FakeCoreV1Api, custom: FakeCustomObjectsApi, signal: str) -> ClusterView:
    config = TideoverConfig.model_validate(
        {"autoscaler": {"capacitySignal": signal}, "vmPools": {"poolLabel": "karpenter.sh/nodepool"}})
    return ClusterView(api, config, custom=custom, refresh_seconds=0.05,  # type: ignore[arg-type]
                       coalesce_seconds=0.0, watch_timeout_seconds=1, now=lambda: NOW)


def _nodeclaim(name: str, version: str, *conditions: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version, "labels": {"karpenter.sh/nodepool": "general"},
                         "creationTimestamp": NOW.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "status": {"conditions": [{"type": c, "status": "True"} for c in conditions]}}


def test_watches_nodeclaims_and_nodepools_when_karpenter_is_the_signal(api: FakeCoreV1Api) -> None:
    custom = FakeCustomObjectsApi()
    custom.lists["nodepools"].append(lambda: _Response(_list_body([{"metadata": {"name": "general"}}], "5")))
    custom.lists["nodeclaims"].append(lambda: _Response(_list_body([], "6")))
    custom.watches["nodeclaims"].append(lambda: _Response(lines=[
        {"type": "ADDED", "object": _nodeclaim("general-a", "7")}], hold=0.3))
    custom.watches["nodeclaims"].append(lambda: _Response(lines=[
        {"type": "MODIFIED", "object": _nodeclaim("general-a", "8", "Launched", "Registered", "Ready")}], hold=0.3))
    view = _karpenter_view(api, custom, "karpenter")
    view.start()
    try:
        _wait_for(lambda: view.ready() and view.snapshot().pools.get("general") is not None
                  and view.snapshot().pools["general"].capacity.pending)
        assert view.snapshot().capacity_source == "karpenter"
        _wait_for(lambda: not view.snapshot().pools["general"].capacity.pending)
        assert {"nodeclaims", "nodepools"} <= set(view.sync_ages())
        watch_call = next(kw for plural, kw in custom.calls if plural == "nodeclaims" and kw.get("watch"))
        assert watch_call["resource_version"] == "6"
    finally:
        view.stop()


@pytest.mark.parametrize(
    ("refused", "signal", "source", "problem"),
    [
        (404, "auto", "cluster-autoscaler", None),
        (403, "auto", "cluster-autoscaler", None),
        (404, "karpenter", "karpenter", "Karpenter's CRDs are not installed"),
        (403, "karpenter", "karpenter", "403 Forbidden"),
    ],
)
def test_without_karpenters_crds_or_rights_the_view_syncs_and_says_why(
    api: FakeCoreV1Api, refused: int, signal: str, source: str, problem: str | None
) -> None:
    """auto then reads the autoscaler; karpenter is never pending, and its evidence says why."""
    custom = FakeCustomObjectsApi(served=False, refused=refused)
    nodes = [vm_node("vm-1", labels={"karpenter.sh/nodepool": "general"}), virtual_node()]
    api.lists["nodes"].append(lambda: _Response(_list_body(nodes, "10")))
    view = _karpenter_view(api, custom, signal)
    view.start()
    try:
        _wait_for(view.ready)
        snap = view.snapshot()
        assert snap.capacity_source == source
        assert {plural for plural, _ in custom.calls} == {"nodeclaims", "nodepools"}
        if problem is not None:
            assert not snap.pools["general"].capacity.pending
            assert problem in snap.pools["general"].capacity.evidence[0]
    finally:
        view.stop()


def test_karpenter_objects_are_not_watched_with_the_default_signal(api: FakeCoreV1Api) -> None:
    custom = FakeCustomObjectsApi()
    view = ClusterView(api, TideoverConfig(), custom=custom, refresh_seconds=0.05,  # type: ignore[arg-type]
                       coalesce_seconds=0.0, watch_timeout_seconds=1, now=lambda: NOW)
    view.start()
    try:
        _wait_for(view.ready)
        assert custom.calls == []
    finally:
        view.stop()


def test_no_automatic_collection_while_the_pods_are_listed(api: FakeCoreV1Api) -> None:
    """Each full collection during the initial list of pods walks every pod stored so far (half the sync at 150,000
    pods): the collector is paused for the pods' list, and on again once it is stored."""
    collector_on_during: dict[str, bool] = {}

    def pods_page() -> _Response:
        collector_on_during["pods"] = gc.isenabled()
        return _Response(_list_body([pod("a", node_name=VIRTUAL_NODE)], "20"))

    api.lists["pods"].append(pods_page)
    assert gc.isenabled()
    view = _view(api)
    view.start()
    try:
        _wait_for(view.ready)
        assert collector_on_during["pods"] is False
        _wait_for(gc.isenabled)
    finally:
        view.stop()
