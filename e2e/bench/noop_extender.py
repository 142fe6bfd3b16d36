"""The floor: a scheduler extender that does nothing, as cheaply as an HTTP extender in Python can.

A bare ASGI app under uvicorn with orjson (the stack tideover uses), no framework: /filter keeps every
candidate node, /prioritize scores every candidate 0. What kube-scheduler pays for calling it is the cost of
the HTTP mechanism alone, which :mod:`e2e.bench.throughput` compares tideover against.

    python -m uvicorn e2e.bench.noop_extender:app --port 8899 --no-access-log --log-level warning

``app_empty`` is the same except that /prioritize lists no node: the least an extender with a prioritize verb can
answer (kube-scheduler adds nothing to a node left out), as tideover answers when every candidate scores the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_HEADERS = [(b"content-type", b"application/json")]


def _names(args: dict[str, Any]) -> list[str]:
    return args.get("NodeNames") or args.get("nodenames") or []


def _filter(args: dict[str, Any]) -> Any:
    return {"NodeNames": _names(args), "FailedNodes": {}, "FailedAndUnresolvableNodes": {}, "Error": ""}


def _prioritize(args: dict[str, Any]) -> Any:
    return [{"Host": name, "Score": 0} for name in _names(args)]


def _prioritize_empty(args: dict[str, Any]) -> Any:
    return []


_VERBS = {"/filter": _filter, "/prioritize": _prioritize}
_VERBS_EMPTY = {"/filter": _filter, "/prioritize": _prioritize_empty}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    await _serve(_VERBS, scope, receive, send)


async def app_empty(scope: Scope, receive: Receive, send: Send) -> None:
    await _serve(_VERBS_EMPTY, scope, receive, send)


Verbs = Mapping[str, Callable[[dict[str, Any]], Any]]


async def _serve(verbs: Verbs, scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":  # lifespan: nothing to set up
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    verb = verbs.get(scope["path"])
    if verb is None:
        status, payload = (200, b"ok") if scope["path"] == "/healthz" else (404, b"{}")
    else:
        status, payload = 200, orjson.dumps(verb(orjson.loads(body)))
    await send({"type": "http.response.start", "status": status, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": payload})
