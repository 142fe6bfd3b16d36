"""config/rbac.yaml is least privilege, proven in the kind cluster, where tideover runs with its ServiceAccount.

1. Every grant is in use: kube-apiserver's audit log (e2e/kind/audit-policy.yaml logs tideover's requests only)
   shows each (API group, resource, verb) of the ClusterRole and the Role used by tideover during the kind suite,
   and none of its requests refused. A grant no scenario uses fails this test (remove the grant), and a request the
   grants do not cover shows up as a 403 (add the grant, with its reason). ``GRANTS`` names the scenario that uses
   each grant, and must list exactly the grants of config/rbac.yaml.
2. Nothing beyond: ``kubectl auth can-i --as`` tideover's ServiceAccount, for what it must never do (read Secrets,
   create or delete Pods, write other components' Leases, read other ConfigMaps) and what it must do.

Runs last in the kind suite (conftest.py orders ``run_last`` tests at the end), so that the log holds the whole
suite's requests; skipped on the local-process target, where tideover runs with an admin kubeconfig.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from e2e.conftest import E2E
from e2e.harness.tideover import ROOT
from e2e.kind.target import AUDIT_LOG

RBAC = ROOT / "config" / "rbac.yaml"
SERVICE_ACCOUNT = "system:serviceaccount:kube-system:tideover"

# (API group, resource[/subresource], verb) -> what uses it, and the scenario that shows it.
GRANTS: dict[tuple[str, str, str], str] = {
    ("", "nodes", "list"): "the cluster view's list (every scenario)",
    ("", "nodes", "watch"): "the cluster view's watch (every scenario)",
    ("", "nodes", "get"): "the spill state reads a virtual node before patching it (test_autoscaler_e2e)",
    ("", "nodes", "patch"): "the gate taint and spill annotations; scale-down protection (test_autoscaler_e2e, "
                            "test_returns_e2e)",
    ("", "pods", "list"): "the cluster view's list (every scenario)",
    ("", "pods", "watch"): "the cluster view's watch (every scenario)",
    ("", "pods", "patch"): "pod-deletion-cost on spilled pods (test_returns_e2e scale-down order)",
    ("", "pods/eviction", "create"): "moving spilled pods back to VMs (test_returns_e2e)",
    ("", "events", "create"): "SpilledToVirtualNode and ReturningToVM events (test_extender_e2e, test_returns_e2e)",
    ("", "configmaps", "list"): "the autoscaler status watch's list, by name (test_autoscaler_e2e)",
    ("", "configmaps", "watch"): "the autoscaler status watch, by name (test_autoscaler_e2e)",
    ("coordination.k8s.io", "leases", "create"): "the controllers' Lease, first taken (test_returns_e2e)",
    ("coordination.k8s.io", "leases", "get"): "leader election (test_returns_e2e)",
    ("coordination.k8s.io", "leases", "update"): "leader election renewals and takeover (test_returns_e2e)",
}

# What tideover's ServiceAccount must not be able to do: (verb, resource[/name], namespace or None for all,
# subresource or None), as `kubectl auth can-i VERB RESOURCE[/NAME] [--subresource S]` reads them.
FORBIDDEN = [
    ("get", "secrets", "kube-system", None),
    ("list", "secrets", None, None),
    ("create", "pods", "default", None),
    ("delete", "pods", "default", None),
    ("update", "pods", "default", None),
    ("patch", "pods", "default", "status"),
    ("create", "pods", "default", "exec"),
    ("create", "nodes", None, None),
    ("delete", "nodes", None, None),
    ("patch", "nodes", None, "status"),
    ("get", "configmaps/kube-proxy", "kube-system", None),
    ("list", "configmaps", "default", None),
    ("update", "leases.coordination.k8s.io/kube-scheduler", "kube-system", None),
    ("delete", "leases.coordination.k8s.io/tideover-controllers", "kube-system", None),
    ("create", "serviceaccounts/tideover", "kube-system", "token"),
]
ALLOWED = [
    ("patch", "pods", "default", None),
    ("create", "pods", "default", "eviction"),
    ("patch", "nodes", None, None),
    ("list", "configmaps/cluster-autoscaler-status", "kube-system", None),
    ("update", "leases.coordination.k8s.io/tideover-controllers", "kube-system", None),
]


def granted(path: Path = RBAC) -> set[tuple[str, str, str]]:
    """Every (group, resource, verb) the ClusterRole and Role of ``path`` grant."""
    out: set[tuple[str, str, str]] = set()
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc or doc.get("kind") not in ("ClusterRole", "Role"):
            continue
        for rule in doc.get("rules") or []:
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    out.update((group, resource, verb) for verb in rule.get("verbs") or [])
    return out


def audited(path: Path = AUDIT_LOG) -> tuple[Counter[tuple[str, str, str]], list[str]]:
    """tideover's requests in the audit log: a count per (group, resource, verb) of the allowed ones, and a line
    for each refused one."""
    used: Counter[tuple[str, str, str]] = Counter()
    refused: list[str] = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if (entry.get("user") or {}).get("username") != SERVICE_ACCOUNT or entry.get("stage") != "ResponseComplete":
            continue
        ref = entry.get("objectRef") or {}
        resource = ref.get("resource", "")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        key = (ref.get("apiGroup", ""), resource, entry.get("verb", ""))
        # Refused by RBAC: the authorizer's decision, not the status code (a 403 also answers, e.g., an Event
        # created in a namespace being deleted).
        if (entry.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid":
            refused.append(f"{key} -> {(entry.get('responseStatus') or {}).get('code')} {entry.get('requestURI')}")
        else:
            used[key] += 1
    return used, refused


def test_grants_table_matches_rbac_yaml() -> None:
    assert granted() == set(GRANTS), "GRANTS must name a scenario for exactly the grants of config/rbac.yaml"


@pytest.mark.e2e
@pytest.mark.kind
@pytest.mark.run_last
def test_every_grant_is_used_and_nothing_refused(e2e: E2E) -> None:
    if e2e.target != "kind":
        pytest.skip("tideover runs with its ServiceAccount only in the kind cluster (TIDEOVER_E2E_TARGET=kind)")
    if not AUDIT_LOG.is_file():
        pytest.fail(f"no audit log at {AUDIT_LOG}: the kind cluster was not created by e2e/kind/up.sh")
    used, refused = audited()
    print(f"\n[e2e] tideover's requests by grant (audit log {AUDIT_LOG}):")
    for key in sorted(GRANTS):
        print(f"[e2e]   {used[key]:6d}  {key}  {GRANTS[key]}")
    assert not refused, f"requests of tideover refused by RBAC: {refused[:10]}"
    unused = sorted(set(GRANTS) - set(used))
    assert not unused, f"grants of config/rbac.yaml no scenario used (remove them): {unused}"
    beyond = sorted(set(used) - set(GRANTS))
    assert not beyond, f"requests outside the grants (impossible unless RBAC allows more): {beyond}"


def _can_i(kubectl: str, kubeconfig: Path, verb: str, resource: str, namespace: str | None,
           subresource: str | None) -> bool:
    scope = ["--all-namespaces"] if namespace is None else ["-n", namespace]
    if subresource is not None:
        scope += ["--subresource", subresource]
    result = subprocess.run(
        [kubectl, "--kubeconfig", str(kubeconfig), "auth", "can-i", verb, resource, "--as", SERVICE_ACCOUNT, *scope],
        capture_output=True, text=True, timeout=30, check=False,
    )
    answer = result.stdout.strip()
    if answer not in ("yes", "no"):
        raise AssertionError(f"kubectl auth can-i {verb} {resource}: {result.stdout}{result.stderr}")
    return answer == "yes"


@pytest.mark.e2e
@pytest.mark.kind
@pytest.mark.run_last
def test_service_account_can_do_only_what_it_needs(e2e: E2E) -> None:
    from e2e.kind import images
    from e2e.kind.target import kubeconfig_path

    if e2e.target != "kind":
        pytest.skip("the ServiceAccount's grants are applied only in the kind cluster (TIDEOVER_E2E_TARGET=kind)")
    kubectl = str(images.tool_path("kubectl"))
    kubeconfig = kubeconfig_path()
    wrongly_allowed = [c for c in FORBIDDEN if _can_i(kubectl, kubeconfig, *c)]
    wrongly_denied = [c for c in ALLOWED if not _can_i(kubectl, kubeconfig, *c)]
    assert not wrongly_allowed, f"tideover's ServiceAccount may do more than it needs: {wrongly_allowed}"
    assert not wrongly_denied, f"tideover's ServiceAccount lacks what it needs: {wrongly_denied}"
