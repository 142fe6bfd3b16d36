"""The cluster view: the only reader of the Kubernetes API. List+watch of Nodes, Pods and the autoscaler's status
ConfigMap in background threads, folded into a new immutable snapshot the request path reads from memory."""

__all__ = ["tally", "view"]
