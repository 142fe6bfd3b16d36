"""Expected time until the pod is running on each candidate node.

The model is deliberately simple and additive::

    start_seconds = base_seconds + missing_bytes / bandwidth_bytes_per_second

* ``base_seconds`` is the fixed start overhead of the node kind: on a VM node the pod sandbox
  start (a few seconds); on the ACI virtual node the container-group cold start (typically tens of
  seconds), which is the price paid for not waiting on a new VM.
* ``missing_bytes`` is the total size of the pod's images that are not already on the node
  (see :func:`missing_image_bytes`); images already present cost nothing. ACI has no warm image
  cache shared with the cluster, so callers normally mark every image as missing there.
* ``bandwidth_bytes_per_second`` is the effective pull throughput, scalar or per node. Example:
  a 500 MB image missing on a node pulling at 50 MB/s adds 10 seconds.

Units: bytes, bytes per second, seconds. All functions are vectorised over nodes.
"""

import numpy as np
from numpy.typing import NDArray

__all__ = ["missing_image_bytes", "pull_seconds", "start_seconds"]


def _as_node_array(name: str, values: NDArray[np.float64]) -> NDArray[np.float64]:
    # asarray is a no-op (no copy) for float64 input, so the common path costs nothing.
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per node), got shape {array.shape}")
    return array


def _as_scalar_or_node_array(
    name: str, values: float | NDArray[np.float64], shape: tuple[int, ...]
) -> NDArray[np.float64]:
    # Only scalars or exact per-node arrays: silent broadcasting of a wrong-length array would
    # attribute one node's bandwidth to another.
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 0 and array.shape != shape:
        raise ValueError(f"{name} must be a scalar or have shape {shape}, got shape {array.shape}")
    return array


def pull_seconds(
    missing_bytes: NDArray[np.float64],
    bandwidth_bytes_per_second: float | NDArray[np.float64],
) -> NDArray[np.float64]:
    """Seconds to pull the missing image bytes on each node: ``missing_bytes / bandwidth``.

    Args:
        missing_bytes: bytes still to pull per node, shape ``(n_nodes,)``, >= 0.
        bandwidth_bytes_per_second: pull throughput, a scalar or one value per node; > 0.

    Returns:
        Seconds per node, shape ``(n_nodes,)``. E.g. 500 MB at 50 MB/s is 10 s.

    Raises:
        ValueError: non-positive (or NaN) bandwidth, negative missing bytes, arrays that are not
            1-D, or a bandwidth array whose shape differs from ``missing_bytes``.
    """
    missing = _as_node_array("missing_bytes", missing_bytes)
    bandwidth = _as_scalar_or_node_array(
        "bandwidth_bytes_per_second", bandwidth_bytes_per_second, missing.shape
    )
    # "not all > 0" also catches NaN, which would otherwise silently turn into NaN seconds.
    if not np.all(bandwidth > 0.0):
        raise ValueError("bandwidth_bytes_per_second must be > 0")
    if np.any(missing < 0.0):
        raise ValueError("missing_bytes must be >= 0")
    return np.divide(missing, bandwidth)


def start_seconds(
    base_seconds: float | NDArray[np.float64],
    missing_bytes: NDArray[np.float64],
    bandwidth_bytes_per_second: float | NDArray[np.float64],
) -> NDArray[np.float64]:
    """Expected seconds until the pod runs on each node: ``base_seconds + pull_seconds``.

    Args:
        base_seconds: fixed start overhead, a scalar or one value per node (VM: pod sandbox start;
            virtual node: ACI container-group cold start); >= 0.
        missing_bytes: bytes of the pod's images not present on each node, shape ``(n_nodes,)``.
        bandwidth_bytes_per_second: pull throughput, a scalar or one value per node; > 0.

    Returns:
        Seconds per node, shape ``(n_nodes,)``.

    Raises:
        ValueError: as :func:`pull_seconds`, plus negative or NaN ``base_seconds`` or a
            ``base_seconds`` array whose shape differs from ``missing_bytes``.
    """
    seconds = pull_seconds(missing_bytes, bandwidth_bytes_per_second)
    base = _as_scalar_or_node_array("base_seconds", base_seconds, seconds.shape)
    if not np.all(base >= 0.0):
        raise ValueError("base_seconds must be >= 0")
    return np.add(seconds, base, out=seconds)


def missing_image_bytes(image_sizes: NDArray[np.float64], present: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Bytes of the pod's images each node still has to pull.

    Computed as one matrix-vector product ``(~present) @ image_sizes``: no Python loop over nodes
    or images.

    Args:
        image_sizes: size of each of the pod's images in bytes, shape ``(n_images,)``, finite, >= 0.
        present: ``present[i, j]`` is True when node ``i`` already has image ``j``, shape
            ``(n_nodes, n_images)``. Non-boolean input is interpreted as truthiness.

    Returns:
        Bytes per node, shape ``(n_nodes,)``; all zeros when the pod has no images
        (``n_images == 0``).

    Raises:
        ValueError: wrong dimensionality, mismatched image counts, or negative/non-finite sizes.
    """
    sizes = np.asarray(image_sizes, dtype=np.float64)
    # Coerce to bool: "~" on an integer array is a bitwise not (~1 == -2), not a logical one.
    have = np.asarray(present, dtype=np.bool_)
    if sizes.ndim != 1:
        raise ValueError(f"image_sizes must be 1-D (one size per image), got shape {sizes.shape}")
    if have.ndim != 2:
        raise ValueError(f"present must be 2-D (n_nodes, n_images), got shape {have.shape}")
    if have.shape[1] != sizes.shape[0]:
        raise ValueError(
            f"present has {have.shape[1]} image columns but image_sizes has {sizes.shape[0]} images"
        )
    # A NaN size would poison every node through the product (NaN * 0 is NaN), so reject it here.
    if not np.all(np.isfinite(sizes)) or np.any(sizes < 0.0):
        raise ValueError("image_sizes must be finite and >= 0")
    # matmul of a (n_nodes, 0) matrix with a (0,) vector is a zero vector: no special case needed.
    result: NDArray[np.float64] = np.matmul(~have, sizes)
    return result
