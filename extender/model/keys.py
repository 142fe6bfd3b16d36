"""Every well-known key tideover reads or writes: pod annotations, node annotations, labels and taints.

One home and one name for each. The users' side (what a workload sets) is documented in
:mod:`extender.model.policy`; tideover's own marks are documented where they are written
(:mod:`extender.controllers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

PREFIX: Final = "tideover.io/"

# --- pod annotations a workload sets (pod template), read by extender.model.policy ---------------------------------
SPILL: Final = PREFIX + "spill"
PRIORITY: Final = PREFIX + "priority"
MAX_WAIT_SECONDS: Final = PREFIX + "max-wait-seconds"
MAX_VIRTUAL_REPLICAS: Final = PREFIX + "max-virtual-replicas"
MAX_VIRTUAL_PERCENT: Final = PREFIX + "max-virtual-percent"

# --- the gate: the taint on virtual nodes while no VM capacity is pending, and the node annotation that says why ---
# One key for both: the taint tideover.io/spill-window=closed:NoSchedule and the annotation
# tideover.io/spill-window: "open|closed since <time>: <why>" (extender.controllers.gate).
GATE: Final = PREFIX + "spill-window"
GATE_TAINT: Final[Mapping[str, str]] = MappingProxyType({"key": GATE, "value": "closed", "effect": "NoSchedule"})
# Node annotation on virtual nodes: the pools with capacity pending, comma-separated ("" when none).
CAPACITY_PENDING: Final = PREFIX + "capacity-pending"
# Node annotation on virtual nodes: the pools whose scale-up is stuck (autoscaler.stuckAfterSeconds), comma-separated.
SCALE_UP_STUCK: Final = PREFIX + "scale-up-stuck"

# --- scale-down preference (extender.controllers.loop) ---------------------------------------------------------------
# Kubernetes' ReplicaSet scale-down ranking (best-effort, int32 as text).
POD_DELETION_COST: Final = "controller.kubernetes.io/pod-deletion-cost"
# "managed" on pods whose deletion cost tideover set (a cost without it is the user's and is left alone).
DELETION_COST_MARKER: Final = PREFIX + "deletion-cost"

# --- returns: VMs kept from scale-down while spilled pods move back to them (extender.controllers.loop) -----------
SCALE_DOWN_DISABLED: Final = "cluster-autoscaler.kubernetes.io/scale-down-disabled"
# "true" on nodes tideover protected, so it releases only its own protection.
RETURN_TARGET_MARKER: Final = PREFIX + "return-target"

# --- cluster-autoscaler's marks ---------------------------------------------------------------------------------------
# On its status ConfigMap (Go time.Time.String() format).
AUTOSCALER_LAST_UPDATED: Final = "cluster-autoscaler.kubernetes.io/last-updated"
# Taints on nodes it is removing, or considering removing.
TO_BE_DELETED: Final = "ToBeDeletedByClusterAutoscaler"
AUTOSCALER_DELETION_TAINTS: Final = frozenset({TO_BE_DELETED, "DeletionCandidateOfClusterAutoscaler"})

# --- virtual nodes v2's pod annotations (microsoft/virtualnodesOnAzureContainerInstances Docs/PodCustomizations.md) --
# "false": no kube-proxy sidecar in the pod's container group (the default is to inject one).
INJECT_KUBE_PROXY: Final = "microsoft.containerinstance.virtualnode.injectkubeproxy"
# A confidential pod's policy: such a pod never gets the kube-proxy sidecar, whatever INJECT_KUBE_PROXY says.
CCE_POLICY: Final = "microsoft.containerinstance.virtualnode.ccepolicy"

# --- well-known node labels ------------------------------------------------------------------------------------------
OS_LABELS: Final = ("kubernetes.io/os", "beta.kubernetes.io/os")
# Labels that differ node by node, so a pool's template of its *next* node must not carry them.
PER_NODE_LABELS: Final = frozenset(
    {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.disk.csi.azure.com/zone",
    }
)
# Taints that describe a node's current state, not its pool.
TRANSIENT_TAINT_PREFIXES: Final = ("node.kubernetes.io/", "node.cloudprovider.kubernetes.io/")
