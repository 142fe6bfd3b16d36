"""Latency model: pull time, start time, and missing image bytes per node.

Sizes use decimal MB (10**6 bytes) so the arithmetic is easy to check by hand: 500 MB at 50 MB/s is
10 s.
"""

import math

import numpy as np
import pytest
from numpy.typing import NDArray

from scoring.latency import missing_image_bytes, pull_seconds, start_seconds

MB = 1e6


def arr(*values: float) -> NDArray[np.float64]:
    return np.array(values, dtype=np.float64)


@pytest.mark.parametrize(
    ("missing", "bandwidth", "expected"),
    [
        (arr(500 * MB), 50 * MB, arr(10.0)),
        (arr(0.0, 500 * MB, 1000 * MB), 50 * MB, arr(0.0, 10.0, 20.0)),
        (arr(500 * MB, 500 * MB), arr(50 * MB, 100 * MB), arr(10.0, 5.0)),  # per-node bandwidth
        (arr(500 * MB), np.float64(25 * MB), arr(20.0)),  # numpy scalar bandwidth
        (arr(500 * MB), math.inf, arr(0.0)),  # infinitely fast pull is allowed
        (arr(), 50 * MB, arr()),
    ],
    ids=["500mb-at-50mbps", "several-nodes", "per-node-bandwidth", "numpy-scalar", "inf-bandwidth", "empty"],
)
def test_pull_seconds(
    missing: NDArray[np.float64], bandwidth: float | NDArray[np.float64], expected: NDArray[np.float64]
) -> None:
    seconds = pull_seconds(missing, bandwidth)
    assert seconds.dtype == np.float64
    assert seconds.shape == expected.shape
    np.testing.assert_allclose(seconds, expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("missing", "bandwidth", "match"),
    [
        (arr(500 * MB), 0.0, "bandwidth_bytes_per_second"),
        (arr(500 * MB), -50 * MB, "bandwidth_bytes_per_second"),
        (arr(500 * MB), math.nan, "bandwidth_bytes_per_second"),
        (arr(500 * MB, 0.0), arr(50 * MB, 0.0), "bandwidth_bytes_per_second"),
        (arr(500 * MB, 0.0), arr(50 * MB), "bandwidth_bytes_per_second must be a scalar or have shape"),
        (arr(-1.0), 50 * MB, "missing_bytes"),
        (np.zeros((2, 1)), 50 * MB, "missing_bytes must be 1-D"),
    ],
    ids=[
        "zero-bandwidth",
        "negative-bandwidth",
        "nan-bandwidth",
        "one-node-zero-bandwidth",
        "bandwidth-shape-mismatch",
        "negative-missing",
        "2d-missing",
    ],
)
def test_pull_seconds_rejects_bad_input(
    missing: NDArray[np.float64], bandwidth: float | NDArray[np.float64], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        pull_seconds(missing, bandwidth)


@pytest.mark.parametrize(
    ("base", "missing", "bandwidth", "expected"),
    [
        (2.0, arr(500 * MB), 50 * MB, arr(12.0)),  # 2 s sandbox + 10 s pull
        (2.0, arr(0.0), 50 * MB, arr(2.0)),  # image present: base only
        # VM node with image cached vs ACI (30 s cold start, image missing): 2 s vs 30 + 10 s
        (arr(2.0, 30.0), arr(0.0, 500 * MB), 50 * MB, arr(2.0, 40.0)),
        # Per-node bandwidth too: ACI pulls at 25 MB/s -> 30 + 20 s
        (arr(2.0, 30.0), arr(500 * MB, 500 * MB), arr(50 * MB, 25 * MB), arr(12.0, 50.0)),
        (0.0, arr(0.0, 0.0), 50 * MB, arr(0.0, 0.0)),
        (2.0, arr(), 50 * MB, arr()),
    ],
    ids=["vm-image-missing", "vm-image-present", "vm-vs-aci", "per-node-bandwidth", "all-zero", "empty"],
)
def test_start_seconds(
    base: float | NDArray[np.float64],
    missing: NDArray[np.float64],
    bandwidth: float | NDArray[np.float64],
    expected: NDArray[np.float64],
) -> None:
    seconds = start_seconds(base, missing, bandwidth)
    assert seconds.dtype == np.float64
    assert seconds.shape == expected.shape
    np.testing.assert_allclose(seconds, expected, rtol=1e-12)


def test_start_seconds_does_not_modify_inputs() -> None:
    base, missing = arr(2.0, 30.0), arr(0.0, 500 * MB)
    start_seconds(base, missing, 50 * MB)
    np.testing.assert_array_equal(base, arr(2.0, 30.0))
    np.testing.assert_array_equal(missing, arr(0.0, 500 * MB))


@pytest.mark.parametrize(
    ("base", "missing", "bandwidth", "match"),
    [
        (-1.0, arr(0.0), 50 * MB, "base_seconds"),
        (math.nan, arr(0.0), 50 * MB, "base_seconds"),
        (arr(2.0, 30.0, 30.0), arr(0.0, 0.0), 50 * MB, "base_seconds must be a scalar or have shape"),
        (2.0, arr(0.0), 0.0, "bandwidth_bytes_per_second"),
    ],
    ids=["negative-base", "nan-base", "base-shape-mismatch", "zero-bandwidth"],
)
def test_start_seconds_rejects_bad_input(
    base: float | NDArray[np.float64],
    missing: NDArray[np.float64],
    bandwidth: float | NDArray[np.float64],
    match: str,
) -> None:
    with pytest.raises(ValueError, match=match):
        start_seconds(base, missing, bandwidth)


T, F = True, False


@pytest.mark.parametrize(
    ("sizes", "present", "expected"),
    [
        # Images of 500 MB and 100 MB on four nodes: both, only the first, only the second, neither
        (
            arr(500 * MB, 100 * MB),
            np.array([[T, T], [T, F], [F, T], [F, F]]),
            arr(0.0, 100 * MB, 500 * MB, 600 * MB),
        ),
        # Pod without images (n_images == 0): nothing to pull anywhere
        (arr(), np.zeros((3, 0), dtype=np.bool_), arr(0.0, 0.0, 0.0)),
        # No candidate nodes
        (arr(500 * MB), np.zeros((0, 1), dtype=np.bool_), arr()),
        # 0/1 integers mean absent/present (not bitwise-inverted)
        (arr(500 * MB, 100 * MB), np.array([[1, 0], [0, 0]]), arr(100 * MB, 600 * MB)),
        # Zero-size image is allowed and costs nothing
        (arr(0.0, 100 * MB), np.array([[F, T]]), arr(0.0)),
    ],
    ids=["four-nodes-two-images", "no-images", "no-nodes", "integer-present", "zero-size-image"],
)
def test_missing_image_bytes(
    sizes: NDArray[np.float64], present: NDArray[np.bool_], expected: NDArray[np.float64]
) -> None:
    missing = missing_image_bytes(sizes, present)
    assert missing.dtype == np.float64
    assert missing.shape == expected.shape
    np.testing.assert_array_equal(missing, expected)


def test_missing_image_bytes_feeds_start_seconds() -> None:
    # Node 0 has the 500 MB image, node 1 does not: 2 s vs 2 + 10 s.
    missing = missing_image_bytes(arr(500 * MB), np.array([[T], [F]]))
    np.testing.assert_allclose(start_seconds(2.0, missing, 50 * MB), arr(2.0, 12.0))


@pytest.mark.parametrize(
    ("sizes", "present", "match"),
    [
        (arr(500 * MB, 100 * MB), np.array([[T], [F]]), "image columns"),
        (arr(500 * MB), np.array([[T, T]]), "image columns"),
        (np.zeros((1, 1)), np.array([[T]]), "image_sizes must be 1-D"),
        (arr(500 * MB), np.array([T, F]), "present must be 2-D"),
        (arr(-1.0), np.array([[T]]), "image_sizes must be finite and >= 0"),
        (arr(math.nan), np.array([[T]]), "image_sizes must be finite and >= 0"),
        (arr(math.inf), np.array([[F]]), "image_sizes must be finite and >= 0"),
    ],
    ids=["fewer-columns", "more-columns", "2d-sizes", "1d-present", "negative-size", "nan-size", "inf-size"],
)
def test_missing_image_bytes_rejects_bad_input(
    sizes: NDArray[np.float64], present: NDArray[np.bool_], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        missing_image_bytes(sizes, present)
