"""tideover's configuration file: one YAML document, validated as a whole.

Every field has a default that works on AKS with the virtual-node add-on; the comment on each says its
unit and why the default was chosen. Keys are camelCase, as in Kubernetes' own config files. Unknown keys
are rejected (a typo must not silently fall back to a default), and all errors are reported at once,
each with its path (``vmPools.pools[0].pricePerHour: ...``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from ipaddress import IPv4Network
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from extender.model.policy import Priority
from scoring.cost import GIB, virtual_cost_per_hour

API_VERSION: Final = "tideover.io/v1alpha1"
KIND: Final = "TideoverConfiguration"



def _not_a_boolean(value: Any) -> Any:
    """YAML's true/false are not numbers: pydantic would take ``port: true`` as port 1."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got the boolean {str(value).lower()}")
    return value


PositiveFloat = Annotated[float, BeforeValidator(_not_a_boolean), Field(gt=0)]
NonNegativeFloat = Annotated[float, BeforeValidator(_not_a_boolean), Field(ge=0)]
Int = Annotated[int, BeforeValidator(_not_a_boolean)]


class _Model(BaseModel):
    # allow_inf_nan=False: .inf or .nan in a weight, price, size or duration would pass every bound and then break
    # the scores (500s) or the view; a non-finite number is an error at load, with its path.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, validate_default=True,
        allow_inf_nan=False,
    )


class TaintSpec(_Model):
    key: str = Field(min_length=1, description="The taint's key.")
    value: str = Field(default="", description="The taint's value (may be empty).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(description="The taint's effect.")

    def as_json(self) -> dict[str, str]:
        taint = {"key": self.key, "effect": self.effect}
        if self.value:
            taint["value"] = self.value
        return taint


class NodeTemplate(_Model):
    """Labels and taints the pool's *new* nodes will carry: what a pending pod is matched against."""

    labels: dict[str, str] = Field(default_factory=dict, description="Labels a new node of the pool carries.")
    taints: list[TaintSpec] = Field(default_factory=list, description="Taints a new node of the pool carries.")


class VirtualNodePricing(_Model):
    vcpu_per_second: PositiveFloat = Field(
        default=0.000012,
        description=(
            "USD per vCPU-second. ACI Linux pay-as-you-go list price (about $0.000012 in public sources in 2026); "
            "check your region's price page."
        ),
    )
    gib_per_second: PositiveFloat = Field(
        default=0.0000013,
        description=(
            'USD per GiB-second of memory (ACI "GB"; about $0.0000013).'
        ),
    )
    min_cpu: NonNegativeFloat = Field(
        default=1.0,
        description=(
            "ACI allocates at least this much for a container group, whatever the pod requests: a pod without "
            "requests still pays for it (cores / GiB)."
        ),
    )
    min_memory_gib: NonNegativeFloat = Field(
        default=1.5, description="GiB of memory ACI allocates at the least for a container group (see minCpu)."
    )
    sidecar_cpu: NonNegativeFloat = Field(
        default=0.0,
        description=(
            "Cores added to every pod's container group by the provider (cores). Virtual nodes v2 (the Helm-based "
            "virtual nodes on ACI) inject a kube-proxy sidecar that reserves 0.1 core by default (its Helm value "
            "kubeProxy.reservedCPUCores): set 0.1 there. The legacy AKS virtual node add-on adds none: 0. Not "
            "charged to a pod annotated microsoft.containerinstance.virtualnode.injectkubeproxy: \"false\", nor to "
            "a confidential pod (it has a microsoft.containerinstance.virtualnode.ccepolicy): neither gets the "
            "sidecar."
        ),
    )
    sidecar_memory_gib: NonNegativeFloat = Field(
        default=0.0,
        description=(
            "GiB of memory added to every pod's container group by the provider. Virtual nodes v2: 0.1 by default "
            "(Helm value kubeProxy.reservedMemoryGB; ACI's GB, taken as GiB). Legacy add-on: 0."
        ),
    )

    def pod_cost_per_hour(self, cpu: float, memory: float, *, sidecar: bool = True) -> float:
        """USD per hour for a pod requesting ``cpu`` cores and ``memory`` bytes on the virtual node (plus the
        provider's sidecar unless the pod opts out, ``sidecar`` False; before ACI's minimum allocation)."""
        extra_cpu, extra_gib = (self.sidecar_cpu, self.sidecar_memory_gib) if sidecar else (0.0, 0.0)
        return virtual_cost_per_hour(
            cpu + extra_cpu, memory + extra_gib * GIB,
            vcpu_price_per_second=self.vcpu_per_second, gib_price_per_second=self.gib_per_second,
            min_cpu=self.min_cpu, min_memory=self.min_memory_gib * GIB,
        )


# Volume sources (the key of an entry in pod.spec.volumes) the ACI provider mounts: virtual-kubelet/azure-aci's
# getVolumes handles exactly these and rejects any other ("requires volume ... of an unsupported type"). No
# persistentVolumeClaim (AKS: "virtual nodes don't support persistent volumes"; mount Azure Files inline),
# no hostPath (there is no host), no ephemeral (it is a PVC), and no top-level downwardAPI volume (a
# downwardAPI source inside a projected volume, as in every pod's kube-api-access volume, is skipped).
ACI_VOLUME_TYPES: Final = ("configMap", "secret", "emptyDir", "projected", "azureFile", "gitRepo", "csi")


class ProviderProfile(_Model):
    """What a Virtual Kubelet provider can run. A pod that needs anything else is never spilled to it.

    The defaults describe ACI behind the AKS virtual node (virtual-kubelet/azure-aci and the AKS docs), and
    a profile for another provider starts from them: list only what differs.
    """

    display_name: str | None = Field(
        default=None,
        description=(
            'How reasons name the provider ("ACI cannot run this pod: ..."). Unset: the profile\'s name.'
        ),
    )
    operating_systems: list[str] = Field(
        default_factory=lambda: ["linux"],
        description=(
            "Operating systems the provider's nodes run, matched against pod.spec.os.name and a nodeSelector on "
            "kubernetes.io/os. AKS virtual nodes run Linux pods only."
        ),
    )
    volume_types: list[str] = Field(
        default_factory=lambda: list(ACI_VOLUME_TYPES),
        description=(
            "Volume sources the provider mounts (see ACI_VOLUME_TYPES for why these)."
        ),
    )
    csi_drivers: list[str] = Field(
        default_factory=lambda: ["file.csi.azure.com"],
        description=(
            'For a csi volume: drivers the provider mounts. ACI mounts Azure Files only (azure-aci: "Disk is not '
            'supported by ACI").'
        ),
    )
    host_network: bool = Field(
        default=False,
        description=(
            "hostNetwork, hostPort, hostPID, hostIPC: there is no host to share. ACI gives each pod its own IP in "
            'the delegated subnet (seed: "No host networking: cannot use hostPort or hostNetwork").'
        ),
    )
    host_ports: bool = Field(default=False, description="Containers' hostPort: there is no host (see hostNetwork).")
    host_pid: bool = Field(default=False, alias="hostPID", description="hostPID: there is no host to share.")
    host_ipc: bool = Field(default=False, alias="hostIPC", description="hostIPC: there is no host to share.")
    privileged: bool = Field(
        default=False,
        description=(
            'Privileged containers: ACI rejects elevated security contexts (seed: "No privileged containers").'
        ),
    )
    allowed_capabilities: list[str] = Field(
        default_factory=list,
        description=(
            "Linux capabilities a container may add (securityContext.capabilities.add, without the CAP_ prefix). "
            "ACI grants none beyond the runtime's defaults."
        ),
    )
    extended_resources: list[str] = Field(
        default_factory=list,
        description=(
            "Resources beyond cpu, memory and ephemeral-storage that the provider advertises (e.g. nvidia.com/gpu "
            "where ACI offers GPU container groups in your region). Default none: ACI's GPU SKUs are not in every "
            "region, and a pod asking for one elsewhere fails to start."
        ),
    )
    init_containers: Literal["allowed", "restricted", "forbidden"] = Field(
        default="restricted",
        description=(
            'Init containers: "allowed"; "restricted", run only when they have no resources, ports or liveness/'
            'readiness probes (azure-aci rejects those: "initContainers do not support resources requests"); or '
            '"forbidden" (the AKS add-on docs list init containers as unsupported: use this where yours lacks '
            "them)."
        ),
    )
    probe_handlers: list[str] = Field(
        default_factory=lambda: ["exec", "httpGet"],
        description=(
            "Liveness/readiness probe handlers the provider runs. ACI runs exec and httpGet; azure-aci rejects "
            'tcpSocket and grpc probes ("probe must specify one of exec and httpGet").'
        ),
    )
    startup_probes: bool = Field(
        default=False,
        description=(
            "startupProbe: ACI does not run it, so a liveness probe tuned to follow it would kill a slow start."
        ),
    )
    lifecycle_hooks: bool = Field(
        default=False,
        description=(
            'postStart/preStop hooks: "virtual nodes don\'t support container hooks" (AKS docs), so a preStop '
            "drain would not happen."
        ),
    )
    host_aliases: bool = Field(
        default=False,
        description=(
            "spec.hostAliases: not supported on AKS virtual nodes (AKS docs); the names would not resolve."
        ),
    )
    args_without_command: bool = Field(
        default=False,
        description=(
            'args without command: ACI has no separate entrypoint override, and azure-aci rejects it ("ACI does '
            'not support providing args without specifying the command").'
        ),
    )

    def name_for(self, key: str) -> str:
        return self.display_name or key


# Profiles every config has; virtualNodes.profiles may add others or replace these.
BUILTIN_PROFILES: Final[Mapping[str, ProviderProfile]] = {"aci": ProviderProfile(display_name="ACI")}

# Azure reserves 5 addresses in every subnet (network, broadcast, the default gateway and two for DNS).
AZURE_RESERVED_IPS_PER_SUBNET: Final = 5


class VirtualSubnet(_Model):
    cidr: IPv4Network | None = Field(
        default=None,
        description=(
            "The subnet delegated to ACI (Microsoft.ContainerInstance/containerGroups), e.g. 10.241.0.0/16: every "
            "pod on the virtual node takes one of its IPs. Usable IPs: 2^(32-prefix) - 5 (a /24 gives 251). "
            "Unset, with maxPods unset too: tideover does not limit the count (the virtual node's own pod "
            "capacity still does)."
        ),
    )
    max_pods: Int | None = Field(
        default=None, ge=1,
        description=(
            "Pods on virtual nodes at most, when you would rather give a number than the subnet (or a smaller "
            "one). With both, the smaller limit holds."
        ),
    )
    reserve: Int = Field(
        default=5, ge=0,
        description=(
            "IPs kept free (pods). A deleted pod's container group holds its IP until ACI has deleted it, and "
            "spills tideover has allowed are counted only once their pods are bound: 5 covers both for bursts of "
            "the usual size."
        ),
    )

    @field_validator("cidr")
    @classmethod
    def _azure_subnet_size(cls, cidr: IPv4Network | None) -> IPv4Network | None:
        if cidr is not None and cidr.prefixlen > 29:
            raise ValueError(f"/{cidr.prefixlen} is smaller than the smallest Azure subnet (/29)")
        return cidr

    @property
    def usable_ips(self) -> int | None:
        if self.cidr is None:
            return None
        return cidr_usable_ips(self.cidr)

    @property
    def limit(self) -> int | None:
        """Pods the virtual side may hold at most (before the reserve), or None for no limit."""
        limits = [n for n in (self.usable_ips, self.max_pods) if n is not None]
        return min(limits) if limits else None


def cidr_usable_ips(cidr: IPv4Network) -> int:
    """IPs of an Azure subnet that ACI can hand out: all but the 5 Azure reserves (/24 -> 251)."""
    return max(0, cidr.num_addresses - AZURE_RESERVED_IPS_PER_SUBNET)


class VirtualNodes(_Model):
    selector: dict[str, str] = Field(
        default_factory=lambda: {"type": "virtual-kubelet"},
        description=(
            "A node is virtual when it carries all these labels. AKS's virtual node and every Virtual Kubelet "
            "provider set type=virtual-kubelet."
        ),
    )
    pricing: VirtualNodePricing = Field(default_factory=VirtualNodePricing)
    cold_start_seconds: NonNegativeFloat = Field(
        default=15.0,
        description=(
            "Seconds from scheduling to running on ACI without the image pull: container-group creation. Public "
            "reports put ACI starts at 20-60 s including pulls; 15 s is the non-pull part."
        ),
    )
    pull_bytes_per_second: PositiveFloat = Field(
        default=30e6,
        description=(
            "Bytes per second ACI pulls images at (no image cache is assumed on ACI). 30 MB/s makes a 900 MB "
            "image take 30 s, in line with reported ACI starts of up to 110 s for such images."
        ),
    )
    profile: str = Field(
        default="aci", min_length=1,
        description=(
            "Which provider profile describes what the virtual nodes can run: a key of `profiles`, or a built-in "
            "(aci)."
        ),
    )
    profiles: dict[str, ProviderProfile] = Field(
        default_factory=dict,
        description=(
            "Provider profiles by name, beside (or replacing) the built-in aci."
        ),
    )
    subnet: VirtualSubnet = Field(
        default_factory=VirtualSubnet,
        description=(
            "The ACI subnet's capacity: tideover stops spilling before it runs out of IPs."
        ),
    )
    namespace_spend_caps_per_hour: dict[str, NonNegativeFloat] = Field(
        default_factory=dict,
        description=(
            "USD per hour: the most a namespace's pods on virtual nodes may cost together (estimated from their "
            "requests at `pricing`); a spill that would go past it is withheld. Namespace -> cap."
        ),
    )
    default_namespace_spend_cap_per_hour: NonNegativeFloat | None = Field(
        default=None,
        description=(
            "USD per hour for every namespace not listed above. Unset: no cap."
        ),
    )
    max_pods_per_node: Int | None = Field(
        default=None, ge=1,
        description=(
            "Pods one virtual node holds; the filter keeps only virtual nodes with room. Unset: each node's "
            "status.allocatable.pods. Virtual nodes v2 hold at most 200 pods per node (one StatefulSet replica "
            "each; add replicas for more): set 200 if your nodes report more. Legacy add-on: leave unset."
        ),
    )
    gate_taint: bool = Field(
        default=True,
        description=(
            "While no VM pool has capacity pending, taint the virtual nodes "
            "tideover.io/spill-window=closed:NoSchedule. cluster-autoscaler simulates scheduling without "
            "extenders: to it, a pending pod that tolerates the virtual node fits there, so it never adds a VM "
            "for it. The taint shows it the pod does not fit, so it scales up; once the scale-up is pending the "
            "taint comes off and the pod may spill. Workloads that must run now (tideover.io/spill: when-full) "
            "also tolerate tideover.io/spill-window. Karpenter (Node Auto Provisioning) needs the taint too: it "
            "counts every node, the virtual one included, as an existing node a pending pod may fit on. Set false "
            "only where neither runs."
        ),
    )

    @field_validator("selector")
    @classmethod
    def _selector_not_empty(cls, selector: dict[str, str]) -> dict[str, str]:
        if not selector:
            raise ValueError("must name at least one label, or every node would be virtual")
        return selector

    @model_validator(mode="after")
    def _known_profile(self) -> VirtualNodes:
        known = {*BUILTIN_PROFILES, *self.profiles}
        if self.profile not in known:
            raise ValueError(f"profile {self.profile!r} is not defined; known: {', '.join(sorted(known))}")
        return self

    def provider_profile(self) -> tuple[str, ProviderProfile]:
        """The selected profile's name and rules."""
        profile = self.profiles.get(self.profile) or BUILTIN_PROFILES[self.profile]
        return self.profile, profile

    def namespace_spend_cap(self, namespace: str) -> float | None:
        """USD per hour the namespace's pods on virtual nodes may cost together, or None for no cap."""
        return self.namespace_spend_caps_per_hour.get(namespace, self.default_namespace_spend_cap_per_hour)


class VmPool(_Model):
    name: str = Field(
        min_length=1,
        description=(
            "The pool's value of vmPools.poolLabel (the AKS agent pool name)."
        ),
    )
    node_group: str | None = Field(
        default=None,
        description=(
            "The cluster-autoscaler node group of this pool (on AKS the VMSS name, e.g. "
            "aks-nodepool1-12345678-vmss). Defaults to the pool name."
        ),
    )
    price_per_hour: PositiveFloat | None = Field(
        default=None,
        description=(
            "USD per hour for one node of this pool (D2s_v5 pay-as-you-go: about $0.096)."
        ),
    )
    template: NodeTemplate | None = Field(
        default=None,
        description=(
            "Labels/taints of the nodes a scale-up adds. Unset: taken from a current node of the pool (minus "
            "per-node labels), or just the pool label when the pool has no node."
        ),
    )
    provisioning_seconds: PositiveFloat | None = Field(
        default=None,
        description=(
            "Seconds from a scale-up's start until its node is Ready, before any is observed. Unset: the global "
            "vmPools.provisioningSeconds."
        ),
    )

    @property
    def autoscaler_node_group(self) -> str:
        return self.node_group or self.name


class VmPools(_Model):
    pool_label: str = Field(
        default="kubernetes.azure.com/agentpool", min_length=1,
        description=(
            "Label whose value names a node's pool. AKS sets kubernetes.azure.com/agentpool on every VM node."
        ),
    )
    pools: list[VmPool] = Field(
        default_factory=list,
        description="The pools tideover should know more of than their nodes' label says (price, node group, "
        "template, provisioning time); a pool not listed is discovered from its nodes' label, with the defaults.",
    )
    default_price_per_hour: PositiveFloat = Field(
        default=0.096,
        description=(
            "USD per hour for a node of a pool not listed above (D2s_v5 price: the AKS default VM size)."
        ),
    )
    provisioning_seconds: PositiveFloat = Field(
        default=240.0,
        description=(
            "Seconds from a VMSS scale-up's start (with Karpenter: a NodeClaim's creation) until the new node is "
            "Ready, until observed times refine it. "
            "Public reports: 2-4 minutes usually, up to 15 for a first node; 240 s is the common case."
        ),
    )
    pod_start_seconds: NonNegativeFloat = Field(
        default=2.0,
        description=(
            "Seconds for a pod to start on a VM that already has its image (Kubernetes' pod-startup SLO is 5 s at "
            "p99 without pulls; 2 s is typical)."
        ),
    )
    pull_bytes_per_second: PositiveFloat = Field(
        default=100e6,
        description=(
            "Bytes per second a VM pulls images at (Azure VMs from ACR in region: 100 MB/s is conservative)."
        ),
    )

    @field_validator("pools")
    @classmethod
    def _unique_pools(cls, pools: list[VmPool]) -> list[VmPool]:
        names = [pool.name for pool in pools]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"pool names must be unique; repeated: {', '.join(duplicates)}")
        return pools

    def configured(self, name: str | None) -> VmPool | None:
        """The pool's entry in ``pools``, or None for a pool known only from its nodes' label."""
        return next((pool for pool in self.pools if pool.name == name), None) if name is not None else None

    def pool(self, name: str) -> VmPool:
        """The pool's settings: its entry, or the defaults for a pool not listed."""
        return self.configured(name) or VmPool(name=name)

    def price_per_hour(self, pool_name: str | None) -> float:
        """USD per hour for one node of the pool."""
        configured = self.configured(pool_name)
        if configured is not None and configured.price_per_hour is not None:
            return configured.price_per_hour
        return self.default_price_per_hour


class Autoscaler(_Model):
    capacity_signal: Literal["cluster-autoscaler", "karpenter", "auto"] = Field(
        default="cluster-autoscaler",
        description=(
            "Where tideover reads that VM capacity is pending. cluster-autoscaler (default; AKS's cluster "
            "autoscaler on VMSS node pools): its status ConfigMap (below) and the pools' new nodes. karpenter "
            "(AKS Node Auto Provisioning, managed Karpenter, which writes no status ConfigMap): the karpenter.sh/v1 "
            "NodeClaims of each NodePool (launched but not Ready yet); the pools are the NodePools, so set "
            "vmPools.poolLabel to karpenter.sh/nodepool. auto: karpenter while the NodeClaim CRD is served and "
            "the status ConfigMap does not exist, else cluster-autoscaler. The default needs no access to "
            "Karpenter's objects; the chart grants list/watch on nodeclaims and nodepools only for karpenter "
            "and auto. Gate, reasons, ETA and the stuck check are the same for both."
        ),
    )
    status_namespace: str = Field(
        default="kube-system", min_length=1,
        description=(
            "Where cluster-autoscaler writes its status (its --status-config-map-name, default namespace)."
        ),
    )
    status_config_map: str = Field(
        default="cluster-autoscaler-status", min_length=1,
        description="The status ConfigMap's name (cluster-autoscaler's --status-config-map-name).",
    )
    status_max_age_seconds: PositiveFloat = Field(
        default=180.0,
        description=(
            "Seconds after which the status is ignored: CA rewrites it every loop (10 s by default), so a status "
            '3 minutes old means CA is not running and its last "InProgress" is no promise.'
        ),
    )
    new_node_window_seconds: PositiveFloat = Field(
        default=900.0,
        description=(
            "Seconds a node may be not-Ready after creation and still count as capacity arriving (VM boot plus "
            "kubelet start). CA's own max-node-provision-time is 15 minutes."
        ),
    )
    overdue_floor_seconds: NonNegativeFloat = Field(
        default=60.0,
        description=(
            "Seconds the ETA of an overdue scale-up is taken to be: once the estimate has passed, the wait is "
            "unknown, and we never predict it is almost over."
        ),
    )
    stuck_after_seconds: NonNegativeFloat | None = Field(
        default=600.0,
        description=(
            "Seconds a pending scale-up may run past its provisioning estimate before tideover calls it stuck. "
            "A VMSS allocation failure can leave cluster-autoscaler's status at InProgress until "
            "max-node-provision-time (15 min by default; kubernetes/autoscaler#8323), so an InProgress that "
            "late is no promise. Default 600 s: with the default 240 s estimate that is 14 min, just before "
            "CA gives up on its own. null: never call a scale-up stuck."
        ),
    )
    stuck_action: Literal["stop-spilling", "keep-spilling"] = Field(
        default="stop-spilling",
        description=(
            "What a stuck scale-up does to spilling. stop-spilling (default): the pool no longer counts as "
            "pending, so new pods wait Pending (as they will once CA backs off) instead of piling onto the "
            "virtual node with no VM to return to; pods already spilled stay. keep-spilling: the pool stays "
            "pending (spills go on, still bounded by the spend and replica caps). Either way the pool is "
            "reported stuck (metric, node annotation, pod Events)."
        ),
    )


class PriorityClassPolicy(_Model):
    cost_weight: NonNegativeFloat = Field(
        description=(
            "Relative weights of cost and start latency in prioritize (normalised to sum 1)."
        ),
    )
    latency_weight: NonNegativeFloat = Field(description="Relative weight of start latency (see costWeight).")
    wait_budget_seconds: NonNegativeFloat = Field(
        description=(
            "Seconds a pod of this class will wait for pending VM capacity before it spills (while-pending only)."
        ),
    )

    @model_validator(mode="after")
    def _some_weight(self) -> PriorityClassPolicy:
        if self.cost_weight == 0 and self.latency_weight == 0:
            raise ValueError("costWeight and latencyWeight cannot both be 0")
        return self


class Priorities(_Model):
    critical: PriorityClassPolicy = Field(
        default=PriorityClassPolicy(cost_weight=0.2, latency_weight=0.8, wait_budget_seconds=0),
        description=(
            "critical: start now, cost matters little; spills as soon as capacity is pending."
        ),
    )
    standard: PriorityClassPolicy = Field(
        default=PriorityClassPolicy(cost_weight=0.5, latency_weight=0.5, wait_budget_seconds=0),
        description=(
            "standard: balanced; spills while capacity is pending."
        ),
    )
    economy: PriorityClassPolicy = Field(
        default=PriorityClassPolicy(
        cost_weight=0.8, latency_weight=0.2, wait_budget_seconds=300
        ),
        description=(
            "economy: cheapest; waits up to 5 minutes (a typical VMSS scale-up) for the VM before spilling."
        ),
    )

    def for_priority(self, priority: Priority) -> PriorityClassPolicy:
        policy: PriorityClassPolicy = getattr(self, priority.value)
        return policy


class Images(_Model):
    default_size_bytes: PositiveFloat = Field(
        default=200e6,
        description=(
            "Bytes assumed for an image no node reports in status.images (a typical app image: 200 MB)."
        ),
    )


class Server(_Model):
    host: str = Field(default="0.0.0.0", description="Address the HTTP server listens on (all interfaces in a pod).")
    port: Int = Field(default=8888, ge=1, le=65535, description="Port the verbs, health and metrics are served on.")
    tls_cert_file: Path | None = Field(
        default=None,
        description=(
            "Serve HTTPS with these PEM files (kube-scheduler's enableHTTPS + tlsConfig)."
        ),
    )
    tls_key_file: Path | None = Field(
        default=None, description="The private key of tlsCertFile (PEM); set both or neither."
    )
    client_ca_file: Path | None = Field(
        default=None, alias="clientCAFile",
        description=(
            "Mutual TLS: PEM CA bundle that signs the clients allowed to call the verbs (kube-scheduler's "
            "tlsConfig certFile). Set, every path but /healthz, /readyz and /metrics needs a client certificate it "
            "signed (none: 401; another CA: the TLS handshake fails). Needs tlsCertFile; reloaded on change, like it."
        ),
    )
    client_subjects: list[str] = Field(
        default_factory=list,
        description=(
            "With clientCAFile: the client certificate must carry one of these names as its subject common name or "
            "a DNS/URI subject alternative name (else 403). Empty: any certificate clientCAFile signed. Unused "
            "without clientCAFile (which the chart passes as --client-ca-file)."
        ),
    )
    health_port: Int | None = Field(
        default=None, ge=1, le=65535,
        description=(
            "Also serve /healthz, /readyz and /metrics (only those) over plain HTTP on this port, for kubelet's probes "
            "and Prometheus, which present no client certificate. Unset: they are served on port only."
        ),
    )
    pod_watch_grace_seconds: NonNegativeFloat = Field(
        default=1.0,
        description=(
            "Seconds a /filter that would spill a pod the cluster view does not hold (uid, namespace, name, owner; "
            "Pending, unbound) waits for the pod watch to deliver it, so that the spill is recorded in the ledger and "
            "counted by the caps. The view trails kube-scheduler's informer by milliseconds. After the wait the pod is "
            "answered unrecorded: a forged pod never enters the ledger, and a real one is never held back."
        ),
    )
    max_body_bytes: Int = Field(
        default=64 * 2**20, ge=1024,
        description=(
            "Bytes; larger request bodies get 413. A Pod plus 5,000 node names is about 200 KB; full Nodes "
            "(nodeCacheCapable: false) run to about 5 KB a node, so 64 MiB covers 10,000 nodes."
        ),
    )
    body_read_timeout_seconds: PositiveFloat = Field(
        default=10.0,
        description=(
            "Seconds to receive a request's whole body; a client slower than that gets 408. kube-scheduler sends "
            "its body at once and gives up itself after its httpTimeout (2 s in config/), so 10 s only cuts off "
            "stalled or hostile clients that would hold a connection open."
        ),
    )

    @field_validator("tls_cert_file", "tls_key_file", "client_ca_file")
    @classmethod
    def _readable_file(cls, path: Path | None) -> Path | None:
        """The server would fail at start-up, after the config was declared good: say so now."""
        if path is None:
            return None
        try:
            mode = path.stat().st_mode
        except (OSError, ValueError) as error:
            raise ValueError(f"{str(path)!r}: {getattr(error, 'strerror', None) or error}") from None
        if not stat.S_ISREG(mode):
            raise ValueError(f"{str(path)!r} is not a file")
        if not os.access(path, os.R_OK):
            raise ValueError(f"{str(path)!r} is not readable")
        return path

    @model_validator(mode="after")
    def _tls_pair(self) -> Server:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tlsCertFile and tlsKeyFile must be set together")
        if self.client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("clientCAFile needs tlsCertFile and tlsKeyFile: client certificates are checked over TLS")
        if self.health_port is not None and self.health_port == self.port:
            raise ValueError(f"healthPort must differ from port ({self.port})")
        return self


class DeletionCost(_Model):
    enabled: bool = Field(
        default=True,
        description=(
            "Keep controller.kubernetes.io/pod-deletion-cost on ReplicaSet pods that run on virtual nodes, so a "
            "scale-down removes them before pods on VMs."
        ),
    )
    virtual_pod_cost: Int = Field(
        default=-1000, ge=-(2**31), le=2**31 - 1,
        description=(
            "The cost written (int32). Pods without the annotation count as 0, so anything below 0 goes first; "
            "-1000 leaves room for users' own small negative costs."
        ),
    )


class ReturnToVm(_Model):
    enabled: bool = Field(
        default=True,
        description=(
            "Move spilled ReplicaSet pods back to VMs once the capacity they waited for is Ready."
        ),
    )
    stable_seconds: NonNegativeFloat = Field(
        default=60.0,
        description=(
            "Seconds every pool must have had no capacity pending (its new nodes Ready) before pods move back: a "
            "node that flaps NotReady or a second scale-up wave should not cause a round trip."
        ),
    )
    min_pod_age_seconds: NonNegativeFloat = Field(
        default=60.0,
        description=(
            "Seconds a pod must have run on the virtual node before it is moved: a pod that just started is not "
            "worth a restart, and this stops spill/return from flapping."
        ),
    )
    max_in_flight_per_workload: Int = Field(
        default=2, ge=1,
        description=(
            "Pods of one workload moved at a time: the next moves once the replacement runs, so a Deployment "
            "never loses more than this many replicas to returns at once (PodDisruptionBudgets also hold)."
        ),
    )
    max_evictions_per_minute: Int = Field(
        default=30, ge=1,
        description=(
            "Evictions per minute across the cluster: bounds API load and the churn a return causes."
        ),
    )
    interval_seconds: PositiveFloat = Field(
        default=5.0,
        description=(
            "Seconds between planning rounds."
        ),
    )


class Controllers(_Model):
    lease_namespace: str = Field(
        default="kube-system", min_length=1,
        description=(
            "The coordination.k8s.io Lease the controllers run under: one leader among the replicas, while the "
            "HTTP extender serves from all of them."
        ),
    )
    lease_name: str = Field(default="tideover-controllers", min_length=1, description="The Lease's name.")
    lease_duration_seconds: Int = Field(
        default=15, ge=1,
        description=(
            "Whole seconds, as a Lease stores them (kube-controller-manager's defaults): a failed leader is "
            "replaced within about 15 s."
        ),
    )
    renew_deadline_seconds: Int = Field(
        default=10, ge=1, description="Seconds the leader has to renew before it gives up leading."
    )
    retry_period_seconds: Int = Field(default=2, ge=1, description="Seconds between attempts to take or renew.")
    deletion_cost: DeletionCost = Field(default_factory=DeletionCost)
    return_to_vm: ReturnToVm = Field(default_factory=ReturnToVm)

    @model_validator(mode="after")
    def _lease_timing(self) -> Controllers:
        if not self.retry_period_seconds < self.renew_deadline_seconds < self.lease_duration_seconds:
            raise ValueError("need retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds")
        return self


class TideoverConfig(_Model):
    api_version: Literal["tideover.io/v1alpha1"] = API_VERSION
    kind: Literal["TideoverConfiguration"] = KIND
    virtual_nodes: VirtualNodes = Field(default_factory=VirtualNodes)
    vm_pools: VmPools = Field(default_factory=VmPools)
    autoscaler: Autoscaler = Field(default_factory=Autoscaler)
    priorities: Priorities = Field(default_factory=Priorities)
    images: Images = Field(default_factory=Images)
    server: Server = Field(default_factory=Server)
    controllers: Controllers = Field(default_factory=Controllers)


# A configuration is a few KB; anything past this is a wrong file (and a YAML bomb's cost is bounded).
MAX_CONFIG_BYTES = 1 << 20
# Problems listed in a ConfigError's message; the rest are counted.
MAX_PROBLEMS_SHOWN = 50


class ConfigError(Exception):
    """All the problems of one config file, each with its path (the first MAX_PROBLEMS_SHOWN in the message)."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        shown = [f"  {p}" for p in problems[:MAX_PROBLEMS_SHOWN]]
        if len(problems) > MAX_PROBLEMS_SHOWN:
            shown.append(f"  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more")
        super().__init__(f"{source}: {len(problems)} problem(s):\n" + "\n".join(shown))


def _loc_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def format_validation_error(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        problems.append(f"{_loc_path(tuple(item['loc']))}: {message}")
    return problems


def _text_problems(value: Any, path: str = "", seen: set[int] | None = None) -> Iterator[str]:
    """Values no field takes, whatever its type: binary data (YAML's !!binary) and text with a NUL character
    (a Kubernetes name, a label or a file path cannot hold one); pydantic would decode the one and keep the other.
    Each mapping and list is visited once, so YAML aliases (one object under many paths) cost nothing extra."""
    seen = set() if seen is None else seen
    where = path or "(top level)"
    if isinstance(value, bytes | bytearray):
        yield f"{where}: binary data (!!binary) is not a value of any setting; write it as text"
    elif isinstance(value, str):
        if "\0" in value:
            yield f"{where}: contains a NUL character"
    elif isinstance(value, Mapping | list):
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from _text_problems(item, f"{path}[{index}]", seen)
            return
        for key, item in value.items():
            if isinstance(key, bytes | bytearray) or (isinstance(key, str) and "\0" in key):
                yield f"{where}: the key {key!r} is binary or contains a NUL character"
                continue
            yield from _text_problems(item, f"{path}.{key}" if path else str(key), seen)


def parse_config(data: Any, source: str = "config") -> TideoverConfig:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, [f"(top level): must be a mapping, got {type(data).__name__}"])
    try:
        text_problems = list(_text_problems(data))
        if text_problems:  # the model would accept these: report them with whatever else is wrong
            try:
                TideoverConfig.model_validate(data)
            except ValidationError as error:
                text_problems += format_validation_error(error)
            raise ConfigError(source, text_problems)
        return TideoverConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(source, format_validation_error(error)) from None
    except RecursionError:
        raise ConfigError(source, ["nested too deeply to be a tideover configuration"]) from None


# Python refuses to read integers longer than this (sys.get_int_max_str_digits()); below it, a too large number
# reaches the field that holds it, and the problem is named there.
MAX_INTEGER_DIGITS = 4300


class UnusableValue(yaml.constructor.ConstructorError):
    """Valid YAML, but a value no setting (and no Kubernetes object) can hold."""


class UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader (on libyaml's parser where PyYAML has it: several times faster on large files),
    refusing a key given twice in one mapping (PyYAML keeps the last one silently) and integers too long to
    be a value (``int()`` of thousands of digits is slow, then refused)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (each key may appear once)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(character.isdigit() for character in str(node.value))
        if digits > MAX_INTEGER_DIGITS:
            raise UnusableValue(None, None, f"an integer of {digits} digits is too large", node.start_mark)
        value: int = super().construct_yaml_int(node)
        return value


UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", UniqueKeyLoader.construct_yaml_int)


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def yaml_problem(error: yaml.YAMLError) -> str:
    """One line for a YAML error: where, what, and where the construct it broke began."""
    mark = getattr(error, "problem_mark", None)
    where = f"{_at(mark)}: " if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error)
    if "nesting depth" in problem:  # libyaml's limit (PyYAML's own parser overflows the stack instead)
        return f"{where}nested too deeply to be a tideover configuration or a Kubernetes object"
    if isinstance(error, UnusableValue):
        return f"{where}not a usable value: {problem}"
    context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and context_mark is not None and mark is not None and context_mark.line != mark.line:
        problem += f" ({context} that began at {_at(context_mark)})"
    return f"{where}not valid YAML: {problem}"


def load_config(path: Path | str | None) -> TideoverConfig:
    """Read and validate a config file; ``None`` means all defaults."""
    if path is None:
        return TideoverConfig()
    path = Path(path)
    try:
        raw = path.read_bytes() if path.stat().st_size <= MAX_CONFIG_BYTES else None
    except OSError as error:
        raise ConfigError(str(path), [f"cannot read: {error.strerror or error}"]) from None
    if raw is None:
        raise ConfigError(str(path), [f"larger than {MAX_CONFIG_BYTES} bytes: not a tideover configuration"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(str(path), [f"byte {error.start}: not UTF-8 text"]) from None
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as error:
        raise ConfigError(str(path), [yaml_problem(error)]) from None
    except RecursionError:
        raise ConfigError(str(path), ["nested too deeply to be a tideover configuration"]) from None
    except ValueError as error:  # e.g. an integer of more than 4,300 digits
        raise ConfigError(str(path), [f"not a usable value: {error}"]) from None
    return parse_config(data, str(path))
