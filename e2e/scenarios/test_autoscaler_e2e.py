"""End-to-end with the real cluster-autoscaler (issue 4): the real kube-scheduler (config/scheduler-config.yaml)
calls the real ``tideover serve``; cluster-autoscaler (externalgrpc provider) drives the simulated VMSS
(e2e/vmss), whose booted instances register as kwok nodes; the virtual node is virtual-kubelet's mock
provider. tideover reads CA's real status ConfigMap.

Scenarios (issue 4):
1. a burst while a scale-up is pending: the pods that do not fit spill to the virtual node, within seconds
   of the scale-up's start (the measured figure is printed);
2. the scale set at max size: the burst stays Pending, a ``when-full`` workload spills;
3. the scale-up in Backoff (quota fault): tideover stops spilling, and says why;
4. (with 1) once the new VMs are Ready the gate closes: new pods go to VMs, none to the virtual node.
Also: pods that must not spill stay off the virtual node at the moment the gate opens (a bug this module
found: tideover's filter once took its no-toleration fast path from a snapshot that still showed the gate).

The trap (kube-scheduler retries a rejected pod only on a cluster event, or after 5 minutes): parked pods
are woken by tideover's write to the virtual node (gate taint off, annotation changed), which scenario 1's
timing shows: seconds, not minutes. In the kube-scheduler source (v1.36.3): pkg/scheduler/schedule_one.go
puts ``framework.ExtenderName`` into the pod's UnschedulablePlugins when an extender removed nodes, and
framework/runtime/framework.go registers a defaultEnqueueExtension for it, which any cluster event wakes;
pkg/scheduler/backend/queue/scheduling_queue.go has DefaultPodMaxInUnschedulablePodsDuration = 5 minutes.
Pods without the gate toleration are parked by TaintToleration, whose queueing hint wakes them when the taint
goes. A ConfigMap update wakes neither.

Each test gets its own namespace and its own pool: a fresh simulator and a fresh CA (CA keeps backoff
state in memory), with the previous pool's nodes and CA status deleted.

Each scenario also asserts the reasons issue 4 asks for (:class:`Gaps`): the virtual node's annotation and
the pods' events say why.
"""

from __future__ import annotations

import time

import pytest

from e2e.harness.autoscaled import (
    POOL,
    VIRTUAL,
    AutoscaledStack,
    wait_until,
)
from e2e.harness.observe import observing
from e2e.harness.workloads import Namespace, deployment, pod
from e2e.vmss.simulator import GroupConfig

pytestmark = [pytest.mark.e2e, pytest.mark.kind]  # kind: make_autoscaled_stack has a kind target

BOOT_SECONDS = 20.0  # the simulated VM's provisioning delay; tideover's provisioningSeconds is the same
SPILL_TARGET_SECONDS = 15.0  # issue 4's target: scale-up start -> every spilled pod Running
SPILL_BOUND_SECONDS = 45.0  # what the test asserts: generous, so it is not flaky, but it can fail
HOLD_SECONDS = 8.0


# The stack (e2e/conftest.py): issue 5's return-to-VM controller would start moving spilled pods back to the new
# VMs a minute after the window closes; these scenarios observe issue 4's placements, so it is off here (the demo
# shows it).
AUTOSCALED_STACK = {
    "provisioning_seconds": BOOT_SECONDS,
    "tideover_overrides": {"controllers": {"returnToVm": {"enabled": False}}},
}


def _pool(initial: int, max_size: int, **faults: object) -> GroupConfig:
    config = GroupConfig(name=POOL, min_size=1, max_size=max_size, initial=initial, provisioning_delay=BOOT_SECONDS)
    for key, value in faults.items():
        setattr(config.faults, key, value)
    return config


class Gaps:
    """Assertions about tideover's reasons (the annotation, the events), made after a scenario's behavioural
    assertions so a failure names the reason that fell short."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario

    def check(self, ok: bool, message: str) -> None:
        assert ok, f"{self.scenario}: {message}"


def test_burst_spills_while_the_scale_up_is_pending_then_vms_take_new_pods(
    stack: AutoscaledStack, ns: Namespace
) -> None:
    """Scenarios 1 and 4 (seed 001's shape): 1 VM of 2 CPU, room for 5 more (max 6); 1 replica -> 20."""
    stack.start_pool(_pool(initial=1, max_size=6))
    ns.create_deployment(deployment("web", 1, cpu="1"))
    wait_until(stack, lambda: len(ns.running_on()) == 1, 60, "the first replica to run")
    assert next(iter(ns.running_on().values())) != VIRTUAL
    initial_vms = stack.node_names() - {VIRTUAL}

    with observing(stack, ns.name) as obs:
        burst = time.time()
        obs.mark("Deployment web scaled 1 -> 20 (1 CPU each; the VM has room for 2)")
        ns.scale("web", 20)
        # CA sees the Pending pods (the gate keeps them off the virtual node in its simulation too) and
        # scales up; tideover opens the gate; the pods that do not fit run on the virtual node.
        wait_until(stack, lambda: obs.first("InProgress") is not None, 60, "CA to report the scale-up InProgress")
        status = next(s for _, s in obs.statuses if s.scale_up == "InProgress")
        assert status.since is not None, "CA's status has no scaleUp.lastTransitionTime"
        start = status.since
        wait_until(stack, lambda: ns.summary() == {"vm": 2, "virtual": 18}, SPILL_BOUND_SECONDS,
                   "2 pods on the VM and 18 on the virtual node")
        wait_until(stack, lambda: len(ns.running_on()) == 20, SPILL_BOUND_SECONDS, "all 20 pods Running")
        spilled = {name for name, node in ns.placements().items() if node == VIRTUAL}
        # The recorder polls on its own: wait until it has seen every spilled pod Running too.
        wait_until(stack, lambda: all(obs.pod_records()[name].running for name in spilled), 10,
                   "the recorder to see the spilled pods Running")
        records = obs.pod_records()
        all_running = max(records[name].running or 0.0 for name in spilled)
        seen_in_progress = obs.first("InProgress")
        assert seen_in_progress is not None
        opened = next((t for t, closed in obs.gate_changes() if not closed and t >= burst), None)
        figure = all_running - start
        print(f"\n[e2e] scale-up start -> all {len(spilled)} spilled pods Running: {figure:.1f}s "
              f"(target <= {SPILL_TARGET_SECONDS:.0f}s; asserted <= {SPILL_BOUND_SECONDS:.0f}s)")
        print(f"[e2e]   CA scaleUp.lastTransitionTime -> InProgress seen in the ConfigMap: "
              f"{seen_in_progress - start:.1f}s; -> gate open: "
              f"{'?' if opened is None else f'{opened - start:.1f}s'}; burst -> scale-up start: {start - burst:.1f}s")
        assert figure <= SPILL_BOUND_SECONDS
        # The spill happened while VM capacity was pending, not after: no new VM was Ready yet.
        new_ready = [t for name, t in obs.vm_ready.items() if name not in initial_vms]
        assert all(t > all_running for t in new_ready), "a new VM was Ready before the pods spilled"

        # Each spilled pod carries tideover's SpilledToVirtualNode event: every one went through the filter.
        time.sleep(2)  # tideover posts its events from a queue
        events = {name: m for name in spilled for m in ns.events("SpilledToVirtualNode", name)
                  if "spilling to the virtual node while pool(s) nodepool1 scale up" in m}
        if events:
            name, message = sorted(events.items())[0]
            print(f"[e2e] SpilledToVirtualNode ({name}): {message}")
        gaps = Gaps("scenario 1")
        gaps.check(len(events) == len(spilled),
                   f"{len(spilled) - len(events)} of {len(spilled)} spilled pods have no SpilledToVirtualNode event "
                   "(they passed tideover's filter without a decision)")

        # Scenario 4: the 5 new VMs register and turn Ready; the scale-up ends and the gate closes.
        wait_until(stack, lambda: len(set(obs.vm_ready) - initial_vms) == 5, BOOT_SECONDS + 40,
                   "the 5 new VM nodes Ready")
        closed_at = wait_until(stack, stack.gate_closed, 30, "the gate to close once the scale-up is over")
        last_ready = max(obs.vm_ready.values())
        status_after = stack.group_status()
        print(f"[e2e] new VMs Ready -> gate closed: {closed_at - last_ready:.1f}s "
              f"(CA: {status_after.describe() if status_after else '?'}); window: {stack.spill_window()}")
        assert status_after is not None and status_after.scale_up != "InProgress"

        # 10 CPU free on the new VMs; 12 new pods: 10 go to VMs, 2 stay Pending (the pool is at max size),
        # and none goes to the virtual node.
        before = ns.placements()
        obs.mark("Deployment web scaled 20 -> 32 (the new VMs have room for 10)")
        ns.scale("web", 32)
        wait_until(stack, lambda: ns.summary() == {"vm": 12, "virtual": 18, "pending": 2}, 60,
                   "10 new pods on the new VMs, 2 Pending")
        ns.hold(lambda: ns.summary() == {"vm": 12, "virtual": 18, "pending": 2}, HOLD_SECONDS,
                "no new pod may reach the virtual node once the VMs are Ready")
        new = {name: node for name, node in ns.placements().items() if name not in before}
        assert len(new) == 12 and VIRTUAL not in new.values()
        print("[e2e] timeline (relative to the scale-up's start):")
        obs.print_timeline(start)


def test_pool_at_max_size_keeps_the_burst_pending_but_when_full_spills(
    stack: AutoscaledStack, ns: Namespace
) -> None:
    """Scenario 2: the scale set is at max size (2 of 2), so no scale-up can come."""
    stack.start_pool(_pool(initial=2, max_size=2))
    ns.create_deployment(deployment("web", 6, cpu="1"))
    wait_until(stack, lambda: ns.summary() == {"vm": 4, "pending": 2}, 60, "4 pods on VMs and 2 Pending")
    # Let CA run a few loops over the Pending pods: it cannot scale up, and nothing may spill.
    ns.hold(lambda: ns.summary() == {"vm": 4, "pending": 2}, HOLD_SECONDS, "no pod may reach the virtual node")
    status = stack.group_status()
    assert status is not None and status.scale_up != "InProgress" and status.target == status.max_size == 2, status
    assert stack.gate_closed()
    window = stack.spill_window()
    assert window.startswith("closed since ") and "no VM pool has capacity pending" in window, window
    print(f"\n[e2e] CA: {status.describe()}\n[e2e] virtual node: tideover.io/spill-window={window}")
    gaps = Gaps("scenario 2 (max size)")
    gaps.check("at-max-size" in window,
               f"the virtual node's tideover.io/spill-window does not say the pool is at max size, as of this "
               f"scenario: {window!r} (extender/controllers/gate.py rewrites it only when the set of pending pools "
               "changes, so it keeps whatever reason held when the window last closed)")

    ns.create_deployment(deployment("urgent", 2, cpu="1", tolerate_gate=True,
                                    annotations={"tideover.io/spill": "when-full"}))
    wait_until(stack, lambda: len(ns.running_on("app=urgent")) == 2, 60, "the when-full pods Running")
    assert set(ns.running_on("app=urgent").values()) == {VIRTUAL}
    assert ns.summary("app=web") == {"vm": 4, "pending": 2}
    spilled = sorted(ns.running_on("app=urgent"))[0]
    wait_until(stack, lambda: any("tideover.io/spill is when-full" in m
                                  for m in ns.events("SpilledToVirtualNode", spilled)), 30,
               "the when-full pod's SpilledToVirtualNode event")
    print(f"[e2e] SpilledToVirtualNode ({spilled}): {ns.events('SpilledToVirtualNode', spilled)[0]}")


def test_guards_hold_at_the_moment_the_gate_opens(stack: AutoscaledStack, ns: Namespace) -> None:
    """Pods that must not spill (``tideover.io/spill: never``, tolerating the virtual node's own taint but not
    tideover's gate) are Pending when a scale-up opens the gate. tideover's filter must keep them off the
    virtual node, and every pod that does spill must get its SpilledToVirtualNode event."""
    stack.start_pool(_pool(initial=1, max_size=6))
    ns.create_deployment(deployment("web", 2, cpu="1"))
    wait_until(stack, lambda: len(ns.running_on()) == 2, 60, "the VM to fill")
    never = [f"never-{i}" for i in range(3)]
    for name in never:
        ns.create_pod(pod(name, cpu="1", annotations={"tideover.io/spill": "never"}))
    ns.scale("web", 8)
    wait_until(stack, stack.gate_open, 60, "the scale-up to open the gate")
    wait_until(stack, lambda: ns.summary("app=web") == {"vm": 2, "virtual": 6}, 30, "6 web pods on the virtual node")
    on_virtual = sorted(name for name in never if ns.placements()[name] == VIRTUAL)

    def decisions(outcome: str) -> float:
        return stack.tideover.metric("tideover_decisions_total", {"verb": "filter", "outcome": outcome})

    assert not on_virtual, (
        f"spill: never pods on the virtual node: {on_virtual}; tideover's filter decisions: "
        f"withheld-spill-never {decisions('withheld-spill-never'):.0f}, "
        f"does-not-tolerate-virtual {decisions('does-not-tolerate-virtual'):.0f}"
    )
    ns.hold(lambda: all(ns.placements()[name] != VIRTUAL for name in never), 3, "spill: never pods stay off")
    assert all(any("tideover.io/spill is never" in m for m in ns.events("FailedScheduling", name)) for name in never)
    spilled = sorted(name for name, node in ns.placements("app=web").items() if node == VIRTUAL)
    time.sleep(2)  # tideover posts its events from a queue
    missing = [name for name in spilled if not ns.events("SpilledToVirtualNode", name)]
    assert not missing, f"spilled pods without a SpilledToVirtualNode event: {missing}"


@pytest.mark.parametrize("quota", ["instances", "increase"])
def test_backoff_stops_the_spill_and_says_why(stack: AutoscaledStack, ns: Namespace, quota: str) -> None:
    """Scenario 3: every scale-up of the scale set fails with a quota error, in either of the two ways the
    simulator offers:

    - ``instances``: the new instances report QuotaExceeded (as Azure reports a VMSS quota failure on the
      instances), so CA reports the scale-up InProgress for a moment, then Backoff (errorCode QuotaExceeded).
      Pods of the burst may spill during that moment: capacity was pending then, as far as anyone could
      tell, which is acceptable. What matters is what happens once Backoff is reported.
    - ``increase``: NodeGroupIncreaseSize itself fails, so CA goes straight to Backoff (errorCode
      cloudProviderError, the message carrying QuotaExceeded); the gate never opens and nothing spills.

    Pods created after the Backoff stay off the virtual node, and tideover's reasons say why. Where a reason
    falls short of issue 4 (the annotation naming the Backoff and CA's error), the test notes it (Gaps).
    """
    stack.start_pool(_pool(initial=1, max_size=6, quota=quota))
    ns.create_deployment(deployment("web", 1, cpu="1"))
    wait_until(stack, lambda: len(ns.running_on()) == 1, 60, "the first replica to run")
    with observing(stack, ns.name) as obs:
        origin = time.time()
        obs.mark("Deployment web scaled 1 -> 6 (the VM has room for 2)")
        ns.scale("web", 6)
        wait_until(stack, lambda: (s := stack.group_status()) is not None and s.scale_up == "Backoff", 60,
                   "CA to report Backoff")
        status = stack.group_status()
        assert status is not None and status.scale_up == "Backoff", status
        assert status.error_code == {"instances": "QuotaExceeded", "increase": "cloudProviderError"}[quota], status
        wait_until(stack, stack.gate_closed, 30, "tideover to close the gate")
        spilled_before = {name for name, node in ns.placements().items() if node == VIRTUAL}
        if quota == "increase":
            assert "InProgress" not in obs.scale_up
            assert not spilled_before, f"pods spilled although no scale-up was ever InProgress: {spilled_before}"

        ns.create_deployment(deployment("after", 3, cpu="1"))
        ns.create_pod(pod("past-the-gate", cpu="1", tolerate_gate=True))
        ns.hold(lambda: not ({name for name, node in ns.placements().items() if node == VIRTUAL} - spilled_before),
                HOLD_SECONDS, "no pod created after the Backoff may reach the virtual node")
        assert ns.summary("app=after") == {"pending": 3}
        assert ns.placements()["past-the-gate"] is None
        if quota == "increase":
            assert not [t for t, closed in obs.gate_changes() if not closed], "the gate opened"

        # The gate-tolerating pod gets past the taint to tideover's filter, whose reason names the Backoff. An earlier
        # attempt may have been answered before tideover's view read CA's Backoff (on kind, the status reaches it a
        # little later than the scheduler's retry): that reason says NoActivity; the one that follows names Backoff.
        def reasons() -> list[str]:
            return [m for m in ns.events("FailedScheduling", "past-the-gate") if "virtual node withheld" in m]

        try:
            wait_until(stack, lambda: any("Backoff" in m for m in reasons()), 30,
                       "tideover's reason naming the Backoff in a FailedScheduling event")
        except AssertionError as error:
            raise AssertionError(f"{error}; the reasons seen: {reasons()}") from None
        reason = next(m for m in reasons() if "Backoff" in m)
        window = stack.spill_window()
        print(f"\n[e2e] CA: {status.describe()} ({status.error_message})")
        print(f"[e2e] pods that spilled before the Backoff was reported: {len(spilled_before)}")
        print(f"[e2e] virtual node: tideover.io/spill-window={window}")
        print(f"[e2e] FailedScheduling (past-the-gate): {reason}")
        obs.print_timeline(origin)

    gaps = Gaps(f"scenario 3 (backoff, quota={quota})")
    gaps.check("backoff" in window.lower(),
               f"the virtual node's tideover.io/spill-window does not mention this Backoff: {window!r} "
               "(extender/controllers/gate.py rewrites it only when the set of pending pools changes)")
    codes = list(dict.fromkeys(c for c in (status.error_code, "QuotaExceeded") if c))
    gaps.check(any(code in text for code in codes for text in (window, reason)),
               f"neither the annotation nor the FailedScheduling reason names CA's error ({', '.join(codes)})")
