"""cluster-autoscaler's configuration for the end-to-end cluster: the externalgrpc cloud-config file and
the command line, with loop intervals short enough for tests.

Every flag used here exists in the pinned CA version (``cluster-autoscaler/config/flags/flags.go``;
``--leader-elect`` comes from component-base's leader-election flags bound in ``main.go``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

STATUS_CONFIGMAP = "cluster-autoscaler-status"
STATUS_NAMESPACE = "kube-system"


def write_cloud_config(path: Path, port: int, host: str = "127.0.0.1", grpc_timeout: str | None = None) -> Path:
    """Write CA's ``--cloud-config`` for the externalgrpc provider: no cert, so CA dials plaintext."""
    doc: dict[str, str] = {"address": f"{host}:{port}"}
    if grpc_timeout:
        doc["grpc_timeout"] = grpc_timeout  # a Go duration, e.g. "5s" (CA's default)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass
class AutoscalerOptions:
    """Flag values; the defaults suit tests (a real cluster uses 10 s scans and minutes of delays)."""

    scan_interval: str = "2s"
    max_node_provision_time: str = "2m"  # CA gives up on an instance that has not registered by then
    scale_down_enabled: bool = True
    scale_down_delay_after_add: str = "2m"
    scale_down_delay_after_delete: str = "0s"
    scale_down_delay_after_failure: str = "30s"
    scale_down_unneeded_time: str = "1m"
    initial_node_group_backoff_duration: str = "5m"  # CA's default; tests of recovery shorten it
    max_node_group_backoff_duration: str = "30m"
    new_pod_scale_up_delay: str = "0s"
    expander: str = "least-waste"
    verbosity: int = 2
    extra_args: list[str] = field(default_factory=list)


def ca_command(
    binary: Path | str,
    *,
    kubeconfig: Path | str,
    cloud_config: Path | str,
    metrics_port: int,
    options: AutoscalerOptions | None = None,
) -> list[str]:
    """The cluster-autoscaler command line for the e2e cluster (externalgrpc provider, status ConfigMap)."""
    o = options or AutoscalerOptions()
    return [
        str(binary),
        "--cloud-provider=externalgrpc",
        f"--cloud-config={cloud_config}",
        f"--kubeconfig={kubeconfig}",
        # Default ":8085" listens on every interface and collides between parallel runs.
        f"--address=127.0.0.1:{metrics_port}",
        "--leader-elect=false",
        f"--namespace={STATUS_NAMESPACE}",
        "--write-status-configmap=true",
        f"--status-config-map-name={STATUS_CONFIGMAP}",
        f"--scan-interval={o.scan_interval}",
        f"--max-node-provision-time={o.max_node_provision_time}",
        f"--scale-down-enabled={str(o.scale_down_enabled).lower()}",
        f"--scale-down-delay-after-add={o.scale_down_delay_after_add}",
        f"--scale-down-delay-after-delete={o.scale_down_delay_after_delete}",
        f"--scale-down-delay-after-failure={o.scale_down_delay_after_failure}",
        f"--scale-down-unneeded-time={o.scale_down_unneeded_time}",
        f"--initial-node-group-backoff-duration={o.initial_node_group_backoff_duration}",
        f"--max-node-group-backoff-duration={o.max_node_group_backoff_duration}",
        f"--new-pod-scale-up-delay={o.new_pod_scale_up_delay}",
        f"--expander={o.expander}",
        "--logtostderr=true",
        f"--v={o.verbosity}",
        *o.extra_args,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m e2e.vmss.autoscaler --kubeconfig K --port P --cloud-config F``: print the CA command."""
    import argparse
    import shlex

    from e2e.harness import components

    parser = argparse.ArgumentParser(prog="python -m e2e.vmss.autoscaler", description=main.__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, required=True, help="the simulator's gRPC port")
    parser.add_argument("--cloud-config", type=Path, required=True, help="file to write")
    parser.add_argument("--metrics-port", type=int, default=8085)
    args = parser.parse_args(argv)
    write_cloud_config(args.cloud_config, args.port)
    cmd = ca_command(
        components.binary_path("cluster-autoscaler"),
        kubeconfig=args.kubeconfig,
        cloud_config=args.cloud_config,
        metrics_port=args.metrics_port,
    )
    print(shlex.join(cmd))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
