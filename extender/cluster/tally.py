"""The snapshot's pod counts, kept up to date one pod event at a time.

:func:`extender.model.snapshot.build_snapshot` can count the pods itself, which walks every pod: at Kubernetes'
documented limit (150,000 pods) one walk takes about a tenth of a second, and the cluster view publishes a snapshot
after each burst of watch events. :class:`PodTally` instead adds and removes each pod's share as its event arrives
(a cost independent of the cluster's size, and of the size of the pod's workload), and hands the snapshot copies of
its small maps. A workload's set of pods is copied for the snapshot once per snapshot that follows a change to it, not
once per event: a 10,000-pod ReplicaSet scaling up would otherwise copy 10,000 uids for each of its pods' events.
It gives the same :class:`~extender.model.snapshot.PodCounts` as a whole count of the same pods
(tests/test_tally.py holds it to that).
"""

from __future__ import annotations

from collections.abc import Iterable

from extender.model.config import VirtualNodePricing
from extender.model.snapshot import PodCounts, PodPlacement


class PodTally:
    """Counts of the active pods (not Succeeded or Failed), for one set of virtual nodes. Not thread-safe: the
    cluster view calls it under its lock."""

    def __init__(self, virtual_nodes: Iterable[str], pricing: VirtualNodePricing) -> None:
        self.virtual_nodes = tuple(virtual_nodes)
        self._pricing = pricing
        self._on_virtual = dict.fromkeys(self.virtual_nodes, 0)
        self._owned: dict[str, set[str]] = {}  # changed in place, event by event
        self._owned_out: dict[str, frozenset[str]] = {}  # as last handed out: copied again only for changed owners
        self._owners_changed: set[str] = set()
        self._virtual_by_owner: dict[str, int] = {}
        self._spend: dict[str, float] = {}
        self._virtual_in_namespace: dict[str, int] = {}  # so a namespace's spend is dropped, not left at 1e-17
        self._virtual_uids: set[str] = set()

    @classmethod
    def of(cls, pods: Iterable[PodPlacement], virtual_nodes: Iterable[str], pricing: VirtualNodePricing) -> PodTally:
        tally = cls(virtual_nodes, pricing)
        for pod in pods:
            tally.add(pod)
        return tally

    def replace(self, old: PodPlacement | None, new: PodPlacement | None) -> None:
        """A pod changed from ``old`` to ``new`` (None: it was added, or deleted)."""
        if old is not None and new is not None and _share(old) == _share(new):
            return  # nothing counted changed (a status update: Pending to Running, a condition, an annotation)
        if old is not None:
            self.remove(old)
        if new is not None:
            self.add(new)

    def add(self, pod: PodPlacement) -> None:
        if not pod.active:
            return
        if pod.owner_uid:
            self._owned.setdefault(pod.owner_uid, set()).add(pod.uid)
            self._owners_changed.add(pod.owner_uid)
        if pod.node_name in self._on_virtual:
            self._on_virtual[pod.node_name] += 1
            self._virtual_uids.add(pod.uid)
            if pod.owner_uid:
                self._virtual_by_owner[pod.owner_uid] = self._virtual_by_owner.get(pod.owner_uid, 0) + 1
            self._spend[pod.namespace] = self._spend.get(pod.namespace, 0.0) + self._cost(pod)
            self._virtual_in_namespace[pod.namespace] = self._virtual_in_namespace.get(pod.namespace, 0) + 1

    def remove(self, pod: PodPlacement) -> None:
        """Undo :meth:`add` of this same placement."""
        if not pod.active:
            return
        owner = pod.owner_uid
        if owner and owner in self._owned:
            owned = self._owned[owner]
            owned.discard(pod.uid)
            if not owned:
                del self._owned[owner]
            self._owners_changed.add(owner)
        if pod.node_name in self._on_virtual:
            self._on_virtual[pod.node_name] -= 1
            self._virtual_uids.discard(pod.uid)
            if pod.owner_uid:
                _decrement(self._virtual_by_owner, pod.owner_uid)
            if _decrement(self._virtual_in_namespace, pod.namespace):
                self._spend[pod.namespace] -= self._cost(pod)
            else:
                self._spend.pop(pod.namespace, None)

    def counts(self) -> PodCounts:
        """The counts now, in maps the tally will not change afterwards."""
        for owner in self._owners_changed:
            owned = self._owned.get(owner)
            if owned:
                self._owned_out[owner] = frozenset(owned)
            else:
                self._owned_out.pop(owner, None)
        self._owners_changed.clear()
        return PodCounts(
            pods_on_virtual_nodes=dict(self._on_virtual),
            owned_pods=dict(self._owned_out),
            virtual_pods_by_owner=dict(self._virtual_by_owner),
            virtual_spend_by_namespace=dict(self._spend),
            virtual_pod_uids=frozenset(self._virtual_uids),
        )

    def _cost(self, pod: PodPlacement) -> float:
        return self._pricing.pod_cost_per_hour(pod.cpu, pod.memory, sidecar=pod.kube_proxy_sidecar)


def _share(pod: PodPlacement) -> tuple[object, ...]:
    """What the tally counts of a pod: two placements with the same share count the same."""
    return (pod.uid, pod.active, pod.owner_uid, pod.node_name, pod.namespace, pod.cpu, pod.memory,
            pod.kube_proxy_sidecar)


def _decrement(counts: dict[str, int], key: str) -> int:
    """Count one less under ``key`` (dropped at zero); the count left."""
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
    return max(left, 0)
