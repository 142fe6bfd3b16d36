"""Pure scoring models for tideover: cost and start-latency per candidate node, combined into scores.

Everything in this package is a vectorised numpy function of plain numbers: no I/O, no Kubernetes
objects, no configuration lookup. Callers (the extender) turn API objects and config into arrays,
call these functions once per scheduling request, and turn the result back into API objects.

Array conventions: per-node inputs are 1-D float64 arrays of shape ``(n_nodes,)`` in the same node
order; outputs keep that order. CPU is in cores, memory and image sizes in bytes, prices in USD,
durations in seconds.
"""

from scoring.combine import MAX_EXTENDER_PRIORITY, Weights, combined_scores, relative_merit
from scoring.cost import GIB, dominant_share, virtual_cost_per_hour, vm_cost_per_hour
from scoring.latency import missing_image_bytes, pull_seconds, start_seconds

__all__ = [
    "GIB",
    "MAX_EXTENDER_PRIORITY",
    "Weights",
    "combined_scores",
    "dominant_share",
    "missing_image_bytes",
    "pull_seconds",
    "relative_merit",
    "start_seconds",
    "virtual_cost_per_hour",
    "vm_cost_per_hour",
]
