"""Karpenter / AKS Node Auto Provisioning at the CRD level (issue 15): the real ``karpenter.sh`` CRDs (from the
sigs.k8s.io/karpenter module pinned in e2e/versions.toml) on the real kube-apiserver; NodeClaims created and advanced
by this test through their status subresource, standing in for Karpenter and its provider. **No cloud provider and
no Karpenter controller run.** tideover's NodeClaim signal (extender/model/karpenter.py) reads what the API serves.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from e2e.harness.cluster import LocalCluster
from e2e.harness.karpenter import install_crds
from extender.model.capacity import CapacityState, PoolWait
from extender.model.config import Autoscaler
from extender.model.karpenter import NODEPOOL_LABEL, KarpenterSource, nodeclaim_facts

pytestmark = [pytest.mark.e2e]

GROUP, VERSION = "karpenter.sh", "v1"
NODEPOOL = "general"


def _claim(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "NodeClaim",
        "metadata": {"name": name, "labels": {NODEPOOL_LABEL: NODEPOOL}},
        "spec": {
            "nodeClassRef": {"group": "karpenter.azure.com", "kind": "AKSNodeClass", "name": "default"},
            "requirements": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}],
        },
    }


def _condition(kind: str, status: str, reason: str = "Test", message: str = "") -> dict[str, str]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": now}


def test_nodeclaims_launched_not_ready_are_pending_capacity(cluster: LocalCluster) -> None:
    api = cluster.api_client()
    for name in install_crds(api):
        cluster.wait_for(lambda n=name: any(
            c.type == "Established" and c.status == "True"
            for c in (k8s.ApiextensionsV1Api(api).read_custom_resource_definition(n).status.conditions or [])
        ), 30, f"CRD {name} Established")
    custom = k8s.CustomObjectsApi(api)

    def signal() -> Any:
        listed = custom.list_cluster_custom_object(GROUP, VERSION, "nodeclaims")
        claims = [nodeclaim_facts(item) for item in listed["items"]]
        wait = PoolWait(pool=NODEPOOL, node_group=NODEPOOL, nodes=(), provisioning_estimate_seconds=120)
        return KarpenterSource(claims, Autoscaler()).signal(wait, datetime.now(UTC))

    assert signal().state is CapacityState.NO_ACTIVITY
    # The apiserver validates against Karpenter's schema: a NodeClaim without its nodeClassRef is refused.
    bad = _claim("bad")
    del bad["spec"]["nodeClassRef"]
    with pytest.raises(ApiException) as refused:
        custom.create_cluster_custom_object(GROUP, VERSION, "nodeclaims", bad)
    assert refused.value.status == 422

    for name in ("general-a", "general-b"):
        custom.create_cluster_custom_object(GROUP, VERSION, "nodeclaims", _claim(name))
    created = signal()
    assert created.pending and created.state is CapacityState.SCALE_UP_IN_PROGRESS, created.describe()

    custom.patch_cluster_custom_object_status(GROUP, VERSION, "nodeclaims", "general-a",
                                              {"status": {"conditions": [_condition("Launched", "True")]}})
    custom.patch_cluster_custom_object_status(GROUP, VERSION, "nodeclaims", "general-b", {"status": {"conditions": [
        _condition("Launched", "False", "InsufficientCapacity", "no capacity for Standard_D4s_v5")]}})
    launching = signal()
    assert launching.pending and "1 NodeClaim(s) of NodePool general not Ready yet" in launching.evidence[0]
    assert launching.eta_seconds is not None and launching.eta_seconds <= 120

    custom.patch_cluster_custom_object_status(GROUP, VERSION, "nodeclaims", "general-a", {"status": {"conditions": [
        _condition("Launched", "True"), _condition("Registered", "True"), _condition("Initialized", "True"),
        _condition("Ready", "True")]}})
    time.sleep(0.2)
    done = signal()
    assert not done.pending and done.state is CapacityState.BACKOFF, done.describe()
    assert "InsufficientCapacity" in done.evidence[0] or "no capacity" in done.evidence[0]
    print(f"\n[e2e] NodeClaims on the real apiserver (no cloud provider): {created.describe()} -> "
          f"{launching.describe()} -> {done.describe()}")
