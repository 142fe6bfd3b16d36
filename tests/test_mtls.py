"""Issue 16 (1): mutual TLS on the verbs, health and metrics without it (and on a plain port), and certificate
rotation without a restart. Real uvicorn servers (build_servers, as `tideover serve` runs them) on loopback ports."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from e2e.harness.pki import CertPair, Pki
from extender.edge.app import ExtenderService, create_app
from extender.edge.serving import build_servers, edge_tls, serve_all
from extender.edge.tls import refusal
from extender.model.config import TideoverConfig, parse_config
from extender.telemetry.metrics import Metrics
from tests.support.edge import default_nodes, names_args
from tests.support.factories import VIRTUAL_NODE, pod, snapshot


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Served:
    config: TideoverConfig
    live: Path  # the files the server reads (a Secret volume's stand-in)
    ca: Pki
    metrics: Metrics

    @property
    def url(self) -> str:
        return f"https://localhost:{self.config.server.port}"

    def client(self, pair: CertPair | None, trust: Path | None = None) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(trust or self.ca.ca.cert))
        if pair is not None:
            context.load_cert_chain(pair.cert, pair.key)
        return httpx.Client(verify=context, timeout=5)

    def filter(self, pair: CertPair | None, trust: Path | None = None) -> httpx.Response:
        body = orjson.dumps(names_args(pod(), ["vm-1", VIRTUAL_NODE]))
        with self.client(pair, trust) as client:
            return client.post(f"{self.url}/filter", content=body)

    def install(self, server: CertPair, ca: Path) -> None:
        """Replace the served files as a Secret volume update would (the new files appear at once)."""
        staged = self.live.with_name("staged")
        staged.mkdir(exist_ok=True)
        for name, source in (("tls.crt", server.cert), ("tls.key", server.key), ("ca.crt", ca)):
            shutil.copy(source, staged / name)
            (staged / name).replace(self.live / name)


def _serve(tmp_path: Path, extra: dict[str, Any]) -> Iterator[Served]:
    ca = Pki(tmp_path / "ca")
    live = tmp_path / "live"
    live.mkdir()
    served_pair = ca.issue("server", "tideover", server=True, dns_names=("localhost",))
    for name, source in (("tls.crt", served_pair.cert), ("tls.key", served_pair.key), ("ca.crt", ca.ca.cert)):
        shutil.copy(source, live / name)
    server = {
        "host": "127.0.0.1", "port": _free_port(), "healthPort": _free_port(),
        "tlsCertFile": str(live / "tls.crt"), "tlsKeyFile": str(live / "tls.key"), "clientCAFile": str(live / "ca.crt"),
        **extra,
    }
    config = parse_config({"server": server}, "test")
    metrics = Metrics()
    snap = snapshot(default_nodes())
    edge = edge_tls(config.server)
    app = create_app(ExtenderService(config, lambda: snap, metrics), lambda: True, edge.client_auth)
    servers = build_servers(app, config.server, edge, "warning")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve_all(servers),), daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if all(server.started for server in servers):
                break
            threading.Event().wait(0.01)
        yield Served(config, live, ca, metrics)
    finally:
        for server in servers:
            server.should_exit = True
        thread.join(10)
        loop.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from _serve(tmp_path, {"clientSubjects": ["system:kube-scheduler"]})


def test_the_verbs_answer_a_client_certificate_of_an_allowed_subject(served: Served) -> None:
    scheduler = served.ca.issue("scheduler", "system:kube-scheduler", client=True)
    response = served.filter(scheduler)
    assert response.status_code == 200
    assert response.json()["NodeNames"] == ["vm-1"]


def test_a_forwarded_for_header_does_not_change_whose_certificate_counts(served: Served) -> None:
    """The request is matched to its connection's certificate by address: a client on 127.0.0.1 naming another one in
    X-Forwarded-For (which uvicorn honours from 127.0.0.1 by default) is still itself."""
    scheduler = served.ca.issue("scheduler", "system:kube-scheduler", client=True)
    body = orjson.dumps(names_args(pod(), ["vm-1"]))
    with served.client(scheduler) as client:
        response = client.post(f"{served.url}/filter", content=body, headers={"X-Forwarded-For": "10.0.0.9"})
    assert response.status_code == 200


def test_no_client_certificate_is_401_with_the_reason(served: Served) -> None:
    for verb in ("filter", "prioritize", "anything-else"):
        with served.client(None) as client:
            response = client.post(f"{served.url}/{verb}", content=b"{}")
        assert response.status_code == 401
        assert response.json() == {
            "Error": "a client certificate signed by server.clientCAFile is required to call tideover's verbs"
        }
    decisions = served.metrics.registry.get_sample_value("tideover_decisions_total", {"verb": "filter",
                                                                                     "outcome": "vm-fits"})
    assert decisions is None  # nothing was decided
    refused = served.metrics.registry.get_sample_value("tideover_bad_requests_total", {"verb": "filter",
                                                                                      "status": "401"})
    assert refused == 1.0


def test_another_subject_is_403_naming_it(served: Served) -> None:
    other = served.ca.issue("other", "some-controller", client=True, dns_names=("intruder.example",))
    response = served.filter(other)
    assert response.status_code == 403
    assert response.json()["Error"] == (
        "client certificate (some-controller, intruder.example) is not one of server.clientSubjects"
    )


def test_a_certificate_from_another_ca_fails_the_handshake(served: Served, tmp_path: Path) -> None:
    stranger = Pki(tmp_path / "stranger").issue("scheduler", "system:kube-scheduler", client=True)
    with pytest.raises(httpx.HTTPError):
        served.filter(stranger)


def test_health_and_metrics_need_no_client_certificate_on_either_port(served: Served) -> None:
    with served.client(None) as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert client.get(f"{served.url}{path}").status_code == 200
    plain = f"http://127.0.0.1:{served.config.server.health_port}"
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(f"{plain}{path}").status_code == 200
    response = httpx.post(f"{plain}/filter", content=b"{}")
    assert response.status_code == 404
    assert "serves /healthz, /readyz and /metrics only" in response.json()["Error"]


def test_rotated_certificate_key_and_ca_are_used_without_a_restart(served: Served, tmp_path: Path) -> None:
    old_scheduler = served.ca.issue("scheduler", "system:kube-scheduler", client=True)
    assert served.filter(old_scheduler).status_code == 200
    renewed = Pki(tmp_path / "renewed")
    served.install(renewed.issue("server", "tideover", server=True, dns_names=("localhost",)), renewed.ca.cert)
    new_scheduler = renewed.issue("scheduler", "system:kube-scheduler", client=True)
    assert served.filter(new_scheduler, trust=renewed.ca.cert).status_code == 200
    with pytest.raises(httpx.HTTPError):  # the server's certificate is the new CA's now
        served.filter(old_scheduler)
    with pytest.raises(httpx.HTTPError):  # and the old CA no longer signs a client it accepts
        served.filter(old_scheduler, trust=renewed.ca.cert)


def test_files_that_do_not_load_keep_the_previous_ones(served: Served) -> None:
    scheduler = served.ca.issue("scheduler", "system:kube-scheduler", client=True)
    (served.live / "tls.key").write_text("half-written\n")
    assert served.filter(scheduler).status_code == 200


def test_without_client_subjects_any_certificate_of_the_ca_may_call(tmp_path: Path) -> None:
    for served in _serve(tmp_path, {}):
        assert served.filter(served.ca.issue("any", "whoever", client=True)).status_code == 200
        assert served.filter(None).status_code == 401


@pytest.mark.parametrize(
    ("cert", "allowed", "expected"),
    [
        (None, (), 401),
        ({"subject": ((("commonName", "a"),),)}, (), None),
        ({"subject": ((("commonName", "a"),),)}, ("b",), 403),
        ({"subject": (), "subjectAltName": (("DNS", "b"),)}, ("b",), None),
        ({"subject": (), "subjectAltName": (("URI", "spiffe://c/s"),)}, ("spiffe://c/s",), None),
        ({"subject": (), "subjectAltName": (("IP Address", "10.0.0.1"),)}, ("10.0.0.1",), 403),
    ],
)
def test_refusal(cert: dict[str, Any] | None, allowed: tuple[str, ...], expected: int | None) -> None:
    result = refusal(cert, frozenset(allowed))
    assert (result[0] if result else None) == expected


def test_client_ca_needs_tls() -> None:
    from extender.model.config import ConfigError

    with pytest.raises(ConfigError, match="clientCAFile needs tlsCertFile"):
        parse_config({"server": {"clientCAFile": "/etc/hostname"}}, "test")
