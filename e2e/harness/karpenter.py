"""Karpenter's real CRDs for the end-to-end tests: the ``karpenter.sh`` NodePool and NodeClaim definitions, taken
from the pinned Go module (e2e/versions.toml ``[karpenter]``) in the Go module cache and applied to a test cluster.
No Karpenter controller and no cloud provider run: a test creates NodeClaims and advances their status itself
(:class:`StandIn`), as Karpenter and its provider would (Launched, then Registered with the node, Initialized, Ready;
condition types from sigs.k8s.io/karpenter pkg/apis/v1/nodeclaim_status.go)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from e2e.harness import components

CRD_FILES = ("karpenter.sh_nodepools.yaml", "karpenter.sh_nodeclaims.yaml")
GROUP, VERSION = "karpenter.sh", "v1"
NODEPOOL_LABEL = "karpenter.sh/nodepool"  # pkg/apis/v1/labels.go NodePoolLabelKey
# A node class reference is required by both CRDs' schemas; AKS's provider calls its class AKSNodeClass.
NODE_CLASS_REF = {"group": "karpenter.azure.com", "kind": "AKSNodeClass", "name": "default"}
REQUIREMENTS = [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]


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


def install_crds_established(cluster: Any, timeout: float = 30.0) -> None:
    """:func:`install_crds` on ``cluster`` (a LocalCluster), then wait until both are Established."""
    api = cluster.api_client()
    extensions = k8s.ApiextensionsV1Api(api)
    for name in install_crds(api):
        cluster.wait_for(lambda n=name: any(
            c.type == "Established" and c.status == "True"
            for c in (extensions.read_custom_resource_definition(n).status.conditions or [])
        ), timeout, f"CRD {name} Established")


def nodeclaim_manifest(name: str, nodepool: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "NodeClaim",
        "metadata": {"name": name, "labels": {NODEPOOL_LABEL: nodepool}},
        "spec": {"nodeClassRef": dict(NODE_CLASS_REF), "requirements": [dict(r) for r in REQUIREMENTS]},
    }


def nodepool_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "NodePool", "metadata": {"name": name},
        "spec": {"template": {"spec": {"nodeClassRef": dict(NODE_CLASS_REF),
                                       "requirements": [dict(r) for r in REQUIREMENTS]}}},
    }


def condition(kind: str, status: str = "True", reason: str = "StandIn", message: str = "") -> dict[str, str]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": now}


class StandIn:
    """What the test does in Karpenter's and its provider's place: creates NodeClaims and writes their status."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self.custom = k8s.CustomObjectsApi(api)

    def create_nodepool(self, name: str) -> None:
        self.custom.create_cluster_custom_object(GROUP, VERSION, "nodepools", nodepool_manifest(name))

    def create_nodeclaim(self, name: str, nodepool: str) -> None:
        self.custom.create_cluster_custom_object(GROUP, VERSION, "nodeclaims", nodeclaim_manifest(name, nodepool))

    def set_status(self, name: str, *conditions: dict[str, str], **fields: str) -> None:
        """Replace the NodeClaim's conditions (and set status fields such as nodeName, providerID)."""
        body = {"status": {"conditions": list(conditions), **fields}}
        self.custom.patch_cluster_custom_object_status(GROUP, VERSION, "nodeclaims", name, body)

    def delete_all(self) -> None:
        for plural in ("nodeclaims", "nodepools"):
            for item in self.custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"]:
                self.custom.delete_cluster_custom_object(GROUP, VERSION, plural, item["metadata"]["name"])
