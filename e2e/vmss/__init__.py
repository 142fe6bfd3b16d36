"""A simulated Azure VM Scale Set speaking cluster-autoscaler's externalgrpc CloudProvider protocol.

* :mod:`e2e.vmss.protos` generates the Python stubs from the pinned autoscaler's proto (never committed).
* :mod:`e2e.vmss.simulator` holds the scale sets (:class:`VmssSimulator`) and the gRPC service
  (:class:`VmssServer`).
* :mod:`e2e.vmss.autoscaler` writes CA's cloud-config and command line.
* ``python -m e2e.vmss --help`` runs it as a process.
"""

from e2e.vmss.autoscaler import AutoscalerOptions, ca_command, write_cloud_config
from e2e.vmss.simulator import (
    Faults,
    GroupConfig,
    Instance,
    KubeNodeRegistrar,
    NodeRegistrar,
    NodeSpec,
    SimulatorError,
    VmssServer,
    VmssSimulator,
)

__all__ = [
    "AutoscalerOptions",
    "Faults",
    "GroupConfig",
    "Instance",
    "KubeNodeRegistrar",
    "NodeRegistrar",
    "NodeSpec",
    "SimulatorError",
    "VmssServer",
    "VmssSimulator",
    "ca_command",
    "write_cloud_config",
]
