"""Drive tideover's HTTP edge in tests: a harness over the FastAPI app (TestClient), raw ASGI requests where the
exact chunks on the wire matter, and the largest pod a request may carry."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from fastapi import FastAPI

from extender.edge.app import ExtenderService, create_app
from extender.model.config import TideoverConfig
from extender.model.objects import MAX_AFFINITY_TERMS, MAX_CONTAINERS, MAX_TOLERATIONS
from extender.model.snapshot import ClusterSnapshot
from extender.telemetry.metrics import Metrics
from tests.support.factories import pod, snapshot, virtual_node, vm_node

with warnings.catch_warnings():
    # starlette warns at import that it would rather use httpx2; the httpx it has works.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

Json = dict[str, Any]
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


@dataclass
class Harness:
    client: TestClient
    app: FastAPI
    metrics: Metrics
    snap: ClusterSnapshot
    config: TideoverConfig

    def post(self, verb: str, body: Any) -> Any:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return self.client.post(f"/{verb}", content=content, headers={"Content-Type": "application/json"})

    def filter(self, body: Any) -> Json:
        response = self.post("filter", body)
        assert response.status_code == 200, response.text
        reply: Json = response.json()
        return reply

    def prioritize(self, body: Any) -> list[Json]:
        response = self.post("prioritize", body)
        assert response.status_code == 200, response.text
        reply: list[Json] = response.json()
        return reply

    def sample(self, name: str, labels: Mapping[str, str]) -> float:
        value = self.metrics.registry.get_sample_value(name, dict(labels))
        return 0.0 if value is None else value

    def decisions_total(self) -> float:
        total = 0.0
        for family in self.metrics.registry.collect():
            if family.name == "tideover_decisions":
                total += sum(s.value for s in family.samples if s.name == "tideover_decisions_total")
        return total


def harness(
    snap: ClusterSnapshot | None = None,
    *,
    config: TideoverConfig | None = None,
    ready: Callable[[], bool] = lambda: True,
) -> Harness:
    config = config or TideoverConfig()
    snap = snap if snap is not None else snapshot(default_nodes(), config=config)
    metrics = Metrics()
    frozen = snap
    app = create_app(ExtenderService(config, lambda: frozen, metrics), ready=ready)
    return Harness(TestClient(app), app, metrics, snap, config)


def default_nodes() -> list[Json]:
    return [vm_node("vm-1"), vm_node("vm-2"), virtual_node()]


def names_args(pod_obj: Json, names: Sequence[str]) -> Json:
    return {"Pod": pod_obj, "Nodes": None, "NodeNames": list(names)}


def nodes_args(pod_obj: Json, nodes: Sequence[Json]) -> Json:
    return {"Pod": pod_obj, "Nodes": {"metadata": {}, "items": list(nodes)}, "NodeNames": None}


@dataclass
class AsgiReply:
    status: int | None  # None: the app never started a response
    body: bytes
    chunks_read: int


def _scope(path: str, headers: Sequence[tuple[bytes, bytes]]) -> Json:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


def _body_messages(chunks: Iterator[bytes]) -> Iterator[Json]:
    """The receive() messages of a body sent chunk by chunk (each says whether more follows)."""
    pending = next(chunks, None)
    while pending is not None:
        chunk, pending = pending, next(chunks, None)
        yield {"type": "http.request", "body": chunk, "more_body": pending is not None}


def asgi_messages(
    app: FastAPI, messages: Iterable[Json], *, path: str = "/filter",
    headers: Sequence[tuple[bytes, bytes]] = ((b"content-length", b"100000"),), timeout: float = 5.0,
) -> AsgiReply:
    """Drive the ASGI app with ``messages`` as the request's receive() results, then a wait that never ends (an
    app that waits for the rest of the body is cut off after ``timeout`` seconds, and fails the test there)."""
    remaining = iter(messages)
    read = 0
    status: int | None = None
    body = bytearray()

    async def receive() -> Json:
        nonlocal read
        message = next(remaining, None)
        if message is None:
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}
        read += 1
        return message

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    with contextlib.suppress(TimeoutError):
        asyncio.run(asyncio.wait_for(app(_scope(path, headers), receive, send), timeout))
    return AsgiReply(status, bytes(body), read)


def asgi_post(
    app: FastAPI, path: str, chunks: Iterator[bytes], headers: Sequence[tuple[bytes, bytes]] = ()
) -> AsgiReply:
    """POST to the ASGI app directly, handing the body over chunk by chunk as a server would."""
    messages = itertools.chain(_body_messages(chunks), [{"type": "http.request", "body": b"", "more_body": False}])
    return asgi_messages(app, messages, path=path, headers=headers)


def blanks(total: int, size: int) -> Iterator[bytes]:
    """``total`` bytes of whitespace in ``size``-byte chunks, made as they are read."""
    block = b" " * size
    sent = 0
    while sent < total:
        piece = block[: min(size, total - sent)]
        sent += len(piece)
        yield piece


def pieces(body: bytes, size: int) -> Iterator[bytes]:
    return (body[start : start + size] for start in range(0, len(body), size))


def largest_valid_pod() -> Json:
    """A pod at every bound of extender.model.objects at once: 1,000 containers with distinct images, 1,000 tolerations,
    1,000 node-affinity expressions."""
    big = pod("big")
    big["spec"]["containers"] = [
        {"name": f"c{i}", "image": f"registry.example/app{i}:1", "resources": {"requests": {"cpu": "1m"}}}
        for i in range(MAX_CONTAINERS)
    ]
    big["spec"]["tolerations"] += [{"key": f"k{i}", "operator": "Exists"} for i in range(MAX_TOLERATIONS - 1)]
    big["spec"]["affinity"] = {"nodeAffinity": {REQUIRED: {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": f"k{i}", "operator": "DoesNotExist"} for i in range(MAX_AFFINITY_TERMS - 1)
    ]}]}}}
    return big


async def poll_healthz_during(app: FastAPI, request: Any) -> tuple[Any, list[float]]:
    """Run ``request(client)`` and, meanwhile, GET /healthz one after the other: (its reply, each /healthz time)."""
    latencies: list[float] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        task = asyncio.ensure_future(request(client))
        await asyncio.sleep(0)
        while not task.done():
            start = time.perf_counter()
            assert (await client.get("/healthz")).status_code == 200
            latencies.append(time.perf_counter() - start)
            await asyncio.sleep(0.005)
        return await task, latencies
