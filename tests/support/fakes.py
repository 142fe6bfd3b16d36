"""Typed in-memory fakes of tideover's ports, for unit tests. Each implements its port's Protocol in full, so a test
passes it where the real adapter goes without a ``type: ignore``."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from extender.controllers.port import DONE, KubeWrites, Outcome, WriteResult


class FakeKube:
    """:class:`~extender.controllers.port.KubeWrites` in memory: Nodes with resourceVersions (and, when asked, a
    writer that races each patch), and a record of every pod patch, eviction and event."""

    def __init__(self, nodes: Mapping[str, Mapping[str, Any]] | None = None, *, conflicts: int = 0,
                 pdb_blocks: set[str] | None = None) -> None:
        self.nodes = {name: copy.deepcopy(dict(node)) for name, node in (nodes or {}).items()}
        for node in self.nodes.values():
            node["metadata"].setdefault("resourceVersion", "1")
        self.conflicts = conflicts  # patches that lose a race to another writer first
        self.pdb_blocks = pdb_blocks if pdb_blocks is not None else set()  # pod names whose eviction a PDB refuses
        self.node_patches: list[tuple[str, dict[str, Any]]] = []
        self.pod_patches: list[tuple[str, dict[str, Any]]] = []
        self.evictions: list[str] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def read_node(self, name: str) -> Mapping[str, Any]:
        with self.lock:
            return copy.deepcopy(self.nodes[name])

    def patch_node(self, name: str, body: Mapping[str, Any]) -> WriteResult:
        with self.lock:
            self.node_patches.append((name, copy.deepcopy(dict(body))))
            node = self.nodes.get(name)
            if node is None:
                return DONE  # a node the test did not model: the patch is recorded only
            if self.conflicts:  # someone else (the virtual kubelet, another replica) wrote first
                self.conflicts -= 1
                self._bump(node)
            wanted = (body.get("metadata") or {}).get("resourceVersion")
            if wanted is not None and wanted != node["metadata"]["resourceVersion"]:
                self.node_patches.pop()
                return WriteResult(Outcome.CONFLICT, "409 Conflict")
            self._apply(node, body)
            return DONE

    def patch_pod(self, namespace: str, name: str, body: Mapping[str, Any]) -> WriteResult:
        self.pod_patches.append((name, copy.deepcopy(dict(body))))
        return DONE

    def evict_pod(self, namespace: str, name: str) -> WriteResult:
        if name in self.pdb_blocks:
            return WriteResult(Outcome.REFUSED, "429 Too Many Requests")
        self.evictions.append(name)
        return DONE

    def create_event(self, namespace: str, body: Mapping[str, Any]) -> WriteResult:
        self.events.append((namespace, copy.deepcopy(dict(body))))
        return DONE

    @staticmethod
    def _bump(node: dict[str, Any]) -> None:
        node["metadata"]["resourceVersion"] = str(int(node["metadata"]["resourceVersion"]) + 1)

    def _apply(self, node: dict[str, Any], body: Mapping[str, Any]) -> None:
        annotations = node["metadata"].setdefault("annotations", {})
        for key, value in ((body.get("metadata") or {}).get("annotations") or {}).items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
        if "spec" in body and "taints" in body["spec"]:
            node.setdefault("spec", {})["taints"] = list(body["spec"]["taints"])
        self._bump(node)


def _is_kube_writes(kube: FakeKube) -> KubeWrites:
    """mypy checks here that the fake has the port's full shape (tests.support is type-checked in CI)."""
    return kube
