"""The writers: pod-deletion cost and the return to VMs under a Lease (the loop acts on the decide package's
plan), the gate taint and spill state on virtual nodes, and Events on pods. Every write goes through one typed
port (:mod:`extender.controllers.port`)."""

__all__ = ["events", "gate", "loop", "port"]
