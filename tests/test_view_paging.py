"""The cluster view reads its initial lists page by page (LIST_PAGE objects a call, following the continue token),
converting pods to placements per page, and ends with the list's resourceVersion."""

from __future__ import annotations

from typing import Any

import orjson

from extender.cluster import view as view_module
from extender.cluster.view import ClusterView
from extender.model.config import TideoverConfig
from extender.model.snapshot import PodPlacement
from tests.support.factories import pod


class _Response:
    def __init__(self, body: dict[str, Any]) -> None:
        self.data = orjson.dumps(body)


def test_the_initial_list_is_read_page_by_page(monkeypatch: Any) -> None:
    monkeypatch.setattr(view_module, "LIST_PAGE", 2)
    pods = [pod(f"p{i}", uid=f"u{i}") for i in range(5)]
    calls: list[dict[str, Any]] = []

    def list_pods(**kwargs: Any) -> _Response:
        calls.append(kwargs)
        start = int(kwargs.get("_continue") or 0)
        end = start + kwargs["limit"]
        metadata = {"resourceVersion": "42", **({"continue": str(end)} if end < len(pods) else {})}
        return _Response({"metadata": metadata, "items": pods[start:end]})

    view = ClusterView(core=None, config=TideoverConfig())  # type: ignore[arg-type]
    items, version = view._list("pods", list_pods, {})
    assert version == "42"
    assert [c.get("_continue") for c in calls] == [None, "2", "4"]
    assert all(c["limit"] == 2 and c["_preload_content"] is False for c in calls)
    assert all(isinstance(item, PodPlacement) for item in items)
    assert [item.uid for item in items] == [f"u{i}" for i in range(5)]
    view._replace("pods", items)
    assert set(view._store.pods) == {f"u{i}" for i in range(5)}
