"""The decisions: pure functions of (pod, candidates, snapshot, config) returning results with reasons. The filter
(the bridge rule, as an ordered table of steps), prioritize (cost and latency models), the virtual-node guards,
the scheduling-predicate matching rules, and the return plan the controllers act on."""

__all__ = ["filter", "guards", "matching", "prioritize", "returns"]
