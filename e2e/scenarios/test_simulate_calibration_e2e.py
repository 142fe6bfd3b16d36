"""The simulator against the real stack (issue 14, calibration): one small burst, run on the real components and in
``tideover simulate``, gives the same placements over time, within a stated margin.

Real: kube-scheduler (config/scheduler-config.yaml) calling ``tideover serve``, kube-controller-manager, the real
cluster-autoscaler (externalgrpc) driving the simulated VMSS of e2e/vmss (kwok nodes), virtual-kubelet's mock
provider as the virtual node (stack: e2e/harness/autoscaled.py). Simulated: the same trace, cluster and tideover
config in :mod:`extender.simulate` (the real stack's timings: 20 s VM boot, 1 s autoscaler scans, pods start in about
a second on kwok and on the mock provider).

The burst: a Deployment of 1-CPU pods, 1 -> 10 replicas, on one VM of 2 CPUs (max 6 VMs). 8 pods spill while 4 VMs
boot, then move back. Sampled every second for OBSERVE_SECONDS after the scale-up.

The margin (asserted, and the measured values printed):
- for each of pending / on VMs / on the virtual node, the mean absolute difference of the per-second counts is at
  most MAE_MARGIN pods;
- the peak count on the virtual node differs by at most 1 pod;
- the moment the virtual node is empty again differs by at most EMPTY_MARGIN_SECONDS;
- at the end both have all 10 pods on VMs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest

from e2e.harness.autoscaled import POOL, VIRTUAL, AutoscaledStack, wait_until
from e2e.harness.workloads import Namespace, deployment
from e2e.vmss.simulator import GroupConfig
from extender.model.config import parse_config
from extender.simulate.cluster import AutoscalerSpec, ClusterSpec, Duration, PoolSpec
from extender.simulate.engine import simulate
from extender.simulate.policies import select
from extender.simulate.results import placements_at
from extender.simulate.trace import Step, Trace, Workload

BOOT_SECONDS = 20.0
REPLICAS = 10
MAX_SIZE = 6
OBSERVE_SECONDS = 90
BURST_AT = 10.0  # in the simulation: the initial replica at 0, the burst at 10 s
MAE_MARGIN = 1.5
EMPTY_MARGIN_SECONDS = 15.0
RETURNS = {"controllers": {"returnToVm": {"stableSeconds": 5, "minPodAgeSeconds": 5, "intervalSeconds": 1,
                                          "maxInFlightPerWorkload": 2}}}
VK_ARGS = ["--pod-sync-workers=1"]  # see test_returns_e2e: the mock provider's map is not thread-safe


# The stack (e2e/conftest.py's ``stack`` and ``ns`` fixtures): returns after 5 s, so the burst's whole round trip
# fits the observation.
AUTOSCALED_STACK = {
    "provisioning_seconds": BOOT_SECONDS,
    "tideover_overrides": RETURNS,
    "cluster_extra_args": {"virtual-kubelet": VK_ARGS},
}


def simulated(config: dict[str, Any]) -> list[tuple[int, int, int]]:
    trace = Trace(
        name="calibration", duration_seconds=BURST_AT + OBSERVE_SECONDS + 1,
        workloads=[Workload(name="web", cpu=1.0, memory_gib=0.25,
                            steps=[Step(at_seconds=0, replicas=1), Step(at_seconds=BURST_AT, replicas=REPLICAS)])],
        cluster=ClusterSpec(
            # kwok's nodes: 2 CPU, 8Gi, Ready about a second after the VMSS registers them.
            pools=[PoolSpec(name=POOL, node_cpu=2.0, node_memory_gib=8.0, min_size=1, max_size=MAX_SIZE, initial=1,
                            provisioning=Duration(median_seconds=BOOT_SECONDS + 1.0, sigma=0.02),
                            registered_before_ready_seconds=1.0)],
            # The stack's cluster-autoscaler (e2e.harness.autoscaled.autoscaler_options): 1 s scans, no scale-down.
            autoscaler=AutoscalerSpec(scan_interval_seconds=1.0, scale_down_enabled=False),
            virtual_start=Duration(median_seconds=1.0, sigma=0.3), vm_start=Duration(median_seconds=1.0, sigma=0.3),
            vm_pull_seconds=0.0, termination_seconds=1.0,
        ),
    )
    log = simulate(trace, parse_config(config), select(["tideover-while-pending"])[0], seed=1)
    return placements_at(log, [BURST_AT + t for t in range(OBSERVE_SECONDS)])


def observed(stack: AutoscaledStack, ns: Namespace) -> list[tuple[int, int, int]]:
    """Per second after the scale-up: the namespace's pods (pending, on VMs, on the virtual node)."""
    stack.start_pool(GroupConfig(name=POOL, min_size=1, max_size=MAX_SIZE, initial=1, provisioning_delay=BOOT_SECONDS))
    ns.create_deployment(deployment("web", 1, cpu="1"))
    wait_until(stack, lambda: len(ns.running_on()) == 1, 60, "the first replica to run")
    burst = time.time()
    ns.scale("web", REPLICAS)
    samples = []
    for second in range(OBSERVE_SECONDS):
        time.sleep(max(0.0, burst + second - time.time()))
        counts = ns.summary()
        samples.append((counts["pending"], counts["vm"], counts["virtual"]))
    return samples


def empty_again(series: Sequence[tuple[int, int, int]]) -> int | None:
    """The first second after the peak at which the virtual node holds no pod."""
    peak = max(range(len(series)), key=lambda i: series[i][2])
    return next((i for i in range(peak, len(series)) if series[i][2] == 0), None)


@pytest.mark.e2e  # local processes only (not kind-marked): the comparison needs the stack's VMSS timings
def test_the_simulator_places_pods_over_time_as_the_real_stack_does(stack: AutoscaledStack, ns: Namespace) -> None:
    real = observed(stack, ns)
    sim = simulated(stack.tideover_config)
    print("\n[e2e] second: real (pending, vm, virtual) | simulated")
    for second in range(0, OBSERVE_SECONDS, 5):
        print(f"[e2e]   {second:3d}s  {real[second]} | {sim[second]}")
    errors = [sum(abs(r[i] - s[i]) for r, s in zip(real, sim, strict=True)) / len(real) for i in range(3)]
    peaks = (max(r[2] for r in real), max(s[2] for s in sim))
    empties = (empty_again(real), empty_again(sim))
    print(f"[e2e] mean absolute difference (pending, vm, virtual): {', '.join(f'{e:.2f}' for e in errors)} pods; "
          f"peak on {VIRTUAL}: real {peaks[0]}, simulated {peaks[1]}; empty again at: real {empties[0]} s, "
          f"simulated {empties[1]} s")
    assert all(error <= MAE_MARGIN for error in errors), errors
    assert abs(peaks[0] - peaks[1]) <= 1
    assert empties[0] is not None and empties[1] is not None
    assert abs(empties[0] - empties[1]) <= EMPTY_MARGIN_SECONDS
    assert real[-1] == sim[-1] == (0, REPLICAS, 0)


def test_empty_again_is_the_first_empty_second_after_the_peak() -> None:
    assert empty_again([(0, 1, 0), (5, 1, 4), (0, 3, 2), (0, 5, 0), (0, 5, 0)]) == 3
    assert empty_again([(0, 1, 0), (0, 1, 3)]) is None

