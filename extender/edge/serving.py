"""The HTTP servers: the verbs on server.port (HTTPS with server.tlsCertFile, mutual TLS with server.clientCAFile),
and with server.healthPort a plain-HTTP port for probes and Prometheus. One uvicorn server each, on one event loop."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from extender.edge.app import ClientAuth, health_app
from extender.edge.tls import Peers, ReloadingTls, TlsFiles, peer_recording_protocol
from extender.model.config import Server


@dataclass(frozen=True)
class Edge:
    """What the app needs from the TLS set-up: ``client_auth`` for create_app (None without mutual TLS)."""

    tls: ReloadingTls | None
    client_auth: ClientAuth | None


def edge_tls(server: Server) -> Edge:
    """The server's TLS context and, with a client CA, the peers' certificates (start-up errors raise here)."""
    if server.tls_cert_file is None or server.tls_key_file is None:
        return Edge(None, None)
    tls = ReloadingTls(TlsFiles(server.tls_cert_file, server.tls_key_file, server.client_ca_file))
    if server.client_ca_file is None:
        return Edge(tls, None)
    return Edge(tls, ClientAuth(Peers(), frozenset(server.client_subjects)))


def build_servers(app: FastAPI, server: Server, edge: Edge, log_level: str) -> list[uvicorn.Server]:
    # proxy_headers off: scope["client"] must stay the connection's own address, under which Peers holds its
    # certificate (uvicorn would otherwise take X-Forwarded-For from a client on 127.0.0.1).
    common: dict[str, Any] = {
        "log_level": log_level.lower(), "access_log": False, "log_config": None, "proxy_headers": False,
    }
    tls = edge.tls
    factory: Callable[[uvicorn.Config, Callable[[], ssl.SSLContext]], ssl.SSLContext] | None = (
        (lambda _config, _default: tls.context()) if tls is not None else None
    )
    protocol: type[asyncio.Protocol] | str = (
        peer_recording_protocol(AutoHTTPProtocol, edge.client_auth.peers) if edge.client_auth is not None else "auto"
    )
    servers = [uvicorn.Server(uvicorn.Config(
        app, host=server.host, port=server.port, http=protocol, ssl_context_factory=factory, **common,
    ))]
    if server.health_port is not None:
        servers.append(uvicorn.Server(uvicorn.Config(
            health_app(app), host=server.host, port=server.health_port, lifespan="off", **common,
        )))
    return servers


async def serve_all(servers: list[uvicorn.Server]) -> None:
    """Serve until one stops (a signal reaches each in turn: uvicorn restores and re-raises the one it caught); then
    stop the others."""
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)


def run(servers: list[uvicorn.Server]) -> None:
    """On uvicorn's event loop (uvloop when installed), as uvicorn.Server.run would."""
    with asyncio.Runner(loop_factory=servers[0].config.get_loop_factory()) as runner:
        runner.run(serve_all(servers))
