"""The HTTP edge: kube-scheduler's extender verbs, health, readiness and metrics.

:class:`ExtenderService` turns request bytes into (status, body) from memory only: the current
snapshot and the config. :func:`create_app` wraps it in FastAPI. Nothing here calls the Kubernetes API.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from extender.decide.filter import FilterDecision, FilterOutcome, decide_filter
from extender.decide.guards import SpillLedger
from extender.decide.prioritize import ModelCache, all_score_the_top, decide_scores
from extender.edge.tls import Peers, refusal
from extender.edge.wire import (
    ExtenderArgs,
    NamesMemo,
    PodMemo,
    WireError,
    error_body,
    filter_error_reply,
    filter_reply,
    parse_extender_args,
    prioritize_reply,
    read_scheduler_body,
)
from extender.model.config import TideoverConfig
from extender.model.objects import PodFacts
from extender.model.snapshot import ClusterSnapshot, node_kind_from_labels
from extender.telemetry.metrics import Metrics

log = logging.getLogger("tideover.extender")

DecisionListener = Callable[[PodFacts, FilterDecision], None]


# Bodies up to this size are answered on the event loop: at most a few milliseconds of work (a Pod with 1,000
# node names is about 35 KB), where a hand-off to a thread adds 0.05 to 0.1 ms. Larger ones (thousands of
# nodes, full Node objects, pods near the bounds of extender.model.objects) go to a worker thread, so that /healthz,
# /readyz and small requests are answered meanwhile.
INLINE_BODY_BYTES = 128 * 1024


# Filter outcomes logged at debug only: they are the answer for nearly every pod (kube-scheduler asks for each one),
# and a log line per scheduling cycle would cost more than the decision. The metric counts them all.
ROUTINE_OUTCOMES = frozenset({
    FilterOutcome.NO_VIRTUAL_CANDIDATE, FilterOutcome.DOES_NOT_TOLERATE_VIRTUAL, FilterOutcome.VM_FITS,
})


class BodyTooLarge(Exception):
    pass


class ExtenderService:
    def __init__(
        self,
        config: TideoverConfig,
        snapshot: Callable[[], ClusterSnapshot],
        metrics: Metrics,
        on_filter_decision: DecisionListener | None = None,
        pod_seen: Callable[[PodFacts], bool] | None = None,
    ) -> None:
        """``pod_seen``: whether the cluster view holds the pod, Pending and unbound (ClusterView.holds_pending); only
        such pods may take a spill and enter the ledger. None: every pod counts as seen (tests without a view)."""
        self.config = config
        self.pod_seen = pod_seen
        self.snapshot = snapshot
        self.metrics = metrics
        self.on_filter_decision = on_filter_decision
        # Spills decided but not yet visible in the snapshot (binding and watch lag), so the per-workload
        # and per-namespace caps hold during a burst.
        self.spills = SpillLedger()
        # Large requests are answered in a worker thread while small ones run on the event loop: the ledger's
        # view, the decision and its settlement happen under this lock, so two spills cannot both pass a cap.
        self._decide = threading.Lock()
        self._counters: dict[tuple[str, str], Any] = {}
        # Prioritize's per-node cost and latency, per pod shape, until a node changes (a workload's replicas share).
        self._models = ModelCache()
        # The pods and candidate lists last read: prioritize reads the pod filter has just read, and the candidates
        # filter has just kept.
        self._pods = PodMemo()
        self._names = NamesMemo()

    def _decision_counter(self, verb: str, outcome: str) -> Any:
        """The decisions counter's child for (verb, outcome), looked up once (labels() locks and builds a key)."""
        key = (verb, outcome)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.metrics.decisions.labels(verb, outcome)
        return counter

    def _parse(self, verb: str, body: bytes) -> ExtenderArgs | tuple[int, dict[str, str]]:
        try:
            read = read_scheduler_body(body, self._pods, self._names)  # kube-scheduler's own shape, in parts
            return read if read is not None else parse_extender_args(orjson.loads(body), self._pods.read)
        except orjson.JSONDecodeError as error:
            self.metrics.bad_requests.labels(verb, "400").inc()
            return 400, error_body(f"(body): not valid JSON: {error}")
        except WireError as error:
            self.metrics.bad_requests.labels(verb, "400").inc()
            return 400, error_body(str(error))

    def _count_annotation_problems(self, decision_problems: tuple[Any, ...]) -> None:
        for problem in decision_problems:
            self.metrics.invalid_annotations.labels(problem.annotation).inc()

    def filter(self, body: bytes, final: bool = True) -> tuple[int, Any] | None:
        """The reply; None (only when not ``final``) when the pod would spill but the cluster view does not hold it
        yet: the caller asks again shortly, with ``final`` once server.podWatchGraceSeconds have passed. Then the pod
        is answered as any other, but a pod the view does not hold is never recorded in the ledger."""
        parsed = self._parse("filter", body)
        if isinstance(parsed, tuple):
            return parsed
        seen = self.pod_seen is None or self.pod_seen(parsed.pod)
        snap = self.snapshot()
        kinds = None
        if parsed.nodes is not None:
            selector = self.config.virtual_nodes.selector
            kinds = {
                node["metadata"]["name"]: node_kind_from_labels(node["metadata"].get("labels"), selector)
                for node in parsed.nodes
            }
        with self._decide:
            recent_spills = self.spills.view(snap, exclude_uid=parsed.pod.uid)
            decision = decide_filter(
                parsed.pod, parsed.node_names, snap, self.config, kinds, recent_spills, pod_seen=seen or final,
                candidate_set=parsed.name_set,
            )
            if decision.outcome is FilterOutcome.WITHHELD_POD_NOT_SEEN and not final:
                return None
            if seen and decision.outcome is not FilterOutcome.NOT_SYNCED:  # an unseen pod changes nothing
                self.spills.settle(parsed.pod, decision.outcome.spilled, decision.virtual_cost_per_hour,
                                   decision.spill_nodes)
        self._decision_counter("filter", decision.outcome.value).inc()
        self._count_annotation_problems(decision.policy.problems)
        if decision.unknown_nodes:
            self.metrics.unknown_nodes.labels("filter").inc(len(decision.unknown_nodes))
        if decision.outcome is FilterOutcome.NOT_SYNCED:
            return 200, filter_error_reply(decision.reason)
        if decision.outcome not in ROUTINE_OUTCOMES:
            log.info("filter pod=%s outcome=%s: %s", parsed.pod.key, decision.outcome.value, decision.reason)
        elif decision.outcome is FilterOutcome.VM_FITS and log.isEnabledFor(logging.DEBUG):
            log.debug("filter pod=%s outcome=%s: %s", parsed.pod.key, decision.outcome.value, decision.reason)
        if self.on_filter_decision is not None and seen:  # no Events about pods tideover has not seen
            self.on_filter_decision(parsed.pod, decision)
        return 200, filter_reply(parsed, decision, self._kept_names_text(parsed, decision, snap))

    def _kept_names_text(self, args: ExtenderArgs, decision: FilterDecision, snap: ClusterSnapshot) -> bytes | None:
        """The JSON text of the NodeNames filter replies with, in the NodeNames form: the request's own text when every
        candidate stays, in order (the decision keeps the request's tuple then), else the kept names encoded here and
        remembered, since kube-scheduler sends prioritize that list next. When filter kept only the VMs, all of them
        known to the snapshot (vm-fits, no unknown node), that is remembered too."""
        if args.form != "names" or args.sent_names is not None:
            return None
        if decision.feasible is args.node_names:
            return args.names_text
        text = orjson.dumps(decision.feasible)
        vms_of = snap.node_index if decision.outcome is FilterOutcome.VM_FITS and not decision.unknown_nodes else None
        self._names.remember(text, decision.feasible, vms_of)
        return text

    def prioritize(self, body: bytes, final: bool = True) -> tuple[int, Any]:
        parsed = self._parse("prioritize", body)
        if isinstance(parsed, tuple):
            return parsed
        snap = self.snapshot()
        models = self._models.models(parsed.pod, snap, self.config)
        known_vms = parsed.vms_of is not None and parsed.vms_of is snap.node_index  # filter found them all VMs
        if all_score_the_top(models, parsed.node_names, snap, parsed.name_set, known_vms):
            # What decide_scores would find (every candidate the top score) and prioritize_reply answer (no node),
            # without scoring each candidate: one pool at one price, the common case.
            self._decision_counter("prioritize", "uniform").inc()
            return 200, []
        decision = decide_scores(parsed.pod, parsed.node_names, snap, self.config, models, parsed.name_set)
        # "uniform": every candidate scored the same, answered with an empty list (prioritize_reply).
        self._decision_counter("prioritize", "uniform" if decision.uniform else "scored").inc()
        if decision.unknown_nodes:
            self.metrics.unknown_nodes.labels("prioritize").inc(len(decision.unknown_nodes))
        return 200, prioritize_reply(decision)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _receive_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = _content_length(scope)
    if declared is not None and declared > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_JSON = b"application/json"


async def _send(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


VerbRoute = Callable[[Scope, Receive, Send], Awaitable[None]]
# A verb: (body, final) -> (status, payload), or None to be asked again (only when not final).
Handler = Callable[[bytes, bool], tuple[int, Any] | None]
# How often a filter for a pod the cluster view does not hold yet looks again (server.podWatchGraceSeconds in all).
UNSEEN_POD_POLL_SECONDS = 0.02
# Served to anyone: probes and Prometheus present no client certificate (and are all server.healthPort serves).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
VERBS = ("filter", "prioritize")


@dataclass(frozen=True)
class ClientAuth:
    """Mutual TLS: the connections' verified client certificates, and the names one must carry (empty: any)."""

    peers: Peers
    subjects: frozenset[str] = frozenset()


class _AsgiEndpoint:
    """A route's endpoint that is an ASGI app (Starlette calls a class instance with scope, receive, send)."""

    def __init__(self, handle: VerbRoute) -> None:
        self.handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handle(scope, receive, send)


class _TideoverApp(FastAPI):
    """FastAPI, except that POST /filter and POST /prioritize, which kube-scheduler calls for every pod, are
    answered first, on the raw ASGI messages: without Starlette's middleware stack (error, telemetry and
    body-limit middleware), routing, request objects and response classes, each of which costs every pod of
    the cluster. The routes catch their own errors (a 500 with a one-line reason). Everything else (other
    methods and paths, /healthz, /readyz, /metrics) is FastAPI as usual."""

    verbs: Mapping[str, VerbRoute] = {}
    client_auth: ClientAuth | None = None
    metrics: Metrics | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.client_auth is not None and not await self._authorized(scope, send):
            return
        if scope["type"] == "http" and scope["method"] == "POST":
            route = self.verbs.get(scope["path"])
            if route is not None:
                await route(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _authorized(self, scope: Scope, send: Send) -> bool:
        """Mutual TLS, before anything else: every path but OPEN_PATHS needs the connection's verified client
        certificate, and with server.clientSubjects one of those names; otherwise 401 (none shown) or 403 (another
        name), with a one-line reason, and nothing read or decided."""
        if self.client_auth is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return True
        refused = refusal(self.client_auth.peers.certificate(scope.get("client")), self.client_auth.subjects)
        if refused is None:
            return True
        status, reason = refused
        if self.metrics is not None:
            verb = scope["path"].strip("/")
            self.metrics.bad_requests.labels(verb if verb in VERBS else "other", str(status)).inc()
        await _send(send, status, orjson.dumps(error_body(reason)))
        return False


class _OpenPathsOnly:
    """The app as server.healthPort serves it: OPEN_PATHS, and 404 for everything else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            reason = "this port serves /healthz, /readyz and /metrics only; the verbs are on server.port"
            await _send(send, 404, orjson.dumps(error_body(reason)))
            return
        await self.app(scope, receive, send)


def health_app(app: ASGIApp) -> ASGIApp:
    return _OpenPathsOnly(app)


def create_app(service: ExtenderService, ready: Callable[[], bool], client_auth: ClientAuth | None = None) -> FastAPI:
    """The FastAPI app. ``ready`` says whether the cluster view has synced (for /readyz); ``client_auth``: mutual TLS
    (server.clientCAFile), checked before anything else.

    Longer than most functions here on purpose: the routes are closures over the service, its worker and its
    metrics, and each is a few lines; apart they would need the same state passed around (issue 12 may replace
    this with a leaner route for the two verbs)."""
    # One worker: large requests queue behind each other instead of taking every core from the small ones.
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tideover-large-request")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        worker.shutdown(wait=False, cancel_futures=True)

    app = _TideoverApp(title="tideover", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    metrics = service.metrics
    limit = service.config.server.max_body_bytes
    read_timeout = service.config.server.body_read_timeout_seconds

    grace = service.config.server.pod_watch_grace_seconds

    def answer(verb: str, handler: Handler, body: bytes, final: bool) -> tuple[int, bytes] | None:
        """The reply's status and encoded body (a Nodes-form reply can be megabytes: encoded where it was made); None
        when the handler asks to be called again (a pod the cluster view does not hold yet)."""
        try:
            reply = handler(body, final)
        except Exception:  # a bug must not take the scheduler's request down with a stack trace
            log.exception("%s failed", verb)
            metrics.bad_requests.labels(verb, "500").inc()
            return 500, orjson.dumps(error_body(f"internal error in tideover's {verb}; see tideover's log"))
        return None if reply is None else (reply[0], orjson.dumps(reply[1]))

    async def run(verb: str, handler: Handler, body: bytes, final: bool) -> tuple[int, bytes] | None:
        if len(body) <= INLINE_BODY_BYTES:
            return answer(verb, handler, body, final)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(worker, answer, verb, handler, body, final)

    async def read(verb: str, scope: Scope, receive: Receive) -> bytes | tuple[int, bytes]:
        """The request's body, or the error reply when it cannot be read whole."""
        try:
            async with asyncio.timeout(read_timeout):  # no extra task per request, unlike wait_for
                return await _receive_body(scope, receive, limit)
        except BodyTooLarge:
            metrics.bad_requests.labels(verb, "413").inc()
            message = f"(body): larger than the {limit}-byte limit (server.maxBodyBytes)"
            return 413, orjson.dumps(error_body(message))
        except ClientDisconnect:  # the client went away mid-body: nobody to answer, nothing to trace
            log.info("%s: the client disconnected before sending its whole body", verb)
            metrics.bad_requests.labels(verb, "499").inc()
            return 400, orjson.dumps(error_body("(body): the client disconnected before sending it whole"))
        except TimeoutError:
            metrics.bad_requests.labels(verb, "408").inc()
            message = f"(body): not received whole within {read_timeout:g}s (server.bodyReadTimeoutSeconds)"
            return 408, orjson.dumps(error_body(message))

    def route(verb: str, handler: Handler) -> VerbRoute:
        seconds = metrics.request_seconds.labels(verb)

        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            started = time.perf_counter()
            body = await read(verb, scope, receive)
            if isinstance(body, tuple):
                await _send(send, *body)
                return
            deadline = started + grace  # a pod the watch has not delivered yet: wait for it, off the event loop's back
            while (reply := await run(verb, handler, body, time.perf_counter() >= deadline)) is None:
                await asyncio.sleep(UNSEEN_POD_POLL_SECONDS)
            status, encoded = reply
            if status != 500:
                seconds.observe(time.perf_counter() - started)
            await _send(send, status, encoded)

        return handle

    routes = {"/filter": route("filter", service.filter), "/prioritize": route("prioritize", service.prioritize)}
    for path, handle in routes.items():  # the route table shows them (and answers 405 to other methods)
        app.router.routes.append(Route(path, endpoint=_AsgiEndpoint(handle), methods=["POST"]))
    app.verbs = routes  # ... and POSTs are answered before any middleware or routing
    app.client_auth, app.metrics = client_auth, metrics  # ... once the client certificate is checked

    @app.get("/healthz")
    async def healthz() -> Response:
        return PlainTextResponse("ok")

    @app.get("/readyz")
    async def readyz() -> Response:
        if ready():
            return PlainTextResponse("ok")
        return JSONResponse({"ready": False, "reason": "cluster view has not synced yet"}, status_code=503)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app

