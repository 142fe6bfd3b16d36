"""The deployment examples in config/ (and the Dockerfile) are valid and agree with each other and the code.

Checked: every YAML file parses; config/tideover.yaml validates and its ConfigMap copy means the same;
the KubeSchedulerConfigurations use only upstream extender fields and point at the Service, with verbs
tideover serves; the Deployment runs the config the ConfigMap provides, probes real endpoints and stays
off the virtual node; the RBAC grants what the cluster view and the event recorder request (and not much
more). When the e2e kube-scheduler binary is cached, the scheduler configs are also fed to it.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from e2e.harness.pki import Pki
from extender.cli import main as cli_main
from extender.cluster.view import ClusterView
from extender.decide.matching import required_node_affinity_mismatch, untolerated_taint
from extender.edge.app import ExtenderService, create_app
from extender.model.config import TideoverConfig, load_config, parse_config
from extender.model.snapshot import empty_snapshot
from extender.telemetry.metrics import Metrics

Json = dict[str, Any]

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"
TIDEOVER_YAML = CONFIG_DIR / "tideover.yaml"
SCHEDULER_CONFIGS = ("scheduler-config.yaml", "scheduler-config-https.yaml")

# k8s.io/kube-scheduler/config/v1 types.go: the JSON names of Extender, ExtenderTLSConfig and
# ExtenderManagedResource. kube-scheduler decodes its config strictly: any other key is an error.
EXTENDER_FIELDS = {
    "urlPrefix", "filterVerb", "preemptVerb", "prioritizeVerb", "bindVerb", "weight", "enableHTTPS",
    "tlsConfig", "httpTimeout", "nodeCacheCapable", "managedResources", "ignorable",
}
TLS_CONFIG_FIELDS = {"insecure", "serverName", "certFile", "keyFile", "caFile", "certData", "keyData", "caData"}
MANAGED_RESOURCE_FIELDS = {"name", "ignoredByScheduler"}
VERB_FIELDS = ("filterVerb", "preemptVerb", "prioritizeVerb", "bindVerb")

# What the AKS virtual node looks like (notes section 5): the Deployment must not be able to land on it.
AKS_VIRTUAL_NODE_NAME = "virtual-node-aci-linux"
AKS_VIRTUAL_NODE_LABELS = {
    "type": "virtual-kubelet", "kubernetes.io/role": "agent", "kubernetes.io/os": "linux",
    "kubernetes.azure.com/managed": "false", "kubernetes.io/hostname": AKS_VIRTUAL_NODE_NAME,
}
AKS_VIRTUAL_NODE_TAINT = {"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}

_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_URL_PREFIX_LINE = re.compile(r"^(\s*(?:-\s+)?urlPrefix:\s*)(\S+)\s*$", re.M)


# ------------------------------------------------------------------------------------------- helpers


def _docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _one_doc(name: str) -> Json:
    docs = _docs(CONFIG_DIR / name)
    assert len(docs) == 1, f"{name}: expected one YAML document, got {len(docs)}"
    doc: Json = docs[0]
    return doc


def _manifests() -> list[Json]:
    """The objects `kubectl apply -k config/` applies: the resources listed in kustomization.yaml."""
    kustomization = _one_doc("kustomization.yaml")
    objects: list[Json] = []
    for resource in kustomization["resources"]:
        objects.extend(_docs(CONFIG_DIR / resource))
    return objects


def _find(kind: str, name: str, namespace: str | None = None) -> Json:
    matches = [
        obj for obj in _manifests()
        if obj.get("kind") == kind and obj["metadata"]["name"] == name
        and (namespace is None or obj["metadata"].get("namespace") == namespace)
    ]
    assert len(matches) == 1, f"expected one {kind} {namespace or ''}/{name} in the manifests, got {len(matches)}"
    return matches[0]


def _example_config() -> TideoverConfig:
    return load_config(TIDEOVER_YAML)


def _deployment() -> Json:
    return _find("Deployment", "tideover", "kube-system")


def _pod_spec() -> Json:
    spec: Json = _deployment()["spec"]["template"]["spec"]
    return spec


def _container() -> Json:
    containers = _pod_spec()["containers"]
    assert len(containers) == 1
    container: Json = containers[0]
    return container


def _routes() -> dict[str, set[str]]:
    """Path -> HTTP methods of the app `tideover serve` runs."""
    config = TideoverConfig()
    service = ExtenderService(config, lambda: empty_snapshot(config, datetime.now(UTC)), Metrics())
    app = create_app(service, lambda: False)
    routes: dict[str, set[str]] = {}
    for route in app.routes:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if path and methods:
            routes.setdefault(path, set()).update(methods)
    return routes


def _go_duration_seconds(text: str) -> float:
    assert isinstance(text, str) and _GO_DURATION.sub("", text) == "" and text, f"not a Go duration: {text!r}"
    return sum(float(number) * _GO_UNITS[unit] for number, unit in _GO_DURATION.findall(text))


def _extender(name: str) -> Json:
    doc = _one_doc(name)
    extenders = doc.get("extenders")
    assert isinstance(extenders, list) and len(extenders) == 1, f"{name}: expected exactly one extender"
    extender: Json = extenders[0]
    return extender


def _named_port(container: Json, port: int | str) -> int:
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert len(numbers) == 1, f"container has no port named {port!r}"
    number: int = numbers[0]
    return number


# ------------------------------------------------------------------------------------------- YAML files


def _yaml_files() -> list[Path]:
    return sorted([*CONFIG_DIR.glob("*.yaml"), *CONFIG_DIR.glob("*.yml")])


def test_config_dir_has_the_expected_files() -> None:
    names = {path.name for path in _yaml_files()}
    expected = {
        "tideover.yaml", "scheduler-config.yaml", "scheduler-config-https.yaml", "rbac.yaml", "configmap.yaml",
        "deployment.yaml", "service.yaml", "deployment-tls-patch.yaml", "kustomization.yaml",
    }
    assert expected <= names, f"missing: {sorted(expected - names)}"


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda path: path.name)
def test_every_yaml_file_is_valid_yaml_with_kind(path: Path) -> None:
    docs = _docs(path)
    assert docs, f"{path.name} is empty"
    for doc in docs:
        assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"
        assert doc.get("apiVersion") and doc.get("kind"), f"{path.name}: a document lacks apiVersion/kind"


def test_kustomization_lists_existing_objects_only() -> None:
    kustomization = _one_doc("kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (CONFIG_DIR / resource).is_file(), resource
    for obj in _manifests():
        assert obj["metadata"].get("name"), obj
    kinds = {obj["kind"] for obj in _manifests()}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap",
            "Deployment", "PodDisruptionBudget", "Service"} <= kinds
    assert "KubeSchedulerConfiguration" not in kinds and "TideoverConfiguration" not in kinds


# ------------------------------------------------------------------------------------------- tideover.yaml


def test_example_config_loads_with_every_section() -> None:
    config = _example_config()
    raw = _one_doc("tideover.yaml")
    sections = {field.alias or name for name, field in TideoverConfig.model_fields.items()}
    assert set(raw) == sections, f"sections missing from the example: {sorted(sections - set(raw))}"

    pool = config.vm_pools.pool("nodepool1")
    assert pool.node_group == "aks-nodepool1-12345678-vmss"
    assert pool.price_per_hour == pytest.approx(0.096)
    assert pool.template is not None and pool.template.labels
    assert config.server.port == 8888


def test_example_pool_templates_carry_their_own_pool_label() -> None:
    config = _example_config()
    for pool in config.vm_pools.pools:
        assert pool.template is not None, f"pool {pool.name}: the example should show a template"
        assert pool.template.labels.get(config.vm_pools.pool_label) == pool.name, (
            f"pool {pool.name}: its template must carry {config.vm_pools.pool_label}={pool.name}, "
            "or pods that select the pool never match its pending capacity"
        )
        assert not set(pool.template.labels) & {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}, (
            f"pool {pool.name}: per-node labels do not belong in a template"
        )


def test_check_config_command_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["check-config", str(TIDEOVER_YAML)]) == 0
    assert "OK" in capsys.readouterr().out


def test_configmap_embeds_the_example_config() -> None:
    config_map = _find("ConfigMap", "tideover-config", "kube-system")
    embedded_text = config_map["data"]["tideover.yaml"]
    embedded = yaml.safe_load(embedded_text)
    example = yaml.safe_load(TIDEOVER_YAML.read_text())
    assert embedded == example, "configmap.yaml's tideover.yaml differs from config/tideover.yaml"
    assert parse_config(embedded, "configmap.yaml") == _example_config()


# ------------------------------------------------------------------------------------------- scheduler configs


@pytest.mark.parametrize("name", SCHEDULER_CONFIGS)
def test_scheduler_config_shape(name: str) -> None:
    doc = _one_doc(name)
    assert doc["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert doc["kind"] == "KubeSchedulerConfiguration"
    assert "clientConnection" not in doc, "the test harness (or the operator) sets clientConnection"
    assert [profile.get("schedulerName") for profile in doc["profiles"]] == ["default-scheduler"]


@pytest.mark.parametrize("name", SCHEDULER_CONFIGS)
def test_scheduler_config_extender_fields(name: str) -> None:
    extender = _extender(name)
    unknown = set(extender) - EXTENDER_FIELDS
    assert not unknown, f"{name}: unknown extender keys {sorted(unknown)} (kube-scheduler would reject them)"
    assert set(extender.get("tlsConfig") or {}) <= TLS_CONFIG_FIELDS
    for resource in extender.get("managedResources") or []:
        assert set(resource) <= MANAGED_RESOURCE_FIELDS

    assert extender["filterVerb"] == "filter"
    assert extender["prioritizeVerb"] == "prioritize"
    assert extender["nodeCacheCapable"] is True
    assert extender["ignorable"] is True
    weight = extender["weight"]
    assert isinstance(weight, int) and not isinstance(weight, bool) and weight > 0
    timeout = _go_duration_seconds(extender["httpTimeout"])
    assert 0 < timeout <= 5, "httpTimeout above the 5s default only slows the scheduler when tideover hangs"


@pytest.mark.parametrize("name", SCHEDULER_CONFIGS)
def test_scheduler_config_verbs_are_served(name: str) -> None:
    extender = _extender(name)
    routes = _routes()
    for field in VERB_FIELDS:
        verb = extender.get(field)
        if verb:
            assert "POST" in routes.get(f"/{verb}", set()), f"{field}: tideover serves no POST /{verb}"


@pytest.mark.parametrize("name", SCHEDULER_CONFIGS)
def test_scheduler_config_url_prefix_points_at_the_service(name: str) -> None:
    extender = _extender(name)
    url = urlsplit(extender["urlPrefix"])
    service = _find("Service", "tideover", "kube-system")
    assert url.hostname == f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert url.port in {port["port"] for port in service["spec"]["ports"]}
    assert url.path in ("", "/")
    if name == "scheduler-config-https.yaml":
        assert url.scheme == "https" and extender["enableHTTPS"] is True
        tls = extender["tlsConfig"]
        assert tls["caFile"] and not tls.get("insecure", False)
        assert tls["certFile"] and tls["keyFile"]  # mutual TLS: the scheduler presents its client certificate
        assert tls["serverName"] == url.hostname
    else:
        assert url.scheme == "http" and not extender.get("enableHTTPS", False)


@pytest.mark.parametrize("name", SCHEDULER_CONFIGS)
def test_scheduler_config_url_prefix_can_be_substituted(name: str) -> None:
    """The e2e harness swaps the urlPrefix line for a local URL: it must be alone on its line."""
    text = (CONFIG_DIR / name).read_text()
    matches = _URL_PREFIX_LINE.findall(text)
    assert len(matches) == 1, "urlPrefix must appear exactly once, on a line of its own"
    assert matches[0][1] == _extender(name)["urlPrefix"]
    local = _URL_PREFIX_LINE.sub(lambda m: m.group(1) + "http://127.0.0.1:18888", text)
    replaced = yaml.safe_load(local)
    assert replaced["extenders"][0]["urlPrefix"] == "http://127.0.0.1:18888"
    original = yaml.safe_load(text)
    original["extenders"][0]["urlPrefix"] = "http://127.0.0.1:18888"
    assert replaced == original


def _kube_scheduler_binary() -> Path:
    try:
        from e2e.harness import components
    except ImportError as error:  # pragma: no cover - the e2e package is part of the repository
        pytest.skip(f"e2e.harness.components not importable: {error}")
    try:
        binary = Path(components.binary_path("kube-scheduler"))
    except Exception as error:
        pytest.skip(f"no kube-scheduler version configured: {error}")
    if not binary.is_file():
        pytest.skip("kube-scheduler is not built (python -m e2e.harness.components build kube-scheduler)")
    return binary


def _self_signed_ca(directory: Path) -> Path:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tideover-test-ca")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / "ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize("name", SCHEDULER_CONFIGS)
def test_kube_scheduler_accepts_the_scheduler_config(name: str, tmp_path: Path) -> None:
    """Strict decoding, defaulting, validation and building the extender, by the real kube-scheduler."""
    binary = _kube_scheduler_binary()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "unused"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    doc = _one_doc(name)
    doc["clientConnection"] = {"kubeconfig": str(kubeconfig)}
    tls = doc["extenders"][0].get("tlsConfig")
    if tls and tls.get("caFile"):
        tls["caFile"] = str(_self_signed_ca(tmp_path))  # the real paths exist only on the scheduler's host
    if tls and tls.get("certFile"):
        client = Pki(tmp_path / "client").issue("client", "system:kube-scheduler", client=True)
        tls["certFile"], tls["keyFile"] = str(client.cert), str(client.key)
    config = tmp_path / name
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    written = tmp_path / "written.yaml"
    result = subprocess.run(
        [str(binary), "--config", str(config), "--write-config-to", str(written)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, f"kube-scheduler rejected {name}:\n{result.stderr[-3000:]}"
    (extender,) = yaml.safe_load(written.read_text())["extenders"]
    assert extender["urlPrefix"] == doc["extenders"][0]["urlPrefix"]
    assert extender["nodeCacheCapable"] is True and extender["ignorable"] is True


# ------------------------------------------------------------------------------------------- Deployment


def test_deployment_runs_the_config_the_configmap_provides() -> None:
    container = _container()
    assert container["image"] == "tideover:0.1.0"
    args = container["args"]
    assert args[0] == "serve" and "--config" in args
    config_path = Path(args[args.index("--config") + 1])

    volumes = {volume["name"]: volume for volume in _pod_spec()["volumes"]}
    mounts = [m for m in container["volumeMounts"] if config_path.is_relative_to(m["mountPath"])]
    assert len(mounts) == 1, f"{config_path} is not under exactly one volumeMount"
    mount = mounts[0]
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"
    volume = volumes[mount["name"]]["configMap"]
    relative = str(config_path.relative_to(mount["mountPath"]))
    items = {item["path"]: item["key"] for item in volume.get("items", [])}
    key = items.get(relative, relative if not items else None)
    assert key, f"the ConfigMap volume does not project {relative}"

    config_map = _find("ConfigMap", volume["name"], _deployment()["metadata"]["namespace"])
    assert key in config_map["data"], f"ConfigMap {volume['name']} has no key {key}"
    parse_config(yaml.safe_load(config_map["data"][key]), f"ConfigMap {volume['name']}")


def test_deployment_shape() -> None:
    deployment = _deployment()
    spec = deployment["spec"]
    pod = _pod_spec()
    assert spec["replicas"] == 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["enableServiceLinks"] is False, (
        "service links inject TIDEOVER_PORT=tcp://... from the Service named tideover, which tideover reads "
        "as its port setting and exits"
    )
    account = _find("ServiceAccount", pod["serviceAccountName"], deployment["metadata"]["namespace"])
    assert account["metadata"]["name"] == "tideover"
    anti = pod["affinity"]["podAntiAffinity"]
    terms = [t.get("podAffinityTerm", t) for key in anti for t in anti[key]]
    assert any(t["topologyKey"] == "kubernetes.io/hostname" for t in terms)


def test_deployment_stays_off_the_virtual_node() -> None:
    pod = _pod_spec()
    assert not pod.get("tolerations"), "tideover must not tolerate anything (the virtual node is tainted)"
    assert untolerated_taint(pod.get("tolerations"), [AKS_VIRTUAL_NODE_TAINT]) is not None
    assert required_node_affinity_mismatch(pod, AKS_VIRTUAL_NODE_LABELS, AKS_VIRTUAL_NODE_NAME) is not None, (
        "the required node affinity must exclude type=virtual-kubelet even if a toleration is added"
    )
    # Every virtual node tideover recognises is excluded, and an ordinary VM node is not.
    config = _example_config()
    virtual_labels = {**config.virtual_nodes.selector, "kubernetes.io/os": "linux"}
    assert required_node_affinity_mismatch(pod, virtual_labels, "some-virtual-node") is not None
    for pool in config.vm_pools.pools:
        assert pool.template is not None
        vm_labels = {**pool.template.labels, "kubernetes.io/hostname": f"{pool.node_group}000000"}
        assert required_node_affinity_mismatch(pod, vm_labels, f"{pool.node_group}000000") is None, pool.name


def test_deployment_probes_and_ports_match_the_server() -> None:
    container = _container()
    config = _example_config()
    routes = _routes()
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        http_get = container[probe]["httpGet"]
        assert http_get["path"] == path and "GET" in routes.get(path, set()), probe
        assert _named_port(container, http_get["port"]) == config.server.port, probe
    service = _find("Service", "tideover", "kube-system")
    assert service["spec"]["selector"].items() <= _deployment()["spec"]["template"]["metadata"]["labels"].items()
    for port in service["spec"]["ports"]:
        assert _named_port(container, port["targetPort"]) == config.server.port


def test_deployment_security_context() -> None:
    pod, container = _pod_spec(), _container()
    pod_sc, sc = pod.get("securityContext", {}), container.get("securityContext", {})
    assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True
    assert sc.get("runAsUser", pod_sc.get("runAsUser")) == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert "ALL" in sc["capabilities"]["drop"]
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"]


def test_pod_disruption_budget_keeps_one_replica() -> None:
    pdb = _find("PodDisruptionBudget", "tideover", "kube-system")
    assert pdb["spec"]["minAvailable"] == 1
    labels = _deployment()["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_tls_patch_serves_https_with_probes_to_match() -> None:
    patch = _one_doc("deployment-tls-patch.yaml")
    assert (patch["kind"], patch["metadata"]["name"]) == ("Deployment", "tideover")
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    assert container["name"] == _container()["name"]
    args = container["args"]
    assert args[: len(_container()["args"])] == _container()["args"], "the patch replaces args whole"
    cert, key = Path(args[args.index("--tls-cert-file") + 1]), Path(args[args.index("--tls-key-file") + 1])
    client_ca = Path(args[args.index("--client-ca-file") + 1])  # mutual TLS
    mounts = {Path(mount["mountPath"]): mount["name"] for mount in container["volumeMounts"]}
    assert cert.parent == key.parent and {cert.parent, client_ca.parent} == set(mounts)
    assert not any(path.is_relative_to("/etc/tideover") for path in mounts), "no mount inside the ConfigMap volume"
    volumes = {volume["name"]: volume for volume in patch["spec"]["template"]["spec"]["volumes"]}
    assert set(volumes) == set(mounts.values())
    assert volumes[mounts[client_ca.parent]]["secret"]["items"] == [{"key": "ca.crt", "path": client_ca.name}]
    assert len({volume["secret"]["secretName"] for volume in volumes.values()}) == 1  # one Secret holds all three
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert container["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"


# ------------------------------------------------------------------------------------------- RBAC


class _Rbac:
    """Enough of the RBAC authorizer to answer 'may this ServiceAccount do X' from the manifests."""

    def __init__(self, objects: list[Json], namespace: str, name: str) -> None:
        self.objects = objects
        self.namespace = namespace
        self.name = name

    def _bound(self, binding: Json) -> bool:
        return any(
            s.get("kind") == "ServiceAccount" and s.get("name") == self.name
            and s.get("namespace", binding["metadata"].get("namespace")) == self.namespace
            for s in binding.get("subjects") or []
        )

    def _role(self, ref: Json, namespace: str | None) -> Json | None:
        for obj in self.objects:
            if obj["kind"] == ref["kind"] and obj["metadata"]["name"] == ref["name"] and (
                ref["kind"] == "ClusterRole" or obj["metadata"].get("namespace") == namespace
            ):
                return obj
        return None

    def _rules(self, namespace: str | None) -> Iterator[Json]:
        for binding in self.objects:
            kind = binding["kind"]
            if kind not in ("ClusterRoleBinding", "RoleBinding") or not self._bound(binding):
                continue
            binding_ns = binding["metadata"].get("namespace")
            if kind == "RoleBinding" and binding_ns != namespace:
                continue  # a RoleBinding grants nothing outside its namespace (nor cluster-wide)
            role = self._role(binding["roleRef"], binding_ns)
            assert role is not None, f"{kind} {binding['metadata']['name']} refers to a missing role"
            yield from role.get("rules") or []

    def allows(self, verb: str, group: str, resource: str, namespace: str | None, name: str | None = None) -> bool:
        """namespace None: cluster-scoped, or all namespaces (only ClusterRoleBindings count)."""

        def has(values: list[str] | None, value: str) -> bool:
            return values is not None and ("*" in values or value in values)

        for rule in self._rules(namespace):
            if not (has(rule.get("verbs"), verb) and has(rule.get("apiGroups"), group)
                    and has(rule.get("resources"), resource)):
                continue
            names = rule.get("resourceNames")
            if not names or (name is not None and name in names):
                return True
        return False


class _RecordingApi:
    """A CoreV1Api stand-in that records the cluster view's list calls and fails them (no cluster)."""

    def __init__(self) -> None:
        self.calls: dict[str, Json] = {}
        self.lock = threading.Lock()

    def _record(self, method: str, kwargs: Json) -> Any:
        with self.lock:
            self.calls.setdefault(method, kwargs)
        raise ConnectionError("no cluster in unit tests")

    def list_node(self, **kwargs: Any) -> Any:
        return self._record("list_node", kwargs)

    def list_pod_for_all_namespaces(self, **kwargs: Any) -> Any:
        return self._record("list_pod_for_all_namespaces", kwargs)

    def list_namespaced_config_map(self, **kwargs: Any) -> Any:
        return self._record("list_namespaced_config_map", kwargs)


def _cluster_view_list_calls(config: TideoverConfig) -> Mapping[str, Json]:
    api = _RecordingApi()
    view = ClusterView(api, config)  # type: ignore[arg-type]
    view.start()
    try:
        deadline = time.monotonic() + 10
        while len(api.calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        view.stop()
    assert len(api.calls) == 3, f"the cluster view made only {sorted(api.calls)}"
    return api.calls


def _rbac() -> _Rbac:
    return _Rbac(_manifests(), "kube-system", "tideover")


def test_rbac_grants_what_the_cluster_view_requests() -> None:
    config = _example_config()
    calls = _cluster_view_list_calls(config)
    rbac = _rbac()
    for verb in ("list", "watch"):
        assert rbac.allows(verb, "", "nodes", None), verb
        assert rbac.allows(verb, "", "pods", None), f"{verb} pods in all namespaces"

    # The status ConfigMap is listed in one namespace with a metadata.name field selector: the API server
    # authorizes such a list/watch as a request for that name, which the Role's resourceNames relies on.
    status = calls["list_namespaced_config_map"]
    namespace = status["namespace"]
    selector = status["field_selector"]
    assert (namespace, selector) == (
        config.autoscaler.status_namespace, f"metadata.name={config.autoscaler.status_config_map}"
    )
    name = selector.removeprefix("metadata.name=")
    for verb in ("list", "watch"):
        assert rbac.allows(verb, "", "configmaps", namespace, name), f"{verb} configmap {namespace}/{name}"


def test_rbac_grants_event_creation_in_any_namespace() -> None:
    rbac = _rbac()
    for namespace in ("default", "team-a"):
        assert rbac.allows("create", "", "events", namespace)
        # Only created (e2e/scenarios/test_rbac_e2e.py shows nothing else is used).
        assert not rbac.allows("patch", "", "events", namespace)


def test_rbac_grants_what_the_controllers_and_spill_state_need() -> None:
    rbac = _rbac()
    lease = TideoverConfig().controllers.lease_name
    assert rbac.allows("create", "coordination.k8s.io", "leases", "kube-system")
    assert rbac.allows("get", "coordination.k8s.io", "leases", "kube-system", lease)
    assert rbac.allows("update", "coordination.k8s.io", "leases", "kube-system", lease)
    # The gate taint and spill annotations on the virtual node; scale-down protection on VM return targets.
    assert rbac.allows("patch", "", "nodes", None, AKS_VIRTUAL_NODE_NAME)
    assert rbac.allows("patch", "", "nodes", None, "aks-nodepool1-12345678-vmss000000")
    # Deletion cost on spilled pods, and evictions to move them back.
    assert rbac.allows("patch", "", "pods", "default", "web-1")
    assert rbac.allows("create", "", "pods/eviction", "default", "web-1")


def test_rbac_grants_little_else() -> None:
    rbac = _rbac()
    assert not rbac.allows("get", "", "secrets", "kube-system", "anything")
    assert not rbac.allows("list", "", "configmaps", "kube-system"), "only the autoscaler's status ConfigMap"
    assert not rbac.allows("get", "", "configmaps", "default", "cluster-autoscaler-status")
    assert not rbac.allows("update", "coordination.k8s.io", "leases", "kube-system", "kube-scheduler")
    assert not rbac.allows("delete", "", "nodes", None, "aks-nodepool1-12345678-vmss000000")
    assert not rbac.allows("delete", "", "pods", "default", "x")
    assert not rbac.allows("create", "", "pods", "default")
    assert not rbac.allows("create", "", "bindings", "default")


# ------------------------------------------------------------------------------------------- Dockerfile


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_agrees_with_the_deployment_and_the_package() -> None:
    instructions = _dockerfile_instructions()
    final_stage = instructions[max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM"):]
    final = {kw: rest for kw, rest in final_stage}
    assert json.loads(final["ENTRYPOINT"]) == ["tideover"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "tideover" in pyproject["project"]["scripts"]
    assert json.loads(final["CMD"]) == _container()["args"]
    assert final["USER"].split(":")[0] == str(_pod_spec()["securityContext"]["runAsUser"])
    assert int(final["EXPOSE"]) == _example_config().server.port
    assert "[dev]" not in " ".join(rest for kw, rest in instructions if kw == "RUN"), "no dev extras"


def test_dockerignore_lets_in_every_package() -> None:
    lines = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "the build context is an allowlist"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    included = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {name.split(".")[0] for name in included} <= allowed
    assert "pyproject.toml" in allowed
