"""What a policy remembers survives the process: a policy restored from its snapshot at every tick
answers exactly as one object that saw every tick (issue 12 item 1).

Each timeline runs twice — once on one object, once with snapshot → JSON text → a brand-new object
→ restore before every tick, as the engine does across a restart — and every want, reason, drain,
note and next wake must be equal.  A third run on a brand-new object *without* restoring shows each
timeline depends on memory at all (otherwise the twin comparison could not fail).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from burst_policies.backlog import BacklogPolicy, BacklogPolicyConfig
from burst_policies.budget import BudgetPolicy, BudgetPolicyConfig
from burst_policies.forecast import ForecastPolicy, ForecastPolicyConfig
from burst_policies.placement import PlacementConfig
from burst_policies.schedule import SchedulePolicy, SchedulePolicyConfig

from burst.api import (
    Bucket,
    ClusterState,
    Demand,
    PolicyInput,
    Sample,
    Shape,
    Spend,
    Stateful,
    StateMismatch,
)
from burst.policy import PolicyStack

from .inputs import cluster, offering, policy_input, utc

T0 = utc(2027, 3, 1, 8)
CPU8 = offering("tsystems", cpus=8, price=0.40, latency_s=1200)
CPU32 = offering("gce", cpus=32, price=1.40, latency_s=600)
GPU = offering("aws", cpus=8, gpus=1, price=2.50, latency_s=900)
OFFERS = [CPU8, CPU32, GPU]


def through_text(p: Stateful, build: Callable[[], Any]) -> Any:
    """A brand-new policy holding ``p``'s memory, via the text the store keeps."""
    fresh = build()
    fresh.restore(json.loads(json.dumps(p.snapshot())))
    return fresh


def twin_runs(
    build: Callable[[], Any], inputs: Sequence[PolicyInput], step: Callable[[Any, PolicyInput], object]
) -> tuple[list[object], list[object], list[object]]:
    """Outputs of one object, of an object restored at every tick, and of a forgetful restart."""
    kept, restored, forgetful = build(), build(), []
    a, b = [], []
    for inp in inputs:
        a.append(step(kept, inp))
        restored = through_text(restored, build)
        b.append(step(restored, inp))
        forgetful.append(step(build(), inp))
    return a, b, forgetful


# --- backlog ------------------------------------------------------------------------------------


def backlog() -> BacklogPolicy:
    cfg = {"kind": "backlog", "pending_cores_above": 16, "for": "5m", "idle_after": "30m", "cooldown": "10m"}
    return BacklogPolicyConfig.model_validate(cfg).build()


def backlog_timeline(seed: int) -> list[PolicyInput]:
    """Six hours of one-minute ticks: waves of 1-core, 16-core and GPU work, lulls, a few stale reads."""
    rng = random.Random(seed)
    out, small, wide, gpu = [], 0, 0, 0
    for i in range(360):
        t = T0 + timedelta(minutes=i)
        if rng.random() < 0.05:
            small = rng.choice([0, 0, 40, 120, 400])
        if rng.random() < 0.03:
            wide = rng.choice([0, 2, 6])
        if rng.random() < 0.02:
            gpu = rng.choice([0, 0, 3])
        pending = []
        if small:
            pending.append(Bucket(Shape(1, 2048), small + rng.randint(-5, 5), 300.0))
        if wide:
            pending.append(Bucket(Shape(16, 32768), wide, 900.0))
        if gpu:
            pending.append(Bucket(Shape(4, 8192, 1), gpu, 60.0))
        running = 100 + rng.randint(0, 80)
        stale = rng.random() < 0.03
        d = Demand(t, tuple(pending), running, 100, rng.choice([0, 0, 8]), stale=stale, note="schedd down" * stale)
        out.append(policy_input(t, offerings=OFFERS, dem=d))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_backlog_restored_every_tick_decides_as_one_that_never_stopped(seed: int) -> None:
    a, b, forgetful = twin_runs(backlog, backlog_timeline(seed), lambda p, inp: p.want(inp))
    assert a == b
    reasons = [w.reason for ws in a for w in ws]  # type: ignore[attr-defined]
    assert any("for 5m" in r for r in reasons) and any("releasing" in r for r in reasons)
    assert any("holding" in r for r in reasons)  # the stale ticks held a level
    assert forgetful != a


def test_backlog_snapshot_keeps_timers_to_the_microsecond_and_the_class_order() -> None:
    p = backlog()
    t = T0 + timedelta(microseconds=123457)
    big = Demand(t, (Bucket(Shape(16, 32768), 4, 60.0), Bucket(Shape(1, 2048), 100, 60.0)), 100, 100)
    p.want(policy_input(t, offerings=OFFERS, dem=big))
    snap = json.loads(json.dumps(p.snapshot()))
    assert snap["v"] == 1
    assert list(snap["classes"]) == list(p._mem)
    q = through_text(p, backlog)
    assert q._mem == p._mem and list(q._mem) == list(p._mem)


# --- schedule -----------------------------------------------------------------------------------


def cron_schedule() -> SchedulePolicy:
    cfg = {"kind": "schedule", "name": "nightly", "cron": "0 22 * * *", "duration": "6h", "cores": 256}
    return SchedulePolicyConfig.model_validate({**cfg, "prefer": ["tsystems"], "max_prewarm": "2h"}).build()


def test_schedule_restored_every_tick_wakes_and_wants_as_one_that_never_stopped() -> None:
    inputs = [policy_input(T0 + timedelta(minutes=20 * i), offerings=OFFERS) for i in range(3 * 72)]

    def step(p: SchedulePolicy, inp: PolicyInput) -> object:
        """The wake first: a new process may be asked when to wake before its first want()."""
        return p.next_wake(inp.now), p.want(inp)

    a, b, forgetful = twin_runs(cron_schedule, inputs, step)
    assert a == b
    assert any(ws for _, ws in a)  # type: ignore[misc]
    # A fresh object does not know the lead (20 min p90 + 15 min margin) and wakes at max_prewarm.
    assert [w for w, _ in forgetful] != [w for w, _ in a]  # type: ignore[misc]


# --- budget -------------------------------------------------------------------------------------


def budget() -> BudgetPolicy:
    cfg = {"kind": "budget", "monthly": "1500 EUR", "horizon": "2h", "hard_stop": True}
    return BudgetPolicyConfig.model_validate(cfg).build()


def budget_timeline(seed: int) -> list[PolicyInput]:
    """Irregular ticks (a simulation skips, a daemon wakes early) while spend nears the cap: the
    learned tick length moves the hard stop's deadline."""
    rng = random.Random(seed)
    fleet = [
        cluster(f"c{i}", CPU32, 4, created=T0 - timedelta(hours=3 - i), state=ClusterState.ACTIVE) for i in range(3)
    ]
    out, t, spent = [], T0, 1440.0
    for _ in range(40):
        t += timedelta(minutes=rng.choice([1, 1, 5, 7, 13]))
        spent += rng.uniform(0.0, 1.5)
        spend = Spend("EUR", month_to_date=spent, burn_per_hour=3 * 4 * 1.40)
        out.append(policy_input(t, offerings=OFFERS, fleet=fleet, spend=spend))
    return out


@pytest.mark.parametrize("seed", [4, 5])
def test_budget_restored_every_tick_limits_as_one_that_never_stopped(seed: int) -> None:
    from burst.api import Want

    wants = [Want(64, "backlog", "backlog: 64 cores")]
    a, b, forgetful = twin_runs(budget, budget_timeline(seed), lambda p, inp: p.limit(inp, wants))
    assert a == b
    assert any(lim.drains and lim.drains[0].deadline for lim in a)  # type: ignore[attr-defined]
    assert forgetful != a  # a fresh budget assumes a one-minute tick


# --- forecast -----------------------------------------------------------------------------------


def daily_forecast(**over: Any) -> ForecastPolicy:
    cfg = {"kind": "forecast", "periods": ["day"], "min_periods": 2, "prefer": ["tsystems"], **over}
    return ForecastPolicyConfig.model_validate(cfg).build()


def afternoon_wave(seed: int, days: int = 4, step: timedelta = timedelta(minutes=15)) -> list[PolicyInput]:
    rng = random.Random(seed)
    out = []
    for i in range(int(days * timedelta(days=1) / step)):
        t = T0 + i * step
        cores = rng.randint(300, 500) if 13 <= t.hour < 16 else rng.choice([0, 0, 10])
        d = Demand(t, (Bucket(Shape(1, 2048), cores, 600.0),) if cores else (), 100, 100, stale=rng.random() < 0.02)
        out.append(policy_input(t, offerings=OFFERS, dem=d))
    return out


@pytest.mark.parametrize("seed", [6, 7])
def test_forecast_restored_every_tick_prewarms_as_one_that_never_stopped(seed: int) -> None:
    def step(p: ForecastPolicy, inp: PolicyInput) -> object:
        return p.want(inp), p.next_wake(inp.now)

    a, b, forgetful = twin_runs(daily_forecast, afternoon_wave(seed), step)
    assert a == b
    assert any(ws and "pre-warming" in ws[0].reason for ws, _ in a)  # type: ignore[misc]
    assert not any(ws for ws, _ in forgetful)  # type: ignore[misc]


def test_forecast_seeded_from_samples_predicts_what_it_learned_tick_by_tick() -> None:
    """A forecast without a snapshot (just added, or its snapshot unusable) learns the history from
    the stored samples: one sample per slot's busiest tick teaches what the ticks taught."""
    inputs = afternoon_wave(8, days=3)
    live = daily_forecast()
    for inp in inputs:
        live.want(inp)
    d = [i.demand for i in inputs]
    samples = [
        Sample(x.at, x.pending_cores, x.running_cores, x.onprem_cores, x.onprem_free_cores) for x in d if not x.stale
    ]
    seeded = daily_forecast()
    seeded.seed(samples)
    assert seeded.history() == live.history()
    day4 = afternoon_wave(9, days=4)[-96:]
    assert [live.want(i) for i in day4] == [seeded.want(i) for i in day4]
    assert any(live.want(i) for i in day4)


def test_forecast_refuses_a_history_of_another_slot_and_trims_to_a_shorter_lookback() -> None:
    p = daily_forecast()
    for inp in afternoon_wave(10, days=4):
        p.want(inp)
    snap = json.loads(json.dumps(p.snapshot()))
    with pytest.raises(StateMismatch, match="3600s slots"):
        daily_forecast(slot="30m").restore(snap)
    short = daily_forecast(lookback=2)
    short.restore(snap)
    kept = short.history()
    assert kept == p.history()[-len(kept) :] and kept[0][0] > p.history()[0][0]
    assert kept[-1][0] - kept[0][0] < timedelta(days=2)


def test_forecast_snapshot_is_the_same_object_until_something_changes() -> None:
    p = daily_forecast()
    inputs = afternoon_wave(11, days=1)
    p.want(inputs[0])
    first = p.snapshot()
    assert p.snapshot() is first
    p.want(inputs[1])  # same slot, same or lower value: nothing new to keep
    quiet = p.snapshot()
    p.want(inputs[60])  # 15:00, the wave: a new slot
    assert p.snapshot() is not quiet and p.snapshot()["slots"] != quiet["slots"]


# --- the stack ----------------------------------------------------------------------------------


def stack() -> PolicyStack:
    return PolicyStack(
        [backlog(), cron_schedule(), daily_forecast()],
        [budget()],
        PlacementConfig.model_validate({"kind": "placement"}).build(),
    )


def test_the_stack_keys_every_stateful_policy_by_kind_and_name_and_restores_them_all() -> None:
    s = stack()
    assert [k for k, _ in s.stateful()] == ["backlog:backlog", "schedule:nightly", "forecast:forecast", "budget:budget"]
    twin = PolicyStack([backlog(), backlog()], [], PlacementConfig.model_validate({"kind": "placement"}).build())
    assert [k for k, _ in twin.keyed()] == ["backlog:backlog", "backlog:backlog#1", "placement:placement"]
    for inp in backlog_timeline(12)[:30]:
        s.decide(inp)
    snaps = json.loads(json.dumps(s.snapshot()))
    fresh = stack()
    assert fresh.restore(snaps) == []
    assert json.loads(json.dumps(fresh.snapshot())) == snaps


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("backlog:backlog", {"v": 99, "classes": {}}),
        ("backlog:backlog", {"v": 1, "classes": {"cpu:x": {"level": "many"}}}),
        ("backlog:backlog", {"v": 1, "classes": {"cpu:x": {"level": 8, "above_since": "noon"}}}),
        ("budget:budget", {"v": 1, "last_now": "2027-03-01T08:00:00", "tick_us": 60_000_000}),
        ("forecast:forecast", {"v": 1, "slot_s": 3600, "slots": [1, 2], "values": [3]}),
        ("schedule:nightly", {"lead_us": 5}),
    ],
)
def test_an_unusable_snapshot_is_logged_and_the_policy_starts_fresh(
    key: str, bad: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    s = stack()
    before = json.dumps(s.snapshot())
    with caplog.at_level(logging.WARNING, logger="burst.policy"):
        fresh = s.restore({key: bad})
    assert key in fresh
    assert json.dumps(s.snapshot()) == before  # nothing half-restored
    assert any(key in r.getMessage() and "starting fresh" in r.getMessage() for r in caplog.records)
