"""TLS for the HTTP edge: a server context that follows its files on disk, and kube-scheduler's client certificate.

* :class:`ReloadingTls` builds the server's :class:`ssl.SSLContext` from ``server.tlsCertFile``/``tlsKeyFile`` and,
  for mutual TLS, ``server.clientCAFile``. Every TLS handshake starts in its SNI callback, which rebuilds the context
  when one of the files changed (inode, size or modification time: a Secret volume's update swaps a symlink) and hands
  the handshake the current context. A rotated certificate, key or CA is in use from the next connection on, without a
  restart; files that do not load (a half-written update) leave the previous context in use, with a warning.
* The client certificate is verified by OpenSSL during the handshake (``CERT_OPTIONAL``: a certificate from another CA
  fails the handshake; none at all passes it, so that the HTTP answer can say what is missing). uvicorn puts no peer
  certificate into the ASGI scope, so :func:`peer_recording_protocol` wraps uvicorn's HTTP protocol and records each
  connection's verified certificate in :class:`Peers`, under the (host, port) that uvicorn gives the request as
  ``scope["client"]``. :func:`refusal` is the pure check of that certificate against ``server.clientSubjects``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("tideover.tls")

Address = tuple[str, int]
# A verified peer certificate as ssl.SSLObject.getpeercert() returns it.
PeerCert = Mapping[str, Any]


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None  # set: mutual TLS


def _signature(path: Path) -> tuple[int, int, int]:
    """What changes when the file's content is replaced (os.stat follows a Secret volume's symlinks)."""
    stat = os.stat(path)
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class ReloadingTls:
    """The server's TLS context, rebuilt when its files change on disk (see the module's docstring)."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._signatures = self._read_signatures()
        self._current = self._build()  # errors here are start-up errors: the server has no certificate to serve
        self.reloads = 0

    def context(self) -> ssl.SSLContext:
        """The context to listen with: its SNI callback switches every handshake to the current context."""
        return self._current

    def _paths(self) -> tuple[Path, ...]:
        files = self.files
        return (files.cert, files.key) + ((files.client_ca,) if files.client_ca else ())

    def _read_signatures(self) -> tuple[tuple[int, int, int], ...]:
        return tuple(_signature(path) for path in self._paths())

    def _build(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.files.cert, self.files.key)
        if self.files.client_ca is not None:
            context.load_verify_locations(cafile=self.files.client_ca)
            context.verify_mode = ssl.CERT_OPTIONAL
        context.sni_callback = self._select
        return context

    def refresh(self) -> bool:
        """Rebuild the context if a file changed; True when a new context is in use."""
        try:
            signatures = self._read_signatures()
            if signatures == self._signatures:
                return False
            context = self._build()
        except (OSError, ssl.SSLError) as error:
            log.warning("TLS files changed but do not load (%s); serving with the previous ones", error)
            return False
        self._current, self._signatures = context, signatures
        self.reloads += 1
        log.info("TLS files reloaded: %s", ", ".join(str(path) for path in self._paths()))
        return True

    def _select(self, connection: Any, server_name: str | None, context: ssl.SSLContext) -> None:
        self.refresh()
        if connection.context is not self._current:
            connection.context = self._current


class Peers:
    """The verified client certificate of each open TLS connection, by the client's (host, port)."""

    def __init__(self) -> None:
        self._certs: dict[Address, PeerCert | None] = {}

    def __len__(self) -> int:
        return len(self._certs)

    def connected(self, transport: asyncio.BaseTransport) -> Address | None:
        address = _address(transport.get_extra_info("peername"))
        ssl_object = transport.get_extra_info("ssl_object")
        if address is not None:
            self._certs[address] = (ssl_object.getpeercert() or None) if ssl_object is not None else None
        return address

    def disconnected(self, address: Address | None) -> None:
        if address is not None:
            self._certs.pop(address, None)

    def certificate(self, client: Any) -> PeerCert | None:
        """The certificate of the connection uvicorn calls ``scope["client"]``; None when it showed none."""
        address = _address(client)
        return self._certs.get(address) if address is not None else None


def _address(info: Any) -> Address | None:
    """(host, port) as uvicorn writes scope["client"] (an IPv6 peername has four fields)."""
    if isinstance(info, (tuple, list)) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return None


def peer_recording_protocol(base: type[asyncio.Protocol], peers: Peers) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol ``base``, recording each connection's client certificate in ``peers``. asyncio calls
    connection_made once the TLS handshake is complete, so the certificate is there before the first request."""

    class PeerRecordingProtocol(base):  # type: ignore[valid-type, misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._tideover_peer = peers.connected(transport)
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            peers.disconnected(getattr(self, "_tideover_peer", None))
            super().connection_lost(exc)

    return PeerRecordingProtocol


def certificate_names(cert: PeerCert) -> tuple[str, ...]:
    """The subject's common names, then the DNS and URI subject alternative names."""
    names = [value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    names += [value for kind, value in cert.get("subjectAltName", ()) if kind in ("DNS", "URI")]
    return tuple(names)


def refusal(cert: PeerCert | None, allowed: Collection[str]) -> tuple[int, str] | None:
    """(status, one-line reason) when a request with this verified client certificate may not call the verbs; None
    when it may. ``allowed`` empty: any certificate the client CA signed."""
    if cert is None:
        return 401, "a client certificate signed by server.clientCAFile is required to call tideover's verbs"
    if not allowed:
        return None
    names = certificate_names(cert)
    if any(name in allowed for name in names):
        return None
    shown = ", ".join(names) or "no common name or DNS/URI name"
    return 403, f"client certificate ({shown}) is not one of server.clientSubjects"

