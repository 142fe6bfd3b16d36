"""Combine per-node cost and start latency into kube-scheduler extender scores.

Each objective is lower-is-better and has its own unit (USD/hour, seconds), so each is first mapped
to a unit-free *merit* in ``[0, 1]`` relative to the best candidate::

    merit = (best + floor) / (value + floor),    best = min over nodes

This is a ratio, so it is scale-invariant and keeps proportions: a node costing twice as much as the
cheapest scores (about) half on cost, and a 2 ms difference between otherwise equal nodes stays a
negligible difference. Min-max normalisation would instead stretch any spread, however tiny, to the
full 0..1 range. ``floor`` (in the objective's unit) keeps zero values finite and says what
difference is too small to matter: with a latency floor of 1 s, 0 s vs 1 s halves the merit, while
30 s vs 31 s barely moves it.

The merits are blended with normalised :class:`Weights` and scaled to the integer score range the
scheduler expects from extenders (``0..MAX_EXTENDER_PRIORITY``).
"""

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["MAX_EXTENDER_PRIORITY", "Weights", "combined_scores", "relative_merit"]

MAX_EXTENDER_PRIORITY: int = 10
"""kube-scheduler's ``MaxExtenderPriority``: extender prioritize scores are integers in 0..10."""


@dataclass(frozen=True, slots=True)
class Weights:
    """Relative importance of cost and start latency.

    Both weights must be finite and >= 0, and not both 0. They need not sum to 1; use
    :meth:`normalised` for weights that do.
    """

    cost: float
    latency: float

    def __post_init__(self) -> None:
        for name in ("cost", "latency"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"Weights.{name} must be a finite number >= 0, got {value!r}")
        if self.cost == 0 and self.latency == 0:
            raise ValueError("Weights.cost and Weights.latency must not both be 0")

    def normalised(self) -> "Weights":
        """The same weights scaled to sum to 1."""
        total = self.cost + self.latency
        return Weights(cost=self.cost / total, latency=self.latency / total)


def _check_floor(name: str, floor: float) -> float:
    floor = float(floor)
    if not math.isfinite(floor) or floor <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0, got {floor!r}")
    return floor


def _merit(values: NDArray[np.float64], floor: float, name: str) -> NDArray[np.float64]:
    finite = np.isfinite(values)
    merit = np.zeros(values.shape, dtype=np.float64)
    # Reduction restricted to finite values without a boolean-index copy; +inf when none are finite.
    best = float(np.min(values, where=finite, initial=np.inf))
    if best == np.inf:
        return merit  # empty input, or no node with a usable value
    if best < 0.0:
        # Negative cost or latency is a caller bug, and value + floor could reach 0 or flip sign.
        raise ValueError(f"{name} must be >= 0 where finite, got minimum {best!r}")
    # Non-finite values keep merit 0: a node with unknown cost or latency never wins on it.
    np.divide(best + floor, values + floor, out=merit, where=finite)
    return merit


def relative_merit(values: NDArray[np.float64], floor: float) -> NDArray[np.float64]:
    """Map lower-is-better values to merit in ``[0, 1]``: ``(best + floor) / (value + floor)``.

    Args:
        values: one value per node (cost in USD/hour, latency in seconds, ...), shape ``(n,)``;
            finite values must be >= 0.
        floor: > 0, in the unit of ``values``; keeps zero values finite and damps differences
            smaller than it.

    Returns:
        Merit per node, shape ``(n,)``: 1.0 for the best node(s), proportionally less for worse
        ones, 0.0 for non-finite values (NaN, inf). Empty input gives an empty array.

    Raises:
        ValueError: ``floor`` not > 0, ``values`` not 1-D, or a negative finite value.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"values must be 1-D (one value per node), got shape {array.shape}")
    return _merit(array, _check_floor("floor", floor), "values")


def combined_scores(
    cost_per_hour: NDArray[np.float64],
    start_seconds: NDArray[np.float64],
    weights: Weights,
    *,
    cost_floor: float = 0.001,
    latency_floor: float = 1.0,
    max_score: int = MAX_EXTENDER_PRIORITY,
) -> NDArray[np.int64]:
    """Extender scores per node: ``round(max_score * (w_cost * merit(cost) + w_lat * merit(latency)))``.

    Args:
        cost_per_hour: USD per hour per node, shape ``(n_nodes,)``.
        start_seconds: expected seconds until running per node, shape ``(n_nodes,)``.
        weights: relative importance; normalised here, so only the ratio matters.
        cost_floor: merit floor for cost, USD/hour (default $0.001/hour, far below any real node
            share, so cost ratios are essentially undamped).
        latency_floor: merit floor for latency, seconds (default 1 s: sub-second differences in
            expected start time are noise).
        max_score: top of the score range; kube-scheduler expects 0..MAX_EXTENDER_PRIORITY.

    Returns:
        int64 scores in ``[0, max_score]``, shape ``(n_nodes,)``. Rounding is half-to-even (like
        Python's ``round``). Equal inputs give equal scores; the best node on both objectives gets
        ``max_score``.

    Raises:
        ValueError: arrays not 1-D or of different shapes, floors not > 0, ``max_score`` < 1, or
            negative finite cost/latency.
    """
    if isinstance(max_score, bool) or not isinstance(max_score, int | np.integer) or max_score < 1:
        raise ValueError(f"max_score must be an integer >= 1, got {max_score!r}")
    cost = np.asarray(cost_per_hour, dtype=np.float64)
    latency = np.asarray(start_seconds, dtype=np.float64)
    if cost.ndim != 1 or cost.shape != latency.shape:
        raise ValueError(
            "cost_per_hour and start_seconds must be 1-D with the same shape, "
            f"got {cost.shape} and {latency.shape}"
        )
    w = weights.normalised()
    blended = w.cost * _merit(cost, _check_floor("cost_floor", cost_floor), "cost_per_hour")
    blended += w.latency * _merit(latency, _check_floor("latency_floor", latency_floor), "start_seconds")
    blended *= max_score
    # Clip guards against float overshoot (e.g. 0.7 + 0.3 summing a hair above 1) before the cast.
    np.clip(np.rint(blended, out=blended), 0, max_score, out=blended)
    return blended.astype(np.int64)
