"""Cost model: dominant share, VM node share of price, ACI per-second billing.

Expected numbers are worked out by hand in the ids/comments (GiB = 2**30 bytes).
"""

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from scoring.cost import GIB, dominant_share, virtual_cost_per_hour, vm_cost_per_hour

MIB = 2.0**20

# Illustrative list prices (USD): D2s_v5 2 vCPU / 8 GiB; ACI Linux per vCPU-second and per GB-second.
D2S_V5_PER_HOUR = 0.096
ACI_VCPU_PER_SECOND = 0.000012
ACI_GIB_PER_SECOND = 0.0000013


def arr(*values: float) -> NDArray[np.float64]:
    return np.array(values, dtype=np.float64)


def test_gib_is_binary_gigabyte() -> None:
    assert GIB == 1_073_741_824.0


@pytest.mark.parametrize(
    ("pod_cpu", "pod_memory", "alloc_cpu", "alloc_memory", "expected"),
    [
        (1.0, 2 * GIB, arr(2.0), arr(8 * GIB), arr(0.5)),  # cpu 1/2 beats memory 2/8
        (0.5, 6 * GIB, arr(2.0), arr(8 * GIB), arr(0.75)),  # memory 6/8 beats cpu 0.5/2
        (4.0, 1 * GIB, arr(2.0), arr(8 * GIB), arr(1.0)),  # 4/2 clipped to 1
        (1.0, 2 * GIB, arr(0.0), arr(8 * GIB), arr(1.0)),  # no cpu on node: takes the node
        (1.0, 2 * GIB, arr(2.0), arr(0.0), arr(1.0)),  # no memory on node: takes the node
        (1.0, 2 * GIB, arr(-1.0), arr(8 * GIB), arr(1.0)),  # negative allocatable treated as none
        (0.0, 1 * GIB, arr(0.0), arr(4 * GIB), arr(0.25)),  # cpu not requested: 0 cpu is fine
        (0.0, 0.0, arr(2.0, 0.0), arr(8 * GIB, 0.0), arr(0.0, 0.0)),  # requests nothing
        (1.0, 2 * GIB, arr(2.0, 4.0, 8.0), arr(8 * GIB, 16 * GIB, 32 * GIB), arr(0.5, 0.25, 0.125)),
        (1.0, 2 * GIB, arr(), arr(), arr()),  # no nodes
    ],
    ids=[
        "cpu-dominant",
        "memory-dominant",
        "request-exceeds-node-clipped",
        "zero-alloc-cpu",
        "zero-alloc-memory",
        "negative-alloc",
        "zero-alloc-unrequested-resource",
        "zero-requests",
        "several-nodes",
        "empty",
    ],
)
def test_dominant_share(
    pod_cpu: float,
    pod_memory: float,
    alloc_cpu: NDArray[np.float64],
    alloc_memory: NDArray[np.float64],
    expected: NDArray[np.float64],
) -> None:
    share = dominant_share(pod_cpu, pod_memory, alloc_cpu, alloc_memory)
    assert share.dtype == np.float64
    assert share.shape == expected.shape
    np.testing.assert_allclose(share, expected, rtol=1e-12)


def test_dominant_share_nan_allocatable_propagates() -> None:
    share = dominant_share(1.0, 2 * GIB, arr(np.nan, 2.0), arr(8 * GIB, 8 * GIB))
    assert math.isnan(share[0])
    assert share[1] == 0.5


def test_dominant_share_does_not_modify_inputs() -> None:
    alloc_cpu, alloc_memory = arr(2.0, 0.0), arr(8 * GIB, 8 * GIB)
    dominant_share(1.0, 2 * GIB, alloc_cpu, alloc_memory)
    np.testing.assert_array_equal(alloc_cpu, arr(2.0, 0.0))
    np.testing.assert_array_equal(alloc_memory, arr(8 * GIB, 8 * GIB))


@pytest.mark.parametrize(
    ("pod_cpu", "pod_memory", "alloc_cpu", "alloc_memory", "match"),
    [
        (1.0, GIB, arr(2.0, 4.0), arr(8 * GIB), "same shape"),
        (1.0, GIB, np.ones((2, 1)), np.ones((2, 1)), "alloc_cpu must be 1-D"),
        (1.0, GIB, arr(2.0), np.ones((1, 1)), "alloc_memory must be 1-D"),
        (-1.0, GIB, arr(2.0), arr(8 * GIB), "pod_cpu"),
        (1.0, -GIB, arr(2.0), arr(8 * GIB), "pod_memory"),
        (math.nan, GIB, arr(2.0), arr(8 * GIB), "pod_cpu"),
        (1.0, math.inf, arr(2.0), arr(8 * GIB), "pod_memory"),
    ],
    ids=[
        "mismatched-shapes",
        "2d-cpu",
        "2d-memory",
        "negative-cpu",
        "negative-memory",
        "nan-cpu",
        "inf-memory",
    ],
)
def test_dominant_share_rejects_bad_input(
    pod_cpu: float,
    pod_memory: float,
    alloc_cpu: NDArray[np.float64],
    alloc_memory: NDArray[np.float64],
    match: str,
) -> None:
    with pytest.raises(ValueError, match=match):
        dominant_share(pod_cpu, pod_memory, alloc_cpu, alloc_memory)


@pytest.mark.parametrize(
    ("pod_cpu", "pod_memory", "alloc_cpu", "alloc_memory", "price", "min_share", "expected"),
    [
        # 1 CPU / 2 GiB on D2s_v5: share 0.5 * $0.096 = $0.048
        (1.0, 2 * GIB, arr(2.0), arr(8 * GIB), arr(D2S_V5_PER_HOUR), 0.0, arr(0.048)),
        # Same pod on D2s/D4s/D8s (price scales with size): $0.048 everywhere;
        # E2s_v5 (2 vCPU / 16 GiB, $0.126): cpu share 0.5 still dominates -> $0.063
        (
            1.0,
            2 * GIB,
            arr(2.0, 4.0, 8.0, 2.0),
            arr(8 * GIB, 16 * GIB, 32 * GIB, 16 * GIB),
            arr(0.096, 0.192, 0.384, 0.126),
            0.0,
            arr(0.048, 0.048, 0.048, 0.063),
        ),
        # 0.1 CPU / 256 MiB: share max(0.05, 0.03125) = 0.05 -> $0.0048; min 0.01 not binding
        (0.1, 256 * MIB, arr(2.0), arr(8 * GIB), arr(D2S_V5_PER_HOUR), 0.01, arr(0.0048)),
        # ... min 0.1 binding -> 0.1 * 0.096 = $0.0096
        (0.1, 256 * MIB, arr(2.0), arr(8 * GIB), arr(D2S_V5_PER_HOUR), 0.1, arr(0.0096)),
        # Requests nothing: free without a minimum, min 0.1 -> $0.0096
        (0.0, 0.0, arr(2.0), arr(8 * GIB), arr(D2S_V5_PER_HOUR), 0.0, arr(0.0)),
        (0.0, 0.0, arr(2.0), arr(8 * GIB), arr(D2S_V5_PER_HOUR), 0.1, arr(0.0096)),
        # Node without allocatable cpu: whole node price
        (1.0, 2 * GIB, arr(0.0), arr(8 * GIB), arr(D2S_V5_PER_HOUR), 0.0, arr(0.096)),
        # min_share 1.0 charges the whole node whatever the request
        (0.1, 256 * MIB, arr(2.0), arr(8 * GIB), arr(D2S_V5_PER_HOUR), 1.0, arr(0.096)),
        (1.0, 2 * GIB, arr(), arr(), arr(), 0.1, arr()),
    ],
    ids=[
        "d2s-v5-half-node",
        "several-skus",
        "min-share-not-binding",
        "min-share-binding",
        "zero-request-no-min",
        "zero-request-with-min",
        "zero-alloc-takes-node",
        "min-share-one",
        "empty",
    ],
)
def test_vm_cost_per_hour(
    pod_cpu: float,
    pod_memory: float,
    alloc_cpu: NDArray[np.float64],
    alloc_memory: NDArray[np.float64],
    price: NDArray[np.float64],
    min_share: float,
    expected: NDArray[np.float64],
) -> None:
    cost = vm_cost_per_hour(pod_cpu, pod_memory, alloc_cpu, alloc_memory, price, min_share=min_share)
    assert cost.dtype == np.float64
    assert cost.shape == expected.shape
    np.testing.assert_allclose(cost, expected, rtol=1e-12, atol=0.0)


def test_vm_cost_nan_price_propagates() -> None:
    cost = vm_cost_per_hour(1.0, 2 * GIB, arr(2.0, 2.0), arr(8 * GIB, 8 * GIB), arr(np.nan, 0.096))
    assert math.isnan(cost[0])
    assert cost[1] == pytest.approx(0.048)


@pytest.mark.parametrize(
    ("alloc_cpu", "alloc_memory", "price", "min_share", "match"),
    [
        (arr(2.0), arr(8 * GIB), arr(0.096, 0.192), 0.0, "same shape"),
        (arr(2.0), arr(8 * GIB), np.full((1, 1), 0.096), 0.0, "price_per_hour must be 1-D"),
        (arr(2.0), arr(8 * GIB), arr(0.096), -0.1, "min_share"),
        (arr(2.0), arr(8 * GIB), arr(0.096), 1.5, "min_share"),
        (arr(2.0), arr(8 * GIB), arr(0.096), math.nan, "min_share"),
    ],
    ids=["price-shape-mismatch", "price-2d", "min-share-negative", "min-share-above-one", "min-share-nan"],
)
def test_vm_cost_rejects_bad_input(
    alloc_cpu: NDArray[np.float64],
    alloc_memory: NDArray[np.float64],
    price: NDArray[np.float64],
    min_share: float,
    match: str,
) -> None:
    with pytest.raises(ValueError, match=match):
        vm_cost_per_hour(1.0, 2 * GIB, alloc_cpu, alloc_memory, price, min_share=min_share)


@pytest.mark.parametrize(
    ("pod_cpu", "pod_memory", "min_cpu", "min_memory", "expected"),
    [
        # 1 * 0.000012 * 3600 + 2 * 0.0000013 * 3600 = 0.0432 + 0.00936
        (1.0, 2 * GIB, 0.25, 0.5 * GIB, 0.05256),
        # 2 vCPU + 4 GiB: 0.0864 + 0.01872
        (2.0, 4 * GIB, 0.25, 0.5 * GIB, 0.10512),
        # Requests below the minimum are billed at the minimum (1 vCPU, 1 GiB): 0.0432 + 0.00468
        (0.5, 0.5 * GIB, 1.0, 1 * GIB, 0.04788),
        (0.0, 0.0, 1.0, 1 * GIB, 0.04788),
        # Only the cpu minimum binds: 0.0432 + 2 * 0.00468
        (0.1, 2 * GIB, 1.0, 1 * GIB, 0.05256),
        # No minimum and no request: free
        (0.0, 0.0, 0.0, 0.0, 0.0),
    ],
    ids=[
        "1cpu-2gib",
        "2cpu-4gib",
        "both-minimums-bind",
        "zero-request-minimums",
        "cpu-minimum-binds",
        "all-zero",
    ],
)
def test_virtual_cost_per_hour(
    pod_cpu: float, pod_memory: float, min_cpu: float, min_memory: float, expected: float
) -> None:
    cost = virtual_cost_per_hour(
        pod_cpu,
        pod_memory,
        vcpu_price_per_second=ACI_VCPU_PER_SECOND,
        gib_price_per_second=ACI_GIB_PER_SECOND,
        min_cpu=min_cpu,
        min_memory=min_memory,
    )
    assert isinstance(cost, float)
    assert cost == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_virtual_cost_is_linear_in_prices() -> None:
    # Only memory priced: 2 GiB * $1 per GiB-second * 3600 s
    cost = virtual_cost_per_hour(
        1.0, 2 * GIB, vcpu_price_per_second=0.0, gib_price_per_second=1.0, min_cpu=0.0, min_memory=0.0
    )
    assert cost == 7200.0


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"pod_cpu": -1.0}, "pod_cpu"),
        ({"pod_memory": math.nan}, "pod_memory"),
        ({"min_cpu": -0.5}, "min_cpu"),
        ({"min_memory": -1.0}, "min_memory"),
        ({"vcpu_price_per_second": -0.000012}, "vcpu_price_per_second"),
        ({"gib_price_per_second": math.inf}, "gib_price_per_second"),
    ],
    ids=[
        "negative-cpu",
        "nan-memory",
        "negative-min-cpu",
        "negative-min-memory",
        "negative-price",
        "inf-price",
    ],
)
def test_virtual_cost_rejects_bad_input(overrides: dict[str, float], match: str) -> None:
    kwargs: dict[str, float] = {
        "pod_cpu": 1.0,
        "pod_memory": 2 * GIB,
        "vcpu_price_per_second": ACI_VCPU_PER_SECOND,
        "gib_price_per_second": ACI_GIB_PER_SECOND,
        "min_cpu": 0.0,
        "min_memory": 0.0,
    }
    kwargs.update(overrides)
    pod_cpu, pod_memory = kwargs.pop("pod_cpu"), kwargs.pop("pod_memory")
    with pytest.raises(ValueError, match=match):
        virtual_cost_per_hour(pod_cpu, pod_memory, **kwargs)
