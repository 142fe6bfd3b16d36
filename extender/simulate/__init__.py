"""``tideover simulate``: a discrete-event burst simulator whose placement decisions are tideover's own code.

The engine (:mod:`.engine`) plays a demand trace (:mod:`.trace`, :mod:`.scenarios`) against a described cluster
(:mod:`.cluster`) under each policy (:mod:`.policies`). kube-scheduler's filters, the ReplicaSet and Job
controllers, the VMSS and cluster-autoscaler are simulated; tideover is not: its filter
(:func:`extender.decide.filter.decide_filter`), capacity signal, guards and return planner run on snapshots the
engine builds with :func:`extender.model.snapshot.build_snapshot` (:mod:`.bridge`). Results and the report are in
:mod:`.results` and :mod:`.report`. Nothing outside this package and the CLI imports it (import-linter).
"""

__all__ = ["autoscaler", "bridge", "cluster", "command", "engine", "policies", "report", "results", "scenarios",
           "state", "trace"]
