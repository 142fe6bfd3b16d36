"""Workload annotations: values, defaults, and invalid values that fall back and are reported."""

from __future__ import annotations

import pytest

from extender.model.policy import Priority, SpillPolicy, workload_policy


@pytest.mark.parametrize(
    ("annotations", "spill", "priority", "max_wait", "problem_annotations"),
    [
        pytest.param(None, SpillPolicy.WHILE_PENDING, Priority.STANDARD, None, [], id="none"),
        pytest.param({"app": "x"}, SpillPolicy.WHILE_PENDING, Priority.STANDARD, None, [], id="unrelated"),
        pytest.param({"tideover.io/spill": "never"}, SpillPolicy.NEVER, Priority.STANDARD, None, [], id="never"),
        pytest.param({"tideover.io/spill": " When-Full "}, SpillPolicy.WHEN_FULL, Priority.STANDARD, None, [],
                     id="case-and-space-tolerant"),
        pytest.param({"tideover.io/priority": "economy", "tideover.io/max-wait-seconds": "120"},
                     SpillPolicy.WHILE_PENDING, Priority.ECONOMY, 120.0, [], id="economy-with-wait"),
        pytest.param({"tideover.io/priority": "critical"}, SpillPolicy.WHILE_PENDING, Priority.CRITICAL, None, [],
                     id="critical"),
        pytest.param({"tideover.io/spill": "always"}, SpillPolicy.WHILE_PENDING, Priority.STANDARD, None,
                     ["tideover.io/spill"], id="bad-spill"),
        pytest.param({"tideover.io/priority": "urgent"}, SpillPolicy.WHILE_PENDING, Priority.STANDARD, None,
                     ["tideover.io/priority"], id="bad-priority"),
        pytest.param({"tideover.io/max-wait-seconds": "ten"}, SpillPolicy.WHILE_PENDING, Priority.STANDARD, None,
                     ["tideover.io/max-wait-seconds"], id="bad-wait"),
        pytest.param({"tideover.io/max-wait-seconds": "nan"}, SpillPolicy.WHILE_PENDING, Priority.STANDARD, None,
                     ["tideover.io/max-wait-seconds"], id="nan-wait"),
        pytest.param({"tideover.io/max-wait-seconds": "-1", "tideover.io/spill": "x"}, SpillPolicy.WHILE_PENDING,
                     Priority.STANDARD, None, ["tideover.io/spill", "tideover.io/max-wait-seconds"], id="two-bad"),
    ],
)
def test_workload_policy(
    annotations: dict[str, str] | None, spill: SpillPolicy, priority: Priority, max_wait: float | None,
    problem_annotations: list[str],
) -> None:
    policy = workload_policy(annotations)
    assert policy.spill is spill
    assert policy.priority is priority
    assert policy.max_wait_seconds == max_wait
    assert [p.annotation for p in policy.problems] == problem_annotations


def test_problem_text_names_annotation_value_and_fallback() -> None:
    (problem,) = workload_policy({"tideover.io/spill": "always"}).problems
    assert str(problem) == (
        "annotation tideover.io/spill='always' is not one of never | while-pending | when-full; using while-pending"
    )
