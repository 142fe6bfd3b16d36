"""The Helm chart (charts/tideover): lint and render with every example values file, config/ is its rendering,
values.schema.json is generated from the configuration model and refuses bad values with the field named, and the
optional parts (TLS, cert-manager, monitoring) render as the rest of the project expects.

Needs the pinned helm (e2e/versions.toml [helm]), built on first use from its Go module; skipped without Go.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.harness import chart, components

Json = dict[str, Any]
EXAMPLE_VALUES = sorted(chart.EXAMPLES.glob("*-values.yaml"))
KIND_VALUES = chart.ROOT / "e2e" / "kind" / "values.yaml"


@pytest.fixture(scope="module", autouse=True)
def _helm() -> None:
    if not (components.tool_dir("helm") / "helm").is_file() and shutil.which("go") is None:
        pytest.skip("helm is not built and Go is not installed to build it")
    chart.helm_binary()


def _objects(rendered: str) -> dict[tuple[str, str], Json]:
    return {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(rendered) if o}


def _container(objects: dict[tuple[str, str], Json], name: str = "tideover") -> Json:
    (container,) = objects[("Deployment", name)]["spec"]["template"]["spec"]["containers"]
    result: Json = container
    return result


def test_generated_files_match_the_chart() -> None:
    """config/'s manifests and values.schema.json are what `python -m e2e.harness.chart generate` writes."""
    assert chart.stale() == [], "run: .venv/bin/python -m e2e.harness.chart generate"


def test_config_manifests_are_the_default_rendering() -> None:
    kinds = {key[0] for key in _objects(chart.template())}
    committed = set()
    for name in chart.CONFIG_FILES:
        committed |= {(o["kind"]) for o in yaml.safe_load_all((chart.CONFIG_DIR / name).read_text()) if o}
    assert kinds == committed, "every object of the default rendering is in config/"


@pytest.mark.parametrize("values", [None, *EXAMPLE_VALUES, KIND_VALUES], ids=lambda p: p.name if p else "defaults")
def test_lint_and_template(values: Path | None) -> None:
    args = ["--values", str(values)] if values else []
    out = chart.helm("lint", "--strict", str(chart.CHART), *args)
    assert "0 chart(s) failed" in out
    objects = _objects(chart.template([values] if values else []))
    assert ("Deployment", next(k[1] for k in objects if k[0] == "Deployment")) in objects


def test_schema_refuses_bad_values_naming_the_field() -> None:
    cases = {
        "config.server.port=http": "/config/server/port",
        "config.vmPools.poolLabelz=x": "poolLabelz",
        "replicas=-1": "/replicas",
        "service.type=External": "/service/type",
    }
    problems = []
    for setting, field in cases.items():
        with pytest.raises(chart.ChartError) as error:
            chart.template(sets=dict([setting.split("=", 1)]))
        if field not in str(error.value):
            problems.append(f"{setting}: {error.value}")
    assert not problems, problems


def test_schema_config_part_is_the_configuration_model() -> None:
    from extender.model.config import TideoverConfig

    schema = chart.chart_schema()
    config = schema["properties"]["config"]
    model = TideoverConfig.model_json_schema(by_alias=True)
    assert set(config["properties"]) == set(model["properties"])
    assert set(schema["$defs"]) == set(model["$defs"])


def test_tls_rendering_agrees_with_the_kustomize_patch() -> None:
    """tls.enabled with tls.clientAuth.enabled renders what config/deployment-tls-patch.yaml makes of
    config/deployment.yaml."""
    objects = _objects(chart.template(sets={"tls.enabled": "true", "tls.clientAuth.enabled": "true"}))
    container = _container(objects)
    patch = yaml.safe_load((chart.CONFIG_DIR / "deployment-tls-patch.yaml").read_text())
    (patched,) = patch["spec"]["template"]["spec"]["containers"]
    assert container["args"] == patched["args"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    assert all(mount in container["volumeMounts"] for mount in patched["volumeMounts"])
    volumes = objects[("Deployment", "tideover")]["spec"]["template"]["spec"]["volumes"]
    assert all(volume in volumes for volume in patch["spec"]["template"]["spec"]["volumes"])
    assert ("Secret", "tideover-tls") not in objects, "no Secret without a certificate in the values"


def test_cert_manager_certificate_names_what_kube_scheduler_checks() -> None:
    objects = _objects(chart.template([chart.EXAMPLES / "tls-cert-manager-values.yaml"]))
    certificate = objects[("Certificate", "tideover")]["spec"]
    https = yaml.safe_load((chart.CONFIG_DIR / "scheduler-config-https.yaml").read_text())
    assert https["extenders"][0]["tlsConfig"]["serverName"] in certificate["dnsNames"]
    volumes = objects[("Deployment", "tideover")]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": certificate["secretName"]}} in volumes


def test_tls_secret_from_values() -> None:
    objects = _objects(chart.template([chart.EXAMPLES / "tls-secret-values.yaml"]))
    secret = objects[("Secret", "tideover-tls")]
    assert secret["type"] == "kubernetes.io/tls" and set(secret["data"]) == {"tls.crt", "tls.key"}


def test_rbac_follows_the_configured_lease_and_status_names() -> None:
    objects = [o for o in yaml.safe_load_all(chart.template([chart.EXAMPLES / "custom-config-values.yaml"])) if o]
    roles = {o["metadata"]["namespace"]: o for o in objects if o["kind"] == "Role"}
    assert set(roles) == {"kube-system", "tideover-system"}
    status_rule, = roles["kube-system"]["rules"]
    assert status_rule["resourceNames"] == ["my-autoscaler-status"]
    lease_names = [r.get("resourceNames") for r in roles["tideover-system"]["rules"]]
    assert ["extender-controllers"] in lease_names
    bindings = [o for o in objects if o["kind"] == "RoleBinding"]
    assert {b["metadata"]["namespace"] for b in bindings} == set(roles)
    assert all(b["subjects"][0]["name"] == "scheduler-extender" for b in bindings)


def test_config_change_rolls_the_pods() -> None:
    def checksum(sets: dict[str, str]) -> str:
        deployment = _objects(chart.template(sets=sets))[("Deployment", "tideover")]
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum({}) != checksum({"config.vmPools.provisioningSeconds": "120"})


def test_notes_print_the_scheduler_configuration(tmp_path: Path) -> None:
    """NOTES.txt's snippet is config/scheduler-config.yaml's extender (its named template rendered into a ConfigMap
    in a copy of the chart: `helm template` skips NOTES.txt, and `helm install --dry-run` needs a cluster)."""
    copy = tmp_path / "tideover"
    shutil.copytree(chart.CHART, copy)
    (copy / "templates" / "notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data: {notes: {{ include "tideover.notes" . | toJson }}}\n'
    )
    rendered = chart.helm("template", "tideover", str(copy), "--namespace", "kube-system",
                          "--show-only", "templates/notes.yaml")
    notes = yaml.safe_load(rendered)["data"]["notes"]
    snippet = yaml.safe_load(notes[notes.index("apiVersion: kubescheduler"):notes.index("\nA kube-scheduler")])
    plain = yaml.safe_load((chart.CONFIG_DIR / "scheduler-config.yaml").read_text())
    assert snippet["extenders"] == plain["extenders"], "NOTES.txt's snippet is config/scheduler-config.yaml's extender"
    assert "rollout status deployment/tideover" in notes
    rendered = chart.helm("template", "tideover", str(copy), "--namespace", "kube-system", "--show-only",
                          "templates/notes.yaml", "--values", str(chart.EXAMPLES / "mtls-values.yaml"))
    notes = yaml.safe_load(rendered)["data"]["notes"]
    snippet = yaml.safe_load(notes[notes.index("apiVersion: kubescheduler"):notes.index("\nA kube-scheduler")])
    https = yaml.safe_load((chart.CONFIG_DIR / "scheduler-config-https.yaml").read_text())
    (extender,) = snippet["extenders"]
    assert extender["tlsConfig"] == https["extenders"][0]["tlsConfig"], "mutual TLS: the snippet presents the client"


def _restricted_problems(pod_spec: Json) -> list[str]:
    """What the Pod Security Standards' "restricted" profile would refuse in a pod spec (the checks of that level,
    kubernetes.io/docs/concepts/security/pod-security-standards), container by container."""
    problems = []
    pod_context = pod_spec.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(key):
            problems.append(f"spec.{key}")
    if any("hostPath" in volume for volume in pod_spec.get("volumes") or []):
        problems.append("a hostPath volume")
    for container in [*(pod_spec.get("initContainers") or []), *pod_spec["containers"]]:
        context = container.get("securityContext") or {}
        name = container["name"]
        if context.get("privileged"):
            problems.append(f"{name}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set((context.get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities")
        if not context.get("runAsNonRoot", pod_context.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot is not true")
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            problems.append(f"{name}: runs as user 0")
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is {seccomp!r}")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            problems.append(f"{name}: a hostPort")
        if not context.get("readOnlyRootFilesystem"):
            problems.append(f"{name}: the root filesystem is writable (not required by restricted; tideover's rule)")
    return problems


@pytest.mark.parametrize("values", [None, *EXAMPLE_VALUES, KIND_VALUES], ids=lambda p: p.name if p else "defaults")
def test_the_pod_meets_pod_security_restricted(values: Path | None) -> None:
    objects = _objects(chart.template([values] if values else []))
    (deployment,) = [o for (kind, _), o in objects.items() if kind == "Deployment"]
    assert _restricted_problems(deployment["spec"]["template"]["spec"]) == []


def test_the_restricted_check_finds_what_it_names() -> None:
    """The check above can fail: a pod spec with each problem is refused for each."""
    bad = {"hostNetwork": True, "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
           "containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}],
                           "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}}}]}
    problems = _restricted_problems(bad)
    for expected in ("spec.hostNetwork", "hostPath", "privileged", "allowPrivilegeEscalation", "drop ALL",
                     "adds capabilities", "runAsNonRoot", "seccompProfile", "hostPort", "root filesystem"):
        assert any(expected in problem for problem in problems), expected


def test_network_policy_admits_only_the_scheduler_and_monitoring() -> None:
    assert not [k for k in _objects(chart.template()) if k[0] == "NetworkPolicy"], "off by default"
    objects = _objects(chart.template([chart.EXAMPLES / "network-policy-values.yaml"]))
    ((_, name),) = [k for k in objects if k[0] == "NetworkPolicy"]
    policy = objects[("NetworkPolicy", name)]["spec"]
    deployment = next(o for (kind, _), o in objects.items() if kind == "Deployment")
    assert policy["podSelector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": _container(objects, deployment["metadata"]["name"])["ports"][0]["containerPort"],
                              "protocol": "TCP"}]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
         "podSelector": {"matchLabels": {"component": "kube-scheduler"}}},
        {"ipBlock": {"cidr": "10.224.0.4/32"}},
        {"ipBlock": {"cidr": "10.224.0.5/32"}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
    ]


def _karpenter_rules(values: list[Path], sets: dict[str, str]) -> list[dict[str, Any]]:
    role = _objects(chart.template(values, sets=sets))[("ClusterRole", "tideover")]
    return [rule for rule in role["rules"] if "karpenter.sh" in rule["apiGroups"]]


@pytest.mark.parametrize(
    ("values", "sets", "granted"),
    [
        ([], {}, False),  # the default signal, cluster-autoscaler: no access to Karpenter's objects
        ([], {"config.autoscaler.capacitySignal": "cluster-autoscaler"}, False),
        ([], {"config.autoscaler.capacitySignal": "auto"}, True),
        ([chart.EXAMPLES / "karpenter-values.yaml"], {}, True),
    ],
)
def test_karpenter_objects_are_readable_only_when_the_signal_can_use_them(
    values: list[Path], sets: dict[str, str], granted: bool
) -> None:
    rules = _karpenter_rules(values, sets)
    expected = [{"apiGroups": ["karpenter.sh"], "resources": ["nodeclaims", "nodepools"], "verbs": ["list", "watch"]}]
    assert rules == (expected if granted else [])


def test_mutual_tls_rendering() -> None:
    """ci/mtls-values.yaml: the client CA mounted and passed, kube-scheduler's client certificate from the same issuer
    with the name config.server.clientSubjects allows, probes and ServiceMonitor on the plain health port, and the
    NetworkPolicy's monitoring rule on that port only."""
    objects = _objects(chart.template([chart.EXAMPLES / "mtls-values.yaml"]))
    container = _container(objects)
    assert container["args"][-2:] == ["--client-ca-file", "/etc/tideover-client-ca/ca.crt"]
    assert {"name": "client-ca", "mountPath": "/etc/tideover-client-ca", "readOnly": True} in container["volumeMounts"]
    volumes = objects[("Deployment", "tideover")]["spec"]["template"]["spec"]["volumes"]
    client_ca = next(v for v in volumes if v["name"] == "client-ca")
    serving = objects[("Certificate", "tideover")]["spec"]
    assert client_ca["secret"]["secretName"] == serving["secretName"]  # the issuer's ca.crt in the serving Secret
    client = objects[("Certificate", "tideover-scheduler-client")]["spec"]
    assert client["issuerRef"] == serving["issuerRef"] and client["usages"][0] == "client auth"
    config = yaml.safe_load(objects[("ConfigMap", "tideover-config")]["data"]["tideover.yaml"])
    assert client["commonName"] in config["server"]["clientSubjects"]
    health = config["server"]["healthPort"]
    assert {"name": "health", "containerPort": health, "protocol": "TCP"} in container["ports"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "health" and "scheme" not in container[probe]["httpGet"]
    endpoint = objects[("ServiceMonitor", "tideover")]["spec"]["endpoints"][0]
    assert (endpoint["port"], endpoint["scheme"]) == ("health", "http")
    assert {"name": "health", "port": health, "targetPort": "health", "protocol": "TCP"} in (
        objects[("Service", "tideover")]["spec"]["ports"])
    verbs, metrics = objects[("NetworkPolicy", "tideover")]["spec"]["ingress"]
    assert verbs["ports"] == [{"port": 8888, "protocol": "TCP"}]
    assert metrics["ports"] == [{"port": health, "protocol": "TCP"}]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
