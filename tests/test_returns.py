"""The return plan: which spilled pods move back to VMs, and why the others wait."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.decide.matching import pod_fits_template
from extender.decide.returns import ReturnPlan, Skip, SkipCode, free_capacity, plan_returns, return_targets
from extender.model.config import ReturnToVm
from extender.model.snapshot import PodPlacement
from tests.support.factories import NOW, cluster, snapshot, spilled, status_yaml, vm_node

POLICY = ReturnToVm(stable_seconds=60, min_pod_age_seconds=60, max_in_flight_per_workload=2)
QUIET = status_yaml("NoActivity", registered=2)
STABLE = NOW - timedelta(minutes=5)


def _plan(pods: list[PodPlacement], *, nodes: list[dict[str, Any]] | None = None, status: str = QUIET,
          stable_since: datetime | None = STABLE, budget: int = 100, policy: ReturnToVm = POLICY) -> ReturnPlan:
    snap = snapshot(nodes if nodes is not None else cluster(2), status, pods=pods)
    return plan_returns(snap, NOW, policy, stable_since, budget)


@pytest.mark.parametrize(
    ("kwargs", "waiting"),
    [
        pytest.param({"status": status_yaml("InProgress", registered=2, target=3)},
                     "capacity still pending in nodepool1", id="scale-up-pending"),
        pytest.param({"stable_since": None}, "capacity not yet seen stable", id="never-seen-stable"),
        pytest.param({"stable_since": NOW - timedelta(seconds=20)}, "capacity stable for 20s of the 60s required",
                     id="not-stable-long-enough"),
        pytest.param({"budget": 0}, "eviction rate limit reached", id="rate-limited"),
    ],
)
def test_nothing_moves_until_capacity_is_ready_and_stable(kwargs: dict[str, Any], waiting: str) -> None:
    plan = _plan([spilled("a")], **kwargs)
    assert plan.moves == ()
    assert plan.waiting == waiting


@pytest.mark.parametrize(
    ("pod", "reason"),
    [
        pytest.param(spilled("job", kind="Job"), "owned by Job: left to finish on the virtual node", id="job"),
        pytest.param(spilled("bare", kind=None, owner=None), "owned by nothing", id="bare-pod"),
        pytest.param(spilled("young", age=10), "running 10s, less than 60s", id="too-young"),
        pytest.param(spilled("huge", cpu=3), "no VM node could take it now", id="no-room"),
        pytest.param(spilled("picky", scheduling={"nodeSelector": {"disk": "ssd"}}), "no VM node could take it now",
                     id="selector-matches-no-vm"),
    ],
)
def test_pods_that_stay_say_why(pod: PodPlacement, reason: str) -> None:
    plan = _plan([pod])
    assert plan.moves == ()
    assert reason in plan.skipped[f"default/{pod.name}"].reason


def test_oldest_first_and_room_is_booked_as_moves_are_planned() -> None:
    pods = [spilled(f"p{i}", owner=f"rs-{i}", age=1000 - i) for i in range(6)]  # 6 x 1 CPU; 2 VMs x 2 CPU
    plan = _plan(pods)
    assert [m.pod.name for m in plan.moves] == ["p0", "p1", "p2", "p3"]
    targets = [m.target_node for m in plan.moves]
    assert sorted(targets) == sorted(["aks-nodepool1-000000", "aks-nodepool1-000001"] * 2)
    assert {key: skip.code for key, skip in plan.skipped.items()} == {"default/p4": SkipCode.NO_ROOM,
                                                                      "default/p5": SkipCode.NO_ROOM}


def test_pods_already_on_vms_take_room() -> None:
    on_vm = [spilled(f"vm{i}", owner="other", node="aks-nodepool1-000000", cpu=1) for i in range(2)]
    plan = _plan([*on_vm, spilled("a", owner="rs-1"), spilled("b", owner="rs-2"), spilled("c", owner="rs-3")])
    assert [m.target_node for m in plan.moves] == ["aks-nodepool1-000001", "aks-nodepool1-000001"]


def test_a_workload_moves_a_few_at_a_time() -> None:
    pods = [spilled(f"w{i}", owner="rs-web", age=900 - i) for i in range(4)]
    plan = _plan(pods, nodes=[*cluster(4)])
    assert [m.pod.name for m in plan.moves] == ["w0", "w1"]
    assert plan.skipped["default/w2"] == Skip(SkipCode.WORKLOAD_BUSY, "2 move(s) of its workload in flight")


def test_replacements_not_yet_running_count_as_in_flight() -> None:
    pods = [
        spilled("replacement", owner="rs-web", node=None, phase="Pending"),
        spilled("leaving", owner="rs-web", terminating=True),
        spilled("next", owner="rs-web"),
    ]
    plan = _plan(pods, nodes=[*cluster(4)])
    assert plan.moves == ()
    assert plan.skipped["default/next"] == Skip(SkipCode.WORKLOAD_BUSY, "2 move(s) of its workload in flight")


def test_terminating_pods_are_never_planned_again() -> None:
    plan = _plan([spilled("evicted-already", terminating=True)])
    assert plan.moves == ()


def test_budget_caps_the_moves() -> None:
    pods = [spilled(f"p{i}", owner=f"rs-{i}") for i in range(4)]
    assert len(_plan(pods, budget=1).moves) == 1


def test_not_ready_and_cordoned_vms_take_nothing() -> None:
    nodes = [vm_node("down", ready=False), vm_node("cordoned"), *cluster(0)]
    nodes[1]["spec"]["unschedulable"] = True
    plan = _plan([spilled("a")], nodes=nodes)
    assert plan.moves == ()


def test_return_targets_are_vms_a_spilled_pod_could_use() -> None:
    """Found by the kind suite: the system pool's nodes (tainted CriticalAddonsOnly) had room, and tideover kept them
    from scale-down as return targets although no spilled pod tolerates their taint."""
    system = vm_node("aks-system-000000", "systempool", cpu="8",
                     taints=[{"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"}])
    full = vm_node("aks-nodepool1-000001", cpu="1")
    nodes = [*cluster(1), system, full]
    pods = [spilled("a", cpu=1.5), spilled("b", cpu=1.5)]
    assert return_targets(snapshot(nodes, QUIET, pods=pods), pods) == frozenset({"aks-nodepool1-000000"})
    picky = [spilled("c", cpu=0.5, scheduling={"nodeSelector": {"disk": "ssd"}})]
    assert return_targets(snapshot(nodes, QUIET, pods=picky), picky) == frozenset()
    assert return_targets(snapshot(nodes, QUIET), []) == frozenset()


def test_the_plan_says_which_vms_to_protect_and_when_to_release() -> None:
    pods = [spilled("a", age=10)]  # too young to move yet, but it will: its VMs are kept from scale-down
    plan = _plan(pods)
    assert plan.moves == () and plan.skipped["default/a"].code is SkipCode.TOO_YOUNG
    assert plan.protect == frozenset({"aks-nodepool1-000000", "aks-nodepool1-000001"}) and not plan.release
    moving = _plan([spilled("b")])
    assert moving.protect >= {m.target_node for m in moving.moves} and not moving.release
    # Nothing could ever use the VMs (no room, or no spilled ReplicaSet pod at all): release what was protected.
    assert _plan([spilled("huge", cpu=3)]).release
    assert _plan([], stable_since=None).release
    # Waiting for stability with a spilled pod: keep (and extend) the protection, release nothing.
    waiting = _plan(pods, stable_since=None)
    assert waiting.waiting == "capacity not yet seen stable" and waiting.protect and not waiting.release
    # While a scale-up is pending, nothing new is protected, nothing released.
    pending = _plan(pods, status=status_yaml("InProgress", registered=2, target=3))
    assert pending.protect == frozenset() and not pending.release


SCHEDULING = (
    {},
    {"nodeSelector": {"disk": "ssd"}},
    {"tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}]},
    {"nodeSelector": {"disk": "ssd"}, "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}]},
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["1", "2", "4"]), st.booleans(), st.booleans()), min_size=1, max_size=8),
    st.lists(st.tuples(st.sampled_from([0.5, 1.5, 3.0]), st.integers(0, len(SCHEDULING) - 1)), max_size=12),
)
def test_return_targets_are_the_vms_some_spilled_pod_could_use_one_by_one(
    node_specs: list[tuple[str, bool, bool]], pod_specs: list[tuple[float, int]]
) -> None:
    """Matching each distinct need once gives the nodes that matching every spilled pod gives."""
    nodes = [
        vm_node(f"vm-{i}", cpu=cpu, labels={"disk": "ssd"} if ssd else None,
                taints=[{"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"}] if tainted else ())
        for i, (cpu, ssd, tainted) in enumerate(node_specs)
    ]
    pods = [spilled(f"p{i}", cpu=cpu, scheduling=SCHEDULING[which]) for i, (cpu, which) in enumerate(pod_specs)]
    snap = snapshot([*nodes, *cluster(0)], QUIET, pods=pods)
    one_by_one = frozenset(
        name for name, (cpu, memory) in free_capacity(snap).items()
        if any(cpu + 1e-9 >= pod.cpu and memory >= pod.memory
               and not pod_fits_template(pod.scheduling, snap.nodes[name].facts.labels, snap.nodes[name].facts.taints,
                                         name)
               for pod in pods)
    )
    assert return_targets(snap, pods) == one_by_one
