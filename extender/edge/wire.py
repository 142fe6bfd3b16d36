"""kube-scheduler's extender wire format (k8s.io/kube-scheduler/extender/v1).

The Go structs have no JSON tags, so keys on the wire are the capitalised Go field names. Go decodes
case-insensitively, so input keys are matched without regard to case; replies use the exact names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from extender.decide.filter import FilterDecision
from extender.decide.prioritize import ScoreDecision
from extender.model.objects import Json, ObjectError, PodFacts, pod_facts


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


# The most candidate nodes one request may carry: three times Kubernetes' largest supported cluster (5,000 nodes).
MAX_NODES = 15_000


def _refuse_duplicates(names: Any, field: str) -> None:
    """Every candidate must appear once: a duplicated name would be kept and failed at once, or answered twice."""
    if len(set(names)) == len(names):
        return
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            raise WireError(field.format(index), f"duplicate node name {name!r}: each candidate must appear once")
        seen.add(name)


def _all_non_empty_strings(items: list[Any]) -> bool:
    """Whether every item is a non-empty ``str`` (what orjson decodes a JSON string to), in two passes in C."""
    return set(map(type, items)) <= {str} and "" not in items


def _fold(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {key.lower(): value for key, value in obj.items() if isinstance(key, str)}


def parse_extender_args(body: Any) -> ExtenderArgs:
    if not isinstance(body, Mapping):
        raise WireError("(body)", f"must be a JSON object (ExtenderArgs), got {type(body).__name__}")
    fields = _fold(body)
    if fields.get("pod") is None:
        raise WireError("Pod", "is required")
    try:
        pod = pod_facts(fields["pod"], "Pod")
    except ObjectError as error:
        raise WireError(error.field, error.problem) from None

    raw_names = fields.get("nodenames")
    names: list[str] | None = None
    if raw_names is not None:
        if not isinstance(raw_names, list):
            raise WireError("NodeNames", f"must be a list of node names, got {type(raw_names).__name__}")
        if not _all_non_empty_strings(raw_names):  # one fast pass; find the culprit only on failure
            index = next(i for i, name in enumerate(raw_names) if not isinstance(name, str) or not name)
            raise WireError(f"NodeNames[{index}]", "must be a non-empty string")
        if len(raw_names) > MAX_NODES:
            raise WireError("NodeNames", f"{len(raw_names)} names: more than the limit of {MAX_NODES} per request")
        _refuse_duplicates(raw_names, "NodeNames[{}]")
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
        sent = frozenset(names) if names is not None else None
        return ExtenderArgs(pod, node_names, tuple(items), "nodes", names is not None, sent)
    if names is not None:
        return ExtenderArgs(pod, tuple(names), None, "names", True, None)
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
    """HostPriorityList: [{"Host": name, "Score": 0..10}]."""
    return [{"Host": name, "Score": score} for name, score in decision.scores]



def error_body(message: str) -> dict[str, str]:
    return {"Error": message}

