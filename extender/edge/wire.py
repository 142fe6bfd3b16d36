"""kube-scheduler's extender wire format (k8s.io/kube-scheduler/extender/v1).

The Go structs have no JSON tags, so keys on the wire are the capitalised Go field names. Go decodes
case-insensitively, so input keys are matched without regard to case; replies use the exact names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import orjson

from extender.decide.filter import FilterDecision
from extender.decide.prioritize import ScoreDecision
from extender.model.bounded import BoundedMap, RecentTexts
from extender.model.objects import OBJECT, Json, ObjectError, PodFacts, SharedFacts, pod_facts, shared_facts


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
    # The NodeNames as the request spelled them (JSON text), when read from kube-scheduler's own shape of body
    # (scheduler_body_parts): a reply that keeps every candidate in order sends this text back as it came.
    names_text: bytes | None = None
    # The node index (ClusterSnapshot.node_index) of which every candidate is a VM node, when filter found it so for
    # the list it kept (CheckedNames.vms_of); None when not known.
    vms_of: object | None = None


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


V = TypeVar("V")


def _read_text(memo: RecentTexts[V], text: bytes, expected: Any, read: Callable[[Any], V]) -> V | None:
    """What ``read`` makes of the JSON value in ``text``, kept in ``memo`` by the text; None when the text is not JSON
    or its value not of the ``expected`` type (an isinstance argument)."""
    found = memo.get(text)
    if found is not None:
        return found
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, expected):
        return None
    found = read(value)
    memo.put(text, found)
    return found


# How many texts the request path keeps what it read of (RecentTexts): kube-scheduler schedules one pod at a time, so a
# pod's prioritize follows its filter with at most a few requests (other schedulers' profiles, retries) between them.
TEXTS_KEPT = 8


class PodMemo:
    """The facts of the last few pods read, by (uid, resourceVersion), kept with the pod as it was sent: kube-scheduler
    sends the same pod to filter and then to prioritize, so the second verb reads it for the cost of comparing the two
    (about 2 µs against 17 µs for a typical pod). A pod that differs from the one kept (a forged request, a
    client that reuses a version) is read afresh, so the facts are always those of the pod sent. Shared between
    threads: a race reads a pod twice, never mixes two."""

    def __init__(self, size: int = 64) -> None:
        self._pods: BoundedMap[tuple[str, str], tuple[Any, PodFacts]] = BoundedMap(size)
        # What was last read per workload (its controller's uid as the pod states it) of the parts its replicas share
        # (spec, owner references, labels, annotations), with those parts as sent: a new replica's parts are compared
        # (equal: what is read of them is the same) instead of read. Only parts read without error are kept.
        self._shared: BoundedMap[Any, tuple[tuple[Any, ...], SharedFacts]] = BoundedMap(size)
        # The pods last read by their JSON text (read_text): kube-scheduler writes the pod it sends to filter and then
        # to prioritize alike, so the second verb finds it by comparing texts, without decoding it.
        self._texts: RecentTexts[PodFacts] = RecentTexts(TEXTS_KEPT)

    def read_text(self, text: bytes, path: str = "Pod") -> PodFacts | None:
        """The facts of the pod whose JSON text this is; None when the text is not a JSON object (the caller reads
        the body whole then, for its usual error). The same text is the same pod, so its facts are reused as they
        are; any other text is decoded and read as :meth:`read` reads a pod."""
        return _read_text(self._texts, text, OBJECT, lambda pod: self.read(pod, path))

    def read(self, pod: Any, path: str = "Pod") -> PodFacts:
        metadata = pod.get("metadata") if isinstance(pod, OBJECT) else None
        if not isinstance(metadata, OBJECT):
            return pod_facts(pod, path)
        uid, version = metadata.get("uid"), metadata.get("resourceVersion")
        if not (isinstance(uid, str) and uid and isinstance(version, str) and version):
            return pod_facts(pod, path)
        key = (uid, version)
        kept = self._pods.get(key)
        if kept is not None and kept[0] == pod:
            return kept[1]
        workload = _owner_key(metadata)

        def read_shared(metadata: Json, spec: Json, shared_path: str) -> SharedFacts:
            parts = (spec, metadata.get("ownerReferences"), metadata.get("labels"), metadata.get("annotations"))
            known = self._shared.get(workload)
            if known is not None and known[0] == parts:
                return known[1]
            read = shared_facts(metadata, spec, shared_path)
            self._shared.put(workload, (parts, read))
            return read

        facts = pod_facts(pod, path, read_shared)
        self._pods.put(key, (pod, facts))
        return facts


def _owner_key(metadata: Mapping[str, Any]) -> Any:
    """The first owner reference's uid as sent, unchecked (a memo's key only: the spec itself is compared)."""
    owners = metadata.get("ownerReferences")
    if isinstance(owners, list) and owners and isinstance(owners[0], OBJECT):
        uid = owners[0].get("uid")
        return uid if isinstance(uid, str) else None
    return None


@dataclass(frozen=True, slots=True)
class CheckedNames:
    """A NodeNames list that passed the checks of :func:`_checked_names`, and its set."""

    names: tuple[str, ...]
    name_set: frozenset[str] | None  # None: not made (those who need it make it)
    # The node index (ClusterSnapshot.node_index) of which every name is a VM node, when filter found it so while
    # deciding (the VMs it kept); prioritize, sent this list on the same index, need not look again. None: unknown.
    vms_of: object | None = None


class NamesMemo:
    """The NodeNames lists last checked, by their JSON text. Filter checks the candidates it is sent and records the
    list it keeps under the text it replies with (:meth:`remember`); kube-scheduler then sends prioritize that list,
    written alike, so prioritize neither decodes nor checks it again."""

    def __init__(self) -> None:
        self._texts: RecentTexts[CheckedNames] = RecentTexts(TEXTS_KEPT)

    def read_text(self, text: bytes) -> CheckedNames | None:
        """The names this JSON text holds, checked (a :class:`WireError` names a bad one); None when the text is not
        a JSON list (the caller reads the body whole then, for its usual error)."""
        return _read_text(self._texts, text, list, lambda names: CheckedNames(tuple(names), _checked_names(names)))

    def remember(self, text: bytes, names: tuple[str, ...], vms_of: object | None = None) -> None:
        """``text`` is the JSON of ``names``, a part of a checked list in its order (so checked too); ``vms_of``: see
        :attr:`CheckedNames.vms_of`. No set of the names is made: prioritize needs none when ``vms_of`` holds."""
        self._texts.put(text, CheckedNames(names, None, vms_of))


# kube-scheduler (nodeCacheCapable: true) writes ExtenderArgs with Go's encoding/json: the struct's fields in their
# order, no spaces, Nodes null. A body of exactly that shape is read in parts; any other is decoded whole.
_POD_HEAD = b'{"Pod":'
_NAMES_HEAD = b',"Nodes":null,"NodeNames":'


def scheduler_body_parts(body: bytes) -> tuple[bytes, bytes] | None:
    """The Pod's and the NodeNames' JSON text, when the body has the shape kube-scheduler writes; None otherwise.
    The text between the two heads may itself contain the second one (an annotation's value, escaped or not), so the
    cut is the last one: a JSON string cannot hold it unescaped, so the names after it cannot. The body is that
    object only if each part decodes as one JSON value, which the readers check."""
    if not (body.startswith(_POD_HEAD) and body.endswith(b"}")):
        return None
    cut = body.rfind(_NAMES_HEAD)
    if cut < 0:
        return None
    return body[len(_POD_HEAD):cut], body[cut + len(_NAMES_HEAD):-1]


def read_scheduler_body(body: bytes, pods: PodMemo, names: NamesMemo) -> ExtenderArgs | None:
    """The request, read in parts (:func:`scheduler_body_parts`) from memos that know the texts seen last: what
    :func:`parse_extender_args` reads from the decoded body, with the same errors, in the same order (the pod's
    first). None when the body is of another shape, or a part is not the object or list it should be: the caller
    decodes the body whole then."""
    parts = scheduler_body_parts(body)
    if parts is None:
        return None
    pod_text, names_text = parts
    try:
        pod = pods.read_text(pod_text)
    except ObjectError as error:
        raise WireError(error.field, error.problem) from None
    if pod is None:
        return None
    checked = names.read_text(names_text)
    if checked is None:
        return None
    return ExtenderArgs(pod, checked.names, None, "names", True, None, checked.name_set, names_text, checked.vms_of)


def parse_extender_args(body: Any, read_pod: Callable[[Any, str], PodFacts] = pod_facts) -> ExtenderArgs:
    """The request's pod and candidates, checked; ``read_pod`` reads the pod (a :class:`PodMemo`'s ``read``)."""
    if not isinstance(body, OBJECT):
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
        if not isinstance(raw_nodes, OBJECT):
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
            if not isinstance(node, OBJECT):
                raise WireError(f"Nodes.items[{index}]", "must be a Node object")
            metadata = node.get("metadata")
            name = metadata.get("name") if isinstance(metadata, OBJECT) else None
            if not isinstance(name, str) or not name:
                raise WireError(f"Nodes.items[{index}].metadata.name", "is required")
            labels = metadata.get("labels") if isinstance(metadata, OBJECT) else None
            if labels is not None and (
                not isinstance(labels, OBJECT) or not all(isinstance(v, str) for v in labels.values())
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


def filter_reply(args: ExtenderArgs, decision: FilterDecision, names_text: bytes | None = None) -> dict[str, Any]:
    """ExtenderFilterResult in the form the request used. ``names_text``: the JSON text of the NodeNames kept
    (``decision.feasible``), sent as it is (an :class:`orjson.Fragment`) instead of encoded from the names."""
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
        if sent is not None:
            reply["NodeNames"] = [n for n in decision.feasible if n in sent]
        else:
            reply["NodeNames"] = list(decision.feasible) if names_text is None else orjson.Fragment(names_text)
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

