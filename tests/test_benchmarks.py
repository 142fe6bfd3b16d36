"""The request and scale benchmarks (tests/bench/) at a tiny size, so that they keep working: each runs its whole path
(the in-process app, uvicorn over loopback for tideover and for the do-nothing extender, the cluster view under churn)
and prints its figures. The numbers are not judged here."""

from __future__ import annotations

import pytest

from tests.bench import bench_cold, bench_extender, bench_scale


def test_the_request_benchmark_times_every_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_extender.main(["--nodes", "10", "--requests", "20", "--budget", "0.5"]) == 0
    out = capsys.readouterr().out
    for path in ("service", "asgi", "loopback", "loopback-noop"):
        assert f" {path} " in out, path
    rows = [cells for cells in map(str.split, out.splitlines()) if len(cells) > 3 and cells[3] == "loopback"]
    assert len(rows) == 4  # filter and prioritize, each in both forms
    assert all(float(row[-1]) >= 0 for row in rows)  # the server CPU per request column is filled


def test_the_scale_benchmark_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--nodes", "20", "--pods", "600", "--events-per-second", "50", "--seconds", "1", "--candidates", "10",
            "--owner-sizes", "30,300"]
    assert bench_scale.main(args) == 0
    out = capsys.readouterr().out
    for figure in ("ReplicaSet of 30 pods", "ReplicaSet of 300 pods", "initial sync:", "snapshot build after sync",
                   "churn: ", "lag pod event -> snapshot", "controller rounds (", "filter ", "prioritize "):
        assert figure in out, figure


def test_the_cold_cache_benchmark_prints_both_servers_hot_and_cold(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_cold.main(["--nodes", "20", "--candidates", "8", "--pods", "5", "--evict-mib", "1"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    cases = {(kind, server, caches) for kind, server, caches, *_ in rows}
    servers, caches = ("tideover", "noop-empty"), ("hot", "cold")
    assert cases == {(k, s, c) for k in ("plain", "tolerating") for s in servers for c in caches}
    assert all(float(value) > 0 for *_, value in rows)  # per pod: filter + prioritize
