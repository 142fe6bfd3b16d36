"""``tideover serve`` stopped as Kubernetes stops a pod (SIGTERM): it shuts down through its ``finally`` blocks and
atexit handlers, so nothing is left behind (the kubernetes client's temporary files for a kubeconfig's inline
certificates, here)."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kubeconfig(path: Path) -> Path:
    """A kubeconfig with inline certificate data (as kind and the e2e harness write them), for an API server that is
    not there: the client writes each to a temporary file when it loads the kubeconfig."""
    def data(what: str) -> str:
        return base64.b64encode(f"not a {what}".encode()).decode()

    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:1",
                                                  "certificate-authority-data": data("CA")}}],
        "users": [{"name": "test", "user": {"client-certificate-data": data("certificate"),
                                            "client-key-data": data("key")}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }))
    return path


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0].decode()[-2000:]
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def test_sigterm_shuts_down_through_finally_and_atexit(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "extender.cli", "serve", "--kubeconfig", str(_kubeconfig(tmp_path / "kubeconfig")),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"],
        cwd=ROOT, env={**os.environ, "TMPDIR": str(temp)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/healthz", process)
        assert len(list(temp.iterdir())) == 3  # the CA, the client certificate and its key
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert process.returncode == 128 + signal.SIGTERM, (process.returncode, output[-2000:])
    assert list(temp.iterdir()) == []  # atexit ran: the client removed its temporary files
    assert "Shutting down" in output, output[-2000:]  # uvicorn's graceful shutdown ran first
    assert "Traceback" not in output.split("Shutting down")[-1], output[-2000:]  # and nothing failed after it
