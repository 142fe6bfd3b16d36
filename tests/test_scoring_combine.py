"""Combining cost and latency into 0..10 extender scores, and the purity of the scoring package.

Merits are worked out by hand: merit = (best + floor) / (value + floor). Defaults: cost floor
$0.001/hour, latency floor 1 s.
"""

import ast
import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import scoring
from scoring.combine import MAX_EXTENDER_PRIORITY, Weights, combined_scores, relative_merit
from scoring.latency import missing_image_bytes, start_seconds


def arr(*values: float) -> NDArray[np.float64]:
    return np.array(values, dtype=np.float64)


# --- Weights -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        (Weights(cost=2.0, latency=3.0), (0.4, 0.6)),
        (Weights(cost=1.0, latency=0.0), (1.0, 0.0)),
        (Weights(cost=0.0, latency=5.0), (0.0, 1.0)),
        (Weights(cost=0.5, latency=0.5), (0.5, 0.5)),
        (Weights(cost=3, latency=1), (0.75, 0.25)),  # ints are fine
    ],
    ids=["two-three", "cost-only", "latency-only", "already-normalised", "ints"],
)
def test_weights_normalised(weights: Weights, expected: tuple[float, float]) -> None:
    normalised = weights.normalised()
    assert (normalised.cost, normalised.latency) == pytest.approx(expected, abs=1e-15)
    assert normalised.cost + normalised.latency == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize(
    ("cost", "latency", "match"),
    [
        (-1.0, 1.0, r"Weights\.cost"),
        (1.0, -0.1, r"Weights\.latency"),
        (math.nan, 1.0, r"Weights\.cost"),
        (1.0, math.inf, r"Weights\.latency"),
        (0.0, 0.0, "both be 0"),
    ],
    ids=["negative-cost", "negative-latency", "nan-cost", "inf-latency", "both-zero"],
)
def test_weights_validation(cost: float, latency: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Weights(cost=cost, latency=latency)


def test_weights_are_frozen() -> None:
    weights = Weights(cost=1.0, latency=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        weights.cost = 2.0  # type: ignore[misc]


# --- relative_merit ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "floor", "expected"),
    [
        (arr(1.0, 2.0, 4.0), 1.0, arr(1.0, 2 / 3, 2 / 5)),
        (arr(0.0, 1.0, 3.0), 1.0, arr(1.0, 0.5, 0.25)),  # zero value stays finite thanks to floor
        (arr(4.0, 2.0, 1.0), 1.0, arr(2 / 5, 2 / 3, 1.0)),  # best need not be first
        # Scale invariance: twice the cost of the cheapest scores half (floor negligible)
        (arr(0.048, 0.096), 1e-12, arr(1.0, 0.5)),
        (arr(48.0, 96.0), 1e-12, arr(1.0, 0.5)),
        # Tiny absolute differences are not stretched: 11 / 11.002
        (arr(10.0, 10.002), 1.0, arr(1.0, 11 / 11.002)),
        (arr(5.0, 5.0, 5.0), 1.0, arr(1.0, 1.0, 1.0)),  # ties
        (arr(1.0, math.nan, math.inf), 1.0, arr(1.0, 0.0, 0.0)),  # non-finite -> 0
        (arr(math.nan, math.inf), 1.0, arr(0.0, 0.0)),  # nothing finite
        (arr(math.nan, 3.0), 1.0, arr(0.0, 1.0)),  # best ignores NaN
        (arr(-math.inf, 3.0), 1.0, arr(0.0, 1.0)),  # ... and -inf: not a "best" value
        (arr(7.0), 0.5, arr(1.0)),
        (arr(), 1.0, arr()),
    ],
    ids=[
        "ratios",
        "zero-value",
        "best-last",
        "scale-small",
        "scale-large",
        "tiny-difference",
        "ties",
        "non-finite",
        "all-non-finite",
        "nan-first",
        "minus-inf-first",
        "single",
        "empty",
    ],
)
def test_relative_merit(values: NDArray[np.float64], floor: float, expected: NDArray[np.float64]) -> None:
    merit = relative_merit(values, floor)
    assert merit.dtype == np.float64
    assert merit.shape == expected.shape
    np.testing.assert_allclose(merit, expected, rtol=1e-9, atol=0.0)


@pytest.mark.parametrize(
    ("values", "floor", "match"),
    [
        (arr(1.0), 0.0, "floor"),
        (arr(1.0), -1.0, "floor"),
        (arr(1.0), math.nan, "floor"),
        (arr(1.0), math.inf, "floor"),
        (np.ones((2, 2)), 1.0, "values must be 1-D"),
        (arr(1.0, -0.5), 1.0, "values must be >= 0"),
    ],
    ids=["zero-floor", "negative-floor", "nan-floor", "inf-floor", "2d-values", "negative-value"],
)
def test_relative_merit_rejects_bad_input(values: NDArray[np.float64], floor: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        relative_merit(values, floor)


# --- combined_scores ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cost", "latency", "weights", "kwargs", "expected"),
    [
        # Cost only. Merit = 0.049 / (cost + 0.001): [1, 0.049/0.097=0.505, 0.049/0.05356=0.915]
        (arr(0.048, 0.096, 0.05256), arr(2.0, 2.0, 30.0), Weights(1, 0), {}, [10, 5, 9]),
        # Latency only. Merit = 3 / (seconds + 1): [1, 3/13=0.231, 3/33=0.091]
        (arr(0.048, 0.048, 0.048), arr(2.0, 12.0, 32.0), Weights(0, 1), {}, [10, 2, 1]),
        # VM ($0.048, 12 s) vs ACI ($0.05256, 32 s), equal weights:
        # ACI = 0.5 * 0.049/0.05356 + 0.5 * 13/33 = 0.457 + 0.197 = 0.654 -> 7
        (arr(0.048, 0.05256), arr(12.0, 32.0), Weights(1, 1), {}, [10, 7]),
        # Weights 3:1 -> 0.75/0.25. Node 0: 0.75*0.505 + 0.25*1 = 0.629 -> 6;
        # node 1: 0.75*1 + 0.25*3/13 = 0.808 -> 8
        (arr(0.096, 0.048), arr(2.0, 12.0), Weights(3, 1), {}, [6, 8]),
        # Same with a 0..100 range: 62.9 -> 63, 80.8 -> 81
        (arr(0.096, 0.048), arr(2.0, 12.0), Weights(3, 1), {"max_score": 100}, [63, 81]),
        # Bigger latency floor damps the latency difference: 0.5 + 0.5 * 11/21 = 0.762 -> 8
        (arr(0.048, 0.048), arr(0.0, 10.0), Weights(1, 1), {"latency_floor": 11.0}, [10, 8]),
        # ... default floor 1 s: 0.5 + 0.5 * 1/11 = 0.545 -> 5
        (arr(0.048, 0.048), arr(0.0, 10.0), Weights(1, 1), {}, [10, 5]),
        # Bigger cost floor damps the cost difference: 0.049 vs 0.096 with floor 0.048 -> 0.096/0.144
        (arr(0.048, 0.096), arr(2.0, 2.0), Weights(1, 0), {"cost_floor": 0.048}, [10, 7]),
        # Unknown (NaN) cost contributes 0 but latency still counts: 0.5 * 10 = 5
        (arr(math.nan, 0.048), arr(2.0, 2.0), Weights(1, 1), {}, [5, 10]),
        # Infinite latency (e.g. never starts): only cost merit, 0.5 * 10
        (arr(0.048, 0.048), arr(math.inf, 2.0), Weights(1, 1), {}, [5, 10]),
        # Everything unknown: 0
        (arr(math.nan), arr(math.nan), Weights(1, 1), {}, [0]),
        # Free node (cost 0) and instant start are fine
        (arr(0.0, 0.001), arr(0.0, 1.0), Weights(1, 1), {}, [10, 5]),
        (arr(), arr(), Weights(1, 1), {}, []),
    ],
    ids=[
        "cost-only",
        "latency-only",
        "vm-vs-aci-equal-weights",
        "weights-3-to-1",
        "max-score-100",
        "large-latency-floor",
        "default-latency-floor",
        "large-cost-floor",
        "nan-cost",
        "inf-latency",
        "all-unknown",
        "zero-values",
        "empty",
    ],
)
def test_combined_scores(
    cost: NDArray[np.float64],
    latency: NDArray[np.float64],
    weights: Weights,
    kwargs: dict[str, Any],
    expected: list[int],
) -> None:
    scores = combined_scores(cost, latency, weights, **kwargs)
    assert scores.dtype == np.int64
    assert scores.tolist() == expected


def test_equal_nodes_get_equal_scores() -> None:
    cost = arr(0.048, 0.096, 0.048, 0.096)
    latency = arr(12.0, 2.0, 12.0, 2.0)
    scores = combined_scores(cost, latency, Weights(cost=1.0, latency=1.0))
    assert scores[0] == scores[2]
    assert scores[1] == scores[3]
    # And the pairs are really different, so the equality above is not vacuous:
    # 0.5 + 0.5*3/13 = 0.615 -> 6 vs 0.5*0.505 + 0.5 = 0.753 -> 8
    assert scores.tolist() == [6, 8, 6, 8]


def test_cheaper_node_scores_higher_under_cost_weight() -> None:
    scores = combined_scores(arr(0.096, 0.048), arr(5.0, 5.0), Weights(cost=0.8, latency=0.2))
    assert scores[1] > scores[0]


def test_image_present_node_scores_higher_under_latency_weight() -> None:
    # Same price; node 0 has the 500 MB image, node 1 must pull it at 50 MB/s.
    missing = missing_image_bytes(arr(500e6), np.array([[True], [False]]))
    seconds = start_seconds(2.0, missing, 50e6)
    scores = combined_scores(arr(0.048, 0.048), seconds, Weights(cost=0.2, latency=0.8))
    assert scores[0] > scores[1]


def test_only_weight_ratio_matters() -> None:
    cost, latency = arr(0.048, 0.096, 0.05256), arr(12.0, 2.0, 32.0)
    a = combined_scores(cost, latency, Weights(cost=1.0, latency=2.0))
    b = combined_scores(cost, latency, Weights(cost=5.0, latency=10.0))
    np.testing.assert_array_equal(a, b)


def test_scores_are_int64_within_range_on_many_nodes() -> None:
    rng = np.random.default_rng(7)
    n = 5000
    # Wide spread including zeros, huge values and non-finite entries.
    cost = rng.uniform(0.0, 5.0, n) * 10.0 ** rng.integers(-6, 6, n)
    latency = rng.uniform(0.0, 120.0, n)
    cost[:3] = [0.0, math.inf, math.nan]
    latency[3:6] = [0.0, 1e300, math.nan]
    for weights in (Weights(1, 0), Weights(0, 1), Weights(0.7, 0.3), Weights(1, 1)):
        scores = combined_scores(cost, latency, weights)
        assert scores.dtype == np.int64
        assert scores.shape == (n,)
        assert scores.min() >= 0
        assert scores.max() <= MAX_EXTENDER_PRIORITY
    # With a single objective the best node gets the top score and unknown values the bottom one.
    assert combined_scores(cost, latency, Weights(1, 0))[[0, 1, 2]].tolist() == [10, 0, 0]


def test_best_node_on_both_objectives_scores_max_with_uneven_weights() -> None:
    # 0.7 + 0.3 must still give exactly 10 for the best node, not 9 or 11.
    scores = combined_scores(arr(0.048, 0.096), arr(2.0, 12.0), Weights(cost=0.7, latency=0.3))
    assert scores[0] == 10


@pytest.mark.parametrize(
    ("cost", "latency", "kwargs", "match"),
    [
        (arr(0.048, 0.096), arr(2.0), {}, "same shape"),
        (np.ones((2, 1)), np.ones((2, 1)), {}, "1-D"),
        (arr(0.048), arr(2.0), {"max_score": 0}, "max_score"),
        (arr(0.048), arr(2.0), {"max_score": 2.5}, "max_score"),
        (arr(0.048), arr(2.0), {"max_score": True}, "max_score"),
        (arr(0.048), arr(2.0), {"cost_floor": 0.0}, "cost_floor"),
        (arr(0.048), arr(2.0), {"latency_floor": -1.0}, "latency_floor"),
        (arr(-0.048), arr(2.0), {}, "cost_per_hour must be >= 0"),
        (arr(0.048), arr(-2.0), {}, "start_seconds must be >= 0"),
    ],
    ids=[
        "mismatched-shapes",
        "2d",
        "max-score-zero",
        "max-score-float",
        "max-score-bool",
        "zero-cost-floor",
        "negative-latency-floor",
        "negative-cost",
        "negative-latency",
    ],
)
def test_combined_scores_rejects_bad_input(
    cost: NDArray[np.float64], latency: NDArray[np.float64], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        combined_scores(cost, latency, Weights(1, 1), **kwargs)


# --- purity ------------------------------------------------------------------------------------

ALLOWED_TOP_LEVEL_IMPORTS = {"__future__", "dataclasses", "math", "numpy", "scoring", "typing"}


@pytest.mark.parametrize(
    "module_path",
    sorted(Path(scoring.__file__).parent.glob("*.py")),
    ids=lambda path: path.name,
)
def test_scoring_imports_only_numpy_and_stdlib_math(module_path: Path) -> None:
    tree = ast.parse(module_path.read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported <= ALLOWED_TOP_LEVEL_IMPORTS, imported - ALLOWED_TOP_LEVEL_IMPORTS
