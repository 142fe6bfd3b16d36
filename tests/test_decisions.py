"""Table-driven tests of the filter and prioritize decisions (pure functions over snapshots)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from extender.decide.filter import _FEW_VIRTUAL, FilterOutcome, _sort_candidates, decide_filter, wait_budget_seconds
from extender.decide.prioritize import ModelCache, decide_scores, node_models
from extender.model.config import TideoverConfig, parse_config
from extender.model.objects import pod_facts
from extender.model.snapshot import NodeKind, empty_snapshot
from tests.support.factories import (
    NOW,
    VIRTUAL_NODE,
    cluster,
    pod,
    snapshot,
    status_yaml,
    virtual_node,
    vm_node,
)

VM = "aks-nodepool1-000000"
VIRTUAL_TAINT_FOR_GATE = {"key": "virtual-kubelet.io/provider", "value": "azure", "effect": "NoSchedule"}
CONFIG = TideoverConfig()
IN_PROGRESS = status_yaml("InProgress", registered=2, target=4)
NO_ACTIVITY = status_yaml("NoActivity", registered=2)
BACKOFF = status_yaml("Backoff", registered=2, backoff_code="QuotaExceeded")


def _filter(
    pod_obj: dict[str, Any], candidates: list[str], status: str | None, nodes: list[dict[str, Any]] | None = None,
    config: TideoverConfig = CONFIG,
) -> Any:
    snap = snapshot(nodes if nodes is not None else cluster(2), status, config=config)
    return decide_filter(pod_facts(pod_obj), candidates, snap, config)


@pytest.mark.parametrize(
    ("pod_obj", "candidates", "status", "outcome", "feasible", "reason_part"),
    [
        pytest.param(pod(), [VM, VIRTUAL_NODE], IN_PROGRESS, FilterOutcome.VM_FITS, [VM],
                     "fits on VM node(s) now", id="vm-candidate-removes-virtual"),
        pytest.param(pod(), [VM], NO_ACTIVITY, FilterOutcome.NO_VIRTUAL_CANDIDATE, [VM], "no virtual node",
                     id="only-vm-passes-through"),
        pytest.param(pod(tolerate_virtual=False), [VM], NO_ACTIVITY, FilterOutcome.DOES_NOT_TOLERATE_VIRTUAL, [VM],
                     "does not tolerate", id="fast-path-no-toleration"),
        pytest.param(pod(), [VIRTUAL_NODE], NO_ACTIVITY, FilterOutcome.WITHHELD_NO_SCALE_UP, [],
                     "no VMSS scale-up in progress for pools [nodepool1] (autoscaler: NoActivity)",
                     id="no-scale-up-withholds"),
        pytest.param(pod(), [VIRTUAL_NODE], IN_PROGRESS, FilterOutcome.SPILL_CAPACITY_PENDING, [VIRTUAL_NODE],
                     "scale up", id="scale-up-in-progress-spills"),
        pytest.param(pod(), [VIRTUAL_NODE], BACKOFF, FilterOutcome.WITHHELD_NO_SCALE_UP, [], "Backoff",
                     id="backoff-withholds"),
        pytest.param(pod(), [VIRTUAL_NODE], None, FilterOutcome.WITHHELD_NO_SCALE_UP, [], "no VMSS scale-up",
                     id="no-autoscaler-status-withholds"),
        pytest.param(pod(annotations={"tideover.io/spill": "when-full"}), [VIRTUAL_NODE], NO_ACTIVITY,
                     FilterOutcome.SPILL_WHEN_FULL, [VIRTUAL_NODE], "when-full", id="when-full-spills"),
        pytest.param(pod(annotations={"tideover.io/spill": "never"}), [VIRTUAL_NODE], IN_PROGRESS,
                     FilterOutcome.WITHHELD_SPILL_NEVER, [], "spill is never", id="never-withholds-even-pending"),
        pytest.param(pod(annotations={"tideover.io/spill": "when-full"}), [VM, VIRTUAL_NODE], NO_ACTIVITY,
                     FilterOutcome.VM_FITS, [VM], "fits on VM", id="when-full-still-prefers-vm"),
        pytest.param(pod(annotations={"tideover.io/spill": "sometimes"}), [VIRTUAL_NODE], NO_ACTIVITY,
                     FilterOutcome.WITHHELD_NO_SCALE_UP, [], "tideover.io/spill='sometimes' is not one of",
                     id="invalid-annotation-defaults-and-is-named"),
        pytest.param(pod(node_selector={"kubernetes.azure.com/agentpool": "gpupool"}), [VIRTUAL_NODE], IN_PROGRESS,
                     FilterOutcome.WITHHELD_NO_POOL_FITS, [], "nodeSelector", id="pending-pool-cannot-host-pod"),
        pytest.param(pod(cpu="16"), [VIRTUAL_NODE], IN_PROGRESS, FilterOutcome.WITHHELD_NO_POOL_FITS, [],
                     "requests 16 CPU, a node has 2", id="pod-larger-than-pool-node"),
        pytest.param(pod(annotations={"tideover.io/priority": "economy"}), [VIRTUAL_NODE], IN_PROGRESS,
                     FilterOutcome.WITHHELD_WITHIN_WAIT_BUDGET, [], "within the pod's wait budget of 300s",
                     id="economy-waits-for-vm"),
        pytest.param(pod(annotations={"tideover.io/priority": "economy", "tideover.io/max-wait-seconds": "30"}),
                     [VIRTUAL_NODE], IN_PROGRESS, FilterOutcome.SPILL_CAPACITY_PENDING, [VIRTUAL_NODE], "VM expected",
                     id="max-wait-overrides-budget"),
        pytest.param(pod(annotations={"tideover.io/max-wait-seconds": "3600"}), [VIRTUAL_NODE], IN_PROGRESS,
                     FilterOutcome.WITHHELD_WITHIN_WAIT_BUDGET, [], "wait budget of 3600s",
                     id="standard-with-long-max-wait-waits"),
    ],
)
def test_filter(
    pod_obj: dict[str, Any], candidates: list[str], status: str | None, outcome: FilterOutcome,
    feasible: list[str], reason_part: str,
) -> None:
    decision = _filter(pod_obj, candidates, status)
    assert decision.outcome is outcome
    assert list(decision.feasible) == feasible
    assert reason_part in decision.reason
    removed = set(candidates) - set(feasible)
    # Every removed node carries a reason, as unresolvable (preemption cannot change tideover's answer).
    assert set(decision.failed_unresolvable) == removed
    assert not decision.failed
    for reason in decision.failed_unresolvable.values():
        assert reason.startswith("virtual node withheld: ")


def test_reply_never_names_a_node_that_was_not_a_candidate() -> None:
    decision = _filter(pod(), [VIRTUAL_NODE], NO_ACTIVITY)
    assert set(decision.feasible) | set(decision.failed_unresolvable) == {VIRTUAL_NODE}


def test_unknown_candidate_counts_as_a_vm_that_fits_now() -> None:
    decision = _filter(pod(), ["aks-nodepool1-new", VIRTUAL_NODE], IN_PROGRESS)
    assert decision.outcome is FilterOutcome.VM_FITS
    assert decision.feasible == ("aks-nodepool1-new",)
    assert decision.unknown_nodes == ("aks-nodepool1-new",)


def test_request_kinds_classify_nodes_the_view_has_not_seen() -> None:
    snap = snapshot(cluster(2, with_virtual=False), IN_PROGRESS)
    decision = decide_filter(
        pod_facts(pod()), ["vn2"], snap, CONFIG, request_kinds={"vn2": NodeKind.VIRTUAL}
    )
    # The snapshot knows no virtual node, but the request's copy says vn2 is one.
    assert decision.outcome is FilterOutcome.SPILL_CAPACITY_PENDING
    assert decision.feasible == ("vn2",)


def test_not_synced_is_an_error_not_a_guess() -> None:
    decision = decide_filter(pod_facts(pod()), [VIRTUAL_NODE], empty_snapshot(CONFIG, NOW), CONFIG)
    assert decision.outcome is FilterOutcome.NOT_SYNCED
    assert decision.feasible == ()


def test_pending_in_one_pool_only_helps_pods_that_pool_can_host() -> None:
    config = parse_config({"vmPools": {"pools": [{"name": "nodepool1"}, {"name": "gpupool"}]}})
    gpu_taint = {"key": "sku", "value": "gpu", "effect": "NoSchedule"}
    nodes = [
        *cluster(1),
        vm_node("aks-gpupool-000000", "gpupool", labels={"accelerator": "nvidia"}, taints=[gpu_taint]),
    ]
    status = status_yaml("InProgress", group="gpupool", registered=1, target=2)
    general = _filter(pod(), [VIRTUAL_NODE], status, nodes, config)
    # The general pod does not tolerate the GPU pool's taint: gpupool's scale-up is no reason to spill it.
    assert general.outcome is FilterOutcome.WITHHELD_NO_SCALE_UP
    assert "pools [nodepool1]" in general.reason
    gpu_pod = pod(node_selector={"accelerator": "nvidia"})
    gpu_pod["spec"]["tolerations"].append({"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"})
    gpu = _filter(gpu_pod, [VIRTUAL_NODE], status, nodes, config)
    assert gpu.outcome is FilterOutcome.SPILL_CAPACITY_PENDING
    assert gpu.pending_pools == ("gpupool",)


def test_pool_template_from_config_overrides_current_nodes() -> None:
    config = parse_config({"vmPools": {"pools": [
        {"name": "nodepool1", "template": {"taints": [{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]}}
    ]}})
    decision = _filter(pod(), [VIRTUAL_NODE], IN_PROGRESS, config=config)
    assert decision.outcome is FilterOutcome.WITHHELD_NO_POOL_FITS
    assert "dedicated=batch:NoSchedule" in decision.reason


def test_not_ready_new_node_counts_as_pending_capacity() -> None:
    nodes = [*cluster(2), vm_node("aks-nodepool1-000009", ready=False, created=NOW - timedelta(seconds=20))]
    decision = _filter(pod(), [VIRTUAL_NODE], NO_ACTIVITY, nodes)
    assert decision.outcome is FilterOutcome.SPILL_CAPACITY_PENDING
    assert "aks-nodepool1-000009" in decision.reason


def test_stale_status_is_not_a_promise() -> None:
    snap = snapshot(cluster(2), IN_PROGRESS, status_updated_at=NOW - timedelta(minutes=10))
    decision = decide_filter(pod_facts(pod()), [VIRTUAL_NODE], snap, CONFIG)
    assert decision.outcome is FilterOutcome.WITHHELD_NO_SCALE_UP


def test_spill_reason_carries_cost_and_eta() -> None:
    decision = _filter(pod(cpu="1", memory="2Gi"), [VIRTUAL_NODE], IN_PROGRESS)
    # 1 vCPU * 0.000012 * 3600 + 2 GiB * 0.0000013 * 3600 = 0.0432 + 0.00936
    assert decision.virtual_cost_per_hour == pytest.approx(0.05256)
    assert "$0.0526/h" in decision.reason
    # The scale-up began 30 s ago against the 240 s default estimate.
    assert decision.eta_seconds == pytest.approx(210)


@pytest.mark.parametrize(
    ("annotations", "budget"),
    [
        pytest.param({}, 0, id="standard"),
        pytest.param({"tideover.io/priority": "critical"}, 0, id="critical"),
        pytest.param({"tideover.io/priority": "economy"}, 300, id="economy"),
        pytest.param({"tideover.io/priority": "economy", "tideover.io/max-wait-seconds": "45"}, 45, id="override"),
        pytest.param({"tideover.io/max-wait-seconds": "-5"}, 0, id="invalid-override-ignored"),
    ],
)
def test_wait_budget(annotations: dict[str, str], budget: float) -> None:
    from extender.model.policy import workload_policy

    assert wait_budget_seconds(workload_policy(annotations), CONFIG) == budget


# -- prioritize ---------------------------------------------------------------------------------------


def _scores(pod_obj: dict[str, Any], nodes: list[dict[str, Any]], candidates: list[str],
            config: TideoverConfig = CONFIG) -> dict[str, int]:
    snap = snapshot(nodes, NO_ACTIVITY, config=config)
    return dict(decide_scores(pod_facts(pod_obj), candidates, snap, config).scores)


def test_image_locality_raises_the_score_under_latency_weight() -> None:
    image = ("docker.io/library/nginx:1.27", 900_000_000)
    nodes = [vm_node("warm", images=[image]), vm_node("cold")]
    scores = _scores(pod(annotations={"tideover.io/priority": "critical"}), nodes, ["warm", "cold"])
    assert scores["warm"] > scores["cold"]
    assert scores["warm"] == 10


def test_cheaper_pool_scores_higher_for_economy() -> None:
    config = parse_config({"vmPools": {"pools": [
        {"name": "spot", "pricePerHour": 0.02}, {"name": "nodepool1", "pricePerHour": 0.096}
    ]}})
    nodes = [vm_node("cheap", "spot"), vm_node("dear", "nodepool1")]
    scores = _scores(pod(annotations={"tideover.io/priority": "economy"}), nodes, ["cheap", "dear"], config)
    assert scores["cheap"] == 10
    assert scores["dear"] < scores["cheap"]


def test_virtual_node_scores_below_a_vm_for_standard_pods() -> None:
    scores = _scores(pod(), cluster(1), ["aks-nodepool1-000000", VIRTUAL_NODE])
    assert scores["aks-nodepool1-000000"] == 10
    assert scores[VIRTUAL_NODE] < 10


def test_scores_are_integers_in_range_and_unknown_nodes_score_zero() -> None:
    scores = _scores(pod(), cluster(3), ["aks-nodepool1-000000", "ghost", VIRTUAL_NODE])
    assert scores["ghost"] == 0
    assert all(isinstance(score, int) and 0 <= score <= 10 for score in scores.values())


def test_unknown_nodes_do_not_skew_the_others() -> None:
    nodes = cluster(2)
    with_ghost = _scores(pod(), nodes, ["aks-nodepool1-000000", "aks-nodepool1-000001", "ghost"])
    without = _scores(pod(), nodes, ["aks-nodepool1-000000", "aks-nodepool1-000001"])
    assert {k: v for k, v in with_ghost.items() if k != "ghost"} == without


def test_empty_candidates() -> None:
    assert _scores(pod(), cluster(1), []) == {}


def test_virtual_node_without_vm_pool() -> None:
    nodes = [virtual_node()]
    decision = _filter(pod(), [VIRTUAL_NODE], None, nodes)
    assert decision.outcome is FilterOutcome.WITHHELD_NO_POOL_FITS
    assert "no VM pool is known" in decision.reason


def test_gate_taint_in_a_stale_snapshot_does_not_bypass_the_filter() -> None:
    """The gate opened (the scheduler saw the taint go) before the snapshot saw it: the pod, which does not
    tolerate the gate, must still get tideover's full decision, not the no-toleration fast path."""
    gate = {"key": "tideover.io/spill-window", "value": "closed", "effect": "NoSchedule"}
    nodes = [*cluster(2, with_virtual=False), virtual_node(taints=(VIRTUAL_TAINT_FOR_GATE, gate))]
    never = pod(annotations={"tideover.io/spill": "never"})
    decision = _filter(never, [VIRTUAL_NODE], IN_PROGRESS, nodes)
    assert decision.outcome is FilterOutcome.WITHHELD_SPILL_NEVER


def test_backoff_reason_names_the_autoscaler_error() -> None:
    decision = _filter(pod(), [VIRTUAL_NODE], BACKOFF)
    assert decision.outcome is FilterOutcome.WITHHELD_NO_SCALE_UP
    assert "QuotaExceeded" in decision.reason


def test_scoring_cost_does_not_grow_with_images_no_node_has() -> None:
    """Issue 11: prioritize built a (candidates x images) matrix, so a pod naming 1,000 images on 15,000 candidates
    took ~90 ms, 18 times a one-image pod. Images no node has now add one number, not a column."""
    import time

    snap = snapshot(cluster(3))
    names = [*snap.nodes, *(f"unknown-{i}" for i in range(15_000 - len(snap.nodes)))]

    def seconds(image_count: int) -> float:
        obj = pod()
        obj["spec"]["containers"] = [{"name": f"c{i}", "image": f"example.com/app{i}:1"} for i in range(image_count)]
        facts = pod_facts(obj)
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            decide_scores(facts, names, snap, CONFIG)
            best = min(best, time.perf_counter() - start)
        return best

    one, many = seconds(1), seconds(1000)
    assert many < 3 * one, f"1 image: {one * 1000:.1f} ms, 1,000 images: {many * 1000:.1f} ms"


def test_images_no_node_has_still_count_in_full() -> None:
    snap = snapshot(cluster(2))
    obj = pod(image="example.com/nowhere:1")
    scored = decide_scores(pod_facts(obj), list(snap.nodes), snap, CONFIG)
    pull = CONFIG.images.default_size_bytes / CONFIG.vm_pools.pull_bytes_per_second
    assert scored.start_seconds[0] == pytest.approx(CONFIG.vm_pools.pod_start_seconds + pull)


# -- prioritize: node models per pod shape -------------------------------------------------------------

_WARM = ("docker.io/library/nginx:1.27", 900_000_000)


@pytest.mark.parametrize(
    "pod_obj",
    [
        pytest.param(pod(), id="standard"),
        pytest.param(pod(image="docker.io/library/nginx:1.27"), id="image-some-node-has"),
        pytest.param(pod(cpu="3", memory="6Gi", annotations={"tideover.io/priority": "economy"}), id="large-economy"),
        pytest.param(pod(annotations={"tideover.io/priority": "critical"}), id="critical"),
    ],
)
def test_cached_node_models_give_the_same_scores(pod_obj: dict[str, Any]) -> None:
    nodes = [*cluster(3), vm_node("warm", images=[_WARM])]
    snap = snapshot(nodes, NO_ACTIVITY)
    facts = pod_facts(pod_obj)
    cache = ModelCache()
    for candidates in (["warm", "aks-nodepool1-000001", VIRTUAL_NODE], ["ghost", "aks-nodepool1-000002"], []):
        direct = decide_scores(facts, candidates, snap, CONFIG)
        cached = decide_scores(facts, candidates, snap, CONFIG, cache.models(facts, snap, CONFIG))
        assert cached == direct


_TWO_PRICES = parse_config({"vmPools": {"pools": [{"name": "nodepool1", "pricePerHour": 0.1},
                                                 {"name": "spot", "pricePerHour": 0.03}]}})


@pytest.mark.parametrize(
    ("nodes", "candidates", "uniform", "fast"),
    [
        pytest.param(cluster(4), ["aks-nodepool1-000003", "aks-nodepool1-000001"], True, True, id="one-pool-vms"),
        pytest.param(cluster(4), ["aks-nodepool1-000000", VIRTUAL_NODE], True, False, id="with-the-virtual-node"),
        pytest.param(cluster(4), ["aks-nodepool1-000000", "ghost"], True, False, id="with-an-unknown-node"),
        pytest.param([*cluster(3), vm_node("warm", images=[_WARM])], ["warm", "aks-nodepool1-000001"], False, False,
                     id="an-image-some-vms-hold"),
        pytest.param([*cluster(2), vm_node("big", cpu="8", memory="32Gi")], ["big", "aks-nodepool1-000000"], False,
                     False, id="vms-of-two-sizes"),
        pytest.param([*cluster(2), vm_node("cheap", "spot")], ["cheap", "aks-nodepool1-000000"], False, False,
                     id="two-prices"),
    ],
)
def test_uniform_vms_score_as_the_full_computation_does(
    nodes: list[dict[str, Any]], candidates: list[str], uniform: bool, fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One pool at one price with no image some VMs lack: every VM candidate scores the top score without the per-node
    # maths. The shortcut must give what the full computation (vm_uniform off) gives, and apply only then.
    import dataclasses

    from extender.decide import prioritize

    config = _TWO_PRICES
    snap = snapshot(nodes, NO_ACTIVITY, config=config)
    obj = pod(image="docker.io/library/nginx:1.27")
    facts = pod_facts(obj)
    models = node_models(facts, snap, config)
    assert models.vm_uniform is uniform
    full = decide_scores(facts, candidates, snap, config, dataclasses.replace(models, vm_uniform=False))
    if fast:  # the shortcut combines no scores
        monkeypatch.setattr(prioritize, "combined_scores", lambda *args, **kwargs: pytest.fail("not the shortcut"))
    assert decide_scores(facts, candidates, snap, config, models) == full
    assert decide_scores(facts, candidates, snap, config, models, frozenset(candidates)) == full
    assert (len({score for _, score in full.scores}) == 1 and full.scores[0][1] == 10) is fast


def test_model_cache_serves_a_shape_once_per_node_index() -> None:
    snap = snapshot(cluster(2), NO_ACTIVITY)
    cache = ModelCache()
    first = cache.models(pod_facts(pod(name="a")), snap, CONFIG)
    assert cache.models(pod_facts(pod(name="b")), snap, CONFIG) is first  # another replica, same shape
    assert cache.models(pod_facts(pod(name="c", cpu="2")), snap, CONFIG) is not first  # another shape
    changed = snapshot([*cluster(2), vm_node("new")], NO_ACTIVITY)  # a node added: a new node index
    fresh = cache.models(pod_facts(pod(name="a")), changed, CONFIG)
    assert fresh is not first
    assert len(fresh.cost_per_hour) == len(changed.index) == len(first.cost_per_hour) + 1


def test_model_cache_keeps_at_most_max_shapes() -> None:
    snap = snapshot(cluster(1), NO_ACTIVITY)
    cache = ModelCache(max_shapes=2)
    shapes = [pod_facts(pod(cpu=f"{cores}")) for cores in (1, 2, 3)]
    models = [cache.models(shape, snap, CONFIG) for shape in shapes]
    assert cache.models(shapes[2], snap, CONFIG) is models[2]
    assert cache.models(shapes[0], snap, CONFIG) is not models[0]  # the oldest was dropped


def test_node_models_cover_every_node_in_index_order() -> None:
    nodes = [vm_node("warm", images=[_WARM]), vm_node("cold"), virtual_node()]
    snap = snapshot(nodes, NO_ACTIVITY)
    models = node_models(pod_facts(pod(image="docker.io/library/nginx:1.27")), snap, CONFIG)
    warm, cold, virtual = (snap.index[name] for name in ("warm", "cold", VIRTUAL_NODE))
    assert models.start_seconds[warm] < models.start_seconds[cold]
    assert models.cost_per_hour[virtual] > models.cost_per_hour[cold]


# -- filter: candidates sorted into virtual, other and unknown --------------------------------------------------------


@pytest.mark.parametrize("virtual_count", [0, 1, 3, _FEW_VIRTUAL, _FEW_VIRTUAL + 1, 40])
@pytest.mark.parametrize("with_unknown", [False, True])
def test_candidates_are_sorted_in_request_order(virtual_count: int, with_unknown: bool) -> None:
    """Both ways of splitting (few virtual nodes: removed by name; many: one pass) keep the request's order."""
    virtuals = [f"virtual-node-{i:02d}" for i in range(virtual_count)]
    nodes = [*cluster(20, with_virtual=False), *(virtual_node(name) for name in virtuals)]
    snap = snapshot(nodes, NO_ACTIVITY)
    names = [n["metadata"]["name"] for n in nodes] + (["not-seen-yet"] if with_unknown else [])
    candidates = tuple(names[i] for i in sorted(range(len(names)), key=lambda i: (i * 7919) % len(names)))
    virtual, other, unknown = _sort_candidates(candidates, snap, None)
    assert virtual == tuple(n for n in candidates if n in virtuals)
    assert unknown == (("not-seen-yet",) if with_unknown else ())
    assert other == tuple(n for n in candidates if n not in virtuals)  # a node not seen yet counts as a VM


def test_model_cache_tells_a_pod_without_the_v2_sidecar_from_one_with_it() -> None:
    """Virtual nodes v2 charge their kube-proxy sidecar unless the pod opts out: same requests, another cost."""
    config = parse_config({"virtualNodes": {"pricing": {"sidecarCpu": 0.1, "sidecarMemoryGib": 0.1}}})
    snap = snapshot(cluster(1), NO_ACTIVITY, config=config)
    cache = ModelCache()
    with_sidecar = cache.models(pod_facts(pod(name="a", cpu="2", memory="4Gi")), snap, config)
    opted_out = pod_facts(pod(name="b", cpu="2", memory="4Gi",
                              annotations={"microsoft.containerinstance.virtualnode.injectkubeproxy": "false"}))
    without = cache.models(opted_out, snap, config)
    virtual = snap.index[VIRTUAL_NODE]
    assert without.cost_per_hour[virtual] < with_sidecar.cost_per_hour[virtual]


def test_bounded_map_keeps_the_newest_size_entries() -> None:
    from extender.model.bounded import BoundedMap

    bounded: BoundedMap[str, int] = BoundedMap(2)
    for number, key in enumerate("abc"):
        bounded.put(key, number)
    assert (len(bounded), bounded.get("a"), bounded.get("b"), bounded.get("c")) == (2, None, 1, 2)
    bounded.put("b", 5)  # a key put again keeps its place and takes the new value
    assert (bounded.get("b"), bounded.get("c")) == (5, 2)
