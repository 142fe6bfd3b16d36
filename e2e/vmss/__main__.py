"""Run the simulated VMSS: ``python -m e2e.vmss --kubeconfig K --port P --group name=nodepool1,min=1,max=5 ...``.

``--group`` takes comma-separated ``key=value`` pairs: ``name``, ``min``, ``max``, ``provisioning-delay``
(seconds), ``initial`` (instances registered at start when the group is new), ``instance-type``, ``cpu``,
``memory``, ``pods``, ``mode``, and the faults ``quota`` (``increase`` | ``instances``),
``boot-delay`` (seconds), ``never-ready`` and ``never-register`` (true/false), and ``aks-group-id`` (true/false:
the node group id as AKS names it, the default). Repeat it for several pools.

Faults change at run time through ``--faults-file``: a JSON object keyed by group, e.g.
``{"nodepool1": {"quota": "instances", "boot_delay": 60, "never_ready": false}}``, re-read whenever it
changes (a group it does not name has no faults).

With ``--state-file`` the state survives a restart of the simulator. ``--port 0`` picks a free port;
``--port-file`` receives it, and ``--cloud-config`` receives CA's cloud-config file for it.
SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from e2e.vmss.autoscaler import write_cloud_config
from e2e.vmss.simulator import (
    Faults,
    GroupConfig,
    KubeNodeRegistrar,
    NodeRegistrar,
    NodeSpec,
    VmssServer,
    VmssSimulator,
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def parse_group(spec: str) -> GroupConfig:
    """``name=nodepool1,min=1,max=5,provisioning-delay=20`` -> GroupConfig."""
    fields: dict[str, Any] = {}
    faults: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"--group {spec!r}: {part!r} is not key=value")
        key = key.strip().replace("_", "-")
        value = value.strip()
        if key == "name":
            fields["name"] = value
        elif key in ("min", "min-size"):
            fields["min_size"] = int(value)
        elif key in ("max", "max-size"):
            fields["max_size"] = int(value)
        elif key in ("provisioning-delay", "delay"):
            fields["provisioning_delay"] = float(value)
        elif key == "initial":
            fields["initial"] = int(value)
        elif key in ("instance-type", "cpu", "memory", "pods", "mode"):
            fields[key.replace("-", "_")] = value
        elif key == "quota":
            faults["quota"] = None if value.lower() in ("", "none", "off") else value
        elif key == "boot-delay":
            faults["boot_delay"] = float(value)
        elif key == "never-ready":
            faults["never_ready"] = _bool(value)
        elif key == "never-register":
            faults["never_register"] = _bool(value)
        elif key == "aks-group-id":
            fields["aks_group_id"] = _bool(value)
        else:
            raise ValueError(f"--group {spec!r}: unknown key {key!r}")
    if "name" not in fields:
        raise ValueError(f"--group {spec!r}: name= is required")
    return GroupConfig(**fields, faults=Faults.from_json(faults))


class _LogRegistrar:
    """--dry-run: no cluster; registrations are only logged."""

    def register(self, node: NodeSpec) -> None:
        logging.getLogger("e2e.vmss").info("dry-run: would register node %s (%s)", node.name, node.provider_id)

    def deregister(self, name: str) -> None:
        logging.getLogger("e2e.vmss").info("dry-run: would delete node %s", name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.vmss",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("--kubeconfig", type=Path, help="cluster where booted instances register as Nodes")
    parser.add_argument("--dry-run", action="store_true", help="no cluster: only log node registrations")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="gRPC port (0: a free one)")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once serving")
    parser.add_argument("--cloud-config", type=Path, help="write CA's externalgrpc cloud-config here")
    parser.add_argument("--state-file", type=Path, help="JSON state, reloaded at start")
    parser.add_argument("--faults-file", type=Path, help="JSON faults per group, re-read when it changes")
    parser.add_argument("--group", action="append", default=[], metavar="SPEC", help="a node group (repeatable)")
    parser.add_argument("--deletion-delay", type=float, default=0.0, help="seconds an instance stays 'deleting'")
    parser.add_argument("--tick", type=float, default=0.25, help="seconds between simulation steps")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )
    try:
        groups = [parse_group(g) for g in args.group] or [GroupConfig()]
    except ValueError as exc:
        parser.error(str(exc))
    if args.kubeconfig is None and not args.dry_run:
        parser.error("--kubeconfig is required (or --dry-run)")
    registrar: NodeRegistrar = _LogRegistrar() if args.dry_run else KubeNodeRegistrar(args.kubeconfig)

    sim = VmssSimulator(
        groups, registrar, state_file=args.state_file, faults_file=args.faults_file, deletion_delay=args.deletion_delay
    )
    server = VmssServer(sim, port=args.port, host=args.host, tick=args.tick).start()
    if args.cloud_config:
        write_cloud_config(args.cloud_config, server.port, host=args.host)
    if args.port_file:
        tmp = args.port_file.with_name(f".{args.port_file.name}.tmp")
        tmp.write_text(f"{server.port}\n")
        tmp.replace(args.port_file)
    print(f"listening on {server.address}", flush=True)

    done = threading.Event()

    def stop(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not done.wait(1.0):
        pass
    server.stop()
    logging.getLogger("e2e.vmss").info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
