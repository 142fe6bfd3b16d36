"""The throughput benchmark (e2e/bench/throughput.py) at a tiny size, so that it keeps working: every configuration
and kind of pod runs once on real components, and every pod gets bound. Its numbers are not judged here."""

from __future__ import annotations

import pytest

from e2e.bench import throughput

pytestmark = pytest.mark.e2e


def test_the_throughput_benchmark_runs_every_configuration_and_binds_every_pod() -> None:
    lines: list[str] = []
    results = throughput.run(
        nodes=3, pods=4, rounds=1, configs=throughput.CONFIGS, kinds=throughput.KINDS, progress=lines.append,
        timeout=180.0,
    )
    assert set(results) == {(c, k) for c in throughput.CONFIGS for k in throughput.KINDS}
    for result in results.values():
        assert len(result.pods_per_second) == 1 and result.pods_per_second[0] > 0
        # The extenders' CPU is measured once a round; "none" runs no extender.
        assert len(result.cpu) == (0 if result.config == "none" else 1)
    table = throughput.report(results, throughput.CONFIGS, throughput.KINDS, pods=4)
    assert table.count("\n") == 1 + len(results)
