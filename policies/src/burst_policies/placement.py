"""Placement: turn "N cores of shape S for campaign C" into node targets on providers.

Small filters chained into one choice (cluster-autoscaler's expander chain): offerings that can
hold the shape → providers not backing off after a quota/capacity error → the preferred providers
first → ordered by strategy (``cheapest`` effective price per core-hour, ``priority``, or ``spread``)
→ filled up to each provider's node limit and quota.  Capacity a campaign already has stays where
it is: moving running work between clouds costs more than any price difference.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Literal

from pydantic import Field

from burst.api import ClusterState, Duration, Offering, PolicyConfig, PolicyInput, ProviderLimits, Target, Want

LIVE = {ClusterState.PLANNED, ClusterState.PROVISIONING, ClusterState.JOINING, ClusterState.ACTIVE}


class PlacementConfig(PolicyConfig):
    kind: Literal["placement"] = "placement"
    name: str = "placement"
    strategy: Literal["cheapest", "priority", "spread"] = "cheapest"
    expected_lifetime: Duration = Field(
        default=timedelta(hours=6), description="cluster lifetime over which a control-plane fee is amortized"
    )

    def build(self) -> PlacementPolicy:
        return PlacementPolicy(self)


class PlacementPolicy:
    role: Literal["placement"] = "placement"

    def __init__(self, cfg: PlacementConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name

    def effective_price(self, off: Offering, limits: ProviderLimits | None) -> float:
        """Price per useful core-hour: the control-plane fee spread over the cluster's nodes, and the
        provisioning time (billed, but running no job) spread over the expected lifetime."""
        nodes = max(limits.nodes_per_cluster if limits else 1, 1)
        lifetime_h = max(self.cfg.expected_lifetime.total_seconds() / 3600, 1e-6)
        idle_h = off.latency.median_s(nodes) / 3600
        per_node_hour = off.price_per_hour + off.control_plane_per_hour / nodes
        return per_node_hour * (1 + idle_h / lifetime_h) / off.cpus

    def candidates(self, inp: PolicyInput, want: Want) -> list[Offering]:
        able = [o for o in inp.offerings if want.shape is None or inp.can_host(o, want.shape)]
        if want.shape is None or want.shape.gpus == 0:
            # CPU work never goes to GPU nodes: they cost several times more per core.
            able = [o for o in able if o.gpus == 0] or able
        able = [o for o in able if inp.backoff_until.get(o.provider, inp.now) <= inp.now]
        prefer = {p: i for i, p in enumerate(want.prefer)}
        strategy = self.cfg.strategy

        def key(o: Offering) -> tuple[float, ...]:
            pref = prefer.get(o.provider, len(prefer))
            price = self.effective_price(o, inp.limits.get(o.provider))
            if strategy == "priority":
                lim = inp.limits.get(o.provider)
                return (pref, -(lim.priority if lim else 0), price)
            return (pref, price)

        return sorted(able, key=key)

    def place(self, inp: PolicyInput, wants: Sequence[Want]) -> list[Target]:
        # Nodes each provider already runs for live capacity, and what it may still add.
        used_nodes: dict[str, int] = defaultdict(int)
        used_cores: dict[str, int] = defaultdict(int)
        have: dict[tuple[str, str, str], int] = defaultdict(int)
        for c in inp.fleet:
            if c.state in LIVE:
                used_nodes[c.provider] += c.desired_nodes
                used_cores[c.provider] += c.desired_cores
                have[(c.provider, c.flavor, c.campaign)] += c.desired_nodes

        def room(off: Offering) -> int:
            lim = inp.limits.get(off.provider)
            nodes = (lim.max_nodes if lim else math.inf) - used_nodes[off.provider]
            quota = inp.quotas.get(off.provider)
            cores_left = quota.cores_left() if quota else None
            if cores_left is not None:
                nodes = min(nodes, cores_left // off.cpus)
            return max(0, int(min(nodes, 10**9)))

        targets: list[Target] = []
        placed: dict[str, int] = defaultdict(int)  # nodes targeted per provider this tick
        # Provider floors last: they only top up, in nodes, what the other wants leave on their provider.
        for want in sorted(wants, key=lambda w: (bool(w.floor_of), w.campaign, w.cores)):
            cands = self.candidates(inp, want)
            remaining = want.cores
            if want.floor_of:
                cands = [o for o in cands if o.provider == want.floor_of]
                lim = inp.limits.get(want.floor_of)
                missing = (lim.min_nodes if lim else 0) - placed[want.floor_of]
                if missing <= 0 or not cands:
                    continue
                remaining = min(remaining, missing * cands[0].cpus)  # a budget may have cut the floor
            chosen: dict[tuple[str, str], int] = {}
            # 1. Keep what this campaign already has on offerings that can still hold the work.
            for off in sorted(cands, key=lambda o: -have[(o.provider, o.flavor, want.campaign)]):
                key = (off.provider, off.flavor, want.campaign)
                kept = min(have[key], math.ceil(remaining / off.cpus))
                if kept > 0:
                    chosen[(off.provider, off.flavor)] = kept
                    remaining -= kept * off.cpus
                    have[key] -= kept  # a cluster is kept by one want only
            # 2. Buy the rest in strategy order, within node limits and quota.
            order = self._spread(cands) if self.cfg.strategy == "spread" else cands
            for off in order:
                if remaining <= 0:
                    break
                take = min(math.ceil(remaining / off.cpus), room(off))
                if self.cfg.strategy == "spread" and len({o.provider for o in cands}) > 1:
                    share = math.ceil(want.cores / len({o.provider for o in cands}) / off.cpus)
                    take = min(take, max(share, 1))
                if take <= 0:
                    continue
                chosen[(off.provider, off.flavor)] = chosen.get((off.provider, off.flavor), 0) + take
                used_nodes[off.provider] += take
                used_cores[off.provider] += take * off.cpus
                remaining -= take * off.cpus
            if self.cfg.strategy == "spread" and remaining > 0:
                for off in cands:  # a second pass when the even split left some unplaced
                    take = min(math.ceil(remaining / off.cpus), room(off))
                    if take > 0:
                        chosen[(off.provider, off.flavor)] = chosen.get((off.provider, off.flavor), 0) + take
                        used_nodes[off.provider] += take
                        remaining -= take * off.cpus
                    if remaining <= 0:
                        break
            by_key = {(o.provider, o.flavor): o for o in cands}
            for (prov, flavor), nodes in chosen.items():
                off = by_key[(prov, flavor)]
                note = "" if remaining <= 0 else f"; {remaining} cores could not be placed (limits/quota)"
                reason = f"{want.reason} → {nodes}× {flavor} on {prov} ({self.cfg.strategy}){note}"
                targets.append(Target(off, nodes, want.campaign, want.policy, reason))
                placed[prov] += nodes
        return targets

    @staticmethod
    def _spread(cands: list[Offering]) -> list[Offering]:
        """The cheapest offering of each provider in turn."""
        seen: set[str] = set()
        first: list[Offering] = []
        for o in cands:
            if o.provider not in seen:
                seen.add(o.provider)
                first.append(o)
        return first + [o for o in cands if o not in first]
