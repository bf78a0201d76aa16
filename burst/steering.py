"""Steering: placement's price order turned into weights per burst member, so work fills the
cheaper and emptier members first and draining members get none.

Pure (no I/O): the engine computes the weights once per tick from the fleet and the running jobs
its federation counts, logs them when they change, and hands them to a federation that
:class:`~burst.federation.api.SteersWork` (Karmada static weights, MultiKueue nominations).

weight = round(100 × cheapness × emptiness), at least 1 for an ACTIVE member, where

* cheapness = the cheapest member's price per core-hour ÷ this member's (1 for the cheapest);
* emptiness = the share of its cores not taken by running jobs (a job counted as one core when
  the federation reports jobs, not cores: a lower bound on how full it is).

Every other member burst knows (joining, draining, removing) gets weight 0.  Why a weight is what
it is goes with it, for the log and the plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from burst.lifecycle import ClusterRecord, ClusterState

SCALE = 100


@dataclass(frozen=True, slots=True)
class MemberWeight:
    """One member's share of new work: ``weight`` 0 means none."""

    cluster_id: str
    weight: int
    cores: int
    free_cores: int
    reason: str
    #: the weight from price alone (100 for the cheapest, 0 when draining): it changes only when
    #: members join or drain, for schedulers that re-divide placed work when weights change
    price_weight: int = 0


def _price_per_core(c: ClusterRecord) -> float:
    nodes = max(c.nodes, 1)
    return (c.price_per_hour * nodes + c.control_plane_per_hour) / max(nodes * c.cpus_per_node, 1)


def member_weights(fleet: Iterable[ClusterRecord], running: Mapping[str, int]) -> tuple[MemberWeight, ...]:
    """Weights of the members, highest first (ties: the cheaper, then by id)."""
    members = [c for c in fleet if c.state in (ClusterState.ACTIVE, ClusterState.DRAINING)]
    active = [c for c in members if c.state is ClusterState.ACTIVE]
    cheapest = min((_price_per_core(c) for c in active), default=0.0)
    out = []
    for c in members:
        cores = c.nodes * c.cpus_per_node
        busy = min(cores, max(0, running.get(c.cluster_id, 0)))
        free = cores - busy
        price = _price_per_core(c)
        if c.state is ClusterState.DRAINING:
            out.append(MemberWeight(c.cluster_id, 0, cores, free, "draining: no new work", 0))
            continue
        cheapness = 1.0 if price <= 0 else min(1.0, cheapest / price) if cheapest > 0 else 0.0
        emptiness = free / cores if cores else 0.0
        weight = max(1, round(SCALE * cheapness * emptiness))
        rank = "the cheapest" if cheapness >= 1.0 else f"{price / cheapest:.1f}× the cheapest" if cheapest else "priced"
        reason = f"{price:.4f} {c.currency}/core-h ({rank}), {free} of {cores} cores free"
        out.append(MemberWeight(c.cluster_id, weight, cores, free, reason, max(1, round(SCALE * cheapness))))
    return tuple(sorted(out, key=lambda m: (-m.weight, m.cluster_id)))


def describe(weights: Iterable[MemberWeight]) -> str:
    """One line for the log: ``aws-1 60 (…); gce-2 0 (draining: no new work)``."""
    return "; ".join(f"{m.cluster_id} {m.weight} ({m.reason})" for m in weights)
