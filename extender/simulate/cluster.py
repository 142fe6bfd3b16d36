"""The simulated cluster: VM pools, the virtual node, cluster-autoscaler's loop, and the time distributions.

Units are in the field names: seconds, cores, GiB, USD per hour. Defaults that tideover's own configuration
already has a value for are taken from it (:func:`resolve`), so each fact has one home: ACI's per-vCPU-second and
per-GiB-second prices and minimum billed size (``virtualNodes.pricing``), the VM price
(``vmPools.defaultPricePerHour``), the VMSS provisioning time (``vmPools.provisioningSeconds``), and the pod start
times (``virtualNodes.coldStartSeconds`` and ``pullBytesPerSecond``, ``vmPools.podStartSeconds``,
``images.defaultSizeBytes``). Their sources are in :mod:`extender.model.config` and docs/simulate.md.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from extender.simulate.bridge import Int, NonNegativeFloat, PositiveFloat, TideoverConfig, start_seconds_estimate


class Model(BaseModel):
    """camelCase keys as in tideover's config; unknown keys and non-finite numbers are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, allow_inf_nan=False
    )


class Duration(Model):
    """A random duration: log-normal around ``medianSeconds`` (``sigma`` 0: always the median)."""

    median_seconds: NonNegativeFloat
    # Shape of the log-normal: 0.15 puts 90% of draws within about +-28% of the median.
    sigma: NonNegativeFloat = Field(default=0.0, le=3)

    def draw(self, rng: np.random.Generator) -> float:
        if self.sigma == 0 or self.median_seconds == 0:
            return self.median_seconds
        return float(self.median_seconds * math.exp(self.sigma * rng.standard_normal()))


class PoolSpec(Model):
    name: str = Field(default="nodepool1", min_length=1)
    # What a node offers pods (allocatable, after AKS's reservations). Default: Standard_D2s_v5 (2 vCPU, 8 GiB)
    # less AKS's kube-reserved and eviction threshold, about 1.9 cores and 5.5 GiB.
    node_cpu: PositiveFloat = 1.9
    node_memory_gib: PositiveFloat = 5.5
    node_pods: Int = Field(default=110, ge=1)
    # USD per node-hour. Unset: tideover's vmPools.defaultPricePerHour (D2s_v5 pay-as-you-go).
    price_per_hour: PositiveFloat | None = None
    min_size: Int = Field(default=1, ge=0)
    max_size: Int = Field(default=10, ge=1)
    # Nodes Ready at the start.
    initial: Int = Field(default=1, ge=0)
    # From the scale-up request to the node being Ready. Unset: tideover's vmPools.provisioningSeconds as the
    # median, sigma 0.15 (public reports: 2-4 minutes usually).
    provisioning: Duration | None = None
    # The node registers (NotReady) this long before it is Ready (kubelet start, CNI).
    registered_before_ready_seconds: NonNegativeFloat = 10.0

    @model_validator(mode="after")
    def _sizes(self) -> PoolSpec:
        if not self.min_size <= self.max_size:
            raise ValueError(f"minSize {self.min_size} is above maxSize {self.max_size}")
        if not self.min_size <= self.initial <= self.max_size:
            raise ValueError(f"initial {self.initial} is outside [minSize {self.min_size}, maxSize {self.max_size}]")
        return self


class AutoscalerSpec(Model):
    """cluster-autoscaler's loop; defaults are CA's own flag defaults."""

    scan_interval_seconds: PositiveFloat = 10.0  # --scan-interval=10s
    scale_down_enabled: bool = True
    scale_down_unneeded_seconds: NonNegativeFloat = 600.0  # --scale-down-unneeded-time=10m
    scale_down_delay_after_add_seconds: NonNegativeFloat = 600.0  # --scale-down-delay-after-add=10m
    scale_down_utilization_threshold: float = Field(default=0.5, ge=0, le=1)  # requests / allocatable
    max_empty_bulk_delete: Int = Field(default=10, ge=1)  # --max-empty-bulk-delete=10


class ClusterSpec(Model):
    pools: list[PoolSpec] = Field(default_factory=lambda: [PoolSpec()], min_length=1)
    autoscaler: AutoscalerSpec = Field(default_factory=AutoscalerSpec)
    # Pod start on ACI, from binding to Running. Unset: tideover's start model (virtualNodes.coldStartSeconds
    # plus pulling an image of images.defaultSizeBytes at virtualNodes.pullBytesPerSecond) as the median,
    # sigma 0.35 (public reports: 20-60 s).
    virtual_start: Duration | None = None
    # Pod start on a VM that has the image; one that has not adds the pull (vmPools.pullBytesPerSecond).
    # Unset: vmPools.podStartSeconds.
    vm_start: Duration | None = None
    # Seconds a VM takes to pull the image for its first pod. Unset: images.defaultSizeBytes at
    # vmPools.pullBytesPerSecond (tideover's latency model).
    vm_pull_seconds: NonNegativeFloat | None = None
    # A deleted or evicted pod holds its node (and ACI bills it) this long.
    termination_seconds: NonNegativeFloat = 2.0
    # Time series resolution of the report (0: about 600 points over the run).
    sample_seconds: NonNegativeFloat = 0.0

    @model_validator(mode="after")
    def _unique_pools(self) -> ClusterSpec:
        names = [pool.name for pool in self.pools]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"pool names must be unique; repeated: {', '.join(repeated)}")
        return self


class ResolvedPool:
    """A pool with every default filled in from tideover's config."""

    def __init__(self, spec: PoolSpec, config: TideoverConfig) -> None:
        self.spec = spec
        self.name = spec.name
        self.price_per_hour = spec.price_per_hour or config.vm_pools.price_per_hour(spec.name)
        self.provisioning = spec.provisioning or Duration(
            median_seconds=config.vm_pools.pool(spec.name).provisioning_seconds or config.vm_pools.provisioning_seconds,
            sigma=0.15,
        )


class ResolvedCluster:
    def __init__(self, spec: ClusterSpec, config: TideoverConfig) -> None:
        self.spec = spec
        self.pools = [ResolvedPool(pool, config) for pool in spec.pools]
        self.autoscaler = spec.autoscaler
        self.virtual_start = spec.virtual_start or Duration(
            median_seconds=start_seconds_estimate(config, virtual=True, image_present=False), sigma=0.35
        )
        self.vm_start = spec.vm_start or Duration(median_seconds=config.vm_pools.pod_start_seconds)
        modelled = start_seconds_estimate(config, virtual=False, image_present=False) - (
            start_seconds_estimate(config, virtual=False, image_present=True)
        )
        self.vm_pull_seconds: float = modelled if spec.vm_pull_seconds is None else spec.vm_pull_seconds
        self.termination_seconds = spec.termination_seconds
