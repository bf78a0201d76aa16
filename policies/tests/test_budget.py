"""The budget limit: committed-spend cuts, forced drains, currency, and a cap never passed over a
simulated sequence of ticks in which spend accrues."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from burst_policies.budget import BudgetPolicy, BudgetPolicyConfig, burn_per_hour, month_end
from burst_policies.schedule import SchedulePolicyConfig
from pydantic import ValidationError

from burst.api import (
    ClusterRecord,
    ClusterState,
    ConfigError,
    LimitPolicy,
    Money,
    Offering,
    ProviderLimits,
    Shape,
    Spend,
    Want,
)
from burst.policy import merge_wants
from burst.registry import config_class

from .inputs import cluster, offering, policy_input, utc

NOW = utc(2027, 3, 10, 12)
TS = offering("tsystems", price=0.40)
GCE = offering("gce", price=0.30)
AWS = offering("aws", price=0.60, control_plane=0.10)


def budget(**cfg: Any) -> BudgetPolicy:
    return BudgetPolicyConfig.model_validate({"kind": "budget", "monthly": "40000 EUR", **cfg}).build()


def campaign_want(cores: int, until: datetime | None = None, campaign: str = "moriond-2027") -> Want:
    return Want(cores, "schedule", "window", campaign=campaign, until=until)


# --- config -----------------------------------------------------------------------------------


def test_config_parses_money_and_is_registered() -> None:
    cfg = BudgetPolicyConfig.model_validate(
        {"kind": "budget", "monthly": "40,000 EUR", "campaigns": {"moriond-2027": "12500.50 eur"}, "warn_at": 0.8}
    )
    assert cfg.monthly == Money(40000.0, "EUR")
    assert cfg.campaigns == {"moriond-2027": Money(12500.5, "EUR")}
    assert cfg.currency == "EUR"
    assert config_class("burst.policies", "budget") is BudgetPolicyConfig
    assert isinstance(cfg.build(), LimitPolicy)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"monthly": None}, "needs `monthly` or at least one entry"),
        ({"campaigns": {"x": "10 USD"}}, "one currency, got EUR, USD"),
        ({"monthly": "forty thousand"}, "not an amount of money"),
        ({"warn_at": 1.5}, "less than 1"),
        ({"horizon": "0s"}, "horizon must be positive"),
    ],
)
def test_config_errors(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BudgetPolicyConfig.model_validate({"kind": "budget", "monthly": "40000 EUR", **cfg})


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"spend": Spend("USD")}, "budget is in EUR but the ledger counts spend in USD"),
        ({"offerings": [TS, offering("aws", currency="USD")]}, "aws prices aws-8c in USD"),
        ({"fleet": [cluster("c1", offering("gce", currency="CHF"), 2, created=NOW)]}, "c1 is billed in CHF"),
    ],
)
def test_currency_mismatch_is_a_config_error(kw: dict[str, Any], message: str) -> None:
    kw.setdefault("offerings", [TS])
    with pytest.raises(ConfigError, match=message) as err:
        budget().limit(policy_input(NOW, **kw), [campaign_want(80)])
    assert err.value.where == "policies.budget"


def test_month_end_is_utc_and_rolls_over_the_year() -> None:
    assert month_end(utc(2027, 3, 10, 12)) == utc(2027, 4, 1)
    assert month_end(utc(2027, 12, 31, 23, 59)) == utc(2028, 1, 1)


# --- cutting new capacity ---------------------------------------------------------------------


def test_cuts_a_want_to_what_its_committed_spend_allows_at_the_dearest_candidate() -> None:
    # 1 000 EUR left; the live fleet (10 tsystems nodes, 4 EUR/h) is set aside for 2 h → 992 left.
    fleet = [cluster("burst-ts-0001", TS, 10, created=NOW - timedelta(days=1))]
    spend = Spend("EUR", month_to_date=39000, burn_per_hour=4)
    want = campaign_want(4000, until=NOW + timedelta(hours=10))
    res = budget().limit(policy_input(NOW, offerings=[TS, GCE], fleet=fleet, spend=spend), [want])
    # Priced at the dearest candidate (tsystems, 0.40/node-h × 10 h = 4 EUR a node): 248 nodes.
    [w] = res.wants
    assert w.cores == 248 * 8
    assert res.drains == ()
    assert res.notes == (
        "budget monthly: 39,000 of 40,000 EUR spent; cut moriond-2027 from 4000 to 1984 cores "
        "(committed spend to 10 Mar 22:00)",
    )
    assert w.reason.startswith("window; budget monthly")
    # With only the cheaper gce on offer, more fits: 992 / 3 EUR = 330 nodes.
    [w] = budget().limit(policy_input(NOW, offerings=[GCE], fleet=fleet, spend=spend), [want]).wants
    assert w.cores == 330 * 8


def test_capacity_a_campaign_already_has_is_not_charged_again() -> None:
    fleet = [cluster("burst-ts-0001", TS, 100, created=NOW - timedelta(days=1), campaign="moriond-2027")]
    spend = Spend("EUR", month_to_date=39000, burn_per_hour=40)
    # The 800 cores there are committed to the window's end: 1000 - 40 × 10 h = 600 left; the extra
    # 3200 cost 4 EUR a node → 150 nodes.
    want = campaign_want(4000, NOW + timedelta(hours=10))
    [w] = budget().limit(policy_input(NOW, offerings=[TS], fleet=fleet, spend=spend), [want]).wants
    assert w.cores == 800 + 150 * 8
    # A want the fleet already covers passes untouched, however little money is left.
    poor = Spend("EUR", month_to_date=39910, burn_per_hour=40)
    [w] = budget().limit(policy_input(NOW, offerings=[TS], fleet=fleet, spend=poor), [campaign_want(800)]).wants
    assert w.cores == 800


def test_live_capacity_is_shared_out_between_wants_of_one_campaign_not_counted_twice() -> None:
    """The backlog may want two node classes (small jobs, and 64-core jobs spanning 8 nodes); 1000
    live cores cover the first, so the second is new capacity and must fit the money."""
    fleet = [cluster("burst-ts-0001", TS, 125, created=NOW - timedelta(hours=3))]  # 1000 cores, 50 EUR/h
    spend = Spend("EUR", month_to_date=39800, burn_per_hour=50)  # 200 - 50 × 2 h = 100 left
    small = Want(1000, "backlog", "small jobs", shape=Shape(1, 2048))
    wide = Want(512, "backlog", "64-core jobs", shape=Shape(64, 8192))
    res = budget().limit(policy_input(NOW, offerings=[TS], fleet=fleet, spend=spend), [small, wide])
    # 512 new cores = 64 nodes × 0.40 × 2 h = 51.2 EUR: fits in 100.
    assert [w.cores for w in res.wants] == [1000, 512]
    poorer = Spend("EUR", month_to_date=39860, burn_per_hour=50)  # 40 left: 50 nodes = 400 cores
    res = budget().limit(policy_input(NOW, offerings=[TS], fleet=fleet, spend=poorer), [small, wide])
    assert [w.cores for w in res.wants] == [1000, 400]


def test_control_plane_fees_count_in_the_commitment() -> None:
    spend = Spend("EUR", month_to_date=39990)  # 10 EUR left, no fleet
    # aws: 1 node = (0.60 + 0.10 control plane) × 2 h = 1.4; n nodes = 1.2 n + 0.2 ≤ 10 → 8 nodes.
    [w] = budget().limit(policy_input(NOW, offerings=[AWS], spend=spend), [Want(800, "backlog", "b")]).wants
    assert w.cores == 8 * 8


def test_control_planes_follow_the_providers_cluster_size() -> None:
    """n aws nodes for 2 h cost (0.60 n + 0.10 × clusters) × 2.  With 9.90 EUR left: in one cluster
    8 nodes cost 9.80 and fit; in clusters of 4 (the provider's limit) 8 nodes need 2 control planes
    and cost 10.00, so only 7 fit (8.80)."""
    spend = Spend("EUR", month_to_date=39990.1)
    want = [Want(800, "backlog", "b")]
    res = budget().limit(policy_input(NOW, offerings=[AWS], spend=spend), want)
    assert [w.cores for w in res.wants] == [8 * 8]
    limits = {"aws": ProviderLimits(max_nodes=100, max_clusters=10, nodes_per_cluster=4)}
    res = budget().limit(policy_input(NOW, offerings=[AWS], spend=spend, limits=limits), want)
    assert [w.cores for w in res.wants] == [7 * 8]


def test_monthly_commitment_stops_at_month_end_but_a_campaign_cap_does_not() -> None:
    now = utc(2027, 3, 31, 14)
    spend = Spend("EUR", month_to_date=39000)
    want = campaign_want(4000, until=utc(2027, 4, 10, 14))
    # To 1 Apr 00:00 is 10 h: 1000 / 4 EUR = 250 nodes.
    [w] = budget().limit(policy_input(now, offerings=[TS], spend=spend), [want]).wants
    assert w.cores == 250 * 8
    camp = budget(monthly=None, campaigns={"moriond-2027": "1000 EUR"})
    # The campaign pays for all 250 h: 1000 / (0.4 × 250) = 10 nodes.
    [w] = camp.limit(policy_input(now, offerings=[TS], spend=Spend("EUR")), [want]).wants
    assert w.cores == 10 * 8


def test_minimum_billed_time_and_tick_bound_the_commitment_from_below() -> None:
    spend = Spend("EUR", month_to_date=39900)  # 100 EUR left, no fleet
    want = Want(1000, "backlog", "b")  # no until: committed for 2 × horizon = 2 h → 0.8 a node
    [w] = budget().limit(policy_input(NOW, offerings=[TS], spend=spend), [want]).wants
    assert w.cores == 1000
    long_billed = offering("tsystems", price=0.40, min_billed_s=6 * 3600)  # 2.4 a node → 41 nodes
    [w] = budget().limit(policy_input(NOW, offerings=[long_billed], spend=spend), [want]).wants
    assert w.cores == 41 * 8
    short = campaign_want(4000, until=NOW + timedelta(minutes=5))
    # A configured 30 min tick: 0.2 a node → 500 nodes.
    [w] = budget(tick="30m").limit(policy_input(NOW, offerings=[TS], spend=spend), [short]).wants
    assert w.cores == 4000
    [w] = (
        budget(tick="30m")
        .limit(policy_input(NOW, offerings=[TS], spend=Spend("EUR", month_to_date=39990)), [short])
        .wants
    )
    assert w.cores == 50 * 8
    # Unconfigured, the tick is learned from the interval between calls.
    learned = budget()
    learned.limit(policy_input(NOW - timedelta(minutes=30), offerings=[TS], spend=spend), [])
    [w] = learned.limit(policy_input(NOW, offerings=[TS], spend=Spend("EUR", month_to_date=39990)), [short]).wants
    assert w.cores == 50 * 8


def test_wants_outside_a_campaign_cap_are_untouched() -> None:
    camp = budget(monthly=None, campaigns={"moriond-2027": "100 EUR"})
    spend = Spend("EUR", by_campaign={"moriond-2027": 100.0})
    res = camp.limit(policy_input(NOW, offerings=[TS], spend=spend), [campaign_want(800), Want(5000, "backlog", "b")])
    assert [(w.campaign, w.cores) for w in res.wants] == [("", 5000)]


# --- forced drains ----------------------------------------------------------------------------


def drain_fleet() -> list[ClusterRecord]:
    t = utc(2027, 3, 10, 9)
    return [
        cluster("burst-ts-0002", TS, 10, created=t),  # 4.0 EUR/h, as new as aws-0007 but cheaper
        cluster("burst-aws-0007", AWS, 10, created=t),  # 6.1 EUR/h
        cluster("burst-ts-0001", TS, 20, created=t - timedelta(days=1)),  # 8.0
        cluster("burst-ts-moriond", TS, 50, created=utc(2027, 3, 1), campaign="moriond-2027"),  # 20.0
        cluster("burst-ts-0003", TS, 10, created=t + timedelta(hours=1), state=ClusterState.DRAINING),  # 4.0
    ]


def test_drains_newest_and_most_expensive_first_until_the_burn_fits() -> None:
    fleet = drain_fleet()
    assert sum(burn_per_hour(c) for c in fleet) == pytest.approx(42.1)
    spend = Spend("EUR", month_to_date=39975, burn_per_hour=42.1)  # 25 EUR left < 42.1 in the next hour
    res = budget(hard_stop=True).limit(
        policy_input(NOW, offerings=[TS, AWS], fleet=fleet, spend=spend),
        [campaign_want(400), Want(400, "backlog", "b")],
    )
    # aws-0007 (newest, dearest) → ts-0002 (newest) → ts-0001: 42.1 → 36 → 32 → 24 ≤ 25.  The
    # cluster already draining still burns, so it counts, but it is not drained twice.
    assert [d.cluster_id for d in res.drains[:3]] == ["burst-aws-0007", "burst-ts-0002", "burst-ts-0001"]
    # The hard stop: 25 EUR last 35.6 min at 42.1 EUR/h; every cluster leaving for this cap, the one
    # already draining included, must be gone a tick and a delete before that.
    assert res.drains[3].cluster_id == "burst-ts-0003" and "hard stop" in res.drains[3].reason
    deadlines = {d.deadline for d in res.drains}
    assert len(deadlines) == 1
    [deadline] = deadlines
    assert deadline is not None and NOW < deadline < NOW + timedelta(minutes=31)
    assert res.notes[0] == "budget monthly: 39,975 of 40,000 EUR spent; draining burst-aws-0007"
    assert "6.10 EUR/h" in res.drains[0].reason and res.drains[0].policy == "budget"
    # The campaign keeps its 400 cores; the backlog's clusters are gone and nothing new is bought
    # in a tick that drains.
    assert [(w.campaign, w.cores) for w in res.wants] == [("moriond-2027", 400)]


def test_without_hard_stop_drains_are_graceful() -> None:
    """The default: a budget never kills a job (hard_stop is opt-in)."""
    fleet = drain_fleet()
    spend = Spend("EUR", month_to_date=39975, burn_per_hour=42.1)
    res = budget().limit(policy_input(NOW, offerings=[TS, AWS], fleet=fleet, spend=spend), [campaign_want(400)])
    assert [d.cluster_id for d in res.drains] == ["burst-aws-0007", "burst-ts-0002", "burst-ts-0001"]
    assert all(d.deadline is None for d in res.drains)


def test_a_cap_already_passed_drains_everything_it_can() -> None:
    fleet = drain_fleet()
    spend = Spend("EUR", month_to_date=40100, burn_per_hour=42.1)
    res = budget(hard_stop=True).limit(
        policy_input(NOW, offerings=[TS, AWS], fleet=fleet, spend=spend), [campaign_want(800)]
    )
    assert [d.cluster_id for d in res.drains] == [
        "burst-aws-0007",
        "burst-ts-0002",
        "burst-ts-0001",
        "burst-ts-moriond",
        "burst-ts-0003",  # already draining: given the hard-stop deadline
    ]
    assert res.wants == ()
    assert any("4.00 EUR/h that no drain can stop still burn" in n for n in res.notes)
    # With nothing burning there is nothing to say about it: only the cut is noted.
    res = budget().limit(policy_input(NOW, offerings=[TS], spend=Spend("EUR", month_to_date=40100)), [campaign_want(8)])
    assert res.wants == ()
    assert res.notes == (
        "budget monthly: 40,100 of 40,000 EUR spent; cut moriond-2027 from 8 to 0 cores (committed spend for 2h)",
    )


def test_a_campaign_cap_drains_only_that_campaign() -> None:
    camp = budget(monthly=None, campaigns={"moriond-2027": "5000 EUR"})
    spend = Spend("EUR", month_to_date=30000, by_campaign={"moriond-2027": 4990.0}, burn_per_hour=42.1)
    res = camp.limit(policy_input(NOW, offerings=[TS], fleet=drain_fleet(), spend=spend), [Want(800, "backlog", "b")])
    assert [d.cluster_id for d in res.drains] == ["burst-ts-moriond"]
    assert res.notes[0].startswith("budget campaign moriond-2027: 4,990 of 5,000 EUR spent; draining")
    assert [w.cores for w in res.wants] == [800]


def test_burn_the_fleet_does_not_explain_still_counts_against_the_month() -> None:
    fleet = [cluster("burst-ts-0001", TS, 10, created=NOW)]  # 4 EUR/h
    quiet = Spend("EUR", month_to_date=39990, burn_per_hour=4)
    assert budget().limit(policy_input(NOW, offerings=[TS], fleet=fleet, spend=quiet), []).drains == ()
    loud = Spend("EUR", month_to_date=39990, burn_per_hour=14)  # e.g. a cluster being adopted
    assert [
        d.cluster_id for d in budget().limit(policy_input(NOW, offerings=[TS], fleet=fleet, spend=loud), []).drains
    ] == ["burst-ts-0001"]


def test_at_month_end_only_the_rest_of_the_month_counts() -> None:
    fleet = [cluster("burst-ts-0001", TS, 60, created=NOW)]  # 24 EUR/h
    spend = Spend("EUR", month_to_date=39995, burn_per_hour=24)
    late = utc(2027, 3, 31, 23, 50)  # 10 min left of March: 4 EUR ≤ 5 EUR
    assert budget().limit(policy_input(late, offerings=[TS], fleet=fleet, spend=spend), []).drains == ()
    earlier = utc(2027, 3, 31, 23, 0)
    assert len(budget().limit(policy_input(earlier, offerings=[TS], fleet=fleet, spend=spend), []).drains) == 1


def test_warn_at_adds_a_note_once_the_fraction_is_spent() -> None:
    b = budget(warn_at=0.9)
    res = b.limit(policy_input(NOW, offerings=[TS], spend=Spend("EUR", month_to_date=36000)), [])
    assert res.notes == ("budget monthly: 36,000 of 40,000 EUR spent (90%, warning at 90%)",)
    assert b.limit(policy_input(NOW, offerings=[TS], spend=Spend("EUR", month_to_date=35999)), []).notes == ()


# --- a budget hit mid-window, over a simulated sequence of ticks -------------------------------


@dataclass
class MiniFleet:
    """Just enough of a reconciler to let spend accrue: clusters start billing when placed and stop
    one tick after a forced drain (the drain and delete take that long)."""

    offers: list[Offering]
    clusters: list[ClusterRecord] = field(default_factory=list)
    month_to_date: float = 30000.0
    by_campaign: dict[str, float] = field(default_factory=dict)
    created: int = 0
    drained_order: list[tuple[str, bool]] = field(default_factory=list)

    def burn(self) -> float:
        return sum(burn_per_hour(c) for c in self.clusters)

    def spend(self) -> Spend:
        return Spend("EUR", self.month_to_date, dict(self.by_campaign), self.burn())

    def accrue(self, tick: timedelta) -> None:
        for c in self.clusters:
            cost = burn_per_hour(c) * tick.total_seconds() / 3600
            self.month_to_date += cost
            self.by_campaign[c.campaign] = self.by_campaign.get(c.campaign, 0.0) + cost

    def apply(self, now: datetime, wants: tuple[Want, ...], drains: list[str]) -> None:
        # Drained clusters were billed for this tick; they are gone at the next one.
        self.clusters = [c for c in self.clusters if c.state != ClusterState.DRAINING]
        for cid in drains:
            live = [c for c in self.clusters if c.state == ClusterState.ACTIVE]
            victim = next((c for c in live if c.cluster_id == cid), None)
            if victim is None:
                continue  # already leaving: the order only sets its hard-stop deadline
            # Newest first: nothing live is newer than what is drained.
            self.drained_order.append((cid, all(c.created_at <= victim.created_at for c in live)))
            self.clusters = [
                replace(c, state=ClusterState.DRAINING) if c.cluster_id == cid else c for c in self.clusters
            ]
        cheapest = min(self.offers, key=lambda o: o.price_per_core_hour)
        for w in wants:
            mine = [c for c in self.clusters if c.campaign == w.campaign and c.state == ClusterState.ACTIVE]
            have = sum(c.cores for c in mine)
            while have > w.cores and mine:  # release the newest first when the want shrinks
                newest = max(mine, key=lambda c: c.created_at)
                if have - newest.cores < w.cores:
                    break
                mine.remove(newest)
                self.clusters.remove(newest)
                have -= newest.cores
            nodes = math.ceil(max(0, w.cores - have) / cheapest.cpus)
            while nodes > 0:
                n = min(nodes, 100)
                self.created += 1
                self.clusters.append(cluster(f"c{self.created:04d}", cheapest, n, created=now, campaign=w.campaign))
                nodes -= n


def test_budget_hit_mid_window_never_passes_the_cap_over_a_simulated_sequence() -> None:
    offers = [TS, AWS]
    sched = SchedulePolicyConfig.model_validate(
        {"kind": "schedule", "name": "moriond-2027", "start": "2027-03-01", "end": "2027-03-20", "cores": 8000}
    ).build()
    limit = budget()
    sim = MiniFleet(offers)
    # The window has run since 1 March on 3 200 cores (160 EUR/h), and a backlog cluster since the
    # 9th (30.10 EUR/h); 10 000 EUR of March are left: not enough to reach the window's end.
    for i in range(4):
        sim.clusters.append(cluster(f"m{i}", TS, 100, created=utc(2027, 3, 1 + i), campaign="moriond-2027"))
    sim.clusters.append(cluster("b0", AWS, 50, created=utc(2027, 3, 9)))
    tick = timedelta(minutes=5)
    now, cap, worst_overrun, cuts, max_burn = utc(2027, 3, 10), 40000.0, -math.inf, 0, 0.0
    notes: list[str] = []
    while now < utc(2027, 3, 20):
        day_peak = 8 <= now.hour < 20  # a backlog that wants 2 000 more cores in the daytime
        wants = sched.want(policy_input(now, offerings=offers, fleet=sim.clusters, spend=sim.spend()))
        if day_peak:
            wants.append(Want(2400, "backlog", "daytime backlog"))
        res = limit.limit(
            policy_input(now, offerings=offers, fleet=sim.clusters, spend=sim.spend()), merge_wants(wants)
        )
        cuts += sum("cut" in n for n in res.notes)
        notes.extend(res.notes)
        sim.apply(now, res.wants, [d.cluster_id for d in res.drains])
        max_burn = max(max_burn, sim.burn())
        sim.accrue(tick)
        worst_overrun = max(worst_overrun, sim.month_to_date - cap)
        now += tick
    # The contract: passed by at most one tick of what the fleet burns (here, with removal one
    # tick after the drain and a one-hour horizon, not at all).
    assert worst_overrun <= max_burn * tick.total_seconds() / 3600
    assert worst_overrun <= 0
    # …and the budget was really hit mid-window: almost all of it spent, the window and the
    # backlog cut, and the clusters drained newest first.
    assert sim.month_to_date >= 0.99 * cap
    assert cuts > 0
    assert [cid for cid, _ in sim.drained_order] == ["b0", "m3", "m2", "m1", "m0"]
    assert all(newest for _, newest in sim.drained_order)
    assert notes[0].endswith("at 190.10 EUR/h the money runs out around 12 Mar 04:36, then clusters are drained")


def test_a_provider_floor_is_cut_by_the_budget_like_any_want() -> None:
    from burst.policy import floor_wants

    limits = {"tsystems": ProviderLimits(40, 10, 8, min_nodes=2)}
    inp = policy_input(NOW, offerings=[TS], limits=limits, spend=Spend("EUR", month_to_date=40100))
    [floor] = floor_wants(inp)
    assert budget().limit(inp, [floor]).wants == ()  # the cap is passed: no warm pool either
    inp = policy_input(NOW, offerings=[TS], limits=limits, spend=Spend("EUR", month_to_date=100))
    assert [(w.cores, w.floor_of) for w in budget().limit(inp, [floor]).wants] == [(16, "tsystems")]
