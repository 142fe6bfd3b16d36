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

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from extender.model.config import VirtualNodePricing
from extender.model.snapshot import PodCounts, PodPlacement, in_flight


class PodTally:
    """Counts of the active pods (not Succeeded or Failed), for one set of virtual nodes. Not thread-safe: the
    cluster view calls it under its lock."""

    def __init__(self, virtual_nodes: Iterable[str], pricing: VirtualNodePricing) -> None:
        self.virtual_nodes = tuple(virtual_nodes)
        self._pricing = pricing
        self._on_virtual = dict.fromkeys(self.virtual_nodes, 0)
        self._virtual_pods: dict[str, PodPlacement] = {}  # by uid
        self._virtual_by_owner: dict[str, int] = {}
        self._spend: dict[str, float] = {}
        self._virtual_in_namespace: dict[str, int] = {}  # so a namespace's spend is dropped, not left at 1e-17
        self._in_flight: dict[str, int] = {}  # owner uid -> its pods on the move
        # Changed in place, event by event, and copied for a snapshot only where they changed since the last one.
        self._owned = _Changing(set[str], frozenset[str])  # owner uid -> uids of its pods
        self._requested = _Changing(_Requests, _Requests.totals)  # node -> what the pods bound to it request

    @classmethod
    def of(cls, pods: Iterable[PodPlacement], virtual_nodes: Iterable[str], pricing: VirtualNodePricing) -> PodTally:
        tally = cls(virtual_nodes, pricing)
        for pod in pods:
            tally.add(pod)
        return tally

    def replace(self, old: PodPlacement | None, new: PodPlacement | None) -> None:
        """A pod changed from ``old`` to ``new`` (None: it was added, or deleted)."""
        if old is not None and new is not None and _share(old) == _share(new):
            # Nothing counted changed (a condition, an annotation, Running): only a virtual node's pod is kept whole.
            if new.uid in self._virtual_pods:
                self._virtual_pods[new.uid] = new
            return
        if old is not None:
            self.remove(old)
        if new is not None:
            self.add(new)

    def add(self, pod: PodPlacement) -> None:
        if not pod.active:
            return
        if pod.owner_uid:
            self._owned.change(pod.owner_uid).add(pod.uid)
            if in_flight(pod):
                self._in_flight[pod.owner_uid] = self._in_flight.get(pod.owner_uid, 0) + 1
        if pod.node_name is not None:
            self._requested.change(pod.node_name).add(pod)
        if pod.node_name in self._on_virtual:
            self._on_virtual[pod.node_name] += 1
            self._virtual_pods[pod.uid] = pod
            if pod.owner_uid:
                self._virtual_by_owner[pod.owner_uid] = self._virtual_by_owner.get(pod.owner_uid, 0) + 1
            self._spend[pod.namespace] = self._spend.get(pod.namespace, 0.0) + self._cost(pod)
            self._virtual_in_namespace[pod.namespace] = self._virtual_in_namespace.get(pod.namespace, 0) + 1

    def remove(self, pod: PodPlacement) -> None:
        """Undo :meth:`add` of this same placement."""
        if not pod.active:
            return
        owner = pod.owner_uid
        if owner and owner in self._owned.now:
            self._owned.change(owner).discard(pod.uid)
            self._owned.drop_if(owner, lambda uids: not uids)
            if in_flight(pod):
                _decrement(self._in_flight, owner)
        if pod.node_name is not None and pod.node_name in self._requested.now:
            self._requested.change(pod.node_name).remove(pod)
            self._requested.drop_if(pod.node_name, lambda requests: requests.pods == 0)
        if pod.node_name in self._on_virtual:
            self._on_virtual[pod.node_name] -= 1
            self._virtual_pods.pop(pod.uid, None)
            if pod.owner_uid:
                _decrement(self._virtual_by_owner, pod.owner_uid)
            if _decrement(self._virtual_in_namespace, pod.namespace):
                self._spend[pod.namespace] -= self._cost(pod)
            else:
                self._spend.pop(pod.namespace, None)

    def counts(self) -> PodCounts:
        """The counts now, in maps the tally will not change afterwards."""
        return PodCounts(
            pods_on_virtual_nodes=dict(self._on_virtual),
            owned_pods=self._owned.handed_out(),
            virtual_pods_by_owner=dict(self._virtual_by_owner),
            virtual_spend_by_namespace=dict(self._spend),
            virtual_pod_uids=frozenset(self._virtual_pods),
            virtual_pods=tuple(self._virtual_pods.values()),
            requested_by_node=self._requested.handed_out(),
            in_flight_by_owner=dict(self._in_flight),
        )

    def _cost(self, pod: PodPlacement) -> float:
        return self._pricing.pod_cost_per_hour(pod.cpu, pod.memory, sidecar=pod.kube_proxy_sidecar)


class _Requests:
    """What the pods bound to one node request, and how many they are (so that the entry goes at zero pods, with no
    rounding left over)."""

    __slots__ = ("cpu", "memory", "pods")

    def __init__(self) -> None:
        self.cpu = self.memory = 0.0
        self.pods = 0

    def add(self, pod: PodPlacement) -> None:
        self.cpu += pod.cpu
        self.memory += pod.memory
        self.pods += 1

    def remove(self, pod: PodPlacement) -> None:
        self.cpu -= pod.cpu
        self.memory -= pod.memory
        self.pods -= 1

    def totals(self) -> tuple[float, float]:
        return self.cpu, self.memory


V = TypeVar("V")
Out = TypeVar("Out")


class _Changing(Generic[V, Out]):
    """A map changed in place, and the immutable copies (``freeze``) of its values last handed out: :meth:`handed_out`
    copies again only the keys changed since, so its cost follows the changes, not the map's size (a 10,000-pod
    workload's set of pods is not copied for each of its pods' events)."""

    def __init__(self, new: Callable[[], V], freeze: Callable[[V], Out]) -> None:
        self.now: dict[str, V] = {}
        self._new = new
        self._freeze = freeze
        self._out: dict[str, Out] = {}
        self._changed: set[str] = set()

    def change(self, key: str) -> V:
        """The value under ``key`` (a new one if none), marked changed: the caller changes it."""
        self._changed.add(key)
        value = self.now.get(key)
        if value is None:
            value = self.now[key] = self._new()
        return value

    def drop_if(self, key: str, empty: Callable[[V], bool]) -> None:
        if empty(self.now[key]):
            del self.now[key]

    def handed_out(self) -> dict[str, Out]:
        for key in self._changed:
            value = self.now.get(key)
            if value is None:
                self._out.pop(key, None)
            else:
                self._out[key] = self._freeze(value)
        self._changed.clear()
        return dict(self._out)


def _share(pod: PodPlacement) -> tuple[object, ...]:
    """What the tally counts of a pod: two placements with the same share count the same."""
    return (pod.uid, pod.active, pod.owner_uid, pod.node_name, pod.namespace, pod.cpu, pod.memory,
            pod.kube_proxy_sidecar, in_flight(pod))


def _decrement(counts: dict[str, int], key: str) -> int:
    """Count one less under ``key`` (dropped at zero); the count left."""
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
    return max(left, 0)
