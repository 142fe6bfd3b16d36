"""Built-in scenarios: the seeds' bursts and a diurnal web workload.

- ``seed-001``: seed 001's nginx Deployment, 1 -> 20 -> 2 replicas on a one-VM AKS cluster (Standard_D2s_v5).
  The seed scaled back after about 3 minutes; here the 20 replicas are held for 30 minutes, long enough for a
  VMSS scale-up to matter (how long a burst lasts is the question the report answers). The seed's pods set no
  requests; 0.5 CPU and 1 GiB make 3 fit a node, so the burst needs 7 VMs.
- ``seed-002``: seed 002's report Job: 200 completions, 50 in parallel, 1 CPU and 2 GiB each, on a pool of
  Standard_D4s_v5 (4 vCPU, 16 GiB; pay-as-you-go $0.192/h, twice the D2s_v5's $0.096). A pod runs about 5
  minutes (log-normal, sigma 0.3).
- ``diurnal``: a web Deployment over 24 hours, 4 replicas at night to 16 at the afternoon peak, with three
  spikes of 2.5x for 15-25 minutes at times drawn from the seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from extender.simulate.cluster import AutoscalerSpec, ClusterSpec, Duration, PoolSpec
from extender.simulate.trace import Step, Trace, Workload

D4S_V5_PRICE_PER_HOUR = 0.192  # USD, Linux pay-as-you-go (docs/simulate.md: sources)


def seed_001(rng: np.random.Generator) -> Trace:
    return Trace(
        name="seed-001",
        description="seed 001: nginx Deployment 1 -> 20 (held 30 min) -> 2 on one D2s_v5 VM (max 10)",
        duration_seconds=3600.0,
        workloads=[Workload(
            name="nginx-vn", cpu=0.5, memory_gib=1.0,
            steps=[Step(at_seconds=0, replicas=1), Step(at_seconds=60, replicas=20),
                   Step(at_seconds=1860, replicas=2)],
        )],
        cluster=ClusterSpec(pools=[PoolSpec(name="nodepool1", min_size=1, max_size=10, initial=1)]),
    )


def seed_002(rng: np.random.Generator) -> Trace:
    return Trace(
        name="seed-002",
        description="seed 002: report Job, 200 completions, parallelism 50, 1 CPU / 2 GiB, ~5 min each; D4s_v5 pool",
        duration_seconds=3600.0,
        workloads=[Workload(
            name="report-generator", kind="Job", cpu=1.0, memory_gib=2.0, completions=200,
            run=Duration(median_seconds=300.0, sigma=0.3),
            steps=[Step(at_seconds=60, replicas=50)],
        )],
        cluster=ClusterSpec(pools=[PoolSpec(
            name="nodepool1", node_cpu=3.86, node_memory_gib=12.5, price_per_hour=D4S_V5_PRICE_PER_HOUR,
            min_size=1, max_size=20, initial=1,
        )]),
    )


def diurnal(rng: np.random.Generator) -> Trace:
    day = 86_400
    step = 300
    spikes = sorted(rng.uniform(3 * 3600, 21 * 3600, size=3))
    lengths = rng.uniform(900, 1500, size=3)
    steps: list[Step] = []
    for at in range(0, day, step):
        base = 10 - 6 * math.cos(2 * math.pi * (at - 3 * 3600) / day)  # 4 at 03:00, 16 at 15:00
        factor = 2.5 if any(s <= at < s + n for s, n in zip(spikes, lengths, strict=True)) else 1.0
        replicas = round(base * factor)
        if not steps or steps[-1].replicas != replicas:
            steps.append(Step(at_seconds=at, replicas=replicas))
    return Trace(
        name="diurnal",
        description="web Deployment over 24 h: 4 -> 16 replicas (0.5 CPU, 1 GiB) and three 2.5x spikes",
        duration_seconds=float(day),
        workloads=[Workload(name="web", cpu=0.5, memory_gib=1.0, steps=steps)],
        cluster=ClusterSpec(
            pools=[PoolSpec(name="nodepool1", min_size=2, max_size=20, initial=2)],
            autoscaler=AutoscalerSpec(),
            sample_seconds=120.0,
        ),
    )


SCENARIOS: dict[str, Callable[[np.random.Generator], Trace]] = {
    "seed-001": seed_001,
    "seed-002": seed_002,
    "diurnal": diurnal,
}


def scenario(name: str, seed: int) -> Trace:
    try:
        build = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; built-in: {', '.join(SCENARIOS)}") from None
    return build(np.random.default_rng([seed, 1]))
