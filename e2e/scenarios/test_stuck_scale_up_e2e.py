"""End-to-end: a scale-up that never lands (issue 15; kubernetes/autoscaler#8323).

The simulated VMSS takes the scale-up but its instances never register (fault ``never_register``: they stay
*creating* with no error, as an Azure allocation that never lands), so the real cluster-autoscaler keeps the
scale-up ``InProgress`` until its ``--max-node-provision-time`` (5 minutes here, 15 by default). tideover spills
while the scale-up is young; once it is ``autoscaler.stuckAfterSeconds`` past its estimate tideover calls it stuck
and, with the default ``stuckAction: stop-spilling``, stops spilling while CA still says InProgress. The state is
visible where a person looks: the virtual node's ``tideover.io/scale-up-stuck`` and ``tideover.io/spill-window``
annotations, the metric ``tideover_scale_up_stuck``, and the waiting pods' events.

The node group is reported as AKS names it (``aks-nodepool1-<8 digits>-vmss``); tideover maps the pool to it.
"""

from __future__ import annotations

import time

import pytest

from e2e.harness.autoscaled import POOL, VIRTUAL, AutoscaledStack, autoscaler_options, wait_until
from e2e.harness.observe import observing
from e2e.harness.workloads import Namespace, deployment, pod
from e2e.vmss.simulator import GroupConfig
from extender.model.keys import SCALE_UP_STUCK

pytestmark = [pytest.mark.e2e]

BOOT_SECONDS = 20.0  # tideover's provisioning estimate (the simulated VMs would boot in this, if they registered)
STUCK_AFTER_SECONDS = 20.0  # so the scale-up is stuck ~40 s after it started, long before CA gives up
HOLD_SECONDS = 8.0

AUTOSCALED_STACK = {
    "provisioning_seconds": BOOT_SECONDS,
    "tideover_overrides": {
        "autoscaler": {"stuckAfterSeconds": STUCK_AFTER_SECONDS},
        "controllers": {"returnToVm": {"enabled": False}},
    },
}


def _stuck_annotation(stack: AutoscaledStack) -> str:
    return str(((stack.virtual_node().get("metadata") or {}).get("annotations") or {}).get(SCALE_UP_STUCK, ""))


def test_a_scale_up_that_never_lands_stops_the_spill_while_ca_still_says_in_progress(
    stack: AutoscaledStack, ns: Namespace
) -> None:
    config = GroupConfig(name=POOL, min_size=1, max_size=6, initial=1, provisioning_delay=BOOT_SECONDS)
    config.faults.never_register = True
    options = autoscaler_options()
    options.max_node_provision_time = "5m"
    stack.start_pool(config, options)
    assert config.group_id.startswith("aks-nodepool1-") and config.group_id.endswith("-vmss")
    ns.create_deployment(deployment("web", 1, cpu="1"))
    wait_until(stack, lambda: len(ns.running_on()) == 1, 60, "the first replica to run")

    with observing(stack, ns.name) as obs:
        origin = time.time()
        obs.mark("Deployment web scaled 1 -> 6 (the VM has room for 2; the new VMs never register)")
        ns.scale("web", 6)
        wait_until(stack, lambda: (s := stack.group_status()) is not None and s.scale_up == "InProgress", 60,
                   "CA to report the scale-up InProgress (under the AKS-style group id)")
        started = stack.group_status()
        assert started is not None and started.since is not None
        # While the scale-up is young, tideover bridges: the pods that do not fit spill.
        wait_until(stack, lambda: ns.summary() == {"vm": 2, "virtual": 4}, 45, "4 pods on the virtual node")
        spilled = {name for name, node in ns.placements().items() if node == VIRTUAL}

        stuck_at = wait_until(stack, lambda: _stuck_annotation(stack) == POOL, BOOT_SECONDS + STUCK_AFTER_SECONDS + 40,
                              "tideover to call the scale-up stuck (tideover.io/scale-up-stuck)")
        status = stack.group_status()
        # The #8323 situation: CA still says InProgress, and tideover no longer believes it.
        assert status is not None and status.scale_up == "InProgress", status
        assert stuck_at - started.since >= BOOT_SECONDS + STUCK_AFTER_SECONDS - 2
        wait_until(stack, stack.gate_closed, 30, "the gate to close on the stuck scale-up")
        window = stack.spill_window()
        assert "scale-up stuck" in window, window
        assert stack.tideover.metric("tideover_scale_up_stuck", {"pool": POOL}) == 1.0

        # New pods wait: neither a plain one (the gate) nor one that tolerates the gate (tideover's filter) spills.
        ns.create_deployment(deployment("after", 2, cpu="1"))
        ns.create_pod(pod("past-the-gate", cpu="1", tolerate_gate=True))
        ns.hold(lambda: {n for n, node in ns.placements().items() if node == VIRTUAL} == spilled, HOLD_SECONDS,
                "no pod may reach the virtual node once the scale-up is stuck")
        assert ns.summary("app=after") == {"pending": 2}

        def reason() -> str:
            return next((m for m in ns.events("FailedScheduling", "past-the-gate") if "scale-up stuck" in m), "")

        wait_until(stack, lambda: bool(reason()), 30, "tideover's stuck reason in the pod's FailedScheduling event")
        after = sorted(ns.placements("app=after"))[0]

        def waiting() -> str:
            return next((m for m in ns.events("WaitingForVM", after) if "scale-up stuck" in m), "")

        wait_until(stack, lambda: bool(waiting()), 60, "a WaitingForVM event naming the stuck scale-up")
        # Pods that spilled while the scale-up was young stay where they run.
        assert {n for n, node in ns.placements().items() if node == VIRTUAL} == spilled
        print(f"\n[e2e] CA: {status.describe()} (group {config.group_id})")
        print(f"[e2e] scale-up start -> stuck: {stuck_at - started.since:.1f}s "
              f"(estimate {BOOT_SECONDS:.0f}s + stuckAfterSeconds {STUCK_AFTER_SECONDS:.0f}s)")
        print(f"[e2e] virtual node: tideover.io/spill-window={window}")
        print(f"[e2e] FailedScheduling (past-the-gate): {reason()}")
        print(f"[e2e] WaitingForVM ({after}): {waiting()}")
        obs.print_timeline(origin)
