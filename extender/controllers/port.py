"""The one port through which tideover changes the cluster: every Kubernetes write (and the read a
read-modify-write needs) goes through :class:`KubeWrites`. :class:`ApiWrites` implements it over the official
client; unit tests pass an in-memory fake of the same shape.

Each write answers with a :class:`WriteResult` instead of raising: the callers decide per outcome (a pod already
gone is no failure; a PodDisruptionBudget's refusal is retried later; a conflict is read again), and the
kubernetes client's exceptions stay here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, cast

from kubernetes import client
from kubernetes.client.rest import ApiException


class Outcome(StrEnum):
    DONE = "done"
    GONE = "gone"  # 404: the object no longer exists
    REFUSED = "refused"  # 429 on an eviction: a PodDisruptionBudget does not allow it now
    CONFLICT = "conflict"  # 409: the object changed since it was read (stale resourceVersion)
    FAILED = "failed"  # anything else; ``reason`` says what


@dataclass(frozen=True, slots=True)
class WriteResult:
    outcome: Outcome
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.DONE


DONE = WriteResult(Outcome.DONE)


class KubeWrites(Protocol):
    def read_node(self, name: str) -> Mapping[str, Any]:
        """The Node as a JSON-shaped dict (for a read-modify-write with its resourceVersion)."""
        ...

    def patch_node(self, name: str, body: Mapping[str, Any]) -> WriteResult: ...

    def patch_pod(self, namespace: str, name: str, body: Mapping[str, Any]) -> WriteResult: ...

    def evict_pod(self, namespace: str, name: str) -> WriteResult:
        """Through the Eviction API, so PodDisruptionBudgets hold."""
        ...

    def create_event(self, namespace: str, body: Mapping[str, Any]) -> WriteResult: ...


_OUTCOMES = {404: Outcome.GONE, 409: Outcome.CONFLICT, 429: Outcome.REFUSED}


def _failed(error: ApiException) -> WriteResult:
    return WriteResult(_OUTCOMES.get(error.status or 0, Outcome.FAILED), f"{error.status} {error.reason}")


class ApiWrites:
    """:class:`KubeWrites` over the official client's CoreV1Api."""

    def __init__(self, core: client.CoreV1Api) -> None:
        self._core = core

    def read_node(self, name: str) -> Mapping[str, Any]:
        node: Mapping[str, Any] = self._core.api_client.sanitize_for_serialization(self._core.read_node(name))
        return node

    def patch_node(self, name: str, body: Mapping[str, Any]) -> WriteResult:
        try:
            self._core.patch_node(name, dict(body))
        except ApiException as error:
            return _failed(error)
        return DONE

    def patch_pod(self, namespace: str, name: str, body: Mapping[str, Any]) -> WriteResult:
        try:
            self._core.patch_namespaced_pod(name, namespace, dict(body))
        except ApiException as error:
            return _failed(error)
        return DONE

    def evict_pod(self, namespace: str, name: str) -> WriteResult:
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
        try:
            self._core.create_namespaced_pod_eviction(name, namespace, cast(Any, body))  # the client takes a dict
        except ApiException as error:
            return _failed(error)
        return DONE

    def create_event(self, namespace: str, body: Mapping[str, Any]) -> WriteResult:
        try:
            self._core.create_namespaced_event(namespace, cast(Any, dict(body)))
        except ApiException as error:
            return _failed(error)
        return DONE
