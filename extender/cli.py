"""The ``tideover`` command: serve, check-config, explain, simulate."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from extender.model.config import ConfigError, TideoverConfig, load_config, parse_config
from extender.model.objects import ObjectError

log = logging.getLogger("tideover")


class ServeSettings(BaseSettings):
    """``tideover serve`` settings from the environment (TIDEOVER_*); command-line flags win.

    Host and port are TIDEOVER_LISTEN_HOST / TIDEOVER_LISTEN_PORT: Kubernetes' service links put
    TIDEOVER_PORT=tcp://10.0.0.1:8888 into every pod of a namespace with a Service named tideover.
    """

    model_config = SettingsConfigDict(env_prefix="TIDEOVER_", extra="ignore")

    config: Path | None = None
    kubeconfig: Path | None = None
    host: str | None = Field(default=None, validation_alias="TIDEOVER_LISTEN_HOST")
    port: int | None = Field(default=None, validation_alias="TIDEOVER_LISTEN_PORT")
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    client_ca_file: Path | None = None
    health_port: int | None = None
    log_level: str = "info"


def _with_server_overrides(config: TideoverConfig, overrides: dict[str, Any], source: str) -> TideoverConfig:
    if not overrides:
        return config
    data = config.model_dump(mode="json", by_alias=True)
    data["server"].update(overrides)
    return parse_config(data, f"{source} (with command-line overrides)")


def _kube_api_client(kubeconfig: Path | None) -> Any:
    from kubernetes import client
    from kubernetes import config as kube_config

    if kubeconfig is not None:
        return kube_config.new_client_from_config(config_file=str(kubeconfig))
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        kube_config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    return kube_config.new_client_from_config()


def _exit_on_sigterm() -> None:
    """SIGTERM (how Kubernetes stops a pod) ends the process with an exception (exit status 143), not by the signal's
    default action, so that ``finally`` blocks and atexit handlers run. uvicorn catches the signal while it serves,
    shuts the servers down, then raises it again under the handler it found: this one. Without it the process died
    there: serve's ``finally`` did not run, nor the kubernetes client's removal of the temporary files it writes for a
    kubeconfig's inline certificates."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def serve(settings: ServeSettings) -> int:
    """The composition root: builds every component and wires them together, in the order they depend on each
    other, then serves until stopped. One function on purpose: the wiring is read in one place."""
    _exit_on_sigterm()
    from kubernetes import client

    from extender.cluster.view import ClusterView
    from extender.controllers.events import EventRecorder, SpillNotifier, WaitingNotifier
    from extender.controllers.gate import SpillStateRecorder
    from extender.controllers.loop import ControllerLoop, LeaderElector
    from extender.controllers.port import ApiWrites
    from extender.edge.app import ExtenderService, create_app
    from extender.edge.serving import build_servers, edge_tls
    from extender.edge.serving import run as run_servers
    from extender.telemetry.metrics import Metrics

    source = str(settings.config) if settings.config else "defaults"
    overrides = {
        key: value
        for key, value in {
            "host": settings.host,
            "port": settings.port,
            "tlsCertFile": str(settings.tls_cert_file) if settings.tls_cert_file else None,
            "tlsKeyFile": str(settings.tls_key_file) if settings.tls_key_file else None,
            "clientCAFile": str(settings.client_ca_file) if settings.client_ca_file else None,
            "healthPort": settings.health_port,
        }.items()
        if value is not None
    }
    config = _with_server_overrides(load_config(settings.config), overrides, source)
    api_client = _kube_api_client(settings.kubeconfig)
    core = client.CoreV1Api(api_client)

    view = ClusterView(core, config, custom=client.CustomObjectsApi(api_client))
    kube = ApiWrites(core)
    recorder = EventRecorder(kube, host=socket.gethostname())
    notifier = SpillNotifier(recorder.emit, view.snapshot)
    view.add_pod_listener(notifier.on_pod_change)
    spill_state = SpillStateRecorder(kube, gate=config.virtual_nodes.gate_taint)
    view.add_snapshot_listener(spill_state.on_snapshot)
    metrics = Metrics()
    metrics.watch_snapshot(view.snapshot, view.sync_ages, config.virtual_nodes)
    view.add_snapshot_listener(metrics.account_virtual_time)
    controllers = ControllerLoop(kube, config, view.snapshot, recorder.emit, metrics)
    elector = LeaderElector(api_client, config, controllers.run)
    waiting = WaitingNotifier(recorder.emit, config, leading=elector.leading.is_set)
    view.add_pod_listener(waiting.on_pod_change)
    view.add_snapshot_listener(waiting.on_snapshot)
    service = ExtenderService(
        config, view.snapshot, metrics, on_filter_decision=notifier.on_filter_decision, pod_seen=view.holds_pending
    )
    metrics.watch_ledger(lambda: len(service.spills))
    edge = edge_tls(config.server)
    app = create_app(service, view.ready, edge.client_auth)

    recorder.start()
    spill_state.start()
    view.start()
    elector.start()
    server = config.server
    log.info(
        "serving on %s://%s:%d%s%s (config: %s)", "https" if server.tls_cert_file else "http", server.host,
        server.port, " (client certificates required)" if edge.client_auth else "",
        f", health and metrics also on http port {server.health_port}" if server.health_port else "", source,
    )
    try:
        run_servers(build_servers(app, server, edge, settings.log_level))
    finally:
        view.stop()
        recorder.stop()
        spill_state.stop()
    return 0


def check_config(path: Path) -> int:
    config = load_config(path)
    pools = ", ".join(pool.name for pool in config.vm_pools.pools) or "(discovered from node labels)"
    empty = config == TideoverConfig()
    print(f"{path}: OK (pools: {pools})" + ("; it sets nothing: every setting has its default" if empty else ""))
    return 0


def explain_command(snapshot: Path, pod: Path, config_path: Path | None, at: str | None, as_json: bool) -> int:
    from extender.edge.explain import DumpError, explain, read_dump, read_pod, render

    config = load_config(config_path)
    now = datetime.now(UTC)
    if at:
        try:
            now = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            print(f"--at: {at!r} is not an ISO 8601 time", file=sys.stderr)
            return 2
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
    try:
        dump = read_dump(_read(snapshot), str(snapshot))
        pod_facts = read_pod(_read(pod), str(pod))
        result = explain(dump, pod_facts, config, now)  # reads the dump's objects: their errors are the input's
    except (DumpError, ObjectError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if as_json:
        import orjson

        payload = {
            "pod": pod_facts.key,
            "outcome": result.filter.outcome.value,
            "reason": result.filter.reason,
            "candidates": result.candidates,
            "schedulerRejected": result.prefilter_rejected,
            "feasible": list(result.filter.feasible),
            "failedNodes": dict(result.filter.failed),
            "failedAndUnresolvableNodes": dict(result.filter.failed_unresolvable),
            "scores": dict(result.scores.scores) if result.scores else None,
            "pools": {name: pool.capacity.describe() for name, pool in result.snapshot.pools.items()},
        }
        print(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render(result))
    return 0


def _read(path: Path) -> str:
    from extender.edge.explain import decode_text

    return decode_text(sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes(), str(path))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tideover", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve_parser = sub.add_parser("serve", help="run the scheduler extender")
    serve_parser.add_argument("--config", type=Path, help="tideover config file (env TIDEOVER_CONFIG)")
    serve_parser.add_argument("--kubeconfig", type=Path, help="kubeconfig; default: in-cluster, then ~/.kube/config")
    serve_parser.add_argument("--host", help="overrides server.host")
    serve_parser.add_argument("--port", type=int, help="overrides server.port")
    serve_parser.add_argument("--tls-cert-file", type=Path, help="overrides server.tlsCertFile (serve HTTPS)")
    serve_parser.add_argument("--tls-key-file", type=Path, help="overrides server.tlsKeyFile")
    serve_parser.add_argument("--client-ca-file", type=Path, help="overrides server.clientCAFile (mutual TLS)")
    serve_parser.add_argument("--health-port", type=int, help="overrides server.healthPort")
    serve_parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    check = sub.add_parser("check-config", help="validate a config file and report every problem")
    check.add_argument("file", type=Path)

    sub.add_parser("config-reference", help="print every setting with its default and meaning (Markdown)")

    explain_parser = sub.add_parser("explain", help="what tideover would decide for a pod, from a kubectl dump")
    explain_parser.add_argument("--snapshot", type=Path, required=True,
                                help="output of: kubectl get nodes,pods,configmaps -A -o yaml ('-' for stdin); with "
                                     "Karpenter (Node Auto Provisioning) add nodeclaims,nodepools")
    explain_parser.add_argument("--pod", type=Path, required=True, help="the pod manifest (YAML or JSON)")
    explain_parser.add_argument("--config", type=Path, help="tideover config file")
    explain_parser.add_argument("--at", help="evaluate as of this ISO 8601 time (default: now)")
    explain_parser.add_argument("--json", action="store_true", help="machine-readable output")

    simulate_parser = sub.add_parser(
        "simulate", help="what tideover would save: a burst simulated under each policy, on tideover's own decisions"
    )
    source = simulate_parser.add_mutually_exclusive_group()
    source.add_argument("--scenario", default=None,
                        help="a built-in scenario: seed-001 (default), seed-002, diurnal")
    source.add_argument("--trace", type=Path, help="a demand trace: YAML or CSV (docs/simulate.md)")
    simulate_parser.add_argument("--cluster", type=Path, help="a cluster description (YAML) replacing the trace's")
    simulate_parser.add_argument("--config", type=Path, help="tideover config file (prices, policy settings)")
    simulate_parser.add_argument("--seed", type=int, default=1, help="random seed (default 1): same seed, same run")
    simulate_parser.add_argument("--duration", type=float, help="seconds to simulate (default: the trace's)")
    simulate_parser.add_argument("--policies",
                                 help="comma-separated policy keys (default: all; docs/simulate.md lists them)")
    simulate_parser.add_argument("--report", type=Path, help="write table, plots and report.html to this directory")
    simulate_parser.add_argument("--json", action="store_true", help="machine-readable results on stdout")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            env = ServeSettings()
            settings = env.model_copy(
                update={
                    key: value
                    for key, value in vars(args).items()
                    if key in ServeSettings.model_fields and value is not None
                }
            )
            logging.basicConfig(
                level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
            )
            # The client's leader election logs every renewal (each retry period) at INFO.
            logging.getLogger("leaderelection").setLevel(logging.WARNING)
            return serve(settings)
        if args.command == "check-config":
            return check_config(args.file)
        if args.command == "config-reference":
            from extender.model.reference import markdown

            print(markdown(), end="")
            return 0
        if args.command == "simulate":
            from extender.simulate.command import run

            return run(
                scenario_name=args.scenario, trace_path=args.trace, cluster_path=args.cluster,
                config_path=args.config, seed=args.seed, policies=args.policies, report=args.report,
                as_json=args.json, duration=args.duration,
            )
        return explain_command(args.snapshot, args.pod, args.config, args.at, args.json)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
