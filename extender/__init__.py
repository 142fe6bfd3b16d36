"""tideover: a kube-scheduler extender that uses the AKS virtual node as a bridge while VMSS capacity is pending.

Packages, lowest layer first (docs/architecture.md; import-linter keeps imports pointing downwards):

- :mod:`extender.model`: facts, keys, policy, configuration, the autoscaler status, the capacity signal, the snapshot;
- :mod:`extender.decide`: pure decisions: filter, prioritize, the guards, the matching rules, the return plan;
- :mod:`extender.cluster`: the watch-driven view of the cluster (the only reader of the API);
- :mod:`extender.telemetry`: Prometheus metrics;
- :mod:`extender.edge`: the HTTP wire and app, and ``explain`` over a kubectl dump;
- :mod:`extender.controllers`: the writers (deletion cost, returns, the gate, events, the Lease), through one port;
- :mod:`extender.cli`: the composition root.
"""

__all__ = ["cli", "cluster", "controllers", "decide", "edge", "model", "telemetry"]
