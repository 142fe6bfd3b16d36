"""The simulator's input and output: traces (YAML, CSV) with errors that name the field, and the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extender.cli import main
from extender.simulate.trace import TraceError, load_trace

GOOD_YAML = """
name: burst
durationSeconds: 900
workloads:
  - name: web
    cpu: 0.5
    memoryGib: 1
    annotations: {tideover.io/priority: economy}
    steps: [{atSeconds: 0, replicas: 1}, {atSeconds: 60, replicas: 8}]
cluster:
  pools: [{name: nodepool1, maxSize: 4, initial: 1}]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_yaml_trace_is_read(tmp_path: Path) -> None:
    trace = load_trace(write(tmp_path, "t.yaml", GOOD_YAML))
    assert trace.duration == 900
    assert [s.replicas for s in trace.workloads[0].steps] == [1, 8]
    assert trace.cluster.pools[0].max_size == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("workloads: [{name: web, memoryGib: 1, steps: [{atSeconds: 0, replicas: 1}]}]",
         "workloads[0].cpu: Field required"),
        ("workloads: [{name: web, cpu: -1, memoryGib: 1, steps: [{atSeconds: 0, replicas: 1}]}]", "workloads[0].cpu:"),
        ("workloads: [{name: web, cpu: 1, memoryGib: 1, steps: [{atSeconds: 0, replicas: x}]}]",
         "workloads[0].steps[0].replicas:"),
        ("workloads: [{name: web, cpu: 1, memoryGib: 1, stepz: []}]", "workloads[0].stepz: unknown key"),
        ("workloads: [{name: web, cpu: 1, memoryGib: 1, steps: [{atSeconds: 9, replicas: 1}, {atSeconds: 1, "
         "replicas: 2}]}]", "steps must be in time order"),
        ("workloads: [{name: j, kind: Job, cpu: 1, memoryGib: 1, steps: [{atSeconds: 0, replicas: 1}]}]",
         "a Job needs completions and run"),
        ("workloads: [{name: web, cpu: 1, memoryGib: 1, steps: [{atSeconds: 0, replicas: 1}]}]\n"
         "cluster: {pools: [{minSize: 3, maxSize: 2, initial: 3}]}", "cluster.pools[0]: minSize 3 is above maxSize 2"),
        ("workloads: [{name: web, cpu: true, memoryGib: 1, steps: [{atSeconds: 0, replicas: 1}]}]",
         "workloads[0].cpu: must be a number, got the boolean true"),
        ("- just a list", "(top level): must be a mapping"),
        ("workloads: [{name: web", "not valid YAML"),
    ],
)
def test_a_bad_yaml_trace_names_the_field(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(TraceError) as caught:
        load_trace(write(tmp_path, "t.yaml", text))
    assert expected in str(caught.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = "workloads: [{name: web, cpu: -1, memoryGib: 0, steps: [{atSeconds: -1, replicas: 1}]}]"
    with pytest.raises(TraceError) as caught:
        load_trace(write(tmp_path, "t.yaml", text))
    assert len(caught.value.problems) == 3


GOOD_CSV = """time_seconds,workload,replicas,cpu,memory_gib,spill
0,web,1,0.5,1,while-pending
60,web,20,,,
1860,web,2,,,
0,batch,0,1,2,
"""


def test_a_csv_trace_is_read(tmp_path: Path) -> None:
    trace = load_trace(write(tmp_path, "t.csv", GOOD_CSV))
    web, batch = trace.workloads
    assert [(s.at_seconds, s.replicas) for s in web.steps] == [(0, 1), (60, 20), (1860, 2)]
    assert (web.cpu, web.memory_gib, web.annotations) == (0.5, 1.0, {"tideover.io/spill": "while-pending"})
    assert (batch.cpu, batch.memory_gib) == (1.0, 2.0)
    assert trace.duration == 1860 + 1800


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("time_seconds,workload\n0,web\n", "header: missing column replicas"),
        ("time_seconds,workload,replicas,colour\n0,web,1,red\n", "header: unknown column colour"),
        ("time_seconds,workload,replicas,cpu,memory_gib\n0,web,1,1,1\n5,web,many,,\n",
         "workload web, change 2, column replicas:"),
        ("time_seconds,workload,replicas,cpu,memory_gib\n0,web,1,1,1\n5,web,2,2,\n",
         "row 3, column cpu: '2' differs from '1' on row 2"),
        ("time_seconds,workload,replicas,memory_gib\n0,web,1,1\n", "workload web, column cpu: Field required"),
        ("time_seconds,workload,replicas,cpu,memory_gib\n0,,1,1,1\n", "row 2, column workload: empty"),
    ],
)
def test_a_bad_csv_trace_names_row_or_workload_and_column(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(TraceError) as caught:
        load_trace(write(tmp_path, "t.csv", text))
    assert expected in str(caught.value)


# ---------------------------------------------------------------------------------------------- the command


def test_simulate_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--scenario", "seed-001", "--policies", "static,tideover-while-pending"]) == 0
    out = capsys.readouterr().out
    assert "| static recipe |" in out and "| tideover (while-pending) |" in out
    assert "of the static recipe's" in out


def test_simulate_json_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--scenario", "seed-002", "--seed", "3", "--json", "--policies", "vms-only,static"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scenario"] == "seed-002" and data["seed"] == 3
    assert [p["policy"] for p in data["policies"]] == ["vms-only", "static"]
    vms_only = data["policies"][0]
    assert vms_only["aciPodSeconds"] == 0 and vms_only["vmNodeHours"] > 1
    assert set(vms_only["waitSeconds"]) == {"p50", "p95", "max"}


def test_simulate_writes_a_self_contained_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["simulate", "--scenario", "seed-001", "--report", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {
        "placements.png", "cost.png", "waits.png", "table.md", "results.json", "report.html"
    }
    for name in ("placements.png", "cost.png", "waits.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert html.count('src="data:image/png;base64,') == 3
    assert "http://" not in html and "https://" not in html  # nothing fetched from elsewhere
    assert json.loads((out / "results.json").read_text())["policies"][0]["series"]["at"][0] == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--scenario", "seed-999"], "unknown scenario 'seed-999'"),
        (["--policies", "cheapest"], "unknown policy cheapest"),
        (["--trace", "{missing}"], "cannot read"),
        (["--trace", "{bad}"], "workloads[0].cpu"),
        (["--duration", "30"], "durationSeconds 30 must be after the last step (1860)"),
    ],
)
def test_simulate_bad_input_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    bad = write(tmp_path, "bad.yaml", "workloads: [{name: web, memoryGib: 1, steps: [{atSeconds: 0, replicas: 1}]}]")
    args = [a.format(missing=tmp_path / "nope.yaml", bad=bad) for a in args]
    assert main(["simulate", *args]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_simulate_duration_overrides_the_traces(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--policies", "static", "--duration", "2000", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["durationSeconds"] == 2000


def test_the_traces_in_the_docs_are_valid(tmp_path: Path) -> None:
    import re

    text = (Path(__file__).parent.parent / "docs" / "simulate.md").read_text()
    blocks = re.findall(r"```(yaml|csv)\n(.*?)```", text, re.S)
    assert [kind for kind, _ in blocks] == ["yaml", "csv"]
    for kind, body in blocks:
        trace = load_trace(write(tmp_path, f"doc.{kind}", body))
        assert trace.workloads[0].name == "web"
