"""End-to-end: the real kube-scheduler, started with config/scheduler-config.yaml, calls a real
``tideover serve``; VM nodes are kwok nodes with AKS pool labels; the virtual node is the
virtual-kubelet mock provider. Placements are observed through the API.

No cluster-autoscaler runs here, so no scale-up is ever pending (see test_autoscaler_e2e.py for that).
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from e2e.conftest import E2E
from e2e.harness.cluster import VIRTUAL_NODE_NAME, LocalCluster
from e2e.harness.pki import CertPair, Pki
from e2e.harness.tideover import DEFAULT_CONFIG, ROOT, TideoverProcess, scheduler_config
from e2e.harness.workloads import Namespace, add_vm_nodes, deployment, pod

pytestmark = [pytest.mark.e2e, pytest.mark.kind]  # kind: its stack fixture has a kind target

VIRTUAL = VIRTUAL_NODE_NAME


def test_seed_workload_stays_pending_without_a_scale_up(
    stack: tuple[LocalCluster, TideoverProcess], ns: Namespace
) -> None:
    """Seed 001's Deployment: 1 replica lands on a VM; beyond VM capacity, with no scale-up pending,
    the extra pods stay Pending, none reaches the virtual node, and FailedScheduling carries tideover's reason."""
    cluster, _ = stack
    vms = add_vm_nodes(cluster, 2)  # 2 x 2 CPU: room for 4 pods of 1 CPU
    ns.create_deployment(deployment("web", 1, cpu="1"))
    ns.wait(lambda: len(ns.running_on()) == 1, 60, "the first replica to run")
    assert set(ns.running_on().values()) <= set(vms)

    ns.scale("web", 6)
    ns.wait(lambda: ns.summary() == {"vm": 4, "pending": 2}, 60, "4 pods on VMs and 2 Pending")
    ns.hold(lambda: ns.summary()["virtual"] == 0, 8, "no pod may reach the virtual node")
    pending = [name for name, node in ns.placements().items() if node is None]

    # With no scale-up pending, tideover gates the virtual node (so that cluster-autoscaler, which knows
    # nothing of extenders, sees these pods need a VM). kube-scheduler 1.36 reports only "untolerated
    # taint(s)"; the node's annotation says why the gate is closed.
    assert {"key": "tideover.io/spill-window", "value": "closed", "effect": "NoSchedule"} in cluster.node(VIRTUAL)[
        "spec"]["taints"]

    def withheld_reason_reported() -> bool:
        return all(
            any("node(s) had untolerated taint(s)" in m for m in ns.events("FailedScheduling", name))
            for name in pending
        )

    ns.wait(withheld_reason_reported, 30, "FailedScheduling events for the gated virtual node")
    # Issue 11: kube-scheduler's message names no reason, so tideover tells each pod itself (kubectl describe pod).
    gate_words = "tideover's gate taint tideover.io/spill-window=closed:NoSchedule is what kube-scheduler reports"

    def waiting_events_posted() -> bool:
        return all(any(m.startswith("Waiting for a VM") and gate_words in m for m in ns.events("WaitingForVM", name))
                   for name in pending)

    ns.wait(waiting_events_posted, 30, "a WaitingForVM event with tideover's reason on each gated pod")
    print(f"[e2e] WaitingForVM: {ns.events('WaitingForVM', pending[0])[-1]}")
    annotations = cluster.node(VIRTUAL)["metadata"]["annotations"]
    assert annotations["tideover.io/spill-window"].startswith("closed since ")
    assert "no VM pool has capacity pending" in annotations["tideover.io/spill-window"]
    print(f"\n[e2e] FailedScheduling: {ns.events('FailedScheduling', pending[0])[-1]}")
    print(f"[e2e] virtual node: tideover.io/spill-window={annotations['tideover.io/spill-window']}")

    # A workload that tolerates the gate reaches tideover's filter, which withholds the virtual node and
    # says why in the pod's FailedScheduling event.
    ns.create_pod(pod("past-the-gate", cpu="1", tolerate_gate=True))
    ns.wait(lambda: any("virtual node withheld: no VMSS scale-up in progress for pools [nodepool1, spotpool]" in m
                        for m in ns.events("FailedScheduling", "past-the-gate")), 30,
            "tideover's reason in the FailedScheduling event")
    assert ns.placements()["past-the-gate"] is None

    # A pod that needs a pool with no room and no scale-up (its nodeSelector names spotpool, which has no node):
    # it is told which pool it waits for.
    ns.create_pod(pod("needs-spot", cpu="1", nodeSelector={"kubernetes.azure.com/agentpool": "spotpool"}))
    ns.wait(lambda: any("Waiting for a VM of pool spotpool" in m for m in ns.events("WaitingForVM", "needs-spot")), 30,
            "a WaitingForVM event naming the pool the pod needs")
    assert len(ns.events("WaitingForVM", "needs-spot")) == 1  # one event per pod and reason, not one per retry
    print(f"[e2e] WaitingForVM (pool): {ns.events('WaitingForVM', 'needs-spot')[-1]}")


def test_when_full_workload_spills_to_the_virtual_node(
    stack: tuple[LocalCluster, TideoverProcess], ns: Namespace
) -> None:
    cluster, _ = stack
    add_vm_nodes(cluster, 2)
    ns.create_deployment(
        deployment("burst", 6, cpu="1", tolerate_gate=True, annotations={"tideover.io/spill": "when-full"})
    )
    ns.wait(lambda: ns.summary() == {"vm": 4, "virtual": 2}, 60, "4 pods on VMs and 2 on the virtual node")
    ns.wait(lambda: len(ns.running_on()) == 6, 60, "all 6 pods Running")
    spilled = [name for name, node in ns.placements().items() if node == VIRTUAL]

    def spill_events() -> bool:
        return all(any("tideover.io/spill is when-full" in m for m in ns.events("SpilledToVirtualNode", name))
                   for name in spilled)

    ns.wait(spill_events, 30, "SpilledToVirtualNode events with the reason")

    # Scale-down preference (issue 5): the Lease holder marks the spilled pods with a low deletion cost, so
    # the ReplicaSet controller removes them first. One patch per spilled pod, none for VM pods.
    def costs() -> dict[str, str | None]:
        return {p["metadata"]["name"]: (p["metadata"].get("annotations") or {}).get(
            "controller.kubernetes.io/pod-deletion-cost") for p in ns.pods()}

    ns.wait(lambda: all(costs()[name] == "-1000" for name in spilled), 30, "deletion cost on the spilled pods")
    assert {name for name, cost in costs().items() if cost is not None} == set(spilled)
    lease = k8s.CoordinationV1Api(cluster.api_client()).read_namespaced_lease("tideover-controllers", "kube-system")
    assert lease.spec.holder_identity
    ns.scale("burst", 4)
    ns.wait(lambda: ns.summary() == {"vm": 4}, 60, "the scale-down to remove the virtual-node pods first")


def test_pods_that_must_not_spill_never_reach_the_virtual_node(
    stack: tuple[LocalCluster, TideoverProcess], ns: Namespace
) -> None:
    cluster, _ = stack
    add_vm_nodes(cluster, 1)  # room for 2 pods of 1 CPU
    ns.create_deployment(deployment("filler", 2, cpu="1"))
    ns.wait(lambda: len(ns.running_on("app=filler")) == 2, 60, "the VM to fill")
    ns.create_pod(pod("no-toleration", cpu="1", tolerate_virtual=False))
    # The never pod even tolerates the gate: tideover's filter alone keeps it off.
    ns.create_pod(pod("never", cpu="1", tolerate_gate=True,
                      annotations={"tideover.io/spill": "never", "tideover.io/priority": "critical"}))
    ns.create_pod(pod("when-full", cpu="1", tolerate_gate=True, annotations={"tideover.io/spill": "when-full"}))
    # The when-full pod shows the virtual node was there to take: the other two are kept off it.
    ns.wait(lambda: ns.placements().get("when-full") == VIRTUAL, 60, "the when-full control pod on the virtual node")
    ns.hold(lambda: ns.placements()["no-toleration"] is None and ns.placements()["never"] is None, 8,
            "pods without the toleration, or with spill: never, must stay off the virtual node")
    ns.wait(lambda: any("tideover.io/spill is never" in m for m in ns.events("FailedScheduling", "never")), 30,
            "the never pod's FailedScheduling event to carry tideover's reason")
    assert any("untolerated taint" in m for m in ns.events("FailedScheduling", "no-toleration"))


def test_placement_follows_tideover_scores(stack: tuple[LocalCluster, TideoverProcess], ns: Namespace) -> None:
    """Two VM nodes both fit. The cheap spot node is already half used, so kube-scheduler's own plugins
    (LeastAllocated, BalancedAllocation) prefer the empty nodepool1 node; tideover's cost model prefers
    the spot node for an economy pod, and its prioritize score (weight 5) decides."""
    cluster, tideover = stack
    (spot,) = add_vm_nodes(cluster, 1, pool="spotpool")
    (dear,) = add_vm_nodes(cluster, 1, pool="nodepool1")
    # Both must be feasible (no lingering not-ready taint): with one feasible node kube-scheduler skips
    # prioritize, and nothing would be proven.
    ns.wait(lambda: not any(cluster.node(n)["spec"].get("taints") for n in (spot, dear)), 30, "untainted VM nodes")
    ns.create_pod(pod("load", cpu="1", tolerate_virtual=False, nodeName=spot))
    ns.wait(lambda: ns.running_on().get("load") == spot, 30, "the load pod on the spot node")
    scored = {"verb": "prioritize", "outcome": "scored"}  # the scores differed, so they were all sent
    before = tideover.metric("tideover_decisions_total", scored)
    ns.create_pod(pod("cheap", cpu="500m", tolerate_virtual=False, annotations={"tideover.io/priority": "economy"}))
    ns.wait(lambda: ns.placements().get("cheap") is not None, 60, "the economy pod to be scheduled")
    assert ns.placements()["cheap"] == spot, f"expected the cheaper node {spot}, not {dear}"
    assert tideover.metric("tideover_decisions_total", scored) > before


def test_equal_scores_leave_the_choice_to_the_scheduler(
    stack: tuple[LocalCluster, TideoverProcess], ns: Namespace
) -> None:
    """Two VM nodes of one pool at one price, neither with an image the pod needs: tideover scores them alike, so
    prioritize answers the empty list (outcome uniform), which kube-scheduler accepts, and its own plugins choose:
    the emptier node, not the one already half used."""
    cluster, tideover = stack
    busy, idle = add_vm_nodes(cluster, 2, pool="nodepool1")
    ns.wait(lambda: not any(cluster.node(n)["spec"].get("taints") for n in (busy, idle)), 30, "untainted VM nodes")
    ns.create_pod(pod("load", cpu="1", tolerate_virtual=False, nodeName=busy))
    ns.wait(lambda: ns.running_on().get("load") == busy, 30, "the load pod on one of the nodes")
    uniform = {"verb": "prioritize", "outcome": "uniform"}
    before = tideover.metric("tideover_decisions_total", uniform)
    only_these = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [busy, idle]}]},
    ]}}}
    ns.create_pod(pod("either", cpu="500m", tolerate_virtual=False, affinity=only_these))
    ns.wait(lambda: ns.placements().get("either") is not None, 60, "the pod to be scheduled")
    assert ns.placements()["either"] == idle, f"expected the emptier node {idle}, not {busy}"
    assert tideover.metric("tideover_decisions_total", uniform) > before


def test_scheduling_survives_tideover_outage_and_decisions_resume(
    stack: tuple[LocalCluster, TideoverProcess], ns: Namespace
) -> None:
    """config/ sets ignorable: true: with tideover stopped, pods still schedule onto VMs; once it is
    back, its decisions apply again. (The outage pods do not tolerate the virtual node: ones that do may
    land on it while tideover is down, the pre-tideover behaviour the README describes.)"""
    cluster, tideover = stack
    vms = add_vm_nodes(cluster, 1)
    tideover.stop()
    try:
        ns.create_deployment(deployment("during-outage", 2, cpu="500m", tolerate_virtual=False))
        ns.wait(lambda: len(ns.running_on("app=during-outage")) == 2, 60, "pods to schedule while tideover is down")
        assert set(ns.running_on("app=during-outage").values()) == set(vms)
    finally:
        tideover.start()
    # Back: fill the VM; a tolerating pod beyond its capacity is withheld from the virtual node again.
    ns.create_deployment(deployment("after", 2, cpu="500m"))
    ns.wait(lambda: len(ns.running_on("app=after")) == 2, 60, "the VM to fill")
    ns.create_pod(pod("overflow", cpu="1", tolerate_gate=True))
    ns.wait(lambda: any("virtual node withheld" in m for m in ns.events("FailedScheduling", "overflow")), 60,
            "tideover's reason on the overflow pod")
    assert ns.placements()["overflow"] is None


def _overflow_gets_tideovers_reason(cluster: LocalCluster, ns: Namespace) -> None:
    """A VM filled, then a pod that tolerates the gate: its FailedScheduling event carries tideover's reason, which
    only a tideover the scheduler reached (here, over TLS) can have given."""
    add_vm_nodes(cluster, 1)
    ns.create_deployment(deployment("fill", 2, cpu="1"))
    ns.wait(lambda: len(ns.running_on("app=fill")) == 2, 60, "the VM to fill")
    ns.create_pod(pod("over-tls", cpu="1", tolerate_gate=True))
    ns.wait(lambda: any("virtual node withheld" in m for m in ns.events("FailedScheduling", "over-tls")), 60,
            "tideover's reason, from the TLS-serving tideover")


def _refuses_other_clients(tideover: TideoverProcess, pki: Pki, stranger: Pki) -> None:
    """Without a client certificate (401), with one of another name (403) or from another CA (the TLS handshake
    fails): refused, nothing decided and nothing recorded in the spill ledger."""
    forged = {"Pod": pod("forged", cpu="1", tolerate_gate=True), "Nodes": None, "NodeNames": [VIRTUAL_NODE_NAME]}
    forged["Pod"]["metadata"].update({"namespace": "default", "uid": "forged-uid"})
    decisions = tideover.metric("tideover_decisions_total", {"verb": "filter"})
    ledger = tideover.metric("tideover_spill_ledger_entries")
    status, reply = tideover.post("/filter", forged)
    assert (status, reply) == (401, {"Error": "a client certificate signed by server.clientCAFile is required to "
                                              "call tideover's verbs"})
    other = pki.issue("other", "some-controller", client=True)
    status, reply = tideover.post("/filter", forged, client=(other.cert, other.key))
    assert status == 403 and "(some-controller) is not one of server.clientSubjects" in reply["Error"]
    foreign = stranger.issue("scheduler", "system:kube-scheduler", client=True)
    with pytest.raises(OSError):  # urllib's URLError or the SSL error: the handshake is refused
        tideover.post("/filter", forged, client=(foreign.cert, foreign.key))
    assert tideover.metric("tideover_decisions_total", {"verb": "filter"}) == decisions
    assert tideover.metric("tideover_spill_ledger_entries") == ledger


@pytest.mark.local_only  # the kind cluster's kube-scheduler is configured once, at cluster creation
def test_scheduler_calls_tideover_over_mutual_tls(stack: tuple[LocalCluster, TideoverProcess], ns: Namespace) -> None:
    """config/scheduler-config-https.yaml (enableHTTPS, tlsConfig caFile, serverName, certFile and keyFile) against
    ``tideover serve --tls-cert-file --tls-key-file --client-ca-file`` with server.clientSubjects: the scheduler's
    requests reach tideover over mutual TLS, and other clients are refused."""
    cluster, _ = stack
    work = cluster.work_dir / "tls"
    work.mkdir(exist_ok=True)
    pki = Pki(work)
    # The certificate names the Service (the serverName the config checks) and the loopback address.
    pair = pki.issue("tideover", "tideover.kube-system.svc", server=True,
                     dns_names=("tideover.kube-system.svc",), ips=("127.0.0.1",))
    scheduler = pki.issue("scheduler", "system:kube-scheduler", client=True)
    config = {**DEFAULT_CONFIG, "server": {**DEFAULT_CONFIG["server"], "clientSubjects": ["system:kube-scheduler"]}}
    secure = TideoverProcess(cluster.kubeconfig, work, config, tls=(pair.cert, pair.key, pki.ca.cert),
                             client_ca=pki.ca.cert).start()
    original = cluster.scheduler_config_source
    try:
        assert secure.url.startswith("https://")
        cluster.restart_scheduler(scheduler_config(secure.url, work / "scheduler-https.yaml", ca_file=pki.ca.cert,
                                                   client=(scheduler.cert, scheduler.key)))
        _overflow_gets_tideovers_reason(cluster, ns)
        assert secure.metric("tideover_decisions_total", {"verb": "filter"}) > 0
        _refuses_other_clients(secure, pki, Pki(work / "stranger"))
    finally:
        secure.stop()
        cluster.restart_scheduler(original)


# Run in a pod of the cluster (tideover's own image, for its Python): POST /filter to the Service without a client
# certificate, then with one from another CA; print one JSON line per attempt.
_IN_CLUSTER_CLIENT = """
import json, os, ssl, urllib.error, urllib.request
url = "https://tideover.kube-system.svc:8888/filter"
body = json.dumps({"Pod": {"metadata": {"name": "forged", "namespace": "default", "uid": "forged"}},
                   "NodeNames": []}).encode()
for name in ("none", "foreign"):
    context = ssl.create_default_context(cadata=os.environ["CA"])
    if name == "foreign":
        for key in ("CERT", "KEY"):
            with open(f"/tmp/{key}", "w") as out:
                out.write(os.environ[key])
        context.load_cert_chain("/tmp/CERT", "/tmp/KEY")
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            result = {"status": response.status}
    except urllib.error.HTTPError as error:
        result = {"status": error.code, "body": error.read().decode()}
    except OSError as error:
        result = {"status": None, "error": str(error)}
    print(json.dumps({"client": name, **result}), flush=True)
"""


def _in_cluster_attempts(ns: Namespace, ca: Path, foreign: CertPair) -> dict[str, Any]:
    """The results of _IN_CLUSTER_CLIENT, run as a pod on a kind node."""
    env = [{"name": "CA", "value": ca.read_text()}, {"name": "CERT", "value": foreign.cert.read_text()},
           {"name": "KEY", "value": foreign.key.read_text()}]
    ns.create_pod({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "intruder"}, "spec": {
        "restartPolicy": "Never", "nodeSelector": {"tideover.io/kind-node": "true"},
        "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"}],
        "containers": [{"name": "client", "image": "tideover:e2e", "imagePullPolicy": "Never",
                        "command": ["python", "-c", _IN_CLUSTER_CLIENT], "env": env}]}})

    def phase() -> str:
        return str(ns.core.read_namespaced_pod("intruder", ns.name).status.phase)

    ns.wait(lambda: phase() in ("Succeeded", "Failed"), 90, "the in-cluster client to finish")
    log = ns.core.read_namespaced_pod_log("intruder", ns.name)
    attempts = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return {attempt.pop("client"): attempt for attempt in attempts}


def _restarts(tideover: TideoverProcess) -> dict[str, int]:
    """tideover's pods by name, with their containers' restart counts."""
    from e2e.kind.target import KindTideover

    assert isinstance(tideover, KindTideover)
    return {pod["metadata"]["name"]: sum(status.get("restartCount", 0)
                                         for status in (pod.get("status") or {}).get("containerStatuses") or [])
            for pod in tideover.pods()}


def test_scheduler_calls_tideover_over_mutual_tls_in_kind(
    stack: tuple[LocalCluster, TideoverProcess], ns: Namespace, e2e: E2E
) -> None:
    """The same on the kind cluster, as users deploy it: the Deployment patched with config/deployment-tls-patch.yaml
    (a Secret tideover-tls with the client CA), and the control plane's kube-scheduler restarted with
    config/scheduler-config-https.yaml (its caFile, certFile and keyFile in /etc/kubernetes/tideover). Clients without
    the certificate are refused; the Secret renewed in place mid-run is served without a restart and the scheduler
    keeps calling."""
    from e2e.kind.target import NODE_PORT, KindCluster, KindTideover

    if e2e.target != "kind":
        pytest.skip("the kind variant (TIDEOVER_E2E_TARGET=kind); the local one is the test above")
    cluster, tideover = stack
    assert isinstance(cluster, KindCluster) and isinstance(tideover, KindTideover)
    pki = Pki(cluster.work_dir / "tls")

    def serving() -> CertPair:
        return pki.issue("tideover", "tideover.kube-system.svc", server=True,
                         dns_names=("tideover.kube-system.svc",), ips=("127.0.0.1",))

    scheduler = pki.issue("scheduler", "system:kube-scheduler", client=True)
    https = ROOT / "config" / "scheduler-config-https.yaml"
    try:
        pair = serving()
        tideover.serve_tls(pair.cert, pair.key, pki.ca.cert)
        cluster.reconfigure_scheduler(https, f"https://127.0.0.1:{NODE_PORT}", {
            "ca.crt": pki.ca.cert.read_bytes(), "client.crt": scheduler.cert.read_bytes(),
            "client.key": scheduler.key.read_bytes()})
        before = tideover.metric("tideover_decisions_total", {"verb": "filter"})
        _overflow_gets_tideovers_reason(cluster, ns)
        assert tideover.url.startswith("https://")
        assert tideover.metric("tideover_decisions_total", {"verb": "filter"}) > before
        ledger = tideover.metric("tideover_spill_ledger_entries")
        refused = tideover.metric("tideover_bad_requests_total", {"verb": "filter", "status": "401"})
        foreign = Pki(cluster.work_dir / "stranger").issue("scheduler", "system:kube-scheduler", client=True)
        attempts = _in_cluster_attempts(ns, pki.ca.cert, foreign)
        assert attempts["none"]["status"] == 401, attempts
        assert "client certificate signed by server.clientCAFile is required" in attempts["none"]["body"]
        assert attempts["foreign"]["status"] is None, attempts  # the TLS handshake refused it
        assert tideover.metric("tideover_bad_requests_total", {"verb": "filter", "status": "401"}) == refused + 1
        assert tideover.metric("tideover_spill_ledger_entries") == ledger
        renewed = serving()
        serving_pods = _restarts(tideover)
        tideover.rotate_tls(renewed.cert, renewed.key, pki.ca.cert)
        served = ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(renewed.cert.read_text()))
        waited = ns.wait(lambda: ssl.get_server_certificate(("127.0.0.1", NODE_PORT)) == served, 150,
                         "tideover to serve the renewed certificate")
        print(f"[e2e] the renewed certificate served after {waited:.1f}s, without a restart")
        assert _restarts(tideover) == serving_pods  # the same pods, no container restarted
        decided = tideover.metric("tideover_decisions_total", {"verb": "filter"})
        ns.create_pod(pod("after-rotation", cpu="1", tolerate_gate=True))
        ns.wait(lambda: any("virtual node withheld" in m for m in ns.events("FailedScheduling", "after-rotation")),
                60, "tideover's reason after the rotation")
        assert tideover.metric("tideover_decisions_total", {"verb": "filter"}) > decided
    finally:
        cluster.reconfigure_scheduler(ROOT / "config" / "scheduler-config.yaml", f"http://127.0.0.1:{NODE_PORT}")
        tideover.serve_http()
