"""The simulator's engine: event order, reproducibility, cost arithmetic, and each policy on a tiny trace.

The expected figures are worked out by hand from the trace, not read back from the code.
"""

from __future__ import annotations

from typing import Any

import pytest

from extender.model.config import TideoverConfig, parse_config
from extender.simulate.cluster import AutoscalerSpec, ClusterSpec, Duration, PoolSpec
from extender.simulate.command import compare
from extender.simulate.engine import Simulation, simulate
from extender.simulate.policies import STATIC, VMS_ONLY, all_policies, select
from extender.simulate.results import placements_at, summarize
from extender.simulate.scenarios import scenario
from extender.simulate.state import Order
from extender.simulate.trace import Step, Trace, Workload

DEFAULTS = TideoverConfig()
ACI_PER_SECOND = 0.000012  # virtualNodes.pricing.vcpuPerSecond default
ACI_GIB_PER_SECOND = 0.0000013


def tiny(replicas: int = 6, *, hold_until: float = 1200.0, duration: float = 1200.0, provisioning: float = 100.0,
         cpu: float = 1.0, annotations: dict[str, str] | None = None, kind: str = "Deployment",
         **workload: Any) -> Trace:
    """One VM of 1.9 cores (one 1-core pod each), a Deployment 1 -> ``replicas`` at t=10; no randomness."""
    steps = [Step(at_seconds=0, replicas=1), Step(at_seconds=10, replicas=replicas)]
    if hold_until < duration:
        steps.append(Step(at_seconds=hold_until, replicas=0))
    return Trace(
        name="tiny", duration_seconds=duration,
        workloads=[Workload(name="web", kind=kind, cpu=cpu, memory_gib=1.0, steps=steps,
                            annotations=annotations or {}, **workload)],
        cluster=ClusterSpec(
            pools=[PoolSpec(name="nodepool1", node_cpu=1.9, node_memory_gib=6.0, price_per_hour=0.1, min_size=1,
                            max_size=10, initial=1, provisioning=Duration(median_seconds=provisioning),
                            registered_before_ready_seconds=0)],
            autoscaler=AutoscalerSpec(scan_interval_seconds=10, scale_down_enabled=False),
            virtual_start=Duration(median_seconds=10), vm_start=Duration(median_seconds=2), termination_seconds=2,
            sample_seconds=5,
        ),
    )


def peak_virtual(log: Any) -> int:
    return max(sample.virtual for sample in log.samples)


# ---------------------------------------------------------------------------------------------- event order


def test_events_at_one_instant_run_in_order_then_in_the_order_they_were_scheduled() -> None:
    sim = Simulation(tiny(), DEFAULTS, STATIC, seed=1)
    sim.push(5.0, Order.SCHEDULE, "schedule", "s")
    sim.push(5.0, Order.NODE, "node-ready", "n1")
    sim.push(5.0, Order.DEMAND, "demand", "d")
    sim.push(1.0, Order.SAMPLE, "sample", "early")
    sim.push(5.0, Order.NODE, "node-ready", "n2")
    sim.push(5.0, Order.CONTROLLER, "autoscaler", "c")
    popped = []
    while (event := sim.pop()) is not None:
        popped.append((sim.now, event[1]))
    assert popped == [(1.0, "early"), (5.0, "n1"), (5.0, "n2"), (5.0, "d"), (5.0, "c"), (5.0, "s")]


def test_events_after_the_end_are_not_run() -> None:
    sim = Simulation(tiny(duration=100.0), DEFAULTS, STATIC, seed=1)
    sim.push(100.0, Order.SAMPLE, "sample", "last")
    sim.push(100.5, Order.SAMPLE, "sample", "too late")
    assert [e[1] for e in iter(sim.pop, None)] == ["last"]


def test_the_burst_is_seen_before_the_scheduler_places_it() -> None:
    log = simulate(tiny(), DEFAULTS, select(["tideover-while-pending"])[0], 1, record_events=True)
    at_burst = [(kind, detail) for at, kind, detail in log.events if at == 10.0]
    assert at_burst[0] == ("demand", "default/web -> 6")
    # The gate opens only after the autoscaler's scale-up, and pods spill only after it opened.
    kinds = [(kind, detail) for _, kind, detail in log.events]
    scale_up = next(i for i, (k, d) in enumerate(kinds) if k == "autoscaler" and "scale-up" in d)
    opened = next(i for i, (k, d) in enumerate(kinds) if k == "gate" and d.startswith("open"))
    spilled = next(i for i, (k, d) in enumerate(kinds) if k == "bind" and "virtual-node" in d)
    assert scale_up < opened < spilled
    times = [at for at, _, _ in log.events]
    assert times == sorted(times)


# ---------------------------------------------------------------------------------------------- reproducibility


def test_a_seed_gives_the_same_run_and_another_seed_a_different_one() -> None:
    trace = scenario("seed-001", 7)
    policies = select(["tideover-while-pending", "static"])
    first = compare(trace, DEFAULTS, policies, 7).as_json()
    again = compare(trace, DEFAULTS, policies, 7).as_json()
    other = compare(trace, DEFAULTS, policies, 8).as_json()
    for run in (first, again, other):
        run.pop("simulationSeconds")
    assert first == again
    assert first != other  # provisioning and ACI start times are drawn from the seed


def test_the_diurnal_scenarios_spikes_come_from_the_seed() -> None:
    assert scenario("diurnal", 1).workloads[0].steps == scenario("diurnal", 1).workloads[0].steps
    assert scenario("diurnal", 1).workloads[0].steps != scenario("diurnal", 2).workloads[0].steps


# ---------------------------------------------------------------------------------------------- cost arithmetic


def test_cost_of_a_static_run_by_hand() -> None:
    """3 one-core pods for 1000 s: 1 on the VM, 2 on ACI from t=10 to deletion at 1000 + 2 s termination.
    ACI bills at least 1 vCPU and 1.5 GiB (virtualNodes.pricing.minMemoryGib) per pod."""
    trace = tiny(3, hold_until=1000.0, duration=2000.0)
    result = summarize(simulate(trace, DEFAULTS, STATIC, 1))
    aci_seconds = 2 * (1002.0 - 10.0)
    assert result.aci_pod_seconds == pytest.approx(aci_seconds)
    assert result.aci_dollars == pytest.approx(aci_seconds * (ACI_PER_SECOND + 1.5 * ACI_GIB_PER_SECOND))
    assert result.vm_node_hours == pytest.approx(2000.0 / 3600.0)
    assert result.vm_dollars == pytest.approx(0.1 * 2000.0 / 3600.0)
    assert result.total_dollars == pytest.approx(result.aci_dollars + result.vm_dollars)
    assert result.series.cost[-1] == pytest.approx(result.total_dollars)
    # The first replica on the VM at t=0: 2 s start + 2 s image pull (200 MB at 100 MB/s); the 2 spilled: 10 s.
    assert sorted(result.waits) == pytest.approx([4.0, 10.0, 10.0])


def test_vm_cost_counts_from_the_scale_up_request() -> None:
    """VMs only: 2 pods more -> 2 nodes requested at the scan of t=20 (at t=10 kube-scheduler has not yet tried the
    new pods, and the autoscaler acts only on pods it found unschedulable), billed from then to the end."""
    result = summarize(simulate(tiny(3, duration=1000.0), DEFAULTS, VMS_ONLY, 1))
    assert result.vm_node_hours == pytest.approx((1000.0 + 2 * (1000.0 - 20.0)) / 3600.0)
    assert result.aci_dollars == 0


# ---------------------------------------------------------------------------------------------- the policies


POLICY_CASES = [
    # key, peak on ACI, scale-ups, returns, on ACI at the end, wait p95 at least / below
    ("vms-only", 0, 1, 0, 0, (100, None)),
    ("static", 5, 0, 0, 5, (None, 30)),
    ("tideover-while-pending", 5, 1, 5, 0, (None, 60)),
    ("tideover-when-full", 5, 0, 0, 5, (None, 30)),
    ("tideover-never", 0, 1, 0, 0, (100, None)),
    ("tideover-while-pending-no-returns", 5, 1, 0, 5, (None, 60)),
]


@pytest.mark.parametrize(("key", "peak", "scale_ups", "returns", "at_end", "wait_bounds"), POLICY_CASES)
def test_each_policy_on_a_tiny_burst(
    key: str, peak: int, scale_ups: int, returns: int, at_end: int, wait_bounds: tuple[int | None, int | None]
) -> None:
    """1 -> 6 one-core pods; a VM holds one; VMs take 100 s."""
    policy = select([key])[0]
    log = simulate(tiny(), DEFAULTS, policy, 1)
    result = summarize(log)
    assert peak_virtual(log) == peak
    assert (log.scale_ups, log.returns, result.virtual_at_end) == (scale_ups, returns, at_end)
    assert result.pending_at_end == 0
    low, high = wait_bounds
    assert result.wait_p95 is not None
    if low is not None:
        assert result.wait_p95 >= low
    if high is not None:
        assert result.wait_p95 < high


def test_tideovers_filter_decides_the_spills() -> None:
    logs = {p.key: simulate(tiny(), DEFAULTS, p, 1) for p in all_policies()}
    assert logs["tideover-while-pending"].outcomes["spill-capacity-pending"] == 5
    assert logs["tideover-when-full"].outcomes["spill-when-full"] == 5
    assert logs["tideover-never"].outcomes["withheld-spill-never"] > 0
    assert not logs["static"].outcomes  # no extender


@pytest.mark.parametrize(
    ("config", "annotations", "peak", "outcome"),
    [
        # The economy class waits up to 300 s for a VM expected in 100 s: no spill.
        ({}, {"tideover.io/priority": "economy"}, 0, "withheld-within-wait-budget"),
        # A wait budget shorter than the VM's ETA: spill.
        ({}, {"tideover.io/max-wait-seconds": "30"}, 5, "spill-capacity-pending"),
        # The subnet guard: 2 pods at most on the virtual side.
        ({"virtualNodes": {"subnet": {"maxPods": 2, "reserve": 0}}}, {}, 2, "withheld-subnet-full"),
        # The workload cap.
        ({}, {"tideover.io/max-virtual-replicas": "3"}, 3, "withheld-workload-cap"),
    ],
)
def test_tideovers_config_and_annotations_change_the_run(
    config: dict[str, Any], annotations: dict[str, str], peak: int, outcome: str
) -> None:
    log = simulate(tiny(annotations=annotations), parse_config(config), select(["tideover-while-pending"])[0], 1)
    assert peak_virtual(log) == peak
    assert log.outcomes[outcome] > 0


def test_without_the_gate_the_autoscaler_never_sees_pods_that_tolerate_the_virtual_node() -> None:
    """virtualNodes.gateTaint false: CA's simulation fits the pods on the virtual node, so no scale-up comes and
    tideover (while-pending) keeps them pending."""
    config = parse_config({"virtualNodes": {"gateTaint": False}})
    log = simulate(tiny(), config, select(["tideover-while-pending"])[0], 1)
    result = summarize(log)
    assert log.scale_ups == 0
    assert result.pending_at_end == 5


def test_job_pods_are_not_moved_back() -> None:
    trace = tiny(kind="Job", completions=6, run=Duration(median_seconds=600))
    log = simulate(trace, DEFAULTS, select(["tideover-while-pending"])[0], 1)
    assert peak_virtual(log) == 5
    assert log.returns == 0
    assert log.workloads[0].succeeded == 6
    assert log.workloads[0].completed_at is not None


def test_scale_down_removes_virtual_node_pods_first() -> None:
    """Seed 001's observation: after 20 -> 2 only the pods on the VM remain (the ReplicaSet deletes pods on the
    node with the most of its replicas first)."""
    result = summarize(simulate(scenario("seed-001", 1), DEFAULTS, STATIC, 1))
    assert result.virtual_at_end == 0
    assert result.series.vm[-1] == 2


def test_seed_001_tideover_uses_a_fraction_of_the_static_recipes_aci_time() -> None:
    comparison = compare(scenario("seed-001", 1), DEFAULTS, select(["static", "tideover-while-pending"]), 1)
    static, tideover = comparison.results
    assert 0 < tideover.aci_pod_seconds < 0.5 * static.aci_pod_seconds
    assert tideover.virtual_at_end == 0


def test_the_autoscaler_removes_unneeded_nodes_after_its_delays() -> None:
    """VMs only, 1 -> 6 at t=10 (5 nodes requested at t=20, Ready at 120), back to 1 at t=300: the ReplicaSet keeps
    the oldest pod (on the first VM), the other 5 nodes are empty at 302, unneeded from the scan at 310, removed at
    the scan 600 s later (scale-down-unneeded-time; the 600 s delay after the scale-up at t=20 has passed)."""
    trace = tiny(hold_until=300.0, duration=1500.0)
    trace = trace.model_copy(update={"cluster": trace.cluster.model_copy(update={
        "autoscaler": AutoscalerSpec(scan_interval_seconds=10, scale_down_enabled=True)})})
    trace.workloads[0].steps[-1] = Step(at_seconds=300, replicas=1)
    log = simulate(trace, DEFAULTS, VMS_ONLY, 1)
    removed = sorted(n.removed_at for n in log.nodes if n.removed_at is not None)
    assert removed == [910.0] * 5
    assert log.scale_downs == 5
    assert summarize(log).vm_node_hours == pytest.approx((1500 + 5 * (910 - 20)) / 3600)


def test_placements_at_counts_pods_as_kubectl_lists_them() -> None:
    """Static, 1 -> 3 at t=10, 0 at t=100: at 5 s one pod on the VM; at 50 s one on the VM, two on ACI; at 100 s
    (deleted, still terminating) none."""
    log = simulate(tiny(3, hold_until=100.0, duration=200.0), DEFAULTS, STATIC, 1)
    assert placements_at(log, [5.0, 50.0, 100.0]) == [(0, 1, 0), (0, 1, 2), (0, 0, 0)]


@pytest.mark.parametrize(("key", "returns", "scale_downs"), [
    ("tideover-while-pending", 5, 0),  # the new VMs are kept for the returns (scale-down-disabled), then used
    ("tideover-while-pending-no-returns", 0, 5),  # nothing returns: the autoscaler removes the empty new VMs
])
def test_the_return_plan_keeps_its_vms_from_scale_down(key: str, returns: int, scale_downs: int) -> None:
    """An impatient autoscaler (empty nodes removed after 20 s, no delay after a scale-up): the 5 new VMs are Ready
    at t=120 and empty while the return waits out stableSeconds and minPodAgeSeconds (60 s each)."""
    trace = tiny(duration=1200.0)
    trace = trace.model_copy(update={"cluster": trace.cluster.model_copy(update={"autoscaler": AutoscalerSpec(
        scan_interval_seconds=10, scale_down_unneeded_seconds=20, scale_down_delay_after_add_seconds=0)})})
    log = simulate(trace, DEFAULTS, select([key])[0], 1)
    assert (log.returns, log.scale_downs) == (returns, scale_downs)
