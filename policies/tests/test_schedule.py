"""The schedule policy against hand-built timelines: windows, pre-warm timing, cron, composition."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import pytest
from apscheduler.triggers.cron import CronTrigger
from burst_policies.budget import BudgetPolicyConfig
from burst_policies.schedule import SchedulePolicy, SchedulePolicyConfig, cron_trigger, crontab_weekdays
from pydantic import ValidationError

from burst.api import ConfigError, PolicyInput, ProviderLimits, Shape, Spend, Target, Want
from burst.policy import CapacityPolicy, LimitPolicy, Placement, PolicyStack, merge_wants
from burst.registry import config_class

from .inputs import offering, policy_input, utc

MORIOND: dict[str, Any] = {
    "kind": "schedule",
    "name": "moriond-2027",
    "start": "2027-03-01",
    "end": "2027-03-20",
    "cores": 8000,
    "prefer": ["tsystems", "gce"],
}
START = utc(2027, 3, 1)
END = utc(2027, 3, 21)  # the end date is inclusive
TSYSTEMS = offering("tsystems", price=0.40, latency_s=1200)  # sigma 0: p90 = 20 min exactly
GCE = offering("gce", price=0.30, latency_s=300)
OFFERS = [TSYSTEMS, GCE]


def schedule(**over: Any) -> SchedulePolicy:
    return SchedulePolicyConfig.model_validate({**MORIOND, **over}).build()


def cron_schedule(name: str, cron: str) -> SchedulePolicy:
    cfg = {"kind": "schedule", "name": name, "cron": cron, "duration": "10h", "cores": 800, "prefer": ["tsystems"]}
    return SchedulePolicyConfig.model_validate(cfg).build()


def wants_at(p: SchedulePolicy, t: datetime, **kw: Any) -> list[Want]:
    return p.want(policy_input(t, offerings=kw.pop("offerings", OFFERS), **kw))


# --- pre-warm timing --------------------------------------------------------------------------


def test_prewarm_starts_exactly_p90_plus_margin_before_the_window_from_the_offering_model() -> None:
    p = schedule()
    lead = timedelta(minutes=20 + 15)  # tsystems (first preferred) p90 20m + default margin 15m
    assert wants_at(p, START - lead - timedelta(seconds=1)) == []
    [w] = wants_at(p, START - lead)
    assert w.cores == 8000
    assert w.campaign == "moriond-2027"
    assert w.policy == "schedule"
    assert w.prefer == ("tsystems", "gce")
    assert w.until == END
    assert w.reason.startswith("pre-warm: moriond-2027 starts in 35m; tsystems p90 provisioning 20m (model)")


def test_measured_p90_from_the_store_overrides_the_offering_model() -> None:
    p = schedule()
    measured = {"tsystems": 24 * 60.0, "gce": 2 * 3600.0}  # gce's history does not matter here
    lead = timedelta(minutes=24 + 15)
    assert wants_at(p, START - lead - timedelta(seconds=1), latency=measured) == []
    [w] = wants_at(p, START - lead, latency=measured)
    assert "tsystems p90 provisioning 24m (measured)" in w.reason
    assert w.reason.startswith("pre-warm: moriond-2027 starts in 39m;")
    # A slow history moves the pre-warm earlier by exactly as much.
    slow = {"tsystems": (1 * 60 + 55) * 60.0}
    assert wants_at(p, START - timedelta(hours=2, minutes=10, seconds=1), latency=slow) == []
    [w] = wants_at(p, START - timedelta(hours=2, minutes=10), latency=slow)
    assert w.reason.startswith("pre-warm: moriond-2027 starts in 2h10m; tsystems p90 provisioning 1h55m (measured)")


def test_model_p90_uses_one_clusters_node_count_and_the_spread() -> None:
    """1000 nodes split into clusters of 50 provision in parallel: the latency is that of 50 nodes."""
    off = offering("tsystems", latency_s=300, per_node_s=6.0, sigma=0.2)
    limits = {"tsystems": ProviderLimits(max_nodes=2000, max_clusters=40, nodes_per_cluster=50)}
    p90 = (300 + 6.0 * 50) * math.exp(0.2 * 1.2815515655446004)
    lead = timedelta(seconds=p90) + timedelta(minutes=15)
    assert wants_at(p := schedule(), START - lead - timedelta(seconds=1), offerings=[off], limits=limits) == []
    assert wants_at(p, START - lead + timedelta(seconds=1), offerings=[off], limits=limits) != []


def test_prewarm_uses_the_next_preferred_provider_while_the_first_backs_off() -> None:
    p = schedule()
    backoff = {"tsystems": START + timedelta(hours=1)}
    lead = timedelta(minutes=5 + 15)  # gce p90 5m
    assert wants_at(p, START - lead - timedelta(seconds=1), backoff=backoff) == []
    [w] = wants_at(p, START - lead, backoff=backoff)
    assert "gce p90 provisioning 5m" in w.reason


def test_without_preference_the_cheapest_able_offering_sets_the_lead_and_gpu_windows_need_gpus() -> None:
    slow_cheap = offering("openstack", price=0.10, latency_s=3600)
    gpu = offering("gce", price=2.0, gpus=1, latency_s=600)
    p = schedule(prefer=[])
    assert wants_at(p, START - timedelta(minutes=75) - timedelta(seconds=1), offerings=[*OFFERS, slow_cheap, gpu]) == []
    [w] = wants_at(p, START - timedelta(minutes=75), offerings=[*OFFERS, slow_cheap, gpu])
    assert "openstack p90 provisioning 1h" in w.reason
    g = schedule(prefer=[], shape={"cpus": 8, "gpus": 1})
    [w] = wants_at(g, START - timedelta(minutes=25), offerings=[*OFFERS, slow_cheap, gpu])
    assert "gce p90 provisioning 10m" in w.reason
    assert w.shape == Shape(8, 0, 1)


def test_prewarm_off_asks_only_at_window_start() -> None:
    p = schedule(prewarm=False)
    assert wants_at(p, START - timedelta(seconds=1)) == []
    [w] = wants_at(p, START)
    assert w.reason == "schedule moriond-2027: window 1–20 Mar, 8000 cores"


def test_max_prewarm_caps_a_very_slow_provider() -> None:
    p = schedule(max_prewarm="1h")
    slow = {"tsystems": 5 * 3600.0}
    assert wants_at(p, START - timedelta(hours=1, seconds=1), latency=slow) == []
    assert wants_at(p, START - timedelta(hours=1), latency=slow) != []


# --- the window itself ------------------------------------------------------------------------


def test_wants_during_the_window_and_stops_after_it() -> None:
    p = schedule()
    [w] = wants_at(p, utc(2027, 3, 5, 12))
    assert w.reason == "schedule moriond-2027: window 1–20 Mar, 8000 cores"
    assert w.until == END
    assert wants_at(p, END - timedelta(seconds=1)) != []
    assert wants_at(p, END) == []
    assert wants_at(p, utc(2027, 6, 1)) == []


def test_an_explicit_end_instant_is_exclusive_and_naive_times_are_utc() -> None:
    with pytest.raises(ValidationError, match="end must be after start"):
        schedule(start="2027-03-01T08:00", end="2027-03-01T00:00Z")
    p = schedule(start="2027-03-01T08:00", end="2027-03-02T00:00Z", prewarm=False)
    [w] = wants_at(p, utc(2027, 3, 1, 8))
    assert w.until == utc(2027, 3, 2)
    assert "window 1 Mar 08:00–2 Mar 00:00" in w.reason
    assert wants_at(p, utc(2027, 3, 2)) == []


def test_clusters_times_nodes_becomes_cores_of_the_likely_offering() -> None:
    p = schedule(cores=None, clusters=4, nodes=25)
    [w] = wants_at(p, utc(2027, 3, 5))
    assert w.cores == 4 * 25 * TSYSTEMS.cpus
    assert "4×25 nodes of tsystems-8c (800 cores)" in w.reason


def test_next_wake_steps_through_prewarm_start_window_start_and_end() -> None:
    p = schedule()
    far = utc(2027, 1, 1)
    # Before any want() the lead is unknown: wake at the earliest possible pre-warm.
    assert p.next_wake(far) == START - timedelta(hours=12)
    wants_at(p, far)
    assert p.next_wake(far) == START - timedelta(minutes=35)
    assert p.next_wake(START - timedelta(minutes=35)) == START
    assert p.next_wake(START) == END
    assert p.next_wake(END) is None


# --- cron windows and the weekday pitfall ------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0", "sun"),
        ("7", "sun"),
        ("0,6", "sat,sun"),
        ("5-7", "fri,sat,sun"),
        ("*/2", "tue,thu,sat,sun"),
        ("sat-sun", "sat,sun"),
        ("fri-mon", "mon,fri,sat,sun"),
        ("0-6", "*"),
        ("*", "*"),
        ("MON-Fri", "mon,tue,wed,thu,fri"),
    ],
)
def test_crontab_weekdays_become_names(field: str, names: str) -> None:
    assert crontab_weekdays(field) == names


def test_bad_weekday_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="out of range"):
        cron_schedule("x", "0 8 * * 8")


def test_numeric_weekdays_mean_what_crontab_means_not_what_apscheduler_reads() -> None:
    saturday = utc(2027, 3, 6)
    raw = CronTrigger.from_crontab("0 8 * * 1-5", timezone="UTC")
    # The pitfall itself: APScheduler's from_crontab reads 1-5 as Tue-Sat.
    assert raw.get_next_fire_time(None, saturday) == utc(2027, 3, 6, 8)
    assert cron_trigger("0 8 * * 1-5").get_next_fire_time(None, saturday) == utc(2027, 3, 8, 8)


def test_cron_window_wants_on_weekdays_only_with_prewarm() -> None:
    p = cron_schedule("office", "0 8 * * 1-5")
    lead = timedelta(minutes=35)
    monday, saturday = utc(2027, 3, 8), utc(2027, 3, 6)
    assert wants_at(p, saturday.replace(hour=9)) == []  # APScheduler's raw reading would fire here
    assert wants_at(p, monday.replace(hour=8) - lead - timedelta(seconds=1)) == []
    [w] = wants_at(p, monday.replace(hour=8) - lead)
    assert w.reason.startswith("pre-warm: office starts in 35m")
    [w] = wants_at(p, monday.replace(hour=12))
    assert w.reason == "schedule office: window 8 Mar 08:00–18:00, 800 cores"
    assert w.until == monday.replace(hour=18)
    assert wants_at(p, monday.replace(hour=18)) == []
    assert wants_at(p, utc(2027, 3, 12, 17, 59)) != []  # Friday


def test_next_wake_lets_a_simulation_skip_a_whole_week_of_cron_windows() -> None:
    """Jumping from wake to wake (and calling want() at each) visits exactly the pre-warm start,
    the window start and the window end of each weekday, and never a weekend."""
    p = cron_schedule("nightly", "0 20 * * mon-fri")
    t = utc(2027, 3, 5, 12)  # Friday noon
    visited: list[tuple[datetime, int]] = []
    while t < utc(2027, 3, 13, 12):
        w = wants_at(p, t)
        visited.append((t, w[0].cores if w else 0))
        nxt = p.next_wake(t)
        assert nxt is not None and nxt > t
        t = nxt
    expected: list[tuple[datetime, int]] = [(utc(2027, 3, 5, 12), 0)]
    for day in (5, 8, 9, 10, 11, 12):
        opens = utc(2027, 3, day, 20)
        expected += [(opens - timedelta(minutes=35), 800), (opens, 800), (opens + timedelta(hours=10), 0)]
    assert visited == expected


# --- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"cron": "0 8 * * *"}, "either start and end, or cron and duration"),
        ({"end": None}, "needs both start and end"),
        ({"end": "2027-02-01"}, "end must be after start"),
        ({"clusters": 3}, "either cores, or clusters and nodes"),
        ({"cores": None, "clusters": 3}, "clusters needs nodes"),
        ({"start": None, "end": None, "cron": "0 8 * *", "duration": "1h"}, "cron needs 5 fields"),
        ({"start": None, "end": None, "cron": "0 25 * * *", "duration": "1h"}, "bad cron expression"),
        ({"start": "soon"}, "not a date or timestamp"),
        ({"start": None, "end": None, "cron": "0 8 1 * mon", "duration": "1h"}, "both day of month and day of week"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors(over: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SchedulePolicyConfig.model_validate({**MORIOND, **over})


def test_registered_as_the_schedule_kind() -> None:
    assert config_class("burst.policies", "schedule") is SchedulePolicyConfig
    p = schedule()
    assert isinstance(p, CapacityPolicy)


# --- composition ------------------------------------------------------------------------------


class FixedWant:
    """A capacity policy that always wants the same thing (a stand-in for the backlog policy)."""

    role: Literal["capacity"] = "capacity"

    def __init__(self, cores: int, campaign: str = "") -> None:
        self.name = "fixed"
        self.cores = cores
        self.campaign = campaign

    def want(self, inp: PolicyInput) -> list[Want]:
        return [Want(self.cores, "fixed", f"fixed {self.cores}", campaign=self.campaign)]

    def next_wake(self, now: datetime) -> datetime | None:
        return None


class CheapestPlacement:
    """Everything on the cheapest offering, rounded up to nodes: enough to see what reaches placement."""

    name = "cheapest"
    role: Literal["placement"] = "placement"

    def place(self, inp: PolicyInput, wants: Sequence[Want]) -> list[Target]:
        off = min(inp.offerings, key=lambda o: o.price_per_core_hour)
        return [Target(off, math.ceil(w.cores / off.cpus), w.campaign, w.policy, w.reason) for w in wants]


def test_merge_takes_the_max_per_campaign_not_the_sum() -> None:
    p = schedule()
    inp = policy_input(utc(2027, 3, 5), offerings=OFFERS)
    same_campaign = FixedWant(3000, "moriond-2027")
    merged = merge_wants([*p.want(inp), *same_campaign.want(inp)])
    assert [(w.cores, w.policy) for w in merged] == [(8000, "schedule")]
    bigger = FixedWant(9000, "moriond-2027")
    merged = merge_wants([*p.want(inp), *bigger.want(inp)])
    assert [(w.cores, w.policy) for w in merged] == [(9000, "fixed")]


def test_stack_with_schedule_backlog_stand_in_and_budget() -> None:
    sched = schedule()
    other = FixedWant(3000, "moriond-2027")
    backlog = FixedWant(9000)  # untagged: only what goes beyond the window's 8000 cores is added
    budget = BudgetPolicyConfig.model_validate({"kind": "budget", "monthly": "1000000 EUR"}).build()
    assert isinstance(budget, LimitPolicy)
    placement = CheapestPlacement()
    assert isinstance(placement, Placement)
    stack = PolicyStack([sched, other, backlog], [budget], placement)
    inp = policy_input(utc(2027, 3, 5), offerings=OFFERS, spend=Spend("EUR"))
    d = stack.decide(inp)
    assert sorted((t.campaign, t.nodes) for t in d.targets) == [("", 1000 // 8), ("moriond-2027", 1000)]
    assert stack.next_wake(utc(2027, 3, 5)) == END
    # Before the window the stack's wake is the pre-warm start (the lead was learned at decide()).
    sched.want(policy_input(utc(2027, 1, 1), offerings=OFFERS))
    assert stack.next_wake(utc(2027, 1, 1)) == START - timedelta(minutes=35)


def test_the_yaml_of_all_three_policies_loads_and_builds() -> None:
    """The config file as an operator writes it (DESIGN.md's example plus cron and forecast)."""
    from burst.config import parse

    cfg = parse(
        """
onprem: {cores: 100}
providers: {tsystems: {kind: local, cloud: tsystems}}
policies:
  - {kind: schedule, name: moriond-2027, start: 2027-03-01, end: 2027-03-20, cores: 8000,
     prefer: [tsystems, gce]}
  - {kind: schedule, name: nightly, cron: "0 20 * * 1-5", duration: 10h, clusters: 2, nodes: 16}
  - {kind: budget, monthly: 40000 EUR, campaigns: {moriond-2027: 20000 EUR}, warn_at: 0.8}
  - {kind: forecast, quantile: 0.9, periods: [week, year]}
""",
        "burst.yaml",
    )
    built = [p.build() for p in cfg.policies]
    assert [type(p).__name__ for p in built] == ["SchedulePolicy", "SchedulePolicy", "BudgetPolicy", "ForecastPolicy"]
    assert [p.name for p in built] == ["moriond-2027", "nightly", "budget", "forecast"]


def test_a_bad_window_in_yaml_names_file_and_line() -> None:
    from burst.config import parse

    with pytest.raises(ConfigError, match=r"burst.yaml:5: policies.0: .*end must be after start"):
        parse(
            """
onprem: {cores: 100}
providers: {tsystems: {kind: local, cloud: tsystems}}
policies:
  - {kind: schedule, name: late, start: 2027-03-20, end: 2027-03-01, cores: 8}
""",
            "burst.yaml",
        )
