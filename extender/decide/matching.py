"""Pure predicates: could a pod run on a node known only by its labels and taints?

The node may be a real one or a VM pool's *template* of the node a scale-up would add. Inputs are plain
dicts/lists in the Kubernetes JSON wire shape (camelCase keys), e.g. ``pod["spec"]``, ``node["metadata"]
["labels"]`` and ``node["spec"]["taints"]``. Nothing here does I/O or imports ``kubernetes``.

Semantics follow upstream Kubernetes (v1.36):

* ``Toleration.ToleratesTaint`` (k8s.io/api/core/v1/toleration.go): an empty toleration effect matches every
  effect, an empty key matches every key, operator ``""``/``Equal`` compares values, ``Exists`` matches any
  value. ``Lt``/``Gt`` tolerations sit behind the alpha, default-off ``TaintTolerationComparisonOperators``
  feature gate, so they tolerate nothing here, as in a default cluster.
* ``FindMatchingUntoleratedTaint`` plus the TaintToleration filter plugin: only ``NoSchedule`` and
  ``NoExecute`` taints block scheduling; ``PreferNoSchedule`` only affects scoring.
* ``nodeaffinity.GetRequiredNodeAffinity``: ``spec.nodeSelector`` (exact label equality) AND
  ``spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution``. The selector's terms are
  ORed and each term's requirements are ANDed. An empty or null term matches nothing, so does an empty term
  list. A term that fails to parse (unknown operator, wrong value count, non-integer ``Gt``/``Lt`` value,
  invalid label key or value) never matches, but the other terms are still evaluated, which is the
  scheduler's "lazy error" behaviour. Preferred affinity is ignored because it only affects scoring.

One deliberate difference: upstream skips ``matchFields`` entirely for a node whose name is empty. Here,
``node_name=None`` (or ``""``) means "a node that does not exist yet", whose future name equals no name
written in a pod spec. So ``metadata.name In [x]`` does not match it and ``metadata.name NotIn [x]`` does.
That is how the scheduler will judge the real node once it is created with a fresh name. A pod pinned to
one node (a DaemonSet pod, for example) therefore never "fits" a pool template.

Malformed input never raises. It counts as not matching, and the returned reason names the problem.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from functools import lru_cache
from typing import Any, Final

from extender.model.objects import OBJECT

__all__ = [
    "FILTERED_TAINT_EFFECTS",
    "Json",
    "describe_taint",
    "node_selector_term_matches",
    "pod_fits_template",
    "required_node_affinity_mismatch",
    "tolerates_all",
    "toleration_tolerates",
    "untolerated_taint",
]

Json = Mapping[str, Any]

#: Taint effects the scheduler's TaintToleration *filter* acts on (PreferNoSchedule only affects scoring).
FILTERED_TAINT_EFFECTS: Final[tuple[str, ...]] = ("NoSchedule", "NoExecute")

_LABEL_OPERATORS: Final = frozenset({"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"})
_LABEL_OPERATORS_TEXT: Final = "In, NotIn, Exists, DoesNotExist, Gt, Lt"
_NAME_FIELD: Final = "metadata.name"
_FAIL: Final = "no match"  # placeholder reason used when the caller does not need an explanation
_EMPTY_TERM: Final = "empty term matches nothing"
_LIST_TYPES: Final = (list, tuple)

# apimachinery validation (content.IsLabelKey / IsLabelValue / IsDNS1123Subdomain). ASCII-only classes.
_LABEL_NAME_RE: Final = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS1123_LABEL: Final = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_RE: Final = re.compile(rf"{_DNS1123_LABEL}(?:\.{_DNS1123_LABEL})*")
_INT_RE: Final = re.compile(r"([+-]?)0*([0-9]+)")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


# --------------------------------------------------------------------------------------------- taints


def _str_field(obj: Json, name: str) -> str | None:
    """A string field of a wire object: missing/null -> "", a non-string -> None (malformed)."""
    value = obj.get(name)
    if value is None:
        return ""
    return value if isinstance(value, str) else None


def toleration_tolerates(toleration: Json, taint: Json) -> bool:
    """Upstream ``Toleration.ToleratesTaint`` (comparison operators disabled). Malformed input -> False."""
    if not isinstance(toleration, OBJECT) or not isinstance(taint, OBJECT):
        return False
    effect = _str_field(toleration, "effect")
    if effect is None or (effect and effect != _str_field(taint, "effect")):
        return False
    key = _str_field(toleration, "key")
    if key is None or (key and key != _str_field(taint, "key")):
        return False
    operator = _str_field(toleration, "operator")
    if operator == "Exists":
        return True
    if operator == "" or operator == "Equal":  # empty operator means Equal
        value = _str_field(toleration, "value")
        return value is not None and value == _str_field(taint, "value")
    return False  # Lt/Gt (alpha feature gate, off by default), unknown or malformed operators


def _tolerated(tolerations: Sequence[Any], taint: Json) -> bool:
    return any(toleration_tolerates(toleration, taint) for toleration in tolerations)


def _blocking_effect(taint: Any, effects: Collection[str]) -> bool:
    if not isinstance(taint, OBJECT):
        return False
    effect = taint.get("effect")
    return isinstance(effect, str) and effect in effects


def untolerated_taint(
    tolerations: Sequence[Json] | None,
    taints: Sequence[Json] | None,
    effects: Collection[str] = FILTERED_TAINT_EFFECTS,
) -> Json | None:
    """First taint whose effect is in ``effects`` and that no toleration tolerates, else None.

    Upstream ``FindMatchingUntoleratedTaint`` with the filter plugin's NoSchedule/NoExecute predicate.
    Taints that are not objects, or whose effect is not a string, are skipped. Tolerations that are not
    a list count as no tolerations.
    """
    if not isinstance(taints, _LIST_TYPES):
        return None
    if isinstance(effects, str):
        effects = (effects,)
    tols: Sequence[Any] = tolerations if isinstance(tolerations, _LIST_TYPES) else ()
    for taint in taints:
        if _blocking_effect(taint, effects) and not _tolerated(tols, taint):
            return taint
    return None


def tolerates_all(
    tolerations: Sequence[Json] | None,
    taints: Sequence[Json] | None,
    effects: Collection[str] = FILTERED_TAINT_EFFECTS,
) -> bool:
    """True when every taint with one of ``effects`` (default NoSchedule/NoExecute) is tolerated."""
    return untolerated_taint(tolerations, taints, effects) is None


def describe_taint(taint: Json) -> str:
    """Upstream ``Taint.ToString``: ``key=value:Effect``, ``key:Effect``, ``key=value:`` or ``key``."""
    if not isinstance(taint, OBJECT):
        return f"<malformed taint {taint!r}>"
    key = taint.get("key") or ""
    value = taint.get("value") or ""
    effect = taint.get("effect") or ""
    if not effect:
        return f"{key}={value}:" if value else f"{key}"
    return f"{key}={value}:{effect}" if value else f"{key}:{effect}"


# ------------------------------------------------------------------------------------ label validation


@lru_cache(maxsize=4096)
def _label_key_error(key: str) -> str | None:
    """``content.IsLabelKey``: optional DNS-1123 subdomain prefix + '/' + name (<=63 chars)."""
    parts = key.split("/")
    if len(parts) > 2:
        return f"key {key!r} is not a valid label key"
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            return f"key {key!r} has an empty prefix"
        if len(prefix) > 253 or not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
            return f"key {key!r} prefix is not a valid DNS-1123 subdomain"
    if not name:
        return f"key {key!r} has an empty name"
    if len(name) > 63 or not _LABEL_NAME_RE.fullmatch(name):
        return f"key {key!r} is not a valid label key"
    return None


@lru_cache(maxsize=4096)
def _label_value_ok(value: str) -> bool:
    """``content.IsLabelValue``: empty, or <=63 chars of [-A-Za-z0-9_.] starting/ending alphanumeric."""
    return not value or (len(value) <= 63 and _LABEL_NAME_RE.fullmatch(value) is not None)


def _parse_int64(text: str) -> int | None:
    """``strconv.ParseInt(text, 10, 64)``: optional sign, ASCII digits, int64 range; else None."""
    m = _INT_RE.fullmatch(text)
    if m is None or len(m.group(2)) > 19:
        return None
    n = int(m.group(2))
    if m.group(1) == "-":
        n = -n
    return n if _INT64_MIN <= n <= _INT64_MAX else None


def _type_name(obj: object) -> str:
    return "null" if obj is None else type(obj).__name__


def _string_list(values: Any) -> Sequence[str] | str:
    """The requirement's values (null -> empty), or an error message."""
    if values is None:
        return ()
    if not isinstance(values, _LIST_TYPES):
        return f"values must be a list, got {_type_name(values)}"
    for value in values:
        if not isinstance(value, str):
            return f"values must be strings, got {value!r}"
    return values


# --------------------------------------------------------------------------------- node selector terms


def _expression(expr: Any, labels: Mapping[str, str]) -> bool | str:
    """Evaluate one ``matchExpressions`` requirement: match result, or an error message if malformed."""
    if not isinstance(expr, OBJECT):
        return f"expected an object, got {_type_name(expr)}"
    key = expr.get("key") or ""
    if not isinstance(key, str):
        return f"key must be a string, got {key!r}"
    operator = expr.get("operator") or ""
    if not isinstance(operator, str) or operator not in _LABEL_OPERATORS:
        return f"operator {operator!r} is not supported (expected one of {_LABEL_OPERATORS_TEXT})"
    values = _string_list(expr.get("values"))
    if isinstance(values, str):
        return values
    key_error = _label_key_error(key)
    if key_error is not None:
        return key_error
    bound = 0
    if operator == "In" or operator == "NotIn":
        if not values:
            return f"{operator} requires at least one value"
    elif operator == "Exists" or operator == "DoesNotExist":
        if values:
            return f"{operator} must not have values"
    else:  # Gt / Lt
        if len(values) != 1:
            return f"{operator} requires exactly one value, got {len(values)}"
        parsed = _parse_int64(values[0])
        if parsed is None:
            return f"{operator} value {values[0]!r} is not an integer"
        bound = parsed
    for value in values:
        if not _label_value_ok(value):
            return f"value {value!r} is not a valid label value"

    actual = labels.get(key)
    if operator == "In":
        return actual is not None and actual in values
    if operator == "NotIn":
        return actual is None or actual not in values
    if operator == "Exists":
        return actual is not None
    if operator == "DoesNotExist":
        return actual is None
    if actual is None:
        return False
    number = _parse_int64(actual)
    if number is None:
        return False
    return number > bound if operator == "Gt" else number < bound


def _field(expr: Any, node_name: str | None) -> bool | str:
    """Evaluate one ``matchFields`` requirement (In/NotIn with exactly one value)."""
    if not isinstance(expr, OBJECT):
        return f"expected an object, got {_type_name(expr)}"
    key = expr.get("key") or ""
    if not isinstance(key, str):
        return f"key must be a string, got {key!r}"
    operator = expr.get("operator") or ""
    if operator != "In" and operator != "NotIn":
        return f"operator {operator!r} is not supported for matchFields (expected In or NotIn)"
    values = _string_list(expr.get("values"))
    if isinstance(values, str):
        return values
    if len(values) != 1:
        return f"{operator} on a field requires exactly one value, got {len(values)}"
    # The only node field is metadata.name; an unknown (future) name equals no given value.
    actual: str | None = (node_name or None) if key == _NAME_FIELD else ""
    equal = actual is not None and actual == values[0]
    return equal if operator == "In" else not equal


def _describe_requirement(expr: Json) -> str:
    key = expr.get("key") or ""
    operator = expr.get("operator") or ""
    if operator == "Exists" or operator == "DoesNotExist":
        return f"{key} {operator}"
    return f"{key} {operator} [{', '.join(expr.get('values') or ())}]"


def _requirements(term: Json, name: str) -> Sequence[Any] | str:
    reqs = term.get(name)
    if reqs is None:
        return ()
    if not isinstance(reqs, _LIST_TYPES):
        return f"malformed term: {name} must be a list, got {_type_name(reqs)}"
    return reqs


def _term_problem(term: Any, labels: Mapping[str, str], node_name: str | None, explain: bool) -> str | None:
    """None if the term matches, otherwise why not (``_FAIL`` for a plain mismatch unless ``explain``).

    Every requirement is validated even after a mismatch, because upstream rejects a term as a whole
    when any of its requirements fails to parse; a malformation is reported in preference to a mismatch.
    """
    if term is None:
        return _EMPTY_TERM
    if not isinstance(term, OBJECT):
        return f"malformed term: expected an object, got {_type_name(term)}"
    exprs = _requirements(term, "matchExpressions")
    if isinstance(exprs, str):
        return exprs
    fields = _requirements(term, "matchFields")
    if isinstance(fields, str):
        return fields
    if not exprs and not fields:
        return _EMPTY_TERM
    mismatch: Json | None = None
    for index, expr in enumerate(exprs):
        result = _expression(expr, labels)
        if isinstance(result, str):
            return f"malformed matchExpressions[{index}]: {result}"
        if not result and mismatch is None:
            mismatch = expr
    for index, expr in enumerate(fields):
        result = _field(expr, node_name)
        if isinstance(result, str):
            return f"malformed matchFields[{index}]: {result}"
        if not result and mismatch is None:
            mismatch = expr
    if mismatch is None:
        return None
    return _describe_requirement(mismatch) if explain else _FAIL


def node_selector_term_matches(term: Json, labels: Mapping[str, str], node_name: str | None) -> bool:
    """Whether one NodeSelectorTerm matches (requirements ANDed; an empty or malformed term never does)."""
    return _term_problem(term, labels, node_name, explain=False) is None


# ------------------------------------------------------------------------------------- pod-level checks


def _node_selector_problem(pod_spec: Json, labels: Mapping[str, str]) -> str | None:
    selector = pod_spec.get("nodeSelector")
    if selector is None:
        return None
    if not isinstance(selector, OBJECT):
        return f"malformed nodeSelector: expected an object, got {_type_name(selector)}"
    for key, wanted in selector.items():
        if not isinstance(key, str) or not isinstance(wanted, str):
            return f"malformed nodeSelector entry {key!r}: {wanted!r} (expected string keys and values)"
        actual = labels.get(key)
        if actual != wanted:
            has = "no such label" if actual is None else actual
            return f"nodeSelector {key}={wanted} does not match (node has {has})"
    return None


def _required_affinity_problem(
    pod_spec: Json, labels: Mapping[str, str], node_name: str | None
) -> str | None:
    affinity = pod_spec.get("affinity")
    if affinity is None:
        return None
    if not isinstance(affinity, OBJECT):
        return f"malformed affinity: expected an object, got {_type_name(affinity)}"
    node_affinity = affinity.get("nodeAffinity")
    if node_affinity is None:
        return None
    if not isinstance(node_affinity, OBJECT):
        return f"malformed nodeAffinity: expected an object, got {_type_name(node_affinity)}"
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return None
    if not isinstance(required, OBJECT):
        return (
            "malformed requiredDuringSchedulingIgnoredDuringExecution: "
            f"expected an object, got {_type_name(required)}"
        )
    terms = required.get("nodeSelectorTerms")
    if terms is not None and not isinstance(terms, _LIST_TYPES):
        return f"malformed nodeSelectorTerms: expected a list, got {_type_name(terms)}"
    if not terms:
        return "required node affinity: no nodeSelectorTerms (matches no node)"
    for term in terms:  # fast pass: no strings built unless nothing matches
        if _term_problem(term, labels, node_name, explain=False) is None:
            return None
    problems = [_term_problem(term, labels, node_name, explain=True) for term in terms]
    if len(problems) == 1:
        detail = problems[0]
    else:
        detail = "; ".join(f"term {index}: {problem}" for index, problem in enumerate(problems))
    return f"required node affinity: no term matches ({detail})"


def required_node_affinity_mismatch(
    pod_spec: Json, labels: Mapping[str, str], node_name: str | None = None
) -> str | None:
    """None if ``nodeSelector`` AND required node affinity match the node, else a short reason."""
    if not isinstance(pod_spec, OBJECT):
        return f"malformed pod spec: expected an object, got {_type_name(pod_spec)}"
    return _node_selector_problem(pod_spec, labels) or _required_affinity_problem(pod_spec, labels, node_name)


def pod_fits_template(
    pod_spec: Json, labels: Mapping[str, str], taints: Sequence[Json], node_name: str | None = None
) -> list[str]:
    """Every reason the pod could not be scheduled onto such a node; an empty list means it could.

    Covers nodeSelector, required node affinity and untolerated NoSchedule/NoExecute taints (one reason
    per taint, in node order). Resources, ports, pod (anti-)affinity and topology spread are not checked.
    """
    if not isinstance(pod_spec, OBJECT):
        return [f"malformed pod spec: expected an object, got {_type_name(pod_spec)}"]
    reasons: list[str] = []
    problem = _node_selector_problem(pod_spec, labels)
    if problem is not None:
        reasons.append(problem)
    problem = _required_affinity_problem(pod_spec, labels, node_name)
    if problem is not None:
        reasons.append(problem)
    if taints is None:
        return reasons
    if not isinstance(taints, _LIST_TYPES):
        reasons.append(f"malformed node taints: expected a list, got {_type_name(taints)}")
        return reasons
    tolerations = pod_spec.get("tolerations")
    tols: Sequence[Any] = tolerations if isinstance(tolerations, _LIST_TYPES) else ()
    for taint in taints:
        if _blocking_effect(taint, FILTERED_TAINT_EFFECTS) and not _tolerated(tols, taint):
            reasons.append(f"untolerated taint {describe_taint(taint)}")
    return reasons
