"""`tideover explain`: the server's decisions from a kubectl dump, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from extender.cli import main
from tests.support.factories import NOW, VIRTUAL_NODE, cluster, iso, pod, status_config_map, status_yaml


def _write_dump(tmp_path: Path, status: str | None, extra_pods: list[dict[str, Any]] | None = None) -> Path:
    items: list[dict[str, Any]] = [*cluster(2)]
    items.extend(extra_pods or [])
    if status is not None:
        items.append(status_config_map(status))
    path = tmp_path / "dump.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    return path


def _write_pod(tmp_path: Path, obj: dict[str, Any]) -> Path:
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(obj))
    return path


def _full_vms() -> list[dict[str, Any]]:
    # Each 2-CPU VM already runs a pod using 1.8 CPU: a 500m pod fits on neither.
    return [
        pod(f"busy-{i}", cpu="1800m", node_name=f"aks-nodepool1-00000{i}", tolerate_virtual=False) | {
            "status": {"phase": "Running"}
        }
        for i in range(2)
    ]


def test_explain_withholds_without_scale_up(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump = _write_dump(tmp_path, status_yaml("NoActivity", registered=2), _full_vms())
    pod_file = _write_pod(tmp_path, pod("web-7"))
    assert main(["explain", "--snapshot", str(dump), "--pod", str(pod_file), "--at", iso(NOW)]) == 0
    out = capsys.readouterr().out
    assert "aks-nodepool1-000000: rejected: insufficient cpu" in out
    assert f"candidates passed to tideover: {VIRTUAL_NODE}" in out
    assert "tideover filter: withheld-no-scale-up" in out
    assert "no VMSS scale-up in progress for pools [nodepool1] (autoscaler: NoActivity)" in out


def test_explain_spills_while_scale_up_in_progress_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump = _write_dump(tmp_path, status_yaml("InProgress", registered=2, target=3), _full_vms())
    pod_file = _write_pod(tmp_path, pod("web-8"))
    assert main(["explain", "--snapshot", str(dump), "--pod", str(pod_file), "--at", iso(NOW), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["outcome"] == "spill-capacity-pending"
    assert result["feasible"] == [VIRTUAL_NODE]
    assert "pending" in result["pools"]["nodepool1"]


def test_explain_scores_when_several_vms_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump = _write_dump(tmp_path, status_yaml("NoActivity", registered=2))
    pod_file = _write_pod(tmp_path, pod("web-9", tolerate_virtual=False))
    assert main(["explain", "--snapshot", str(dump), "--pod", str(pod_file), "--at", iso(NOW)]) == 0
    out = capsys.readouterr().out
    assert "tideover prioritize" in out
    assert f"{VIRTUAL_NODE}: rejected: untolerated taint virtual-kubelet.io/provider=azure:NoSchedule" in out


def test_explain_reports_missing_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump = _write_dump(tmp_path, None, _full_vms())
    pod_file = _write_pod(tmp_path, pod("web-10"))
    assert main(["explain", "--snapshot", str(dump), "--pod", str(pod_file)]) == 0
    assert "status ConfigMap not in the dump" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("dump_text", "pod_text", "message"),
    [
        pytest.param("kind: List\nitems: []\n", None, "no Node objects found", id="no-nodes"),
        pytest.param("{ bad", None, "not valid YAML", id="bad-dump"),
        pytest.param(None, "kind: Pod\nspec: []\n", "Pod.spec: must be an object", id="bad-pod"),
        pytest.param(None, "", "expected one Pod, found 0", id="empty-pod"),
    ],
)
def test_explain_bad_input_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dump_text: str | None, pod_text: str | None, message: str
) -> None:
    dump = _write_dump(tmp_path, None)
    if dump_text is not None:
        dump.write_text(dump_text)
    pod_file = _write_pod(tmp_path, pod())
    if pod_text is not None:
        pod_file.write_text(pod_text)
    assert main(["explain", "--snapshot", str(dump), "--pod", str(pod_file)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        pytest.param(lambda node: node["status"]["allocatable"].update(cpu=10**400), "too large", id="huge-cpu"),
        pytest.param(lambda node: node["metadata"].update(labels=["not", "a", "map"]), "labels", id="bad-labels"),
        pytest.param(lambda node: node["status"].update(allocatable={"cpu": "lots"}), "'lots'", id="bad-quantity"),
    ],
)
def test_explain_a_bad_node_in_the_dump_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate: Any, message: str
) -> None:
    """Issue 11: a bad Node in a dump gave a traceback (explain() ran outside the error handling)."""
    nodes = cluster(2)
    mutate(nodes[0])
    dump = tmp_path / "dump.yaml"
    dump.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": nodes}))
    assert main(["explain", "--snapshot", str(dump), "--pod", str(_write_pod(tmp_path, pod()))]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def _dump_with(extra: dict[str, Any]) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [*cluster(2), extra]})


STATUS_CM = {"kind": "ConfigMap", "metadata": {"namespace": "kube-system", "name": "cluster-autoscaler-status"}}
NESTED = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    ("which", "content", "expected"),
    [
        pytest.param("dump", b"kind: List\nitems: [\xff]\n", "dump.yaml: byte 19: not UTF-8 text", id="dump-not-utf8"),
        pytest.param("pod", b"kind: Pod\nmetadata: {name: \xc3}\n", "pod.yaml: byte 27: not UTF-8 text",
                     id="pod-not-utf8"),
        pytest.param("dump", f"kind: List\nitems: {NESTED}\n".encode(), "dump.yaml: line 2, column", id="dump-deep"),
        pytest.param("pod", f"kind: Pod\nmetadata: {NESTED}\n".encode(), "pod.yaml: line 2, column", id="pod-deep"),
        pytest.param("pod", b"kind: Pod\nspec: {containers: [{resources: {requests: {cpu: " + b"7" * 5000 + b"}}}]}\n",
                     "pod.yaml: line 2, column 50: not a usable value: an integer of 5000 digits is too large",
                     id="pod-5000-digits"),
        pytest.param("pod", b"kind: Pod\nspec: {containers: [{resources: {requests: {cpu: 1" + b"0" * 400 + b"}}}]}\n",
                     "pod.yaml: Pod.spec.containers[0].resources.requests.cpu: is not a finite, non-negative quantity",
                     id="pod-cpu-1e400"),
        pytest.param("dump", b"kind: List\nitems: 7\n", "dump.yaml: document 1: items: must be a list, got int",
                     id="list-items-7"),
        pytest.param("dump", b"kind: List\nitems: [7]\n", "dump.yaml: items[0]: must be a Kubernetes object, got int",
                     id="list-item-7"),
        pytest.param("dump", _dump_with({"kind": "Pod", "metadata": 5}).encode(),
                     "dump.yaml: items[3] (Pod): Pod.metadata: must be an object, got int", id="dump-pod-metadata-5"),
        pytest.param("dump", _dump_with({**STATUS_CM, "data": [1, 2]}).encode(),
                     "dump.yaml: items[3] (ConfigMap kube-system/cluster-autoscaler-status): ConfigMap.data: must be "
                     "an object, got list", id="configmap-data-list"),
        pytest.param("dump", _dump_with({"kind": "Node", "metadata": {"name": "n"}, "spec": {"taints": [
            {"key": ["k"], "effect": "NoSchedule"}]}}).encode(),
                     "dump.yaml: items[3] (Node n): Node.spec.taints[0].key: must be a string, got list",
                     id="node-taint-key-list"),
        pytest.param("dump", _dump_with({"kind": "Node", "metadata": {"name": "n"}, "status": {"images": [
            {"names": ["a"], "sizeBytes": 10**400}]}}).encode(),
                     "dump.yaml: items[3] (Node n): Node.status.images[0].sizeBytes: is not a finite", id="node-image"),
        pytest.param("dump", _dump_with({"kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}, "spec": {
            "containers": [{"resources": {"requests": {"memory": "1e400"}}}]}}).encode(),
                     "dump.yaml: items[3] (Pod ns/p): Pod.spec.containers[0].resources.requests.memory: '1e400' is not",
                     id="dump-pod-memory-1e400"),
        pytest.param("dump", b"kind: List\nitems:\n- kind: [Node]\n", "dump.yaml: items[0]: kind: must be a string",
                     id="kind-a-list"),
    ],
)
def test_every_bad_input_is_one_message_naming_file_object_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str, content: bytes, expected: str
) -> None:
    """Issue 11: each of these gave a traceback (UnicodeDecodeError, RecursionError, ValueError, TypeError,
    AttributeError, OverflowError), or, for a bad Pod in the dump, was silently left out of the counts."""
    dump, pod_file = tmp_path / "dump.yaml", tmp_path / "pod.yaml"
    dump.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": cluster(2)}))
    pod_file.write_text(yaml.safe_dump(pod()))
    (dump if which == "dump" else pod_file).write_bytes(content)
    assert main(["explain", "--snapshot", str(dump), "--pod", str(pod_file)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"error: {tmp_path}/{expected}"), err


def test_explain_reads_karpenter_nodeclaims_and_nodepools(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A Node Auto Provisioning dump (no status ConfigMap): with capacitySignal auto, a NodeClaim launched and not
    Ready makes its NodePool pending, and the pod spills; without the claim it waits, in Karpenter's words."""
    config = tmp_path / "tideover.yaml"
    config.write_text(yaml.safe_dump({"autoscaler": {"capacitySignal": "auto"},
                                      "vmPools": {"poolLabel": "karpenter.sh/nodepool"}}))
    nodes = [*cluster(2)]
    for node in nodes[:2]:
        node["metadata"]["labels"]["karpenter.sh/nodepool"] = "general"
    busy = [pod(f"busy-{i}", cpu="1800m", node_name=nodes[i]["metadata"]["name"], tolerate_virtual=False)
            | {"status": {"phase": "Running"}} for i in range(2)]
    nodepool = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "general"}}
    claim = {"apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
             "metadata": {"name": "general-x1", "labels": {"karpenter.sh/nodepool": "general"},
                          "creationTimestamp": iso(NOW)},
             "status": {"conditions": [{"type": "Launched", "status": "True"}]}}
    pod_file = _write_pod(tmp_path, pod("web-11"))
    outcomes = []
    for extra in ([], [claim]):
        dump = tmp_path / "dump.yaml"
        dump.write_text(yaml.safe_dump({"kind": "List", "items": [*nodes, *busy, nodepool, *extra]}))
        assert main(["explain", "--snapshot", str(dump), "--pod", str(pod_file), "--config", str(config),
                     "--at", iso(NOW), "--json"]) == 0
        outcomes.append(json.loads(capsys.readouterr().out))
    assert outcomes[0]["outcome"] == "withheld-no-scale-up"
    assert "no NodeClaim launching for NodePools [general]" in outcomes[0]["reason"]
    assert outcomes[1]["outcome"] == "spill-capacity-pending"
    assert "karpenter: 1 NodeClaim(s) of NodePool general not Ready yet" in outcomes[1]["reason"]
