"""The policies compared on one trace: the same cluster and demand, a different rule for the virtual node."""

from __future__ import annotations

from dataclasses import dataclass

from extender.simulate.bridge import SpillPolicy


@dataclass(frozen=True, slots=True)
class Policy:
    key: str
    title: str
    description: str
    virtual_node: bool  # the cluster has a virtual node
    tideover: bool  # tideover filters, gates and (if returns) moves pods back
    spill: SpillPolicy | None = None  # the tideover.io/spill every workload gets (None: as the trace says)
    returns: bool = True

    @property
    def gate_toleration(self) -> bool:
        """when-full workloads also tolerate tideover's gate taint (README: 'pass the gate')."""
        return self.spill is SpillPolicy.WHEN_FULL


VMS_ONLY = Policy("vms-only", "VMs only", "no virtual node: every pod waits for a VM", False, False)
STATIC = Policy(
    "static", "static recipe",
    "the seeds' toleration + preferred affinity: ACI whenever the VMs are full, and the pods stay there",
    True, False,
)


def tideover_policy(spill: SpillPolicy, returns: bool = True) -> Policy:
    key = f"tideover-{spill.value}" + ("" if returns else "-no-returns")
    title = f"tideover ({spill.value}{'' if returns else ', no returns'})"
    description = {
        SpillPolicy.WHILE_PENDING: "spill only while a scale-up is pending",
        SpillPolicy.WHEN_FULL: "spill whenever no VM fits (pods tolerate the gate)",
        SpillPolicy.NEVER: "never spill: the virtual node is withheld, the gate still makes CA scale up",
    }[spill]
    description += "; spilled ReplicaSet pods move back to VMs" if returns else "; no return to VMs"
    return Policy(key, title, description, True, True, spill, returns)


def all_policies() -> tuple[Policy, ...]:
    """VMs only, the static recipe, tideover with each spill policy, and tideover (while-pending) without returns."""
    return (
        VMS_ONLY, STATIC,
        *(tideover_policy(spill) for spill in (SpillPolicy.WHILE_PENDING, SpillPolicy.WHEN_FULL, SpillPolicy.NEVER)),
        tideover_policy(SpillPolicy.WHILE_PENDING, returns=False),
    )


def select(keys: list[str] | None) -> tuple[Policy, ...]:
    known = {policy.key: policy for policy in all_policies()}
    if not keys:
        return tuple(known.values())
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise ValueError(f"unknown policy {', '.join(unknown)}; known: {', '.join(known)}")
    return tuple(known[key] for key in keys)
