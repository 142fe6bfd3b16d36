"""Hourly cost of running one pod on each candidate node.

Two billing models are compared:

* **VM nodes** (VM Scale Set pools) are paid for per node-hour whether or not they are full. A pod
  is charged the share of the node it occupies, measured by its *dominant share*: the larger of
  its CPU fraction and its memory fraction of the node's allocatable resources (the resource that
  runs out first is the one that stops other pods from using the node). Example: a 1 vCPU / 2 GiB
  pod on a D2s_v5 node (2 vCPU, 8 GiB, roughly $0.096/hour) takes max(1/2, 2/8) = 0.5 of the node
  and costs 0.5 * 0.096 = $0.048/hour.
* **The ACI virtual node** bills the container group per second for the vCPU and memory it is
  allocated, with a minimum allocation. Example: 1 vCPU + 2 GiB for an hour at roughly
  $0.000012 per vCPU-second and $0.0000013 per GB-second costs
  1 * 0.000012 * 3600 + 2 * 0.0000013 * 3600 = 0.0432 + 0.00936 = $0.05256.

Units: CPU in cores (float), memory in bytes (float), prices in USD, results in USD per hour.
The prices above are illustrative defaults for the docstrings only; the configuration layer owns
the actual values and passes them in.

Non-finite inputs in per-node arrays (for example an unknown price or allocatable, NaN) are not
validated on the hot path: they propagate to a NaN cost, which ``scoring.combine.relative_merit``
turns into merit 0, so a node with unknown data never wins on cost.
"""

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["GIB", "dominant_share", "virtual_cost_per_hour", "vm_cost_per_hour"]

GIB: float = 2.0**30
"""Bytes per billed ACI memory unit.

ACI prices memory per "GB" and allocates it in 0.1 GB steps. We divide by GiB rather than 10**9
because Kubernetes memory requests are almost always written in Gi, so a ``2Gi`` request is
billed as 2 units, matching how operators read the price list. The approximation is bounded: the
public virtual-kubelet ACI provider converts request bytes with a decimal GB (bytes / 10**9,
truncated to 0.1 GB), so ACI may allocate up to ~7.4% more memory than this model bills (``2Gi``
becomes 2.1 GB there), i.e. memory cost is slightly under-estimated, never over-estimated.
"""

_SECONDS_PER_HOUR = 3600.0


def _check_request(name: str, value: float) -> float:
    # Scalars are cheap to validate; a negative or NaN request is a caller bug, not a node property.
    value = float(value)
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _as_node_array(name: str, values: NDArray[np.float64]) -> NDArray[np.float64]:
    # asarray is a no-op (no copy) for float64 input, so the common path costs nothing.
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per node), got shape {array.shape}")
    return array


def _check_same_shape(**arrays: NDArray[np.float64]) -> None:
    shapes = {name: array.shape for name, array in arrays.items()}
    if len(set(shapes.values())) > 1:
        described = ", ".join(f"{name}{shape}" for name, shape in shapes.items())
        raise ValueError(f"per-node arrays must have the same shape, got {described}")


def _resource_share(request: float, allocatable: NDArray[np.float64]) -> NDArray[np.float64]:
    if request == 0.0:
        # The pod does not compete for this resource, even on a node that has none of it.
        return np.zeros(allocatable.shape, dtype=np.float64)
    # A node with no (or negative) allocatable of a resource the pod needs: the pod takes the whole
    # node. Written as "not <= 0" rather than "> 0" so NaN goes through the division and stays NaN.
    share = np.ones(allocatable.shape, dtype=np.float64)
    np.divide(request, allocatable, out=share, where=~(allocatable <= 0.0))
    return share


def dominant_share(
    pod_cpu: float,
    pod_memory: float,
    alloc_cpu: NDArray[np.float64],
    alloc_memory: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Fraction of each node the pod occupies: ``max(pod_cpu/alloc_cpu, pod_memory/alloc_memory)``.

    Args:
        pod_cpu: CPU the pod requests, in cores (>= 0).
        pod_memory: memory the pod requests, in bytes (>= 0).
        alloc_cpu: allocatable CPU per node, in cores, shape ``(n_nodes,)``.
        alloc_memory: allocatable memory per node, in bytes, shape ``(n_nodes,)``.

    Returns:
        Share per node in ``[0, 1]``, shape ``(n_nodes,)``. A node with zero allocatable of a
        resource the pod requests gets 1.0 (the pod effectively takes the node); a resource the pod
        does not request contributes 0, so a pod requesting nothing has share 0 (see ``min_share``
        in :func:`vm_cost_per_hour`). Requests larger than the node are clipped to 1.0. NaN
        allocatable yields NaN.

    Raises:
        ValueError: negative or non-finite requests, arrays that are not 1-D, or mismatched shapes.
    """
    cpu = _check_request("pod_cpu", pod_cpu)
    memory = _check_request("pod_memory", pod_memory)
    alloc_cpu = _as_node_array("alloc_cpu", alloc_cpu)
    alloc_memory = _as_node_array("alloc_memory", alloc_memory)
    _check_same_shape(alloc_cpu=alloc_cpu, alloc_memory=alloc_memory)

    share = np.maximum(_resource_share(cpu, alloc_cpu), _resource_share(memory, alloc_memory))
    return np.clip(share, 0.0, 1.0, out=share)


def vm_cost_per_hour(
    pod_cpu: float,
    pod_memory: float,
    alloc_cpu: NDArray[np.float64],
    alloc_memory: NDArray[np.float64],
    price_per_hour: NDArray[np.float64],
    min_share: float = 0.0,
) -> NDArray[np.float64]:
    """USD per hour the pod costs on each VM node: ``max(dominant_share, min_share) * price_per_hour``.

    Args:
        pod_cpu: CPU the pod requests, in cores (>= 0).
        pod_memory: memory the pod requests, in bytes (>= 0).
        alloc_cpu: allocatable CPU per node, in cores, shape ``(n_nodes,)``.
        alloc_memory: allocatable memory per node, in bytes, shape ``(n_nodes,)``.
        price_per_hour: node price in USD per hour, shape ``(n_nodes,)`` (e.g. D2s_v5, 2 vCPU /
            8 GiB, is roughly $0.096/hour pay-as-you-go).
        min_share: floor on the charged share in ``[0, 1]``, so that a pod requesting (almost)
            nothing is not modelled as free: it still occupies a pod slot and scheduling overhead.

    Returns:
        Cost in USD per hour, shape ``(n_nodes,)``.

    Raises:
        ValueError: invalid requests or ``min_share``, arrays that are not 1-D, or mismatched shapes.
    """
    min_share = float(min_share)
    if not 0.0 <= min_share <= 1.0:  # also rejects NaN
        raise ValueError(f"min_share must be within [0, 1], got {min_share!r}")
    price = _as_node_array("price_per_hour", price_per_hour)
    share = dominant_share(pod_cpu, pod_memory, alloc_cpu, alloc_memory)
    _check_same_shape(alloc_cpu=share, price_per_hour=price)

    np.maximum(share, min_share, out=share)
    return np.multiply(share, price, out=share)


def virtual_cost_per_hour(
    pod_cpu: float,
    pod_memory: float,
    *,
    vcpu_price_per_second: float,
    gib_price_per_second: float,
    min_cpu: float,
    min_memory: float,
) -> float:
    """USD per hour the pod costs on the ACI virtual node.

    ACI bills the container group for what it is allocated, per second, and allocates at least a
    minimum, so the billed amount is ``max(request, minimum)`` for each resource::

        max(pod_cpu, min_cpu) * vcpu_price_per_second * 3600
        + max(pod_memory, min_memory) / GIB * gib_price_per_second * 3600

    Args:
        pod_cpu: CPU the pod requests, in cores (>= 0).
        pod_memory: memory the pod requests, in bytes (>= 0).
        vcpu_price_per_second: USD per vCPU-second (Linux ACI is roughly $0.000012).
        gib_price_per_second: USD per GB-second, applied per GiB (roughly $0.0000013; see
            :data:`GIB` for why GiB).
        min_cpu: smallest CPU allocation ACI bills, in cores (>= 0).
        min_memory: smallest memory allocation ACI bills, in bytes (>= 0).

    Returns:
        Cost in USD per hour. With the example prices and no minimum binding, 1 vCPU + 2 GiB costs
        about $0.05256/hour.

    Raises:
        ValueError: any argument negative or non-finite.
    """
    cpu = max(_check_request("pod_cpu", pod_cpu), _check_request("min_cpu", min_cpu))
    memory = max(_check_request("pod_memory", pod_memory), _check_request("min_memory", min_memory))
    vcpu_price = _check_request("vcpu_price_per_second", vcpu_price_per_second)
    gib_price = _check_request("gib_price_per_second", gib_price_per_second)
    return (cpu * vcpu_price + memory / GIB * gib_price) * _SECONDS_PER_HOUR
