"""The end-to-end harness: building the real components, the local-process cluster, PKI, tideover's process, the
autoscaled stack, the stacks the fixtures start, workloads and the watch-driven observer."""

__all__ = ["autoscaled", "cluster", "components", "observe", "pki", "stacks", "tideover", "workloads"]
