"""The plan: the diff between what policies want and the fleet, as a list of actions.

``burst plan`` prints it without acting (like ``terraform plan``); the reconciler executes it.
Capacity leaves by draining whole clusters, or — where the provider deletes named nodes and the
federation fences idle ones — by shrinking a cluster node by idle node.  burst never lowers a node
pool's size and lets the cloud pick: it would remove nodes with running jobs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from burst.lifecycle import ClusterRecord, ClusterState
from burst.policy import Decision, ProviderLimits, Target

S = ClusterState


#: Reason prefix of an operator's ``burst drain`` / ``burst remove``: such drains are never undone.
OPERATOR = "operator:"
#: Reason prefix of a member rolled back because it never took work (join timeout or join errors):
#: it never became ACTIVE, so taking it back would count a member that takes no work as capacity.
ROLLBACK = "rollback:"


class Op(StrEnum):
    CREATE = "create"
    GROW = "grow"
    SHRINK = "shrink"
    DRAIN = "drain"
    #: a cluster not yet taking work (planned, provisioning): cancelled and deleted, no drain needed
    DELETE = "delete"
    UNDRAIN = "undrain"


@dataclass(frozen=True, slots=True)
class Action:
    op: Op
    cluster_id: str
    provider: str
    flavor: str
    nodes: int
    campaign: str
    policy: str
    reason: str
    #: per-hour cost this action adds (+) or releases (−), in ``currency``
    cost_per_hour: float = 0.0
    currency: str = ""
    target: Target | None = None
    deadline: datetime | None = None

    def describe(self) -> str:
        return f"{self.op.value} {self.cluster_id} ({self.nodes}× {self.flavor} on {self.provider}): {self.reason}"


@dataclass(frozen=True, slots=True)
class Plan:
    actions: tuple[Action, ...]
    decision: Decision

    @property
    def empty(self) -> bool:
        return not self.actions

    def cost_per_hour(self) -> float:
        return sum(a.cost_per_hour for a in self.actions)


Key = tuple[str, str, str]  # provider, flavor, campaign


def _key(c: ClusterRecord) -> Key:
    return (c.provider, c.flavor, c.campaign)


def make_plan(
    decision: Decision,
    fleet: Sequence[ClusterRecord],
    limits: Mapping[str, ProviderLimits],
    new_id: Callable[[str], str],
    running: Mapping[str, int] | None = None,
    shrinkable: frozenset[str] = frozenset(),
) -> Plan:
    """Diff targets against the fleet.  Pure: ``new_id`` only names clusters, it creates nothing.

    ``running`` (cluster id → jobs running there, when the federation can tell) picks which
    clusters to drain: the least busy first, so capacity is not held for hours by one last job.
    On ``shrinkable`` providers what is left over after draining whole clusters is shed by
    shrinking one active cluster (its idle nodes go first, see ``Reconciler``)."""
    actions: list[Action] = []
    targets: dict[Key, Target] = {}
    for t in decision.targets:
        k = (t.offering.provider, t.offering.flavor, t.campaign)
        if k in targets:  # two wants on the same offering and campaign: add them up
            prev = targets[k]
            t = Target(t.offering, prev.nodes + t.nodes, t.campaign, prev.policy, f"{prev.reason}; {t.reason}")
        targets[k] = t

    live: dict[Key, list[ClusterRecord]] = defaultdict(list)
    draining: dict[Key, list[ClusterRecord]] = defaultdict(list)
    for c in fleet:
        if c.state in (S.PLANNED, S.PROVISIONING, S.JOINING, S.ACTIVE):
            live[_key(c)].append(c)
        elif c.state is S.DRAINING:
            draining[_key(c)].append(c)

    forced = {d.cluster_id: d for d in decision.drains}
    for c in fleet:
        d = forced.get(c.cluster_id)
        if d is None or c.state not in (S.PLANNED, S.PROVISIONING, S.JOINING, S.ACTIVE, S.DRAINING):
            continue
        if c.state is S.DRAINING and (d.deadline is None or d.deadline == c.drain_deadline):
            continue  # already leaving, and no new hard stop to set
        actions.append(replace(_release(c, d.policy, d.reason), deadline=d.deadline))
        live[_key(c)] = [x for x in live[_key(c)] if x.cluster_id != c.cluster_id]
        draining[_key(c)] = [x for x in draining[_key(c)] if x.cluster_id != c.cluster_id]

    for k in sorted(set(targets) | set(live)):
        tgt = targets.get(k)
        want = tgt.nodes if tgt else 0
        clusters = sorted(live.get(k, []), key=lambda c: (c.created_at, c.cluster_id))
        have = sum(c.desired_nodes for c in clusters)
        if tgt is not None and want > have:
            actions.extend(_add(k, tgt, want - have, clusters, draining.get(k, []), limits, new_id))
        elif want < have:
            # Least busy first (when known), then newest: fewest jobs to wait for, least sunk cost.
            busy = running or {}
            order = sorted(clusters, key=lambda c: (busy.get(c.cluster_id, 0), -c.created_at.timestamp()))
            reason = tgt.reason if tgt else "no policy wants this capacity any more"
            policy = tgt.policy if tgt else ""
            kept = []
            for c in order:
                if have - c.desired_nodes < want:
                    kept.append(c)
                    continue
                have -= c.desired_nodes
                actions.append(_release(c, policy, reason))
            if k[0] in shrinkable:
                actions.extend(_shrink(kept, have - want, policy, reason))
    return Plan(tuple(actions), decision)


def _shrink(clusters: Sequence[ClusterRecord], excess: int, policy: str, reason: str) -> list[Action]:
    """Shed ``excess`` nodes from active clusters (least busy first), keeping each at ≥ 1 node:
    a cluster that would reach zero is a drain, and the whole-cluster loop already chose those."""
    out = []
    for c in clusters:
        if excess <= 0:
            break
        take = min(excess, c.desired_nodes - 1)
        if c.state is not S.ACTIVE or take <= 0:
            continue
        out.append(
            Action(
                Op.SHRINK,
                c.cluster_id,
                c.provider,
                c.flavor,
                c.desired_nodes - take,
                c.campaign,
                policy,
                f"{reason} (giving back {take} idle node(s))",
                -take * c.price_per_hour,
                c.currency,
            )
        )
        excess -= take
    return out


def _release(c: ClusterRecord, policy: str, reason: str) -> Action:
    op = Op.DELETE if c.state in (S.PLANNED, S.PROVISIONING) else Op.DRAIN
    per_hour = -(c.price_per_hour * c.desired_nodes + c.control_plane_per_hour)
    return Action(
        op, c.cluster_id, c.provider, c.flavor, c.desired_nodes, c.campaign, policy, reason, per_hour, c.currency
    )


def _add(
    k: Key,
    t: Target,
    missing: int,
    live: list[ClusterRecord],
    draining: list[ClusterRecord],
    limits: Mapping[str, ProviderLimits],
    new_id: Callable[[str], str],
) -> list[Action]:
    off = t.offering
    lim = limits.get(off.provider)
    per_cluster = min(lim.nodes_per_cluster if lim else off.max_nodes_per_cluster, off.max_nodes_per_cluster)
    out: list[Action] = []
    # 1. Take back draining clusters: they are up and paid for already — unless an operator or a
    #    hard stop (deadline) is sending them away, or they are a failed join being rolled back.
    for c in sorted(draining, key=lambda c: c.created_at, reverse=True):
        if missing <= 0:
            break
        if c.reason.startswith((OPERATOR, ROLLBACK)) or c.drain_deadline is not None:
            continue
        out.append(
            Action(
                Op.UNDRAIN,
                c.cluster_id,
                c.provider,
                c.flavor,
                c.desired_nodes,
                c.campaign,
                t.policy,
                f"{t.reason} (reusing a draining cluster)",
                0.0,
                c.currency,
                t,
            )
        )
        missing -= c.desired_nodes
    # 2. Grow active clusters that are below the standard size.
    for c in live:
        if missing <= 0:
            break
        if c.state is S.ACTIVE and c.desired_nodes < per_cluster:
            add = min(per_cluster - c.desired_nodes, missing)
            out.append(
                Action(
                    Op.GROW,
                    c.cluster_id,
                    c.provider,
                    c.flavor,
                    c.desired_nodes + add,
                    c.campaign,
                    t.policy,
                    t.reason,
                    add * off.price_per_hour,
                    off.currency,
                    t,
                )
            )
            missing -= add
    # 3. New clusters of the standard size (the last one smaller).
    while missing > 0:
        nodes = min(per_cluster, missing)
        out.append(
            Action(
                Op.CREATE,
                new_id(off.provider),
                off.provider,
                off.flavor,
                nodes,
                t.campaign,
                t.policy,
                t.reason,
                nodes * off.price_per_hour + off.control_plane_per_hour,
                off.currency,
                t,
            )
        )
        missing -= nodes
    return out
