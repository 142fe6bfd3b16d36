"""What tideover knows, as immutable values: the facts read from Kubernetes objects, the well-known keys, the
workload policy in annotations, the configuration, cluster-autoscaler's status, the capacity signal per pool and the
snapshot that ties them together. Pure: no I/O, no Kubernetes client calls (only its quantity parser)."""

__all__ = ["autoscaler_status", "capacity", "config", "keys", "objects", "policy", "reference", "snapshot"]
