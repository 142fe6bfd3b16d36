"""``tideover explain``: what tideover would decide for a pod, from a ``kubectl get -o yaml`` dump.

The dump supplies nodes, pods and the autoscaler's status ConfigMap (or Karpenter's NodeClaims and NodePools); the
snapshot and the decisions are built by the same code the server runs. kube-scheduler's own filters run before an
extender's, so this module approximates the ones that matter here (node Ready and schedulable, taints, required node
affinity, CPU/memory/pod count) to get the candidate list; each rejected node says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import yaml

from extender.decide.filter import FilterDecision, decide_filter
from extender.decide.matching import describe_taint, required_node_affinity_mismatch, untolerated_taint
from extender.decide.prioritize import ScoreDecision, decide_scores
from extender.model.config import TideoverConfig, UniqueKeyLoader, yaml_problem
from extender.model.karpenter import KarpenterRead, nodeclaim_facts, nodepool_facts
from extender.model.objects import ObjectError, PodFacts, config_map_facts, node_facts, pod_facts
from extender.model.snapshot import ClusterSnapshot, build_snapshot, pod_placement, read_autoscaler_config_map
from scoring.cost import GIB as GIB_BYTES


class DumpError(ValueError):
    """Input ``explain`` cannot use; the message names the file, the object and the field."""


def decode_text(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DumpError(f"{source}: byte {error.start}: not UTF-8 text") from None


def _load_yaml_documents(text: str, source: str) -> list[Any]:
    try:
        return [doc for doc in yaml.load_all(text, Loader=UniqueKeyLoader) if doc is not None]
    except yaml.YAMLError as error:
        raise DumpError(f"{source}: {yaml_problem(error)}") from None
    except RecursionError:
        raise DumpError(f"{source}: nested too deeply to be a Kubernetes object") from None
    except ValueError as error:  # an integer of more than 4,300 digits, where the loader did not catch it
        raise DumpError(f"{source}: not a usable value: {error}") from None


@dataclass(frozen=True)
class _Item:
    where: str  # "items[3]" or "document 2"
    obj: Mapping[str, Any]

    def describe(self) -> str:
        """``items[3] (Pod default/web-1)``: where the object is in its file, and what it is."""
        kind = self.obj.get("kind")
        metadata = self.obj.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
        label = " ".join(
            part for part in (
                kind if isinstance(kind, str) else None,
                "/".join(p for p in (namespace, name) if isinstance(p, str) and p) or None,
            ) if part
        )
        return f"{self.where} ({label})" if label else self.where


def _items(documents: Iterable[Any], source: str) -> list[_Item]:
    items: list[_Item] = []
    for number, doc in enumerate(documents, 1):
        where = f"document {number}"
        if not isinstance(doc, Mapping):
            raise DumpError(f"{source}: {where}: must be a Kubernetes object, got {type(doc).__name__}")
        kind = doc.get("kind")
        if (isinstance(kind, str) and kind.endswith("List")) or "items" in doc:
            listed = doc.get("items")
            if listed is None:
                continue
            if not isinstance(listed, list):
                raise DumpError(f"{source}: {where}: items: must be a list, got {type(listed).__name__}")
            for index, item in enumerate(listed):
                if not isinstance(item, Mapping):
                    raise DumpError(f"{source}: items[{index}]: must be a Kubernetes object, got {type(item).__name__}")
                items.append(_Item(f"items[{index}]", item))
        else:
            items.append(_Item(where, doc))
    return items


@dataclass(frozen=True)
class Dump:
    nodes: list[Mapping[str, Any]]
    pods: list[Mapping[str, Any]]
    config_maps: list[Mapping[str, Any]]
    # Karpenter's (AKS Node Auto Provisioning), when the dump has them: kubectl get nodeclaims,nodepools -o yaml.
    nodeclaims: list[Mapping[str, Any]] = field(default_factory=list)
    nodepools: list[Mapping[str, Any]] = field(default_factory=list)


# What explain reads of each kind, checked up front: an object it cannot read is the input's error, not a traceback.
_CHECKS: dict[str, Callable[[Mapping[str, Any], str], object]] = {
    "Node": node_facts, "Pod": pod_facts, "ConfigMap": config_map_facts,
    # Karpenter's objects are read leniently, as the cluster view reads them.
    "NodeClaim": lambda obj, _path: nodeclaim_facts(obj), "NodePool": lambda obj, _path: nodepool_facts(obj),
}


def read_dump(text: str, source: str = "snapshot") -> Dump:
    by_kind: dict[str, list[Mapping[str, Any]]] = {kind: [] for kind in _CHECKS}
    for item in _items(_load_yaml_documents(text, source), source):
        kind = item.obj.get("kind")
        if not isinstance(kind, str):
            problem = "is required" if kind is None else f"must be a string, got {type(kind).__name__}"
            raise DumpError(f"{source}: {item.describe()}: kind: {problem}")
        check = _CHECKS.get(kind)
        if check is None:
            continue  # Services, Events and the like: not what explain reads
        try:
            check(item.obj, kind)
        except ObjectError as error:
            raise DumpError(f"{source}: {item.describe()}: {error}") from None
        by_kind[kind].append(item.obj)
    if not by_kind["Node"]:
        raise DumpError(f"{source}: no Node objects found (use: kubectl get nodes,pods,configmaps -A -o yaml)")
    return Dump(by_kind["Node"], by_kind["Pod"], by_kind["ConfigMap"], by_kind["NodeClaim"], by_kind["NodePool"])


def read_pod(text: str, source: str = "pod") -> PodFacts:
    documents = _load_yaml_documents(text, source)
    pods = [item for item in _items(documents, source) if item.obj.get("kind", "Pod") == "Pod"]
    if len(pods) != 1:
        raise DumpError(f"{source}: expected one Pod, found {len(pods)}")
    try:
        return pod_facts(pods[0].obj, "Pod")
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
    # A dump with NodePools is of a cluster with Karpenter: there, no status ConfigMap is what auto looks for.
    karpenter = KarpenterRead(
        served=True, claims=tuple(map(nodeclaim_facts, dump.nodeclaims)),
        nodepools={facts.name: facts for facts in map(nodepool_facts, dump.nodepools)},
    ) if dump.nodepools else KarpenterRead(served=False, problem="no NodePool in the dump")
    if found is None and not dump.nodepools:
        read = replace(read, problem="status ConfigMap not in the dump")
    pods = [pod_placement(p) for p in dump.pods]
    return build_snapshot(config=config, nodes=nodes, pods=pods, autoscaler=read, now=now, karpenter=karpenter)


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


__all__ = ["DumpError", "Explanation", "decode_text", "explain", "read_dump", "read_pod", "render"]
