"""tideover as the end-to-end tests run it: the real ``tideover serve`` process, and the project's own
KubeSchedulerConfiguration (config/scheduler-config.yaml, the one users deploy) pointed at it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from e2e.cluster import free_port

ROOT = Path(__file__).resolve().parent.parent
SCHEDULER_CONFIG = ROOT / "config" / "scheduler-config.yaml"

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


def scheduler_config(url: str, dest: Path) -> Path:
    """config/scheduler-config.yaml with its urlPrefix pointed at ``url``; everything else as shipped."""
    text = SCHEDULER_CONFIG.read_text()
    patched, count = re.subn(r"(?m)^(\s*-?\s*urlPrefix:\s*).*$", lambda m: m.group(1) + url, text)
    if count != 1:
        raise RuntimeError(f"{SCHEDULER_CONFIG}: expected one urlPrefix line, found {count}")
    dest.write_text(patched)
    return dest


class TideoverProcess:
    """``tideover serve`` in a subprocess, with its log in a file."""

    def __init__(
        self, kubeconfig: Path, work_dir: Path, config: dict[str, Any] | None = None, port: int | None = None
    ) -> None:
        self.kubeconfig = kubeconfig
        self.work_dir = work_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = work_dir / "tideover.yaml"
        self.config_path.write_text(yaml.safe_dump(config or DEFAULT_CONFIG))
        self.log_path = work_dir / "tideover.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> TideoverProcess:
        command = [
            sys.executable, "-m", "extender.cli", "serve", "--config", str(self.config_path),
            "--kubeconfig", str(self.kubeconfig), "--port", str(self.port), "--log-level", "info",
        ]
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

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            return 0, ""

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
