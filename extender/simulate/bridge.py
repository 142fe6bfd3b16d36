"""The one place the simulator meets tideover's code: the objects it builds for it and the calls it makes.

Everything tideover decides in a simulation is decided here, by tideover's own functions, on tideover's own data
types: :func:`extender.model.snapshot.build_snapshot` (which runs the capacity signal on the simulated autoscaler's
status and nodes), :func:`extender.decide.filter.decide_filter` (the bridge rule and the guards, with a
:class:`extender.decide.guards.SpillLedger` for spills not yet in the snapshot, as in the server) and
:func:`extender.decide.returns.plan_returns` (the return controller's moves, and the VMs it protects from
scale-down or releases).
The engine supplies the cluster; it never re-implements a decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from extender.decide.filter import FilterDecision, FilterOutcome, decide_filter
from extender.decide.guards import SpillLedger
from extender.decide.matching import untolerated_taint
from extender.decide.returns import ReturnPlan, plan_returns
from extender.model.autoscaler_status import NO_CONFIG_MAP, AutoscalerStatus, AutoscalerStatusRead, NodeGroupStatus
from extender.model.config import (
    ConfigError,
    Int,
    NonNegativeFloat,
    PositiveFloat,
    TideoverConfig,
    format_validation_error,
    load_config,
    parse_config,
)
from extender.model.keys import GATE, GATE_TAINT, SPILL
from extender.model.objects import Json, NodeFacts, PodFacts, pod_facts
from extender.model.policy import SpillPolicy
from extender.model.snapshot import ClusterSnapshot, NodeKind, PendingHistory, PodPlacement, build_snapshot
from scoring.cost import GIB, virtual_cost_per_hour
from scoring.latency import start_seconds

__all__ = [
    "GIB",
    "SPILL",
    "ClusterSnapshot",
    "ConfigError",
    "FilterDecision",
    "FilterOutcome",
    "Int",
    "NodeKind",
    "NonNegativeFloat",
    "PodFacts",
    "PodPlacement",
    "PositiveFloat",
    "ReturnPlan",
    "SpillLedger",
    "SpillPolicy",
    "TideoverConfig",
    "format_validation_error",
    "load_config",
    "parse_config",
]

# The simulated clock's zero. Any fixed instant would do: tideover's code wants aware datetimes.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
VIRTUAL_NODE = "virtual-node-aci-linux"
# The AKS virtual node's labels and taint (seed 003/004; e2e/cluster.py gives virtual-kubelet the same).
VIRTUAL_LABELS: Mapping[str, str] = {
    "type": "virtual-kubelet", "kubernetes.io/role": "agent", "kubernetes.io/os": "linux",
    "kubernetes.io/hostname": VIRTUAL_NODE,
}
VIRTUAL_TAINT: Json = {"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}
# The seeds' recipe (seed 001): tolerate the virtual node, prefer nodes that are not virtual.
SEED_TOLERATION: Json = {"key": "virtual-kubelet.io/provider", "value": "azure", "operator": "Equal",
                         "effect": "NoSchedule"}
GATE_TOLERATION: Json = {"key": GATE, "operator": "Exists", "effect": "NoSchedule"}
SEED_AFFINITY: Json = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
    {"weight": 1, "preference": {"matchExpressions": [
        {"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}]}}]}}
IMAGE = "registry.example/app:1"


def at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def start_seconds_estimate(config: TideoverConfig, *, virtual: bool, image_present: bool) -> float:
    """tideover's own start-latency model (:func:`scoring.latency.start_seconds`) for one pod of one image of
    ``images.defaultSizeBytes``: what the simulator takes as the median start when the cluster does not say."""
    base = config.virtual_nodes.cold_start_seconds if virtual else config.vm_pools.pod_start_seconds
    bandwidth = config.virtual_nodes.pull_bytes_per_second if virtual else config.vm_pools.pull_bytes_per_second
    missing = 0.0 if image_present and not virtual else config.images.default_size_bytes
    return float(start_seconds(base, np.array([missing]), bandwidth)[0])


def virtual_cost_per_second(config: TideoverConfig, cpu: float, memory_bytes: float) -> float:
    """USD per second a pod costs on ACI: tideover's cost model (billed minimums included)."""
    pricing = config.virtual_nodes.pricing
    hourly = virtual_cost_per_hour(
        cpu, memory_bytes, vcpu_price_per_second=pricing.vcpu_per_second,
        gib_price_per_second=pricing.gib_per_second, min_cpu=pricing.min_cpu,
        min_memory=pricing.min_memory_gib * GIB,
    )
    return hourly / 3600.0


@dataclass(frozen=True, slots=True)
class PodTemplate:
    """A workload's pod, as tideover reads it (the real parser, :func:`extender.model.objects.pod_facts`)."""

    spec: Json
    annotations: Mapping[str, str]
    facts: PodFacts  # of the template; per pod only name, uid and times differ


def pod_template(
    *, namespace: str, workload: str, owner_kind: str, cpu: float, memory_bytes: float,
    annotations: Mapping[str, str], tolerate_virtual: bool, tolerate_gate: bool,
) -> PodTemplate:
    tolerations = [SEED_TOLERATION, *([GATE_TOLERATION] if tolerate_gate else [])] if tolerate_virtual else []
    spec: dict[str, Any] = {
        "containers": [{"name": "app", "image": IMAGE,
                        "resources": {"requests": {"cpu": f"{cpu:g}", "memory": f"{int(memory_bytes)}"}}}],
        "affinity": SEED_AFFINITY,
        "tolerations": tolerations,
    }
    pod = {
        "metadata": {"namespace": namespace, "name": workload, "uid": f"{workload}-template",
                     "annotations": dict(annotations),
                     "ownerReferences": [{"kind": owner_kind, "name": workload, "uid": owner_uid(namespace, workload),
                                          "controller": True}]},
        "spec": spec,
    }
    return PodTemplate(spec, dict(annotations), pod_facts(pod, f"workload {workload}"))


def owner_uid(namespace: str, workload: str) -> str:
    return f"owner-{namespace}-{workload}"


def pod_facts_for(template: PodTemplate, name: str, uid: str, created: float) -> PodFacts:
    base = template.facts
    return PodFacts(
        namespace=base.namespace, name=name, uid=uid, labels=base.labels, annotations=base.annotations,
        spec=base.spec, tolerations=base.tolerations, cpu=base.cpu, memory=base.memory, images=base.images,
        owner_kind=base.owner_kind, owner_name=base.owner_name, owner_uid=base.owner_uid, node_name=None,
        phase="Pending", created=at(created),
    )


def placement(
    facts: PodFacts, *, node: str | None, phase: str, terminating: bool, created: float
) -> PodPlacement:
    return PodPlacement(
        namespace=facts.namespace, name=facts.name, uid=facts.uid, node_name=node, phase=phase,
        owner_uid=facts.owner_uid, cpu=facts.cpu, memory=facts.memory, owner_kind=facts.owner_kind,
        created=at(created), terminating=terminating,
        scheduling={key: facts.spec[key] for key in ("tolerations", "nodeSelector", "affinity") if key in facts.spec},
    )


def vm_node_facts(
    name: str, pool: str, pool_label: str, *, cpu: float, memory_bytes: float, pods: int, ready: bool,
    created: float, ready_at: float | None,
) -> NodeFacts:
    return NodeFacts(
        name=name,
        labels={pool_label: pool, "kubernetes.io/os": "linux", "kubernetes.io/role": "agent",
                "kubernetes.io/hostname": name, "type": "vm"},
        taints=(), allocatable_cpu=cpu, allocatable_memory=memory_bytes, allocatable_pods=float(pods),
        ready=ready, ready_since=at(ready_at) if ready and ready_at is not None else None, created=at(created),
        unschedulable=False, provider_id=None, images={}, annotations={},
    )


def virtual_node_facts(gated: bool) -> NodeFacts:
    return NodeFacts(
        name=VIRTUAL_NODE, labels=dict(VIRTUAL_LABELS), taints=(VIRTUAL_TAINT, *((dict(GATE_TAINT),) if gated else ())),
        allocatable_cpu=10_000.0, allocatable_memory=10_000.0 * GIB, allocatable_pods=10_000.0, ready=True,
        ready_since=EPOCH, created=EPOCH, unschedulable=False, provider_id=None, images={}, annotations={},
    )


def tolerates(facts: PodFacts, node: NodeFacts) -> bool:
    """kube-scheduler's TaintToleration filter (tideover's port of it, extender.decide.matching)."""
    return untolerated_taint(facts.tolerations, node.taints) is None


@dataclass(frozen=True, slots=True)
class GroupCounts:
    """What the simulated cluster-autoscaler reports for one node group."""

    name: str
    target: int
    registered: int
    ready: int
    min_size: int
    max_size: int
    scale_up: str  # InProgress | NoActivity
    scale_up_since: float | None


def autoscaler_status(groups: Sequence[GroupCounts], written: float) -> AutoscalerStatus:
    """CA's status as tideover parses it (the YAML format's fields)."""
    node_groups = {
        g.name: NodeGroupStatus(
            name=g.name, health="Healthy", registered=g.registered, ready=g.ready,
            not_started=g.registered - g.ready, unready=0, being_deleted=0, long_unregistered=0,
            unregistered=max(0, g.target - g.registered), cloud_provider_target=g.target, min_size=g.min_size,
            max_size=g.max_size, scale_up=g.scale_up,
            scale_up_since=at(g.scale_up_since) if g.scale_up_since is not None else None,
            backoff_error_code=None, backoff_error_message=None,
        )
        for g in groups
    }
    in_progress = any(g.scale_up == "InProgress" for g in groups)
    return AutoscalerStatus(
        format="yaml", time=at(written), autoscaler_status="Running",
        cluster_scale_up="InProgress" if in_progress else "NoActivity", node_groups=node_groups,
    )


def start_history(config: TideoverConfig) -> PendingHistory:
    """What tideover's cluster view carries from snapshot to snapshot (first-seen-pending times, observed
    provisioning times), before the first one."""
    return PendingHistory.start(config)


def snapshot(
    config: TideoverConfig, nodes: Sequence[NodeFacts], pods: Sequence[PodPlacement],
    status: AutoscalerStatus | None, now: float, history: PendingHistory,
) -> ClusterSnapshot:
    """tideover's snapshot of the simulated cluster; the next build starts from its ``pending_history``."""
    read = AutoscalerStatusRead(status, status.time) if status is not None else AutoscalerStatusRead(
        None, problem=NO_CONFIG_MAP
    )
    return build_snapshot(config=config, nodes=nodes, pods=pods, autoscaler=read, now=at(now), history=history)


def filter_pod(
    facts: PodFacts, candidates: Sequence[str], view: ClusterSnapshot, config: TideoverConfig, ledger: SpillLedger
) -> FilterDecision:
    """tideover's filter, as the HTTP edge calls it: with the ledger's spills in flight, then settled."""
    decision = decide_filter(facts, candidates, view, config, recent_spills=ledger.view(view, exclude_uid=facts.uid))
    ledger.settle(facts, decision.outcome.spilled, decision.virtual_cost_per_hour, decision.spill_nodes)
    return decision


def returns(
    view: ClusterSnapshot, now: float, config: TideoverConfig, stable_since: float | None, budget: int,
) -> ReturnPlan:
    return plan_returns(
        view, at(now), config.controllers.return_to_vm, at(stable_since) if stable_since is not None else None,
        budget,
    )
