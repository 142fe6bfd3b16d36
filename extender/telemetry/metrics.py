"""Prometheus metrics. A registry per service (not the global one), so tests and replicas don't share state."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from extender.model.config import VirtualNodes
from extender.model.snapshot import ClusterSnapshot

# Seconds. The target is p99 < 2 ms at 1,000 nodes, so resolution is finest below 5 ms.
REQUEST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.decisions = Counter(
            "tideover_decisions", "Extender decisions by verb and outcome code.", ["verb", "outcome"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "tideover_request_duration_seconds", "Time to answer an extender request, by verb.", ["verb"],
            buckets=REQUEST_BUCKETS, registry=self.registry,
        )
        self.bad_requests = Counter(
            "tideover_bad_requests", "Requests answered with an HTTP error, by verb and status.",
            ["verb", "status"], registry=self.registry,
        )
        self.invalid_annotations = Counter(
            "tideover_invalid_annotations", "Pods whose tideover.io annotation was invalid (defaulted).",
            ["annotation"], registry=self.registry,
        )
        self.unknown_nodes = Counter(
            "tideover_unknown_nodes", "Candidate nodes not in tideover's cluster view.", ["verb"],
            registry=self.registry,
        )

        self.deletion_cost_patches = Counter(
            "tideover_deletion_cost_patches", "Pods given a pod-deletion-cost because they run on a virtual node.",
            registry=self.registry,
        )
        self.returns = Counter(
            "tideover_returns", "Spilled pods moved back to VMs, by outcome (evicted, blocked-by-pdb, gone, error).",
            ["outcome"], registry=self.registry,
        )
        self.virtual_pod_seconds = Counter(
            "tideover_virtual_pod_seconds", "Pod-seconds spent on virtual nodes (all pods, integrated over time).",
            registry=self.registry,
        )
        self.virtual_spend = Counter(
            "tideover_virtual_spend_dollars",
            "Estimated USD spent on virtual nodes (requests at the configured prices).",
            registry=self.registry,
        )

    def watch_ledger(self, entries: Callable[[], int]) -> None:
        """The spill ledger's size, read at scrape time: spills allowed that the snapshot does not show yet."""
        gauge = Gauge(
            "tideover_spill_ledger_entries",
            "Spills tideover allowed that its snapshot does not show on a virtual node yet (they count against caps).",
            registry=self.registry,
        )
        gauge.set_function(lambda: float(entries()))

    def account_virtual_time(self, previous: ClusterSnapshot, new: ClusterSnapshot) -> None:
        """Snapshot listener: integrate pods and spend on virtual nodes over the time between snapshots."""
        seconds = (new.built_at - previous.built_at).total_seconds()
        if not previous.synced or not 0 < seconds < 300:  # a gap this long is a stall, not usage we saw
            return
        self.virtual_pod_seconds.inc(sum(previous.pods_on_virtual_nodes.values()) * seconds)
        self.virtual_spend.inc(sum(previous.virtual_spend_by_namespace.values()) * seconds / 3600)

    def watch_snapshot(
        self, snapshot: Callable[[], ClusterSnapshot], sync_ages: Callable[[], Mapping[str, float]],
        virtual_nodes: VirtualNodes | None = None,
    ) -> None:
        """Gauges read from ``snapshot`` at scrape time; with ``virtual_nodes``, also the namespaces' spend caps."""
        self.registry.register(_SnapshotCollector(snapshot, sync_ages, virtual_nodes))


class _SnapshotCollector(Collector):
    """Gauges read from the current snapshot at scrape time."""

    def __init__(
        self, snapshot: Callable[[], ClusterSnapshot], sync_ages: Callable[[], Mapping[str, float]],
        virtual_nodes: VirtualNodes | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._sync_ages = sync_ages
        self._virtual_nodes = virtual_nodes

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self._snapshot()
        on_virtual = GaugeMetricFamily(
            "tideover_pods_on_virtual_nodes", "Pods bound to each virtual node (not finished).", labels=["node"]
        )
        for node, count in snap.pods_on_virtual_nodes.items():
            on_virtual.add_metric([node], count)
        yield on_virtual
        pending = GaugeMetricFamily(
            "tideover_capacity_pending", "1 while the VM pool has capacity pending (a scale-up in progress).",
            labels=["pool", "state"],
        )
        eta = GaugeMetricFamily(
            "tideover_capacity_eta_seconds", "Predicted seconds until a pending pool's new capacity is Ready.",
            labels=["pool"],
        )
        for name, pool in snap.pools.items():
            pending.add_metric([name, pool.capacity.state.value], 1.0 if pool.capacity.pending else 0.0)
            if pool.capacity.eta_seconds is not None:
                eta.add_metric([name], pool.capacity.eta_seconds)
        stuck = GaugeMetricFamily(
            "tideover_scale_up_stuck",
            "1 while the VM pool's scale-up is past its estimate by more than autoscaler.stuckAfterSeconds.",
            labels=["pool"],
        )
        for name, pool in snap.pools.items():
            stuck.add_metric([name], 1.0 if pool.capacity.stuck else 0.0)
        yield pending
        yield eta
        yield stuck
        yield GaugeMetricFamily("tideover_cluster_view_synced", "1 once the cluster view has synced.",
                                value=1.0 if snap.synced else 0.0)
        ages = GaugeMetricFamily(
            "tideover_cluster_view_last_sync_age_seconds",
            "Seconds since each watched resource last listed or received an event.", labels=["resource"],
        )
        for resource, age in self._sync_ages().items():
            ages.add_metric([resource], age)
        yield ages
        yield from self._spend(snap)

    def _spend(self, snap: ClusterSnapshot) -> Iterator[GaugeMetricFamily]:
        """Each namespace's current spend rate on virtual nodes, and its cap (explicit caps, and the default cap of
        each namespace that spends): the spend alert compares the two."""
        rate = GaugeMetricFamily(
            "tideover_namespace_virtual_spend_dollars_per_hour",
            "Estimated USD per hour of each namespace's pods on virtual nodes now.", labels=["namespace"],
        )
        for namespace, dollars in snap.virtual_spend_by_namespace.items():
            rate.add_metric([namespace], dollars)
        yield rate
        cap = GaugeMetricFamily(
            "tideover_namespace_spend_cap_dollars_per_hour",
            "virtualNodes.namespaceSpendCapsPerHour (or the default cap) of each capped namespace.",
            labels=["namespace"],
        )
        if self._virtual_nodes is not None:
            namespaces = set(self._virtual_nodes.namespace_spend_caps_per_hour) | set(snap.virtual_spend_by_namespace)
            for namespace in sorted(namespaces):
                limit = self._virtual_nodes.namespace_spend_cap(namespace)
                if limit is not None:
                    cap.add_metric([namespace], limit)
        yield cap
