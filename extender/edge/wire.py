"""kube-scheduler's extender wire format (k8s.io/kube-scheduler/extender/v1).

The Go structs have no JSON tags, so keys on the wire are the capitalised Go field names. Go decodes
case-insensitively, so input keys are matched without regard to case; replies use the exact names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from extender.decide.filter import FilterDecision
from extender.decide.prioritize import ScoreDecision
from extender.model.bounded import BoundedMap
from extender.model.objects import Json, ObjectError, PodFacts, SpecFacts, pod_facts, spec_facts


class WireError(ValueError):
    """A request the extender cannot read; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True, slots=True)
class ExtenderArgs:
    pod: PodFacts
    node_names: tuple[str, ...]
    # Full Node objects in request order, when the scheduler sent them (nodeCacheCapable: false).
    nodes: tuple[Json, ...] | None
    form: Literal["names", "nodes"]
    sent_node_names: bool  # the request carried NodeNames (reply with them too)
    # With both forms, the NodeNames sent: the NodeNames reply lists only these (the answer comes from Nodes).
    sent_names: frozenset[str] | None = None
    # The NodeNames form's names (node_names) as a set, made once while checking them; None in the Nodes form.
    name_set: frozenset[str] | None = None


# The most candidate nodes one request may carry: three times Kubernetes' largest supported cluster (5,000 nodes).
MAX_NODES = 15_000


def _refuse_duplicates(names: Any, field: str, unique: frozenset[str] | None = None) -> None:
    """Every candidate must appear once: a duplicated name would be kept and failed at once, or answered twice.
    ``unique``: the names as a set, when the caller has it."""
    if len(set(names) if unique is None else unique) == len(names):
        return
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise WireError(field.format(index), f"duplicate node name {name!r}: each candidate must appear once")
        seen.add(name)


def _checked_names(raw_names: Any) -> frozenset[str]:
    """NodeNames checked (a list of non-empty strings, within MAX_NODES, each once), as a set. The common case costs
    a join and a set, both in C; the culprit is looked for only on failure."""
    if not isinstance(raw_names, list):
        raise WireError("NodeNames", f"must be a list of node names, got {type(raw_names).__name__}")
    if len(raw_names) > MAX_NODES:
        raise WireError("NodeNames", f"{len(raw_names)} names: more than the limit of {MAX_NODES} per request")
    try:
        "".join(raw_names)  # a TypeError unless every item is a str (what orjson decodes a JSON string to)
        unique = frozenset(raw_names)
    except TypeError:
        unique = None
    if unique is None or "" in unique:
        index = next(i for i, name in enumerate(raw_names) if not isinstance(name, str) or not name)
        raise WireError(f"NodeNames[{index}]", "must be a non-empty string")
    _refuse_duplicates(raw_names, "NodeNames[{}]", unique)
    return unique


def _fold(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {key.lower(): value for key, value in obj.items() if isinstance(key, str)}


class PodMemo:
    """The facts of the last few pods read, by (uid, resourceVersion), kept with the pod as it was sent: kube-scheduler
    sends the same pod to filter and then to prioritize, so the second verb reads it for the cost of comparing the two
    (about 2 µs against 17 µs for a typical pod). A pod that differs from the one kept (a forged request, a
    client that reuses a version) is read afresh, so the facts are always those of the pod sent. Shared between
    threads: a race reads a pod twice, never mixes two."""

    def __init__(self, size: int = 64) -> None:
        self._pods: BoundedMap[tuple[str, str], tuple[Any, PodFacts]] = BoundedMap(size)
        # The spec last read per workload (its controller's uid as the pod states it), with what was read of it: the
        # replicas of a workload share their spec, so a new replica's spec is compared (equal: its facts are the
        # same) instead of read. Only specs read without error are kept.
        self._specs: BoundedMap[Any, tuple[Any, SpecFacts]] = BoundedMap(size)

    def read(self, pod: Any, path: str = "Pod") -> PodFacts:
        metadata = pod.get("metadata") if isinstance(pod, Mapping) else None
        if not isinstance(metadata, Mapping):
            return pod_facts(pod, path)
        uid, version = metadata.get("uid"), metadata.get("resourceVersion")
        if not (isinstance(uid, str) and uid and isinstance(version, str) and version):
            return pod_facts(pod, path)
        key = (uid, version)
        kept = self._pods.get(key)
        if kept is not None and kept[0] == pod:
            return kept[1]
        workload = _owner_key(metadata)

        def read_spec(spec: Any, spec_path: str) -> SpecFacts:
            known = self._specs.get(workload)
            if known is not None and known[0] == spec:
                return known[1]
            read = spec_facts(spec, spec_path)
            self._specs.put(workload, (spec, read))
            return read

        facts = pod_facts(pod, path, read_spec)
        self._pods.put(key, (pod, facts))
        return facts


def _owner_key(metadata: Mapping[str, Any]) -> Any:
    """The first owner reference's uid as sent, unchecked (a memo's key only: the spec itself is compared)."""
    owners = metadata.get("ownerReferences")
    if isinstance(owners, list) and owners and isinstance(owners[0], Mapping):
        uid = owners[0].get("uid")
        return uid if isinstance(uid, str) else None
    return None


def parse_extender_args(body: Any, read_pod: Callable[[Any, str], PodFacts] = pod_facts) -> ExtenderArgs:
    """The request's pod and candidates, checked; ``read_pod`` reads the pod (a :class:`PodMemo`'s ``read``)."""
    if not isinstance(body, Mapping):
        raise WireError("(body)", f"must be a JSON object (ExtenderArgs), got {type(body).__name__}")
    fields = _fold(body)
    if fields.get("pod") is None:
        raise WireError("Pod", "is required")
    try:
        pod = read_pod(fields["pod"], "Pod")
    except ObjectError as error:
        raise WireError(error.field, error.problem) from None

    raw_names = fields.get("nodenames")
    names: list[str] | None = None
    name_set: frozenset[str] | None = None
    if raw_names is not None:
        name_set = _checked_names(raw_names)
        names = raw_names

    raw_nodes = fields.get("nodes")
    items: list[Json] | None = None
    if raw_nodes is not None:
        if not isinstance(raw_nodes, Mapping):
            raise WireError("Nodes", f"must be a NodeList object, got {type(raw_nodes).__name__}")
        raw_items = _fold(raw_nodes).get("items")
        if raw_items is None:
            raw_items = []
        if not isinstance(raw_items, list):
            raise WireError("Nodes.items", f"must be a list, got {type(raw_items).__name__}")
        if len(raw_items) > MAX_NODES:
            raise WireError("Nodes.items", f"{len(raw_items)} nodes: more than the limit of {MAX_NODES} per request")
        items = []
        for index, node in enumerate(raw_items):
            if not isinstance(node, Mapping):
                raise WireError(f"Nodes.items[{index}]", "must be a Node object")
            metadata = node.get("metadata")
            name = metadata.get("name") if isinstance(metadata, Mapping) else None
            if not isinstance(name, str) or not name:
                raise WireError(f"Nodes.items[{index}].metadata.name", "is required")
            labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
            if labels is not None and (
                not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values())
            ):
                raise WireError(f"Nodes.items[{index}].metadata.labels", "must be an object of string values")
            items.append(node)

    if items is not None:
        node_names = tuple(node["metadata"]["name"] for node in items)
        _refuse_duplicates(node_names, "Nodes.items[{}].metadata.name")
        return ExtenderArgs(pod, node_names, tuple(items), "nodes", names is not None, name_set)
    if names is not None:
        return ExtenderArgs(pod, tuple(names), None, "names", True, None, name_set)
    raise WireError("NodeNames", "the request has neither Nodes nor NodeNames: no candidate nodes to consider")


def filter_reply(args: ExtenderArgs, decision: FilterDecision) -> dict[str, Any]:
    """ExtenderFilterResult in the form the request used."""
    reply: dict[str, Any] = {
        "Nodes": None,
        "NodeNames": None,
        "FailedNodes": dict(decision.failed),
        "FailedAndUnresolvableNodes": dict(decision.failed_unresolvable),
        "Error": "",
    }
    if args.nodes is not None:
        keep = set(decision.feasible)
        reply["Nodes"] = {"metadata": {}, "items": [n for n in args.nodes if n["metadata"]["name"] in keep]}
    if args.nodes is None or args.sent_node_names:
        sent = args.sent_names
        reply["NodeNames"] = list(decision.feasible) if sent is None else [n for n in decision.feasible if n in sent]
    return reply


def filter_error_reply(message: str) -> dict[str, Any]:
    return {"Nodes": None, "NodeNames": None, "FailedNodes": {}, "FailedAndUnresolvableNodes": {}, "Error": message}


def prioritize_reply(decision: ScoreDecision) -> list[dict[str, Any]]:
    """HostPriorityList: [{"Host": name, "Score": 0..10}]; empty when every candidate has the same score.

    kube-scheduler adds each listed host's score (times the extender's weight) to that node's total and adds nothing
    to a node left out (``prioritizeNodes`` in pkg/scheduler/schedule_one.go), so the same score on every candidate
    and no score at all rank the nodes alike, and the empty list spares both sides encoding and decoding a list as
    long as the candidates (one VM pool at one price, the common case: see NodeModels.vm_uniform). What changes is
    how kube-scheduler v1.36 breaks a tie for the top score: it draws a random tie-breaker only for nodes an extender
    listed, so tied nodes are then taken as without any extender, in the order its parallel filters found them
    (kubernetes/kubernetes#141024 proposes the draw for every node)."""
    if decision.uniform:
        return []
    return [{"Host": name, "Score": score} for name, score in decision.scores]



def error_body(message: str) -> dict[str, str]:
    return {"Error": message}

