"""The kind target of the end-to-end suite: the scenarios run against the kind cluster of ``e2e/kind/up.sh``
instead of local processes, with ``TIDEOVER_E2E=1 TIDEOVER_E2E_TARGET=kind`` (see e2e/kind/README.md).

:class:`KindCluster` and :class:`KindTideover` stand in for :class:`~e2e.harness.cluster.LocalCluster` and
:class:`~e2e.harness.tideover.TideoverProcess`, subclassing them for the API the scenarios use: ``kubeconfig``,
``core_v1``, ``api_client``, ``to_dict``, ``wait_for``, ``add_vm_node``, ``delete_node`` and ``log_paths``; and
``start``, ``stop``, ``running``, ``get`` and ``metric`` of tideover. The cluster outlives the test run: nothing
here creates or deletes it, and what the process-specific methods of LocalCluster would do (restarting
components) raises :class:`~e2e.harness.cluster.ClusterError`.

Differences from the local path, all invisible to the scenarios:

- VM nodes are kwok nodes as on the local path (the kwok controller runs in the cluster).
  :meth:`KindCluster.delete_node` deletes only nodes the tests made: the scenarios' cleanup deletes every node but
  the virtual node, which here would include kind's own nodes.
- tideover is the Deployment kube-system/tideover (one replica) reached through its NodePort; stopping it scales the
  Deployment to 0, so kube-scheduler's calls are refused, as when the local process is stopped.
- On a failure the logs are read from the cluster (``kubectl logs`` of tideover, kube-scheduler, virtual-kubelet,
  kwok) into the test's temporary directory.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import os
import re
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from e2e.harness import components
from e2e.harness.autoscaled import AutoscaledStack, merged
from e2e.harness.autoscaled import tideover_config as autoscaled_config
from e2e.harness.cluster import VIRTUAL_NODE_NAME, ClusterError, LocalCluster
from e2e.harness.tideover import DEFAULT_CONFIG, ROOT, TideoverProcess

CLUSTER_NAME = "tideover-e2e"
# Where e2e/kind/up.sh writes the kubeconfig; TIDEOVER_KIND_KUBECONFIG points elsewhere.
DEFAULT_KUBECONFIG = ROOT / ".e2e-work" / "kind" / "kubeconfig"
SCHEDULER_CONFIG = ROOT / ".e2e-work" / "kind" / "scheduler" / "scheduler-config.yaml"
# kube-apiserver's audit log (cluster.yaml mounts this directory; e2e/scenarios/test_rbac_e2e.py reads it).
AUDIT_LOG = ROOT / ".e2e-work" / "kind" / "audit" / "audit.log"
NAMESPACE = "kube-system"
TIDEOVER_DEPLOYMENT = "tideover"
TIDEOVER_SELECTOR = "app.kubernetes.io/name=tideover"
# tideover's configuration in the cluster (config/configmap.yaml) and the annotation that rolls its pods.
CONFIGMAP = "tideover-config"
CONFIG_KEY = "tideover.yaml"
RESTARTED_AT = "tideover.io/e2e-restarted-at"
TLS_SECRET = "tideover-tls"  # config/deployment-tls-patch.yaml
# tideover's NodePort (service.nodePort of e2e/kind/values.yaml), mapped to the same port on the host (cluster.yaml).
NODE_PORT = 30888
# Every node of the kind cluster itself carries this label (cluster.yaml); kwok and virtual nodes do not.
KIND_NODE_LABEL = ("tideover.io/kind-node", "true")
# Namespaces the scenarios create (test_extender_e2e.py's ns fixture); a killed run leaves them behind.
SCENARIO_NAMESPACE = re.compile(r"^t-[0-9a-f]{8}$")
# Pods whose logs are saved after a failure: name -> label selector in kube-system.
LOGGED_COMPONENTS = {
    "tideover": TIDEOVER_SELECTOR,
    "kube-scheduler": "component=kube-scheduler",
    "virtual-kubelet": "app.kubernetes.io/name=virtual-kubelet",
    "kwok-controller": "app=kwok-controller",
}


def kubeconfig_path() -> Path:
    return Path(os.environ.get("TIDEOVER_KIND_KUBECONFIG") or DEFAULT_KUBECONFIG)


def tideover_config() -> dict[str, Any]:
    """DEFAULT_CONFIG as tideover runs it in the cluster (e2e/kind/tideover.yaml): on all interfaces, port 8888."""
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["server"] = {**config.get("server", {}), "host": "0.0.0.0", "port": 8888}
    return config


def _is_test_node(node: Mapping[str, Any]) -> bool:
    """A node the tests made (kwok VM nodes, Node objects standing for booting VMs): not one of kind's own nodes
    (labelled by cluster.yaml, and registered by a kubelet with a kind:// provider ID) nor a virtual node."""
    metadata = node.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if labels.get(KIND_NODE_LABEL[0]) == KIND_NODE_LABEL[1] or labels.get("type") == "virtual-kubelet":
        return False
    if str((node.get("spec") or {}).get("providerID") or "").startswith("kind://"):
        return False
    return metadata.get("name") != VIRTUAL_NODE_NAME


class KindCluster(LocalCluster):
    """The running kind cluster, through the LocalCluster API the scenarios use. ``work_dir`` receives the logs."""

    def __init__(self, kubeconfig: Path, work_dir: Path, *, start_timeout: float = 120.0) -> None:
        super().__init__(work_dir, start_timeout=start_timeout, die_with_parent=False)
        self._kind_kubeconfig = kubeconfig
        self._saved_logs: dict[str, Path] = {}

    @property
    def kubeconfig(self) -> Path:
        return self._kind_kubeconfig

    @property
    def api_server_url(self) -> str:
        return str(self.api_client().configuration.host)

    @property
    def scheduler_config_path(self) -> Path:
        """The configuration kube-scheduler runs with (generated by up.sh, mounted into the control-plane node)."""
        return SCHEDULER_CONFIG

    def log_paths(self) -> dict[str, Path]:
        """The logs saved by :meth:`save_logs` (none before)."""
        return dict(self._saved_logs)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> KindCluster:
        """Check that up.sh's cluster is there and usable, and remove what a killed run left behind."""
        t0 = time.monotonic()
        if not self.kubeconfig.is_file():
            raise ClusterError(
                f"no kubeconfig at {self.kubeconfig}: bring the kind cluster up first with bash e2e/kind/up.sh"
            )
        try:
            self.core_v1().list_node(limit=1)
        except Exception as exc:  # connection refused, TLS, auth: all mean the same here
            raise ClusterError(
                f"the kind cluster of {self.kubeconfig} does not answer ({exc}); "
                f"is it running (kind get clusters)? If not: bash e2e/kind/down.sh && bash e2e/kind/up.sh"
            ) from exc
        for name, what in (("kwok-controller", "the kwok controller"), ("virtual-kubelet", "virtual-kubelet")):
            self._require_available(name, what)
        self.wait_node_ready(self.virtual_node_name, timeout=self.start_timeout)
        self._label_virtual_node()
        self._remove_leftovers()
        self.started_seconds = time.monotonic() - t0
        return self

    def stop(self, failed: bool = False) -> None:
        """Leave the cluster running; after a failure, save its components' logs first."""
        if failed:
            try:
                paths = self.save_logs()
            except Exception as exc:  # a broken cluster must not hide the test's own failure
                print(f"[e2e.kind] could not save the cluster's logs: {exc}")
            else:
                print(f"[e2e.kind] logs saved in {self.logs_dir}:")
                for name, path in paths.items():
                    print(f"[e2e.kind]   {name}: {path}")
        if self._api_client is not None:
            with contextlib.suppress(Exception):
                self._api_client.close()
            self._api_client = None

    def save_logs(self) -> dict[str, Path]:
        """``kubectl logs`` of tideover, kube-scheduler, virtual-kubelet and kwok into ``logs_dir``."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        for name, selector in LOGGED_COMPONENTS.items():
            path = self.logs_dir / f"{name}.log"
            path.write_text(self.pod_logs(selector) or f"(no pod matches {selector} in {NAMESPACE})\n")
            self._saved_logs[name] = path
        return dict(self._saved_logs)

    def pod_logs(self, selector: str) -> str:
        """The logs of the kube-system pods matching ``selector``, one after the other."""
        core = self.core_v1()
        parts: list[str] = []
        for pod in core.list_namespaced_pod(NAMESPACE, label_selector=selector).items:
            pod_name = str(self.to_dict(pod)["metadata"]["name"])
            try:
                text = core.read_namespaced_pod_log(pod_name, NAMESPACE, timestamps=True)
            except ApiException as exc:
                text = f"(no log: {exc.status} {exc.reason})\n"
            parts.append(f"===== pod {NAMESPACE}/{pod_name}\n{text}")
        return "".join(parts)

    # ------------------------------------------------------------------ nodes

    def delete_node(self, name: str) -> None:
        """Delete a node the tests made; kind's own nodes and the virtual node are left alone."""
        try:
            node = self.node(name)
        except ApiException:
            return
        if _is_test_node(node):
            super().delete_node(name)

    # ------------------------------------------------------------------ not on kind

    def start_component(self, name: str) -> None:
        raise ClusterError(f"cannot start {name}: the kind target does not manage the cluster's processes")

    def stop_component(self, name: str) -> None:
        raise ClusterError(f"cannot stop {name}: the kind target does not manage the cluster's processes")

    def restart_component(self, name: str) -> None:
        raise ClusterError(f"cannot restart {name}: the kind target does not manage the cluster's processes")

    def restart_scheduler(self, scheduler_config: Path | None = None) -> None:
        raise ClusterError("on kind, kube-scheduler's configuration is rendered: use reconfigure_scheduler")

    def reconfigure_scheduler(self, source: Path, url: str, extra_files: Mapping[str, bytes] | None = None) -> None:
        """kube-scheduler runs ``source`` (a KubeSchedulerConfiguration of config/) with its urlPrefix set to ``url``:
        rendered into the directory mounted at /etc/kubernetes/tideover in the control-plane node (with
        ``extra_files``, e.g. a CA certificate), then the static pod's container stopped so that the kubelet
        starts it again, reading the new file."""
        directory = SCHEDULER_CONFIG.parent
        for name, data in (extra_files or {}).items():
            (directory / name).write_bytes(data)
        rendered = subprocess.run(
            ["bash", str(ROOT / "e2e" / "kind" / "render-scheduler-config.sh"), url, str(source)],
            capture_output=True, text=True, check=True,
        ).stdout
        SCHEDULER_CONFIG.with_suffix(".new").write_text(rendered)
        SCHEDULER_CONFIG.with_suffix(".new").replace(SCHEDULER_CONFIG)
        node = f"{CLUSTER_NAME}-control-plane"
        before = self._scheduler_started()
        subprocess.run(["docker", "exec", node, "sh", "-c", "crictl stop $(crictl ps -q --name kube-scheduler)"],
                       capture_output=True, text=True, check=True, timeout=60)
        self.wait_for(lambda: self._scheduler_started() not in (None, before), 90,
                      "kube-scheduler to run again with its new configuration")

    def _scheduler_started(self) -> str | None:
        """When the running kube-scheduler container started, if it is running and Ready."""
        pods = self.core_v1().list_namespaced_pod(NAMESPACE, label_selector="component=kube-scheduler").items
        for pod in (self.to_dict(p) for p in pods):
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                running = (status.get("state") or {}).get("running")
                if running and status.get("ready"):
                    return str(running.get("startedAt"))
        return None

    # ------------------------------------------------------------------ internals

    def deployment(self, name: str) -> dict[str, Any]:
        """A Deployment of kube-system, as a dict."""
        return self.to_dict(k8s.AppsV1Api(self.api_client()).read_namespaced_deployment(name, NAMESPACE))

    def _require_available(self, deployment: str, what: str) -> None:
        try:
            status = self.deployment(deployment).get("status") or {}
        except ApiException as exc:
            if exc.status == 404:
                raise ClusterError(
                    f"{what} is not installed (no Deployment {NAMESPACE}/{deployment}): run bash e2e/kind/up.sh"
                ) from exc
            raise
        if not status.get("availableReplicas"):
            raise ClusterError(
                f"{what} is not available: kubectl --kubeconfig {self.kubeconfig} -n {NAMESPACE} "
                f"describe deployment/{deployment}"
            )

    def _remove_leftovers(self) -> None:
        """VM nodes and namespaces of an earlier run that was killed before its cleanup: they would change counts."""
        core = self.core_v1()

        def test_nodes() -> list[str]:
            nodes = [self.to_dict(n) for n in core.list_node().items]
            return [str(n["metadata"]["name"]) for n in nodes if _is_test_node(n)]

        def scenario_namespaces(active_only: bool) -> list[str]:
            namespaces = [self.to_dict(n) for n in core.list_namespace().items]
            return [
                str(n["metadata"]["name"])
                for n in namespaces
                if SCENARIO_NAMESPACE.match(n["metadata"]["name"])
                and (not active_only or (n.get("status") or {}).get("phase") == "Active")
            ]

        leftovers = scenario_namespaces(active_only=True)  # terminating ones are an earlier module's, going
        for name in leftovers:
            with contextlib.suppress(ApiException):
                core.delete_namespace(name)  # first: a terminating namespace takes no new pods
            with contextlib.suppress(ApiException):  # pods on deleted kwok nodes would wait for the pod GC
                core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
        for name in test_nodes():
            super().delete_node(name)

        def gone() -> bool:
            return not test_nodes() and not set(leftovers).intersection(scenario_namespaces(active_only=False))

        if leftovers:
            print(f"\n[e2e.kind] removing namespaces left by an earlier run: {', '.join(leftovers)}")
        self.wait_for(gone, self.start_timeout, "the leftovers of an earlier run to be deleted")


class KindTideover(TideoverProcess):
    """tideover as the kind cluster runs it: the Deployment kube-system/tideover, at http://127.0.0.1:30888.

    :meth:`stop` and :meth:`start` scale it to 0 and 1 and wait until it is gone or serves again; ``get`` and
    ``metric`` are TideoverProcess's, through the NodePort. :meth:`configure` writes a configuration into its
    ConfigMap and rolls the Deployment; ``log_path`` receives its pods' logs after a failure.
    """

    def __init__(self, cluster: KindCluster, work_dir: Path, *, timeout: float = 120.0) -> None:
        super().__init__(cluster.kubeconfig, work_dir, config=tideover_config(), port=NODE_PORT)
        self.cluster = cluster
        self.timeout = timeout
        self._plain_template: dict[str, Any] | None = None

    def start(self, timeout: float | None = None) -> KindTideover:
        self.scale(1, timeout)
        return self

    def stop(self) -> None:
        self.scale(0)

    def kill(self) -> None:
        """Every pod of the Deployment deleted with no grace period (the kubelet SIGKILLs it)."""
        for pod in self.pods():
            KindTideoverPod(self.cluster, pod).kill()

    @property
    def running(self) -> bool:
        deployment = self.cluster.deployment(TIDEOVER_DEPLOYMENT)
        return bool(deployment["spec"].get("replicas")) and bool((deployment.get("status") or {}).get("readyReplicas"))

    def lease_identity(self) -> str:
        """The identity of the one running pod (``<pod name>_1``: tideover is the container's first process)."""
        pods = self.pods()
        if len(pods) != 1:
            raise ClusterError(f"tideover runs {len(pods)} pods, not one: no single Lease identity")
        return pod_identity(pods[0])

    def save_log(self) -> Path:
        """The logs of the Deployment's pods into ``log_path``."""
        self.log_path.write_text(self.cluster.pod_logs(TIDEOVER_SELECTOR) or "(no tideover pod)\n")
        return self.log_path

    # ------------------------------------------------------------------ the Deployment

    def configuration(self) -> dict[str, Any]:
        """The configuration in tideover's ConfigMap (what its pods run with, once rolled)."""
        cm = self.cluster.to_dict(self.cluster.core_v1().read_namespaced_config_map(CONFIGMAP, NAMESPACE))
        return dict(yaml.safe_load((cm.get("data") or {}).get(CONFIG_KEY) or "{}") or {})

    def configure(self, config: Mapping[str, Any], timeout: float | None = None) -> None:
        """Run ``config`` (listening on 0.0.0.0:8888 whatever it says): into the ConfigMap, then a rollout of the
        Deployment at one replica, waited for until only new pods serve."""
        wanted = in_cluster(config)
        self.config_path.write_text(yaml.safe_dump(wanted))
        if wanted != self.configuration():
            self.cluster.core_v1().patch_namespaced_config_map(
                CONFIGMAP, NAMESPACE, {"data": {CONFIG_KEY: yaml.safe_dump(wanted)}}
            )
        self._apps().patch_namespaced_deployment(TIDEOVER_DEPLOYMENT, NAMESPACE, {"spec": {
            "replicas": 1,
            "template": {"metadata": {"annotations": {RESTARTED_AT: f"{time.time():.3f}"}}},
        }})
        self._wait_rolled(1, timeout)

    def scale(self, replicas: int, timeout: float | None = None) -> None:
        """``replicas`` pods, all Ready and no other left (terminating ones included); with one or more, tideover
        answers on its NodePort."""
        try:
            self._apps().patch_namespaced_deployment_scale(
                TIDEOVER_DEPLOYMENT, NAMESPACE, {"spec": {"replicas": replicas}}
            )
        except ApiException as exc:
            if exc.status == 404:
                raise ClusterError(f"no Deployment {NAMESPACE}/{TIDEOVER_DEPLOYMENT}: run bash e2e/kind/up.sh") from exc
            raise
        self._wait_rolled(replicas, timeout)

    def serve_tls(self, cert: Path, key: Path, ca: Path) -> None:
        """HTTPS with mutual TLS, as config/deployment-tls-patch.yaml configures it: the Secret tideover-tls from
        ``cert``, ``key`` and ``ca`` (which also signs the clients allowed), the patch applied to the Deployment,
        waited for until the new pod serves (checked with ``ca``)."""
        core = self.cluster.core_v1()
        secret = {"metadata": {"name": TLS_SECRET, "namespace": NAMESPACE}, "type": "kubernetes.io/tls",
                  "data": {"tls.crt": _b64(cert), "tls.key": _b64(key), "ca.crt": _b64(ca)}}
        with contextlib.suppress(ApiException):
            core.delete_namespaced_secret(TLS_SECRET, NAMESPACE)
        core.create_namespaced_secret(NAMESPACE, secret)
        self._plain_template = self.cluster.deployment(TIDEOVER_DEPLOYMENT)["spec"]["template"]
        patch = yaml.safe_load((ROOT / "config" / "deployment-tls-patch.yaml").read_text())
        self._apps().patch_namespaced_deployment(TIDEOVER_DEPLOYMENT, NAMESPACE, patch)
        self.tls, self.url = (cert, key, ca), f"https://127.0.0.1:{NODE_PORT}"
        self._wait_rolled(1, None)

    def rotate_tls(self, cert: Path, key: Path, ca: Path) -> None:
        """Replace the Secret's files in place, as cert-manager's renewal does; the kubelet updates the mounted
        volume on its next sync of the pod (up to about a minute)."""
        body = {"data": {"tls.crt": _b64(cert), "tls.key": _b64(key), "ca.crt": _b64(ca)}}
        core = self.cluster.core_v1()
        core.patch_namespaced_secret(TLS_SECRET, NAMESPACE, body)
        # The kubelet refreshes a Secret volume when it syncs the pod: periodically (about a minute), or at once on a
        # change of the pod. An annotation (not the template: no rollout) saves the suite that minute.
        for pod in self.pods():
            annotations = {"tideover.io/e2e-tls-rotated": str(time.time())}
            core.patch_namespaced_pod(pod["metadata"]["name"], NAMESPACE, {"metadata": {"annotations": annotations}})

    def serve_http(self) -> None:
        """Back to the Deployment as it was before :meth:`serve_tls`, and the Secret deleted."""
        if self._plain_template is not None:
            deployment = self._apps().read_namespaced_deployment(TIDEOVER_DEPLOYMENT, NAMESPACE)
            body = self.cluster.to_dict(deployment)
            body["spec"]["template"] = self._plain_template
            self._apps().replace_namespaced_deployment(TIDEOVER_DEPLOYMENT, NAMESPACE, body)
            self._plain_template = None
        self.tls, self.url = None, f"http://127.0.0.1:{NODE_PORT}"
        self._wait_rolled(1, None)
        with contextlib.suppress(ApiException):
            self.cluster.core_v1().delete_namespaced_secret(TLS_SECRET, NAMESPACE)

    def pods(self) -> list[dict[str, Any]]:
        """The Deployment's pods that are not being deleted."""
        listed = self.cluster.core_v1().list_namespaced_pod(NAMESPACE, label_selector=TIDEOVER_SELECTOR)
        pods = [self.cluster.to_dict(p) for p in listed.items]
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    def _apps(self) -> k8s.AppsV1Api:
        return k8s.AppsV1Api(self.cluster.api_client())

    def _wait_rolled(self, replicas: int, timeout: float | None) -> None:
        def rolled() -> bool:
            deployment = self.cluster.deployment(TIDEOVER_DEPLOYMENT)
            status = deployment.get("status") or {}
            if status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0):
                return False
            listed = self.cluster.core_v1().list_namespaced_pod(NAMESPACE, label_selector=TIDEOVER_SELECTOR).items
            settled = (status.get("updatedReplicas") or 0) == replicas == (status.get("readyReplicas") or 0)
            settled = settled and len(listed) == replicas and not status.get("unavailableReplicas")
            return settled and (self.get("/readyz")[0] == 200) == (replicas > 0)

        self.cluster.wait_for(rolled, timeout or self.timeout, f"tideover's Deployment to run {replicas} ready pods")


class KindTideoverPod(TideoverProcess):
    """One pod of tideover's Deployment, for the Lease scenarios: its identity, and a kill."""

    def __init__(self, cluster: KindCluster, pod: Mapping[str, Any]) -> None:
        self.cluster = cluster
        self.name = str(pod["metadata"]["name"])

    def lease_identity(self) -> str:
        return f"{self.name}_1"

    def kill(self) -> None:
        """Delete the pod with no grace period: the kubelet SIGKILLs tideover, as a crash would."""
        with contextlib.suppress(ApiException):
            self.cluster.core_v1().delete_namespaced_pod(self.name, NAMESPACE, grace_period_seconds=0)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def pod_identity(pod: Mapping[str, Any]) -> str:
    """tideover's Lease identity in a pod: ``<hostname>_<pid>``, the hostname being the pod's name and tideover
    the container's entrypoint, so its pid is 1 (extender/controllers/loop.py)."""
    return f"{pod['metadata']['name']}_1"


def in_cluster(config: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration as tideover runs it in the cluster: on all interfaces, port 8888 (the Service's target)."""
    wanted = copy.deepcopy(dict(config))
    wanted["server"] = {**(wanted.get("server") or {}), "host": "0.0.0.0", "port": 8888}
    return wanted


class KindAutoscaledStack(AutoscaledStack):
    """:class:`~e2e.harness.autoscaled.AutoscaledStack` on the kind cluster: tideover is the Deployment, reconfigured
    through its ConfigMap; cluster-autoscaler and the simulated VMSS run on this host against the cluster's API
    server, as AKS runs its autoscaler in the managed control plane, outside the cluster, beside the cloud."""

    def __init__(self, work_dir: Path, *, provisioning_seconds: float = 20.0,
                 tideover_overrides: Mapping[str, Any] | None = None, **_: Any) -> None:
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self.cluster = KindCluster(kubeconfig_path(), work_dir / "kind")
        self.tideover_config = merged(autoscaled_config(provisioning_seconds), tideover_overrides or {})
        self.kind_tideover = KindTideover(self.cluster, work_dir)
        self.tideover = self.kind_tideover
        self.replicas: list[TideoverProcess] = []
        self.pool = None
        self._pool_runs = 0

    def start(self) -> KindAutoscaledStack:
        components.ensure_built(["cluster-autoscaler"])
        self.cluster.start()
        self.restart_tideover(self.tideover_config, timeout=self.kind_tideover.timeout)
        return self

    def stop(self, failed: bool = False) -> None:
        """The pool stopped; tideover back to the extender scenarios' configuration (as up.sh deploys it)."""
        try:
            self.stop_pool()
        finally:
            if failed:
                with contextlib.suppress(Exception):
                    print(f"[e2e] tideover log: {self.kind_tideover.save_log()}")
            with contextlib.suppress(Exception):
                self.kind_tideover.configure(tideover_config())
            self.cluster.stop(failed=failed)

    def log_paths(self) -> dict[str, Path]:
        paths = {**self.cluster.log_paths(), "tideover": self.kind_tideover.log_path}
        if self.pool is not None:
            paths["cluster-autoscaler"] = self.pool.autoscaler.log_path
            paths["vmss"] = self.pool.vmss_log
        return paths

    def restart_tideover(self, config: Mapping[str, Any] | None = None, timeout: float = 60.0) -> None:
        """A rollout with ``config`` (default: the current one), then the Lease deleted so the new pod takes it."""
        if config is not None:
            self.tideover_config = dict(config)
        self.kind_tideover.configure(self.tideover_config, timeout)
        self.tideover = self.kind_tideover
        self.delete_lease()
        self.cluster.wait_for(lambda: self.lease_holder() == self.identity(self.kind_tideover), timeout,
                              "the restarted tideover to take the Lease")

    def start_replica(self) -> TideoverProcess:
        raise ClusterError("on kind, replicas are the Deployment's: use leader_and_survivor()")

    def stop_replicas(self) -> None:
        """Back to one pod."""
        if len(self.kind_tideover.pods()) != 1:
            self.kind_tideover.scale(1)

    def leader_and_survivor(self) -> tuple[TideoverProcess, TideoverProcess]:
        """The Deployment at two pods; the one holding the Lease leads. Both serve the scheduler (through the
        Service), as in production."""
        self.kind_tideover.scale(2)

        def one_leads() -> bool:
            return self.lease_holder() in {pod_identity(p) for p in self.kind_tideover.pods()}

        self.cluster.wait_for(one_leads, 30, "one of tideover's two pods to hold the Lease")
        pods = {pod_identity(p): KindTideoverPod(self.cluster, p) for p in self.kind_tideover.pods()}
        leader = pods.pop(str(self.lease_holder()))
        return leader, next(iter(pods.values()))


def make_autoscaled_stack(work_dir: Path, target: str | None = None, **kwargs: Any) -> AutoscaledStack:
    """The autoscaled stack on ``target``: "local" processes or "kind" (default: TIDEOVER_E2E_TARGET, else local)."""
    if (target or os.environ.get("TIDEOVER_E2E_TARGET") or "local") == "kind":
        return KindAutoscaledStack(work_dir, **kwargs)
    return AutoscaledStack(work_dir, **kwargs)


def kind_stack(work: Path, request: pytest.FixtureRequest) -> Iterator[tuple[LocalCluster, TideoverProcess]]:
    """test_extender_e2e.py's ``stack`` on the kind target: the kind cluster and its tideover, started if stopped.

    The cluster is left running afterwards, with tideover scaled back to one replica if a test stopped it.
    """
    cluster = KindCluster(kubeconfig_path(), work / "kind")
    tideover = KindTideover(cluster, work)
    problem = None
    try:
        cluster.start()
        if tideover.configuration() != in_cluster(tideover_config()):  # an autoscaled module's, left by a killed run
            tideover.configure(tideover_config())
        tideover.start()
    except ClusterError as exc:
        problem = str(exc)
    if problem is not None:  # outside the except block, so that pytest shows the message alone
        cluster.stop()
        pytest.fail(f"kind target (TIDEOVER_E2E_TARGET=kind): {problem}", pytrace=False)
    print(f"\n[e2e] kind cluster {CLUSTER_NAME} ({cluster.kubeconfig}); tideover at {tideover.url}")
    failed = True
    try:
        yield cluster, tideover
        failed = request.session.testsfailed > 0
    finally:
        if failed:
            with contextlib.suppress(Exception):
                print(f"[e2e] tideover log: {tideover.save_log()}")
        with contextlib.suppress(Exception):
            if not tideover.running:
                tideover.start()
        cluster.stop(failed=failed)


def skip_local_only(items: Iterable[pytest.Item]) -> None:
    """On the kind target, skip the e2e tests not marked ``kind``, and those marked ``local_only``: they need the
    local processes themselves (the cluster smoke tests start and stop control-plane components; the HTTPS
    scenario restarts kube-scheduler with another configuration)."""
    skip = pytest.mark.skip(
        reason="needs the local-process cluster (LocalCluster): TIDEOVER_E2E_TARGET=kind runs only the e2e tests "
        "marked kind and not local_only"
    )
    for item in items:
        if item.get_closest_marker("e2e") is None:
            continue
        if item.get_closest_marker("kind") is None or item.get_closest_marker("local_only") is not None:
            item.add_marker(skip)
