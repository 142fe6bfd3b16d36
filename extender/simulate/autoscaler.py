"""cluster-autoscaler, simulated: one scan of its loop (the rules tideover's gate exists for).

- **Scale-up**: a pending pod triggers one only if CA's own scheduling simulation finds no node for it. That
  simulation runs kube-scheduler's predicates *without extenders*, so a pod that tolerates the virtual node fits
  there, unless tideover's gate taint is on (README, "The gate"). Pods that fit nowhere are packed first onto the
  nodes already coming (target above Ready), then onto new ones (first fit, decreasing), up to the pool's max.
- **Status**: ``ScaleUp: InProgress`` from the first increase until every requested node is Ready, then
  ``NoActivity``; written every scan with the scan's time, which is what tideover reads.
- **Scale-down**: a Ready node whose requests are under ``scaleDownUtilizationThreshold`` and whose pods fit
  elsewhere (the virtual node counts, as in CA's drain simulation) is unneeded; once unneeded for
  ``scaleDownUnneededSeconds``, and ``scaleDownDelayAfterAddSeconds`` after the last scale-up, it is removed: empty
  ones in bulk, else one per scan. Nodes tideover marked scale-down-disabled for returns are skipped. Never below
  the pool's min size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from extender.simulate import bridge
from extender.simulate.cluster import ResolvedPool
from extender.simulate.state import Node, Order, Pod

if TYPE_CHECKING:
    from extender.simulate.engine import Simulation


def scan(sim: Simulation) -> None:
    triggers = _pods_that_fit_nowhere(sim)
    for pool in sim.cluster.pools:
        _scale_up(sim, pool, triggers)
    if sim.cluster.autoscaler.scale_down_enabled:
        _scale_down(sim)
    groups = []
    for pool in sim.cluster.pools:
        nodes = [n for n in sim.nodes.values() if n.pool is pool]
        ready = sum(1 for n in nodes if n.ready)
        _update_scale_up_state(sim, pool, ready)
        groups.append(bridge.GroupCounts(
            name=pool.name, target=sim.targets[pool.name], registered=sum(1 for n in nodes if n.registered),
            ready=ready, min_size=pool.spec.min_size, max_size=pool.spec.max_size,
            scale_up="InProgress" if sim.scale_up_since[pool.name] is not None else "NoActivity",
            scale_up_since=sim.scale_up_since[pool.name],
        ))
    sim.status = bridge.autoscaler_status(groups, sim.now)
    # tideover's view sees the new status and the gate follows. Only what the status says decides whether a pool is
    # pending here (the status is never stale, and nodes' changes build their own snapshots), so an unchanged
    # status needs no new snapshot.
    if sim.policy.tideover and tuple(groups) != sim.last_groups:
        sim.last_groups = tuple(groups)
        sim.snapshot()


def _update_scale_up_state(sim: Simulation, pool: ResolvedPool, ready: int) -> None:
    if sim.targets[pool.name] > ready:
        if sim.scale_up_since[pool.name] is None:
            sim.scale_up_since[pool.name] = sim.now
    elif sim.scale_up_since[pool.name] is not None:
        sim.scale_up_since[pool.name] = None
        sim.log("autoscaler", f"{pool.name}: scale-up done")


def _virtual_fits(sim: Simulation, pod: Pod) -> bool:
    return sim.policy.virtual_node and bridge.tolerates(pod.facts, bridge.virtual_node_facts(sim.gated))


def _pods_that_fit_nowhere(sim: Simulation) -> list[Pod]:
    """CA's filter_out_schedulable: pods kube-scheduler found unschedulable that fit no existing Ready node (their
    free room, used up in turn) and not the virtual node."""
    free = {n.name: [n.free_cpu, n.free_memory] for n in sim.nodes.values() if n.ready}
    out = []
    for pod in sim.pending.values():
        if not pod.tried or pod.terminating or _virtual_fits(sim, pod):
            continue
        spot = next((name for name, (cpu, mem) in free.items()
                     if cpu + 1e-9 >= pod.facts.cpu and mem + 1 >= pod.facts.memory), None)
        if spot is None:
            out.append(pod)
        else:
            free[spot][0] -= pod.facts.cpu
            free[spot][1] -= pod.facts.memory
    return out


def _scale_up(sim: Simulation, pool: ResolvedPool, triggers: list[Pod]) -> None:
    spec = pool.spec
    cpu_size, mem_size = spec.node_cpu, spec.node_memory_gib * bridge.GIB
    ready = sum(1 for n in sim.nodes.values() if n.pool is pool and n.ready)
    bins = [[cpu_size, mem_size] for _ in range(max(0, sim.targets[pool.name] - ready))]
    upcoming = len(bins)
    for pod in sorted(triggers, key=lambda p: (-p.facts.cpu, -p.facts.memory)):
        cpu, mem = pod.facts.cpu, pod.facts.memory
        if cpu > cpu_size + 1e-9 or mem > mem_size:
            continue  # no node of this pool can take it
        spot = next((b for b in bins if b[0] + 1e-9 >= cpu and b[1] + 1 >= mem), None)
        if spot is None:
            spot = [cpu_size, mem_size]
            bins.append(spot)
        spot[0] -= cpu
        spot[1] -= mem
    increase = min(len(bins) - upcoming, spec.max_size - sim.targets[pool.name])
    if increase <= 0:
        return
    sim.targets[pool.name] += increase
    sim.scale_ups += 1
    sim.last_scale_up = sim.now
    if sim.scale_up_since[pool.name] is None:
        sim.scale_up_since[pool.name] = sim.now
    sim.log("autoscaler", f"{pool.name}: scale-up +{increase} to {sim.targets[pool.name]}")
    for _ in range(increase):
        node = sim.new_node(pool, sim.now, pool.provisioning.draw(sim.rng))
        sim.push(node.registered_at, Order.NODE, "node-registered", node)
        sim.push(node.ready_at, Order.NODE, "node-ready", node)


def _scale_down(sim: Simulation) -> None:
    """Unneeded nodes are tracked every scan; they are removed only outside the cooldown after a scale-up (CA's
    static_autoscaler: UpdateUnneededNodes, then the isScaleDownInCooldown check)."""
    settings = sim.cluster.autoscaler
    cooldown = sim.now - sim.last_scale_up < settings.scale_down_delay_after_add_seconds
    removable: list[Node] = []
    for node in sorted(sim.nodes.values(), key=lambda n: n.name):
        threshold = settings.scale_down_utilization_threshold
        if not node.ready or node.name in sim.protected or node.utilization >= threshold:
            node.unneeded_since = None
            continue
        if not _pods_fit_elsewhere(sim, node, removable):
            node.unneeded_since = None
            continue
        if node.unneeded_since is None:
            node.unneeded_since = sim.now
        if not cooldown and sim.now - node.unneeded_since >= settings.scale_down_unneeded_seconds:
            removable.append(node)
    _remove(sim, removable)


def _pods_fit_elsewhere(sim: Simulation, node: Node, leaving: list[Node]) -> bool:
    gone = {n.name for n in leaving} | {node.name}
    free = {n.name: [n.free_cpu, n.free_memory] for n in sim.nodes.values() if n.ready and n.name not in gone}
    for pod in (p for p in sim.all_pods if p.node == node.name and p.gone_at is None):
        if _virtual_fits(sim, pod):
            continue
        spot = next((name for name, (cpu, mem) in free.items()
                     if cpu + 1e-9 >= pod.facts.cpu and mem + 1 >= pod.facts.memory), None)
        if spot is None:
            return False
        free[spot][0] -= pod.facts.cpu
        free[spot][1] -= pod.facts.memory
    return True


def _remove(sim: Simulation, removable: list[Node]) -> None:
    empty = [n for n in removable if not n.pods][: sim.cluster.autoscaler.max_empty_bulk_delete]
    busy = [n for n in removable if n.pods][:1]
    for node in empty or busy:  # CA: empty nodes in bulk, else one busy node per scan
        pool_size = sum(1 for n in sim.nodes.values() if n.pool is node.pool)
        if pool_size - 1 < node.pool.spec.min_size:
            continue
        sim.remove_node(node)
