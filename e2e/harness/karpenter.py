"""Karpenter's real CRDs for the end-to-end tests: the ``karpenter.sh`` NodePool and NodeClaim definitions, taken
from the pinned Go module (e2e/versions.toml ``[karpenter]``) in the Go module cache and applied to a test cluster.
No Karpenter controller and no cloud provider run: a test creates NodeClaims and advances their status itself."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from e2e.harness import components

CRD_FILES = ("karpenter.sh_nodepools.yaml", "karpenter.sh_nodeclaims.yaml")


def module_dir() -> Path:
    """The pinned sigs.k8s.io/karpenter module's directory in the Go module cache (downloaded if missing)."""
    section = components.load_versions()["karpenter"]
    spec = f"{section['module']}@{section['version']}"
    out = subprocess.run(["go", "mod", "download", "-json", spec], capture_output=True, text=True, timeout=300,
                         check=False)
    info: dict[str, Any] = json.loads(out.stdout or "{}")
    if not info.get("Dir"):
        raise RuntimeError(f"go mod download {spec} failed: {info.get('Error') or out.stderr.strip()}")
    return Path(info["Dir"])


def install_crds(api: k8s.ApiClient) -> list[str]:
    """Create the NodePool and NodeClaim CRDs; returns their names (the caller waits until they are Established)."""
    extensions = k8s.ApiextensionsV1Api(api)
    names = []
    for name in CRD_FILES:
        doc = yaml.safe_load((module_dir() / "pkg" / "apis" / "crds" / name).read_text())
        extensions.create_custom_resource_definition(doc)
        names.append(doc["metadata"]["name"])
    return names
