"""Unit tests of the simulated VMSS: a real grpcio server and client in-process, a fake clock and a fake
node registrar. No cluster, no e2e flag. They need the Go module cache (for the pinned proto); without
it they are skipped. Collected through tests/test_vmss_simulator.py (pyproject testpaths).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from e2e.vmss import protos
from e2e.vmss.__main__ import parse_group
from e2e.vmss.autoscaler import AutoscalerOptions, ca_command, write_cloud_config
from e2e.vmss.simulator import (
    KWOK_ANNOTATION,
    OUT_OF_RESOURCES_ERROR_CLASS,
    Faults,
    GroupConfig,
    NodeSpec,
    VmssServer,
    VmssSimulator,
)

AKS_ID = GroupConfig("nodepool1").group_id  # aks-nodepool1-<8 digits>-vmss


@pytest.fixture(scope="module")
def stubs() -> protos.Stubs:
    try:
        return protos.load()
    except (protos.ProtoError, OSError) as exc:  # no Go toolchain / module cache here
        pytest.skip(f"cannot generate the externalgrpc stubs: {exc}")


@dataclass
class FakeClock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeRegistrar:
    nodes: dict[str, NodeSpec] = field(default_factory=dict)
    log: list[tuple[str, str]] = field(default_factory=list)
    fail: bool = False

    def register(self, node: NodeSpec) -> None:
        if self.fail:
            raise RuntimeError("API server down")
        self.nodes[node.name] = node
        self.log.append(("register", node.name))

    def deregister(self, name: str) -> None:
        self.nodes.pop(name, None)
        self.log.append(("deregister", name))


@dataclass
class Harness:
    sim: VmssSimulator
    server: VmssServer
    client: Any  # CloudProviderStub
    pb: Any
    core_v1: Any
    clock: FakeClock
    nodes: FakeRegistrar

    def increase(self, delta: int, group: str = "nodepool1") -> None:
        self.client.NodeGroupIncreaseSize(self.pb.NodeGroupIncreaseSizeRequest(id=group, delta=delta))

    def target(self, group: str = "nodepool1") -> int:
        return int(self.client.NodeGroupTargetSize(self.pb.NodeGroupTargetSizeRequest(id=group)).targetSize)

    def instances(self, group: str = "nodepool1") -> list[Any]:
        return list(self.client.NodeGroupNodes(self.pb.NodeGroupNodesRequest(id=group)).instances)

    def grpc_node(self, name: str) -> Any:
        spec = self.nodes.nodes[name]
        return self.pb.ExternalGrpcNode(providerID=spec.provider_id, name=name, labels=spec.labels)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.sim.tick()


def _make(
    stubs: protos.Stubs,
    tmp_path: Path,
    groups: list[GroupConfig] | None = None,
    registrar: FakeRegistrar | None = None,
    clock: FakeClock | None = None,
    **kwargs: Any,
) -> Harness:
    clock = clock or FakeClock()
    registrar = registrar or FakeRegistrar()
    sim = VmssSimulator(
        groups or [GroupConfig("nodepool1", min_size=1, max_size=3, provisioning_delay=20, initial=1)],
        registrar,
        clock=clock,
        **kwargs,
    )
    server = VmssServer(sim, port=0, tick=0).start()  # tick=0: time moves only through Harness.advance
    channel = grpc.insecure_channel(server.address)
    client = stubs.pb2_grpc.CloudProviderStub(channel)
    return Harness(sim, server, client, stubs.pb2, stubs.core_v1, clock, registrar)


@pytest.fixture
def h(stubs: protos.Stubs, tmp_path: Path) -> Iterator[Harness]:
    harness = _make(stubs, tmp_path)
    yield harness
    harness.server.stop(0)


def _code(call: Any, *args: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call(*args)
    code: grpc.StatusCode = info.value.code()
    return code


# ----------------------------------------------------------------------------------- stubs


def test_stubs_are_generated_once_per_proto_hash(stubs: protos.Stubs) -> None:
    assert stubs.directory.parent == protos.GENERATED_ROOT
    assert stubs.directory.name.startswith("externalgrpc-")
    marker = stubs.directory / "externalgrpc_pb2_grpc.py"
    before = marker.stat().st_mtime_ns
    assert protos.generate() == stubs.directory  # cached: same key, not rewritten
    assert marker.stat().st_mtime_ns == before
    sources = json.loads((stubs.directory / "SOURCES.json").read_text())
    assert "k8s.io/api/core/v1/generated.proto" in sources["imports"]
    assert sources["modules"]["k8s.io/api"].endswith("k8s.io/api@v0.33.1")


# ----------------------------------------------------------------------------------- basics


def test_node_groups_and_initial_instance(h: Harness) -> None:
    groups = h.client.NodeGroups(h.pb.NodeGroupsRequest()).nodeGroups
    # The id CA sees (and writes into its status ConfigMap) is the scale set's AKS name, as on AKS.
    assert [(g.id, g.minSize, g.maxSize) for g in groups] == [(AKS_ID, 1, 3)]
    assert h.target() == 1
    (inst,) = h.instances()
    assert inst.status.instanceState == h.pb.InstanceStatus.instanceRunning
    assert inst.status.errorInfo.errorCode == ""
    (name,) = h.nodes.nodes
    assert name.startswith("aks-nodepool1-") and name.endswith("-vmss000000")
    assert h.nodes.nodes[name].provider_id == inst.id
    assert inst.id.startswith("azure:///subscriptions/") and "/virtualMachineScaleSets/aks-nodepool1-" in inst.id


def test_node_group_for_node_matches_provider_id(h: Harness) -> None:
    (name,) = h.nodes.nodes
    resp = h.client.NodeGroupForNode(h.pb.NodeGroupForNodeRequest(node=h.grpc_node(name)))
    assert resp.nodeGroup.id == AKS_ID
    assert (resp.nodeGroup.minSize, resp.nodeGroup.maxSize) == (1, 3)
    # Same name, other providerID (e.g. the virtual node, or a stale node): not ours.
    for other in ("virtual-kubelet://virtual-node-aci-linux", ""):
        node = h.pb.ExternalGrpcNode(providerID=other, name=name)
        assert h.client.NodeGroupForNode(h.pb.NodeGroupForNodeRequest(node=node)).nodeGroup.id == ""


def test_node_spec_has_the_aks_and_kwok_shape(h: Harness) -> None:
    (spec,) = h.nodes.nodes.values()
    m = spec.manifest()
    labels = m["metadata"]["labels"]
    assert labels["kubernetes.azure.com/agentpool"] == "nodepool1"
    assert labels["kubernetes.azure.com/mode"] == "user"
    assert labels["node.kubernetes.io/instance-type"] == "Standard_D2s_v5"
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/hostname"] == spec.name
    assert labels.get("type") != "virtual-kubelet"
    assert m["metadata"]["annotations"] == {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1], "node.alpha.kubernetes.io/ttl": "0"}
    assert m["spec"]["providerID"] == spec.provider_id
    assert m["spec"]["taints"] == []
    assert m["status"]["allocatable"] == {"cpu": "2", "memory": "8Gi", "pods": "110"}
    assert "conditions" not in m["status"]  # kwok sets them


def test_increase_size_boots_then_registers(h: Harness) -> None:
    h.increase(2)
    assert h.target() == 3
    states = [i.status.instanceState for i in h.instances()]
    assert states.count(h.pb.InstanceStatus.instanceCreating) == 2
    assert len(h.nodes.nodes) == 1
    h.advance(19.5)
    assert len(h.nodes.nodes) == 1
    h.advance(1.0)
    assert len(h.nodes.nodes) == 3
    assert all(i.status.instanceState == h.pb.InstanceStatus.instanceRunning for i in h.instances())
    ids = {i.id for i in h.instances()}
    assert {n.provider_id for n in h.nodes.nodes.values()} == ids
    kinds = [e.kind for e in h.sim.events]
    assert kinds.count("register") == 3 and "increase" in kinds


def test_increase_size_rejects_beyond_max_and_non_positive(h: Harness) -> None:
    req = h.pb.NodeGroupIncreaseSizeRequest
    assert _code(h.client.NodeGroupIncreaseSize, req(id="nodepool1", delta=3)) == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(h.client.NodeGroupIncreaseSize, req(id="nodepool1", delta=0)) == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(h.client.NodeGroupIncreaseSize, req(id="nope", delta=1)) == grpc.StatusCode.NOT_FOUND
    assert h.target() == 1


def test_delete_nodes_removes_instances_and_nodes(h: Harness) -> None:
    h.increase(2)
    h.advance(20)
    victim = sorted(h.nodes.nodes)[-1]
    h.client.NodeGroupDeleteNodes(h.pb.NodeGroupDeleteNodesRequest(id="nodepool1", nodes=[h.grpc_node(victim)]))
    assert h.target() == 2
    assert victim not in h.nodes.nodes
    assert ("deregister", victim) in h.nodes.log
    assert len(h.instances()) == 2


def test_delete_nodes_errors(h: Harness) -> None:
    (only,) = h.nodes.nodes
    req = h.pb.NodeGroupDeleteNodesRequest
    # below min size
    assert _code(h.client.NodeGroupDeleteNodes, req(id="nodepool1", nodes=[h.grpc_node(only)])) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    stranger = h.pb.ExternalGrpcNode(providerID="azure:///other", name="other")
    assert _code(h.client.NodeGroupDeleteNodes, req(id="nodepool1", nodes=[stranger])) == grpc.StatusCode.NOT_FOUND
    assert h.target() == 1 and only in h.nodes.nodes


def test_deletion_delay_reports_deleting(stubs: protos.Stubs, tmp_path: Path) -> None:
    h = _make(stubs, tmp_path, deletion_delay=5)
    try:
        h.increase(1)
        h.advance(20)
        victim = sorted(h.nodes.nodes)[-1]
        h.client.NodeGroupDeleteNodes(h.pb.NodeGroupDeleteNodesRequest(id="nodepool1", nodes=[h.grpc_node(victim)]))
        assert h.target() == 1
        states = sorted(i.status.instanceState for i in h.instances())
        assert states == sorted([h.pb.InstanceStatus.instanceRunning, h.pb.InstanceStatus.instanceDeleting])
        assert victim in h.nodes.nodes
        h.advance(5)
        assert victim not in h.nodes.nodes and len(h.instances()) == 1
    finally:
        h.server.stop(0)


def test_decrease_target_size_only_drops_unregistered(h: Harness) -> None:
    h.increase(2)
    req = h.pb.NodeGroupDecreaseTargetSizeRequest
    h.client.NodeGroupDecreaseTargetSize(req(id="nodepool1", delta=-1))
    assert h.target() == 2
    assert _code(h.client.NodeGroupDecreaseTargetSize, req(id="nodepool1", delta=-2)) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    assert _code(h.client.NodeGroupDecreaseTargetSize, req(id="nodepool1", delta=1)) == grpc.StatusCode.INVALID_ARGUMENT
    h.advance(20)
    assert len(h.nodes.nodes) == 2
    assert _code(h.client.NodeGroupDecreaseTargetSize, req(id="nodepool1", delta=-1)) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )


def test_template_node_info_is_a_v1_node(h: Harness) -> None:
    resp = h.client.NodeGroupTemplateNodeInfo(h.pb.NodeGroupTemplateNodeInfoRequest(id="nodepool1"))
    node = resp.nodeInfo
    assert isinstance(node, h.core_v1.Node)
    labels = dict(node.metadata.labels)
    assert labels["kubernetes.azure.com/agentpool"] == "nodepool1"
    assert labels["kubernetes.azure.com/mode"] == "user"
    assert labels["node.kubernetes.io/instance-type"] == "Standard_D2s_v5"
    assert labels["kubernetes.io/os"] == "linux"
    alloc = {k: v.string for k, v in node.status.allocatable.items()}
    assert alloc == {"cpu": "2", "memory": "8Gi", "pods": "110"}
    assert [(c.type, c.status) for c in node.status.conditions] == [("Ready", "True")]
    # What CA receives is the wire form of k8s.io.api.core.v1.Node.
    again = h.core_v1.Node.FromString(node.SerializeToString())
    assert again.metadata.labels["kubernetes.azure.com/agentpool"] == "nodepool1"


def test_optional_and_misc_rpcs(h: Harness) -> None:
    pb = h.pb
    assert h.client.GPULabel(pb.GPULabelRequest()).label == "kubernetes.azure.com/accelerator"
    assert dict(h.client.GetAvailableGPUTypes(pb.GetAvailableGPUTypesRequest()).gpuTypes) == {}
    h.client.Refresh(pb.RefreshRequest())
    h.client.Cleanup(pb.CleanupRequest())
    assert _code(h.client.PricingNodePrice, pb.PricingNodePriceRequest()) == grpc.StatusCode.UNIMPLEMENTED
    assert _code(h.client.PricingPodPrice, pb.PricingPodPriceRequest()) == grpc.StatusCode.UNIMPLEMENTED
    assert _code(h.client.NodeGroupGetOptions, pb.NodeGroupAutoscalingOptionsRequest(id="nodepool1")) == (
        grpc.StatusCode.UNIMPLEMENTED
    )
    assert h.server.servicer.calls["Refresh"] == 1


def test_refresh_advances_the_simulation(stubs: protos.Stubs, tmp_path: Path) -> None:
    h = _make(stubs, tmp_path)
    try:
        h.increase(1)
        h.clock.advance(21)  # no tick: CA's Refresh (each loop) is enough to move time on
        h.client.Refresh(h.pb.RefreshRequest())
        assert len(h.nodes.nodes) == 2
    finally:
        h.server.stop(0)


def test_registration_is_retried_after_an_api_error(h: Harness) -> None:
    h.increase(1)
    h.nodes.fail = True
    h.advance(20)
    assert len(h.nodes.nodes) == 1
    assert h.target() == 2
    assert sorted(i.status.instanceState for i in h.instances())[-1] == h.pb.InstanceStatus.instanceCreating
    h.nodes.fail = False
    h.advance(0.1)
    assert len(h.nodes.nodes) == 2


# ----------------------------------------------------------------------------------- faults


def test_quota_fault_on_increase_size(h: Harness) -> None:
    h.sim.set_faults("nodepool1", quota="increase")
    with pytest.raises(grpc.RpcError) as info:
        h.increase(1)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "QuotaExceeded" in (info.value.details() or "")
    assert h.target() == 1
    h.sim.clear_faults()
    h.increase(1)
    assert h.target() == 2


def test_quota_fault_as_failed_instances(h: Harness) -> None:
    h.sim.set_faults("nodepool1", quota="instances")
    h.increase(2)
    assert h.target() == 3
    failed = [i for i in h.instances() if i.status.errorInfo.errorCode]
    assert len(failed) == 2
    for inst in failed:
        assert inst.status.instanceState == h.pb.InstanceStatus.instanceCreating
        assert inst.status.errorInfo.errorCode == "QuotaExceeded"
        assert inst.status.errorInfo.instanceErrorClass == OUT_OF_RESOURCES_ERROR_CLASS
        assert "quota" in inst.status.errorInfo.errorMessage
    h.advance(600)
    assert len(h.nodes.nodes) == 1  # they never boot
    # CA deletes instances with create errors through DeleteNodes, naming them by providerID.
    doomed = [h.pb.ExternalGrpcNode(providerID=i.id, name=i.id) for i in failed]
    h.client.NodeGroupDeleteNodes(h.pb.NodeGroupDeleteNodesRequest(id="nodepool1", nodes=doomed))
    assert h.target() == 1


def test_slow_boot_fault(h: Harness) -> None:
    h.sim.set_faults("nodepool1", boot_delay=60)
    h.increase(1)
    h.advance(30)
    assert len(h.nodes.nodes) == 1
    h.advance(30)
    assert len(h.nodes.nodes) == 2


def test_the_aks_group_id_is_what_tideover_maps_the_pool_to(h: Harness) -> None:
    from extender.model.autoscaler_status import parse_autoscaler_status
    from extender.model.config import TideoverConfig
    from extender.model.snapshot import resolve_node_group

    assert re.fullmatch(r"aks-nodepool1-\d{8}-vmss", AKS_ID)
    # Requests name the group by its id (as CA does) or by the pool's name; both reach the same scale set.
    assert h.client.NodeGroupTargetSize(h.pb.NodeGroupTargetSizeRequest(id=AKS_ID)).targetSize == 1
    h.client.NodeGroupIncreaseSize(h.pb.NodeGroupIncreaseSizeRequest(id=AKS_ID, delta=1))
    assert h.target("nodepool1") == 2
    status = parse_autoscaler_status(f"time: 2026-11-29 04:00:00.0 +0000 UTC\nnodeGroups:\n  - name: {AKS_ID}\n")
    assert resolve_node_group("nodepool1", TideoverConfig(), status) == AKS_ID


def test_pool_named_ids_when_asked() -> None:
    assert GroupConfig("nodepool1", aks_group_id=False).group_id == "nodepool1"


def test_never_register_fault(h: Harness) -> None:
    """A VMSS allocation that never lands (kubernetes/autoscaler#8323): the instance stays creating with no error,
    so CA keeps counting it as upcoming, and no Node ever appears."""
    h.sim.set_faults("nodepool1", never_register=True)
    h.increase(1)
    h.advance(3600)
    assert len(h.nodes.nodes) == 1
    new = [i for i in h.instances() if i.status.instanceState != h.pb.InstanceStatus.instanceRunning]
    assert len(new) == 1
    assert new[0].status.instanceState == h.pb.InstanceStatus.instanceCreating
    assert new[0].status.errorInfo.errorCode == ""
    assert h.target() == 2


def test_never_ready_fault(h: Harness) -> None:
    h.sim.set_faults("nodepool1", never_ready=True)
    h.increase(1)
    h.advance(20)
    new = [n for n in h.nodes.nodes.values() if not n.name.endswith("000000")]
    (spec,) = new
    assert not spec.kwok_managed  # kwok does not manage it, so nothing ever makes it Ready
    m = spec.manifest()
    assert KWOK_ANNOTATION[0] not in m["metadata"]["annotations"]
    assert {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"} in m["spec"]["taints"]
    assert m["status"]["conditions"][0]["status"] == "False"
    assert m["spec"]["providerID"] == spec.provider_id
    # The VM itself is running: CA sees a registered but unready node.
    assert all(i.status.instanceState == h.pb.InstanceStatus.instanceRunning for i in h.instances())


def test_faults_file_is_watched(stubs: protos.Stubs, tmp_path: Path) -> None:
    faults_file = tmp_path / "faults.json"
    h = _make(stubs, tmp_path, faults_file=faults_file)
    try:
        faults_file.write_text(json.dumps({"nodepool1": {"quota": "increase"}}))
        h.sim.tick()
        assert h.sim.faults("nodepool1").quota == "increase"
        assert _code(h.increase, 1) == grpc.StatusCode.RESOURCE_EXHAUSTED
        faults_file.write_text("{}")
        os.utime(faults_file, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))  # coarse mtime clocks
        h.sim.tick()
        assert h.sim.faults("nodepool1") == Faults()
        faults_file.write_text(json.dumps({"nodepool1": {"quota": "bogus"}}))  # ignored, logged
        os.utime(faults_file, ns=(time.time_ns() + 2 * 10**9, time.time_ns() + 2 * 10**9))
        h.sim.tick()
        assert h.sim.faults("nodepool1") == Faults()
        h.increase(1)
    finally:
        h.server.stop(0)


# ----------------------------------------------------------------------------------- persistence


def test_state_survives_a_simulator_restart(stubs: protos.Stubs, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    clock = FakeClock()
    nodes = FakeRegistrar()
    group = GroupConfig("nodepool1", min_size=1, max_size=5, provisioning_delay=20, initial=1)
    h1 = _make(stubs, tmp_path, [group], nodes, clock, state_file=state)
    h1.increase(2)
    h1.advance(20)
    h1.sim.set_faults("nodepool1", boot_delay=40)
    h1.increase(1)  # booting when the simulator "crashes"
    h1.server.stop(0)
    ids_before = {i.id for i in h1.sim.instances("nodepool1")}
    saved = json.loads(state.read_text())
    assert saved["groups"]["nodepool1"]["target_size"] == 4

    clock.advance(10)
    # Restarted with the same command line (initial=1 is not applied again to a known group).
    group2 = GroupConfig("nodepool1", min_size=1, max_size=5, provisioning_delay=20, initial=1)
    h2 = _make(stubs, tmp_path, [group2], nodes, clock, state_file=state)
    try:
        assert h2.target() == 4
        assert {i.id for i in h2.instances()} == ids_before
        assert h2.sim.faults("nodepool1").boot_delay == 40
        assert len(nodes.nodes) == 3
        h2.advance(30)  # 40 s after its IncreaseSize: the booting one registers
        assert len(nodes.nodes) == 4
        h2.increase(1)
        assert h2.sim.instances("nodepool1")[-1].name.endswith("vmss000004")  # index continues
    finally:
        h2.server.stop(0)


def test_state_survives_a_client_reconnect(h: Harness, stubs: protos.Stubs) -> None:
    h.increase(1)
    # A new client (CA restarted) sees the same cloud.
    client2 = stubs.pb2_grpc.CloudProviderStub(grpc.insecure_channel(h.server.address))
    assert client2.NodeGroupTargetSize(h.pb.NodeGroupTargetSizeRequest(id="nodepool1")).targetSize == 2


# ----------------------------------------------------------------------------------- CLI and CA helpers


def test_parse_group() -> None:
    g = parse_group("name=nodepool1,min=1,max=5,provisioning-delay=20,initial=2,quota=instances,never-ready=true")
    assert (g.name, g.min_size, g.max_size, g.provisioning_delay, g.initial) == ("nodepool1", 1, 5, 20.0, 2)
    assert g.faults == Faults(quota="instances", never_ready=True)
    assert parse_group("name=p2,boot-delay=90").faults.boot_delay == 90
    for bad in ("min=1", "name=x,min=3,max=2", "name=x,colour=blue", "name=x,quota=maybe"):
        with pytest.raises(ValueError):
            parse_group(bad)


def test_cloud_config_and_ca_command(tmp_path: Path) -> None:
    cfg = write_cloud_config(tmp_path / "cloud-config.yaml", 50051)
    assert cfg.read_text().strip() == "address: 127.0.0.1:50051"
    cmd = ca_command(
        "/bin/ca", kubeconfig="/k", cloud_config=cfg, metrics_port=8099, options=AutoscalerOptions(extra_args=["--x"])
    )
    assert cmd[0] == "/bin/ca"
    for flag in (
        "--cloud-provider=externalgrpc",
        f"--cloud-config={cfg}",
        "--kubeconfig=/k",
        "--scan-interval=2s",
        "--status-config-map-name=cluster-autoscaler-status",
        "--namespace=kube-system",
        "--write-status-configmap=true",
        "--expander=least-waste",
        "--leader-elect=false",
        "--address=127.0.0.1:8099",
        "--v=2",
    ):
        assert flag in cmd
    assert cmd[-1] == "--x"
