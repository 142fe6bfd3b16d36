"""The spill ledger's view (read on every /filter) against the number of unrelated spills in its window.

    .venv/bin/python -m tests.bench.bench_ledger

Prints microseconds per view at 0, 1,000 and 10,000 spills; asserts nothing. Before the ledger was indexed
(issue 11), a view walked every spill: 206 us at 1,000 and 2,676 us at 10,000 on this project's machine.
"""

from __future__ import annotations

import timeit

from extender.decide.guards import SpillLedger
from extender.model.objects import pod_facts
from tests.support.factories import cluster, pod, snapshot


def main() -> None:
    snap = snapshot(cluster(1))
    for count in (0, 1_000, 10_000):
        ledger = SpillLedger(ttl_seconds=1e9)
        facts = [pod_facts(pod(f"p{i}", f"ns-{i % 50}", owner=("ReplicaSet", f"rs-{i}"))) for i in range(count + 1)]
        for spilled in facts[1:]:
            ledger.settle(spilled, True, 0.01)
        me = facts[0].uid
        view = lambda ledger=ledger, me=me: ledger.view(snap, exclude_uid=me)  # noqa: E731
        seconds = min(timeit.repeat(view, number=500, repeat=5))
        print(f"{count:>6} spills in the window: {seconds / 500 * 1e6:6.2f} us per view")


if __name__ == "__main__":
    main()
