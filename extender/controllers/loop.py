"""The controllers that close the loop: scale-down preference and return to VMs, under a Lease.

Every replica serves the HTTP extender; only the Lease holder runs these. Each round starts from the
API state alone (the cluster view's pods and snapshot), so a restarted or failed-over leader resumes
where the last one stopped: a pod already evicted is terminating or gone, and is not evicted again.

- Deletion cost: ReplicaSet pods on virtual nodes carry ``controller.kubernetes.io/pod-deletion-cost``
  (``controllers.deletionCost.virtualPodCost``), so a scale-down removes them before pods on VMs. A pod
  whose cost a user set is left alone: the user's ranking wins. One patch per spilled pod, never more (also
  when the watch has not yet reported the patch by the next round), and never on a pod on a VM. The API calls
  the annotation best-effort and asks for no frequent updates; Karpenter folds it into a node's disruption
  cost (README, "pod-deletion-cost and Karpenter").
- Return to VMs: :func:`extender.decide.returns.plan_returns` decides; this evicts through the Eviction API (so
  PodDisruptionBudgets hold), records ``ReturningToVM`` events, rate-limits evictions cluster-wide, and
  marks the target nodes ``cluster-autoscaler.kubernetes.io/scale-down-disabled`` while pods return to them
  so the autoscaler does not remove the capacity the pods are moving to.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from extender.controllers.events import PodEvent
from extender.controllers.port import KubeWrites, Outcome
from extender.decide.returns import ReturnMove, ReturnPlan, plan_returns
from extender.model.config import TideoverConfig
from extender.model.keys import DELETION_COST_MARKER, POD_DELETION_COST, RETURN_TARGET_MARKER, SCALE_DOWN_DISABLED
from extender.model.snapshot import ClusterSnapshot, PodPlacement
from extender.telemetry.metrics import Metrics

log = logging.getLogger("tideover.controllers")

RETURNING_TO_VM = "ReturningToVM"


def desired_deletion_cost(pod: PodPlacement, virtual_nodes: frozenset[str], cost: int) -> str | None:
    """The deletion cost tideover should write on this pod, or None to leave it as it is."""
    # Only running pods: a ReplicaSet already deletes not-yet-running pods first, and writing to a pod that
    # is still starting races its provider's first status update.
    if pod.owner_kind != "ReplicaSet" or pod.phase != "Running" or pod.terminating:
        return None
    if pod.node_name not in virtual_nodes:
        return None
    if pod.deletion_cost is not None and not pod.deletion_cost_by_tideover:
        return None  # the user ranked this pod: their cost stands
    wanted = str(cost)
    return None if pod.deletion_cost == wanted else wanted


class EvictionRateLimiter:
    """At most ``per_minute`` evictions in any 60-second window."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._recent: deque[float] = deque()

    def budget(self) -> int:
        now = self._clock()
        while self._recent and now - self._recent[0] >= 60:
            self._recent.popleft()
        return self._per_minute - len(self._recent)

    def spend(self) -> None:
        self._recent.append(self._clock())


class ControllerLoop:
    """One round every ``interval``: deletion costs, then returns. Runs while this replica leads."""

    def __init__(
        self,
        kube: KubeWrites,
        config: TideoverConfig,
        snapshot: Callable[[], ClusterSnapshot],
        emit: Callable[[PodEvent], None],
        metrics: Metrics,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._kube = kube
        self._config = config
        self._snapshot = snapshot
        self._emit = emit
        self._metrics = metrics
        self._now = now
        self._limiter = EvictionRateLimiter(config.controllers.return_to_vm.max_evictions_per_minute)
        self._stable_since: datetime | None = None
        self._protected: set[str] = set()
        # uid -> the deletion cost this replica wrote, so a round that runs before the watch reports the patch
        # does not write it again (the API asks for no frequent updates of the annotation).
        self._costs_written: dict[str, str] = {}

    def run(self, stop: threading.Event) -> None:
        interval = self._config.controllers.return_to_vm.interval_seconds
        log.info("controllers started (this replica holds the lease)")
        while not stop.is_set():
            try:
                self.round()
            except Exception:
                log.exception("controller round failed")
            stop.wait(interval)
        log.info("controllers stopped")

    def round(self) -> ReturnPlan | None:
        snapshot = self._snapshot()
        if not snapshot.synced:
            return None
        if self._config.controllers.deletion_cost.enabled:
            self.apply_deletion_costs(snapshot)
        if self._config.controllers.return_to_vm.enabled:
            return self.return_pods(snapshot)
        return None

    # -- deletion cost -----------------------------------------------------------------------------
    def apply_deletion_costs(self, snapshot: ClusterSnapshot) -> int:
        """A deletion cost on the virtual nodes' pods (the only pods given one), so that a scale-down takes them
        first."""
        virtual = frozenset(snapshot.virtual_nodes)
        cost = self._config.controllers.deletion_cost.virtual_pod_cost
        patched = 0
        live = snapshot.virtual_pod_uids
        for uid in [uid for uid in self._costs_written if uid not in live]:
            del self._costs_written[uid]
        for pod in snapshot.virtual_pods:
            wanted = desired_deletion_cost(pod, virtual, cost)
            if wanted is None or self._costs_written.get(pod.uid) == wanted:
                continue
            body = {"metadata": {"annotations": {POD_DELETION_COST: wanted, DELETION_COST_MARKER: "managed"}}}
            result = self._kube.patch_pod(pod.namespace, pod.name, body)
            if result.ok:
                patched += 1
                self._costs_written[pod.uid] = wanted
                self._metrics.deletion_cost_patches.inc()
            elif result.outcome is not Outcome.GONE:
                log.warning("could not set the deletion cost of %s/%s: %s", pod.namespace, pod.name, result.reason)
        return patched

    # -- return to VMs -----------------------------------------------------------------------------
    def return_pods(self, snapshot: ClusterSnapshot) -> ReturnPlan:
        """Plan (:func:`~extender.decide.returns.plan_returns`), then act on the plan: protect, evict, release."""
        now = self._now()
        if snapshot.pending_pools:
            self._stable_since = None
        elif self._stable_since is None:
            self._stable_since = now
        plan = plan_returns(
            snapshot, now, self._config.controllers.return_to_vm, self._stable_since, self._limiter.budget()
        )
        for node in sorted(plan.protect):
            self._protect(node)
        for move in plan.moves:
            self._evict(move)
        if plan.release:
            self._release_protection(snapshot)
        return plan

    def _evict(self, move: ReturnMove) -> None:
        pod = move.pod
        result = self._kube.evict_pod(pod.namespace, pod.name)
        if not result.ok:
            outcome = {Outcome.REFUSED: "blocked-by-pdb", Outcome.GONE: "gone"}.get(result.outcome, "error")
            self._metrics.returns.labels(outcome).inc()
            if outcome == "error":
                log.warning("eviction of %s/%s failed: %s", pod.namespace, pod.name, result.reason)
            return
        self._limiter.spend()
        self._metrics.returns.labels("evicted").inc()
        message = (
            f"moving back to a VM: capacity is Ready (e.g. node {move.target_node}); "
            f"evicting so the ReplicaSet's replacement is scheduled onto a VM"
        )
        self._emit(PodEvent(pod.namespace, pod.name, pod.uid, RETURNING_TO_VM, message))
        log.info("returning %s/%s to a VM (target %s)", pod.namespace, pod.name, move.target_node)

    def _protect(self, node: str) -> None:
        if node in self._protected:
            return
        body = {"metadata": {"annotations": {SCALE_DOWN_DISABLED: "true", RETURN_TARGET_MARKER: "true"}}}
        result = self._kube.patch_node(node, body)
        if result.ok:
            self._protected.add(node)
        else:
            log.warning("could not protect %s from scale-down: %s", node, result.reason)

    def _release_protection(self, snapshot: ClusterSnapshot) -> None:
        # From the API state too: a node a previous leader protected is released by this one.
        marked = {name for name, info in snapshot.nodes.items()
                  if info.facts.annotations.get(RETURN_TARGET_MARKER) == "true"}
        for node in marked | self._protected:
            body = {"metadata": {"annotations": {SCALE_DOWN_DISABLED: None, RETURN_TARGET_MARKER: None}}}
            result = self._kube.patch_node(node, body)
            if not result.ok and result.outcome is not Outcome.GONE:
                log.warning("could not release %s: %s", node, result.reason)
                continue
            self._protected.discard(node)


class LeaderElector:
    """Runs ``lead(stop)`` while this replica holds the Lease (kubernetes' own leader election)."""

    def __init__(
        self, api_client: client.ApiClient, config: TideoverConfig, lead: Callable[[threading.Event], None]
    ) -> None:
        settings = config.controllers
        self.identity = f"{socket.gethostname()}_{os.getpid()}"
        lock = LeaseLock(settings.lease_name, settings.lease_namespace, self.identity)
        lock.api_instance = client.CoordinationV1Api(api_client)  # not the global default client
        self._stop_leading = threading.Event()
        self._lead = lead
        self._election = electionconfig.Config(
            lock,
            lease_duration=settings.lease_duration_seconds,
            renew_deadline=settings.renew_deadline_seconds,
            retry_period=settings.retry_period_seconds,
            onstarted_leading=self._started,
            onstopped_leading=self._stopped,
        )
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self.leading = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def _started(self) -> None:
        log.info("%s holds the lease; running the controllers", self.identity)
        self._stop_leading.clear()
        self.leading.set()
        self._lead(self._stop_leading)  # returns when _stopped sets the event

    def _stopped(self) -> None:
        self.leading.clear()
        self._stop_leading.set()
        log.info("%s lost the lease", self.identity)

    def _run(self) -> None:
        while True:  # after losing the lease, stand again
            try:
                leaderelection.LeaderElection(self._election).run()
            except Exception:
                log.exception("leader election failed; retrying")
            time.sleep(self._election.retry_period)
