"""Runs the simulated VMSS's unit tests (e2e/vmss/test_simulator.py) with the default test paths.

They need no cluster: an in-process grpcio server and client, a fake clock and a fake node registrar.
"""

from e2e.vmss.test_simulator import *  # noqa: F403
