"""Static checks of the kind path (e2e/kind/). Running it needs Docker, which CI does not have; these keep its
files consistent with the rest of the project (config/, e2e/harness/tideover.py, e2e/harness/cluster.py) without
running it. They carry no e2e marker, so every ``pytest e2e`` runs them; the kustomize check needs kubectl (skipped
without), the chart check the pinned helm (built on first use; skipped without Go).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.harness import chart
from e2e.harness.cluster import VIRTUAL_NODE_NAME, VIRTUAL_NODE_TAINT, LocalCluster
from e2e.harness.tideover import DEFAULT_CONFIG, ROOT
from e2e.kind.target import AUDIT_LOG, KIND_NODE_LABEL, NODE_PORT, SCHEDULER_CONFIG, tideover_config

KIND = ROOT / "e2e" / "kind"
CONFIG_DIR = "/etc/kubernetes/tideover"  # where the control-plane node and kube-scheduler see the generated config
SYSTEM_POOL_TAINT = {"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_every_yaml_file_parses() -> None:
    files = sorted(KIND.rglob("*.yaml"))
    assert len(files) >= 6
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, path


def test_tideover_config_is_the_e2e_default() -> None:
    assert _load(KIND / "tideover.yaml") == tideover_config()
    assert {k: v for k, v in tideover_config().items() if k != "server"} == {
        k: v for k, v in DEFAULT_CONFIG.items() if k != "server"
    }


def test_cluster_config_mounts_the_scheduler_config_and_exposes_the_node_port() -> None:
    cluster = _load(KIND / "cluster.yaml")
    assert (cluster["kind"], cluster["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert cluster["networking"]["kubeProxyMode"] == "iptables"  # localhost NodePorts
    control_plane, *workers = cluster["nodes"]
    assert control_plane["role"] == "control-plane"
    mounts = {m["containerPath"]: m for m in control_plane["extraMounts"]}
    mount = mounts[CONFIG_DIR]
    assert ROOT / mount["hostPath"] == SCHEDULER_CONFIG.parent  # relative to the root, where up.sh runs kind
    (port,) = control_plane["extraPortMappings"]
    assert (port["containerPort"], port["hostPort"], port["listenAddress"]) == (NODE_PORT, NODE_PORT, "127.0.0.1")

    patches = {p["apiVersion"]: p for p in map(yaml.safe_load, cluster["kubeadmConfigPatches"])
               if p["kind"] == "ClusterConfiguration"}
    assert set(patches) == {"kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"}
    # The audit policy and log of e2e/scenarios/test_rbac_e2e.py, mounted where the API server's flags point.
    policy = mounts["/etc/kubernetes/tideover-audit/policy.yaml"]
    assert (ROOT / policy["hostPath"]).is_file()
    assert ROOT / mounts["/var/log/tideover-audit"]["hostPath"] == AUDIT_LOG.parent
    v1beta3_api = patches["kubeadm.k8s.io/v1beta3"]["apiServer"]
    v1beta4_api = patches["kubeadm.k8s.io/v1beta4"]["apiServer"]
    assert v1beta3_api["extraArgs"] == {a["name"]: a["value"] for a in v1beta4_api["extraArgs"]}
    assert v1beta3_api["extraArgs"]["audit-log-path"] == f"/var/log/tideover-audit/{AUDIT_LOG.name}"
    config_file = f"{CONFIG_DIR}/{SCHEDULER_CONFIG.name}"
    v1beta3 = patches["kubeadm.k8s.io/v1beta3"]["scheduler"]
    v1beta4 = patches["kubeadm.k8s.io/v1beta4"]["scheduler"]
    assert v1beta3["extraArgs"] == {"config": config_file}
    assert v1beta4["extraArgs"] == [{"name": "config", "value": config_file}]
    assert v1beta3["extraVolumes"] == v1beta4["extraVolumes"]
    (volume,) = v1beta3["extraVolumes"]
    assert volume["hostPath"] == volume["mountPath"] == CONFIG_DIR
    assert volume["name"] != "kubeconfig"  # kubeadm's own volume for scheduler.conf

    key, value = KIND_NODE_LABEL
    assert len(workers) == 2
    for node in cluster["nodes"]:
        assert node["labels"][key] == value
    pools = {p["name"] for p in DEFAULT_CONFIG["vmPools"]["pools"]}
    for worker in workers:
        assert worker["role"] == "worker"
        assert worker["labels"]["kubernetes.azure.com/agentpool"] not in pools  # not a pool the scenarios count
        (join,) = map(yaml.safe_load, worker["kubeadmConfigPatches"])
        assert join["kind"] == "JoinConfiguration"
        assert join["nodeRegistration"]["taints"] == [SYSTEM_POOL_TAINT]


def test_rendered_scheduler_config_is_the_projects_pointed_at_the_node_port() -> None:
    script = KIND / "render-scheduler-config.sh"
    rendered = yaml.safe_load(subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True).stdout)
    source = _load(ROOT / "config" / "scheduler-config.yaml")
    assert rendered.pop("clientConnection") == {"kubeconfig": "/etc/kubernetes/scheduler.conf"}
    assert rendered.pop("leaderElection") == {"leaderElect": True}
    (extender,) = rendered["extenders"]
    assert extender["urlPrefix"] == f"http://127.0.0.1:{NODE_PORT}"
    extender["urlPrefix"] = source["extenders"][0]["urlPrefix"]
    assert rendered == source


def test_scripts_are_strict_bash() -> None:
    for script in sorted(KIND.glob("*.sh")):
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), script
        assert "\nset -euo pipefail\n" in text, script
        subprocess.run(["bash", "-n", str(script)], check=True)


def _helm_or_skip() -> None:
    if shutil.which("go") is None and not (chart.components.tool_dir("helm") / "helm").is_file():
        pytest.skip("helm is not built and Go is not installed to build it")


def test_chart_renders_tideover_for_kind() -> None:
    """up.sh's helm install: the chart with values.yaml and tideover.yaml, as the kind suite needs it."""
    _helm_or_skip()
    rendered = chart.template([KIND / "values.yaml"], files={"configFile": KIND / "tideover.yaml"})
    objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(rendered) if o}
    assert ("PodDisruptionBudget", "tideover") in objects and ("ClusterRole", "tideover") in objects
    tideover = objects[("Deployment", "tideover")]
    assert tideover["spec"]["replicas"] == 1
    spec = tideover["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert (container["image"], container["imagePullPolicy"]) == ("tideover:e2e", "Never")
    assert spec["nodeSelector"][KIND_NODE_LABEL[0]] == KIND_NODE_LABEL[1]
    assert {"key": "CriticalAddonsOnly", "operator": "Exists"} in spec["tolerations"]
    service = objects[("Service", "tideover")]["spec"]
    assert service["type"] == "NodePort"
    assert [p["nodePort"] for p in service["ports"]] == [NODE_PORT]
    config = objects[("ConfigMap", "tideover-config")]["data"]["tideover.yaml"]
    assert yaml.safe_load(config) == tideover_config()


def test_manifests_build_with_kustomize(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run([kubectl, "kustomize", str(KIND / "manifests")], capture_output=True, text=True, check=True)
    objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(out.stdout) if o}

    # The virtual node: as e2e/harness/cluster.py makes it.
    vk = objects[("Deployment", "virtual-kubelet")]["spec"]["template"]["spec"]
    (container,) = vk["containers"]
    assert (container["image"], container["imagePullPolicy"]) == ("tideover-virtual-kubelet:e2e", "Never")
    assert f"--nodename={VIRTUAL_NODE_NAME}" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["VKUBELET_TAINT_KEY"], env["VKUBELET_TAINT_VALUE"], env["VKUBELET_TAINT_EFFECT"]) == VIRTUAL_NODE_TAINT
    assert vk["nodeSelector"][KIND_NODE_LABEL[0]] == KIND_NODE_LABEL[1]
    provider = json.loads(objects[("ConfigMap", "virtual-kubelet-provider")]["data"]["provider.json"])
    assert provider == {VIRTUAL_NODE_NAME: LocalCluster(tmp_path).virtual_node_capacity}
