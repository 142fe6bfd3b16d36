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
from kubernetes.client.exceptions import ApiException

from e2e.harness.cluster import LocalCluster
from e2e.harness.karpenter import (
    GROUP,
    VERSION,
    StandIn,
    condition,
    install_crds_established,
    nodeclaim_manifest,
)
from extender.model.capacity import CapacityState, PoolWait
from extender.model.config import Autoscaler
from extender.model.karpenter import KarpenterSource, nodeclaim_facts

pytestmark = [pytest.mark.e2e]

NODEPOOL = "general"


def test_nodeclaims_launched_not_ready_are_pending_capacity(cluster: LocalCluster) -> None:
    install_crds_established(cluster)
    stand_in = StandIn(cluster.api_client())
    custom = stand_in.custom

    def signal() -> Any:
        listed = custom.list_cluster_custom_object(GROUP, VERSION, "nodeclaims")
        claims = [nodeclaim_facts(item) for item in listed["items"]]
        wait = PoolWait(pool=NODEPOOL, node_group=NODEPOOL, nodes=(), provisioning_estimate_seconds=120)
        return KarpenterSource(claims, Autoscaler()).signal(wait, datetime.now(UTC))

    assert signal().state is CapacityState.NO_ACTIVITY
    # The apiserver validates against Karpenter's schema: a NodeClaim without its nodeClassRef is refused.
    bad = nodeclaim_manifest("bad", NODEPOOL)
    del bad["spec"]["nodeClassRef"]
    with pytest.raises(ApiException) as refused:
        custom.create_cluster_custom_object(GROUP, VERSION, "nodeclaims", bad)
    assert refused.value.status == 422

    for name in ("general-a", "general-b"):
        stand_in.create_nodeclaim(name, NODEPOOL)
    created = signal()
    assert created.pending and created.state is CapacityState.SCALE_UP_IN_PROGRESS, created.describe()

    stand_in.set_status("general-a", condition("Launched"))
    stand_in.set_status("general-b", condition("Launched", "False", "InsufficientCapacity",
                                               "no capacity for Standard_D4s_v5"))
    launching = signal()
    assert launching.pending and "1 NodeClaim(s) of NodePool general not Ready yet" in launching.evidence[0]
    assert launching.eta_seconds is not None and launching.eta_seconds <= 120

    stand_in.set_status("general-a", condition("Launched"), condition("Registered"), condition("Initialized"),
                        condition("Ready"))
    time.sleep(0.2)
    done = signal()
    assert not done.pending and done.state is CapacityState.BACKOFF, done.describe()
    assert "InsufficientCapacity" in done.evidence[0] or "no capacity" in done.evidence[0]
    print(f"\n[e2e] NodeClaims on the real apiserver (no cloud provider): {created.describe()} -> "
          f"{launching.describe()} -> {done.describe()}")
