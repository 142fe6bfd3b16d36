"""How long must seed 001's burst last for tideover to cost less than the static recipe in total?

Runs ``tideover simulate``'s seed-001 scenario with the 20 replicas held for different times (the rest as the
scenario: 1 -> 20 at 1 min, back to 2, 30 minutes observed after the burst) and prints total cost and ACI
pod-seconds per policy. Usage: ``.venv/bin/python scripts/simulate_burst_length.py [--seed N]``.
"""

from __future__ import annotations

import argparse

from extender.model.config import TideoverConfig
from extender.simulate.command import compare
from extender.simulate.policies import select
from extender.simulate.scenarios import scenario
from extender.simulate.trace import Step

HOLDS_MINUTES = (5, 10, 20, 30, 40, 45, 60, 120, 240)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    seed = parser.parse_args().seed
    base = scenario("seed-001", seed)
    policies = select(["vms-only", "static", "tideover-while-pending"])
    print("| burst held | VMs only $ | static $ | tideover $ | tideover ACI pod-s / static's |")
    print("|---|---|---|---|---|")
    for minutes in HOLDS_MINUTES:
        end = 60 + minutes * 60
        steps = [Step(at_seconds=0, replicas=1), Step(at_seconds=60, replicas=20), Step(at_seconds=end, replicas=2)]
        workload = base.workloads[0].model_copy(update={"steps": steps})
        trace = base.model_copy(update={"workloads": [workload], "duration_seconds": end + 1800.0})
        vms, static, tideover = compare(trace, TideoverConfig(), policies, seed).results
        print(f"| {minutes} min | {vms.total_dollars:.3f} | {static.total_dollars:.3f} | {tideover.total_dollars:.3f} "
              f"| {tideover.aci_pod_seconds / static.aci_pod_seconds:.0%} |")


if __name__ == "__main__":
    main()
