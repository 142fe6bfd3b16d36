"""``tideover explain``: what tideover would decide for a pod, from a ``kubectl get -o yaml`` dump.

The dump supplies nodes, pods and the autoscaler's status ConfigMap; the snapshot and the decisions are
built by the same code the server runs. kube-scheduler's own filters run before an extender's, so this
module approximates the ones that matter here (node Ready and schedulable, taints, required node
affinity, CPU/memory/pod count) to get the candidate list; each rejected node says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml

from extender.config import TideoverConfig
from extender.decisions import FilterDecision, ScoreDecision, decide_filter, decide_scores
from extender.matching import describe_taint, required_node_affinity_mismatch, untolerated_taint
from extender.objects import ObjectError, PodFacts, node_facts, pod_facts
from extender.snapshot import ClusterSnapshot, build_snapshot, pod_placement, read_autoscaler_config_map
from scoring.cost import GIB as GIB_BYTES


class DumpError(ValueError):
    pass


def _load_yaml_documents(text: str, source: str) -> list[Any]:
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        raise DumpError(f"{source}: not valid YAML: {error}") from None


def _items(documents: Iterable[Any]) -> list[Mapping[str, Any]]:
    items: list[Mapping[str, Any]] = []
    for doc in documents:
        if not isinstance(doc, Mapping):
            continue
        if doc.get("kind") == "List" or str(doc.get("kind", "")).endswith("List") or "items" in doc:
            items.extend(item for item in doc.get("items") or () if isinstance(item, Mapping))
        else:
            items.append(doc)
    return items


@dataclass(frozen=True)
class Dump:
    nodes: list[Mapping[str, Any]]
    pods: list[Mapping[str, Any]]
    config_maps: list[Mapping[str, Any]]


def read_dump(text: str, source: str = "snapshot") -> Dump:
    items = _items(_load_yaml_documents(text, source))
    by_kind: dict[str, list[Mapping[str, Any]]] = {"Node": [], "Pod": [], "ConfigMap": []}
    for item in items:
        kind = item.get("kind")
        if kind in by_kind:
            by_kind[kind].append(item)
    if not by_kind["Node"]:
        raise DumpError(f"{source}: no Node objects found (use: kubectl get nodes,pods,configmaps -A -o yaml)")
    return Dump(by_kind["Node"], by_kind["Pod"], by_kind["ConfigMap"])


def read_pod(text: str, source: str = "pod") -> PodFacts:
    documents = _load_yaml_documents(text, source)
    pods = [d for d in _items(documents) if d.get("kind", "Pod") == "Pod"]
    if len(pods) != 1:
        raise DumpError(f"{source}: expected one Pod, found {len(pods)}")
    try:
        return pod_facts(pods[0], "Pod")
    except ObjectError as error:
        raise DumpError(f"{source}: {error}") from None


def snapshot_from_dump(dump: Dump, config: TideoverConfig, now: datetime) -> ClusterSnapshot:
    nodes = []
    for index, node in enumerate(dump.nodes):
        try:
            nodes.append(node_facts(node, f"Node[{index}]"))
        except ObjectError as error:
            raise DumpError(str(error)) from None
    wanted = (config.autoscaler.status_namespace, config.autoscaler.status_config_map)
    found = next(
        (cm for cm in dump.config_maps
         if ((cm.get("metadata") or {}).get("namespace"), (cm.get("metadata") or {}).get("name")) == wanted),
        None,
    )
    read = read_autoscaler_config_map(found)
    status, updated_at = read.status, read.updated_at
    problem = read.problem if found is not None else "status ConfigMap not in the dump"
    return build_snapshot(
        config=config, nodes=nodes, pods=[pod_placement(p) for p in dump.pods], autoscaler_status=status,
        autoscaler_status_updated_at=updated_at, autoscaler_status_problem=problem, now=now,
    )


def scheduler_prefilter(
    pod: PodFacts, snapshot: ClusterSnapshot, pods: list[Mapping[str, Any]]
) -> tuple[list[str], dict[str, str]]:
    """An approximation of kube-scheduler's filters: (candidates, rejected node -> reason)."""
    used: dict[str, list[float]] = {}
    for index, other in enumerate(pods):
        try:
            placed = pod_facts(other, f"pods[{index}]")
        except ObjectError:
            continue
        if placed.node_name and placed.phase not in ("Succeeded", "Failed") and placed.uid != pod.uid:
            totals = used.setdefault(placed.node_name, [0.0, 0.0, 0.0])
            totals[0] += placed.cpu
            totals[1] += placed.memory
            totals[2] += 1
    candidates: list[str] = []
    rejected: dict[str, str] = {}
    for name, info in sorted(snapshot.nodes.items()):
        facts = info.facts
        cpu, memory, count = used.get(name, [0.0, 0.0, 0.0])
        if not facts.ready:
            rejected[name] = "node is not Ready"
        elif facts.unschedulable:
            rejected[name] = "node is cordoned (unschedulable)"
        elif (taint := untolerated_taint(pod.tolerations, facts.taints)) is not None:
            rejected[name] = f"untolerated taint {describe_taint(taint)}"
        elif (mismatch := required_node_affinity_mismatch(pod.spec, facts.labels, name)) is not None:
            rejected[name] = mismatch
        elif cpu + pod.cpu > facts.allocatable_cpu + 1e-9:
            rejected[name] = f"insufficient cpu ({cpu:g} of {facts.allocatable_cpu:g} used, pod needs {pod.cpu:g})"
        elif memory + pod.memory > facts.allocatable_memory:
            rejected[name] = (
                f"insufficient memory ({memory / GIB_BYTES:.1f}Gi of {facts.allocatable_memory / GIB_BYTES:.1f}Gi "
                f"used, pod needs {pod.memory / GIB_BYTES:.1f}Gi)"
            )
        elif facts.allocatable_pods is not None and count + 1 > facts.allocatable_pods:
            rejected[name] = f"too many pods ({count:g} of {facts.allocatable_pods:g})"
        else:
            candidates.append(name)
    return candidates, rejected


@dataclass(frozen=True)
class Explanation:
    pod: PodFacts
    snapshot: ClusterSnapshot
    candidates: list[str]
    prefilter_rejected: dict[str, str]
    filter: FilterDecision
    scores: ScoreDecision | None


def explain(dump: Dump, pod: PodFacts, config: TideoverConfig, now: datetime) -> Explanation:
    snapshot = snapshot_from_dump(dump, config, now)
    candidates, rejected = scheduler_prefilter(pod, snapshot, dump.pods)
    decision = decide_filter(pod, candidates, snapshot, config)
    # kube-scheduler skips prioritize when at most one node is feasible.
    scores = decide_scores(pod, decision.feasible, snapshot, config) if len(decision.feasible) > 1 else None
    return Explanation(pod, snapshot, candidates, rejected, decision, scores)


def render(result: Explanation) -> str:
    pod, snap, decision = result.pod, result.snapshot, result.filter
    lines = [f"pod {pod.key}", (
        f"  policy: spill={decision.policy.spill.value} priority={decision.policy.priority.value}"
        + (f" max-wait={decision.policy.max_wait_seconds:g}s" if decision.policy.max_wait_seconds is not None else "")
    ), f"  requests: cpu={pod.cpu:g} memory={pod.memory / GIB_BYTES:.2f}Gi images={', '.join(pod.images) or '-'}"]
    for problem in decision.policy.problems:
        lines.append(f"  warning: {problem}")
    lines.append("")
    lines.append("VM pools:")
    if not snap.pools:
        lines.append("  (none known)")
    for pool in snap.pools.values():
        lines.append(f"  {pool.capacity.describe()}  [template from {pool.template_source}]")
    if snap.autoscaler_status_problem:
        lines.append(f"  autoscaler status: {snap.autoscaler_status_problem}")
    lines.append("")
    lines.append("kube-scheduler's filters (approximated):")
    for name, reason in sorted(result.prefilter_rejected.items()):
        lines.append(f"  {name}: rejected: {reason}")
    lines.append(f"  candidates passed to tideover: {', '.join(result.candidates) or '(none)'}")
    lines.append("")
    lines.append(f"tideover filter: {decision.outcome.value}")
    lines.append(f"  {decision.reason}")
    for name in decision.feasible:
        lines.append(f"  {name}: feasible")
    for name, reason in {**decision.failed, **decision.failed_unresolvable}.items():
        lines.append(f"  {name}: removed: {reason}")
    if result.scores is not None:
        lines.append("")
        lines.append("tideover prioritize (0..10; higher is better):")
        score_rows = zip(result.scores.scores, result.scores.cost_per_hour, result.scores.start_seconds, strict=True)
        for (name, score), cost, start in sorted(score_rows, key=lambda row: -row[0][1]):
            lines.append(f"  {name}: score {score}  cost ${cost:.4f}/h  start ~{start:.0f}s")
    elif len(decision.feasible) == 1:
        lines.append("  (one feasible node: kube-scheduler does not call prioritize)")
    return "\n".join(lines)


__all__ = ["DumpError", "Explanation", "explain", "read_dump", "read_pod", "render"]
