"""tideover as the end-to-end tests run it: the real ``tideover serve`` process, and the project's own
KubeSchedulerConfiguration (config/scheduler-config.yaml, the one users deploy) pointed at it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from e2e.harness.cluster import free_port

ROOT = Path(__file__).resolve().parents[2]
SCHEDULER_CONFIG = ROOT / "config" / "scheduler-config.yaml"
SCHEDULER_CONFIG_HTTPS = ROOT / "config" / "scheduler-config-https.yaml"

# Pools of the e2e cluster: nodepool1 at the D2s_v5 price, and a cheaper spot pool for scoring tests.
DEFAULT_CONFIG: dict[str, Any] = {
    "apiVersion": "tideover.io/v1alpha1",
    "kind": "TideoverConfiguration",
    "vmPools": {
        "pools": [
            {"name": "nodepool1", "pricePerHour": 0.096},
            {"name": "spotpool", "pricePerHour": 0.02},
        ],
        # The simulated VMSS boots in tens of seconds, not minutes.
        "provisioningSeconds": 30,
    },
    "server": {"host": "127.0.0.1"},
}


def _substitute(text: str, key: str, value: str, source: Path) -> str:
    patched, count = re.subn(rf"(?m)^(\s*-?\s*{key}:\s*).*$", lambda m: m.group(1) + value, text)
    if count != 1:
        raise RuntimeError(f"{source}: expected one {key} line, found {count}")
    return patched


def scheduler_config(
    url: str, dest: Path, *, ca_file: Path | None = None, client: tuple[Path, Path] | None = None
) -> Path:
    """config/scheduler-config.yaml (or, with ``ca_file`` and ``client``, config/scheduler-config-https.yaml) with its
    urlPrefix pointed at ``url`` (its caFile at ``ca_file``, its certFile and keyFile at ``client``); everything else
    as shipped."""
    source = SCHEDULER_CONFIG if ca_file is None else SCHEDULER_CONFIG_HTTPS
    text = _substitute(source.read_text(), "urlPrefix", url, source)
    if ca_file is not None:
        if client is None:
            raise ValueError("config/scheduler-config-https.yaml presents a client certificate: pass client")
        text = _substitute(text, "caFile", str(ca_file), source)
        text = _substitute(text, "certFile", str(client[0]), source)
        text = _substitute(text, "keyFile", str(client[1]), source)
    dest.write_text(text)
    return dest


class TideoverProcess:
    """``tideover serve`` in a subprocess, with its log in a file."""

    def __init__(
        self, kubeconfig: Path, work_dir: Path, config: dict[str, Any] | None = None, port: int | None = None,
        *, tls: tuple[Path, Path, Path] | None = None, client_ca: Path | None = None,
    ) -> None:
        """``tls``: (certificate, key, CA certificate) to serve HTTPS with --tls-cert-file/--tls-key-file;
        ``client_ca``: require client certificates it signed (--client-ca-file)."""
        self.client_ca = client_ca
        self.kubeconfig = kubeconfig
        self.work_dir = work_dir
        self.port = port or free_port()
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.config_path = work_dir / "tideover.yaml"
        self.config_path.write_text(yaml.safe_dump(config or DEFAULT_CONFIG))
        self.log_path = work_dir / "tideover.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> TideoverProcess:
        command = [
            sys.executable, "-m", "extender.cli", "serve", "--config", str(self.config_path),
            "--kubeconfig", str(self.kubeconfig), "--port", str(self.port), "--log-level", "info",
        ]
        if self.tls is not None:
            command += ["--tls-cert-file", str(self.tls[0]), "--tls-key-file", str(self.tls[1])]
        if self.client_ca is not None:
            command += ["--client-ca-file", str(self.client_ca)]
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"tideover exited with {self._process.returncode}; log: {self.log_path}")
            if self.get("/readyz")[0] == 200:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"tideover not ready after {timeout}s; log: {self.log_path}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def kill(self) -> None:
        """SIGKILL, no shutdown of any kind (a crashed replica, for failover tests)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The ``tideover serve`` process id (its Lease identity is ``<hostname>_<pid>``), None when not started."""
        return self._process.pid if self._process is not None else None

    def lease_identity(self) -> str:
        """The identity this tideover holds the controllers' Lease under: ``<hostname>_<pid>``
        (extender/controllers/loop.py)."""
        return f"{socket.gethostname()}_{self.pid}"

    def get(self, path: str) -> tuple[int, str]:
        context = ssl.create_default_context(cafile=str(self.tls[2])) if self.tls is not None else None
        try:
            with urllib.request.urlopen(self.url + path, timeout=2, context=context) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            return 0, ""

    def post(self, path: str, body: Any, client: tuple[Path, Path] | None = None) -> tuple[int, Any]:
        """POST JSON as a client other than kube-scheduler would: (status, decoded reply). ``client``: a client
        certificate and key to present."""
        context = ssl.create_default_context(cafile=str(self.tls[2])) if self.tls is not None else None
        if context is not None and client is not None:
            context.load_cert_chain(*client)
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """The sum of a metric's samples matching ``labels`` (0 when absent)."""
        status, text = self.get("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            metric_name, _, label_text = head.partition("{")
            if metric_name != name:
                continue
            if labels and not all(f'{k}="{v}"' in label_text for k, v in labels.items()):
                continue
            total += float(value)
        return total
