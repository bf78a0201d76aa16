"""The forecast policy against hand-built periodic demand: it learns a weekly (daily, yearly) spike
from what successive want() calls show it, and pre-warms for it once it has enough history."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from burst_policies.forecast import ForecastPolicy, ForecastPolicyConfig, burstable_cores, quantile
from pydantic import ValidationError

from burst.api import Demand, Want
from burst.registry import config_class

from .inputs import demand, offering, policy_input, ticks, utc

MONDAY = utc(2027, 1, 4)
TS = offering("tsystems", latency_s=1200)  # p90 20 min → horizon 35 min with the 15 min margin
HORIZON = timedelta(minutes=35)
STEP = timedelta(minutes=5)


def forecast(**cfg: Any) -> ForecastPolicy:
    return ForecastPolicyConfig.model_validate({"kind": "forecast", **cfg}).build()


def tuesday_spike(t: datetime, cores: int = 4000) -> int:
    """4000 cores beyond on-prem every Tuesday 14:00–17:00, nothing otherwise."""
    return cores if t.weekday() == 1 and 14 <= t.hour < 17 else 0


def run(
    p: ForecastPolicy,
    start: datetime,
    end: datetime,
    pending: Callable[[datetime], int],
    *,
    step: timedelta = STEP,
    fine_from: datetime | None = None,
) -> dict[datetime, list[Want]]:
    """Tick from ``start`` to ``end``: every ``step`` until ``fine_from``, every 5 min after it
    (history only keeps one value per 1 h slot, so coarse ticks teach the same and run faster)."""
    out: dict[datetime, list[Want]] = {}
    fine = fine_from or end
    for t in [*ticks(start, fine, step), *ticks(fine, end, STEP)]:
        out[t] = p.want(policy_input(t, offerings=[TS], dem=demand(t, pending(t))))
    return out


def first_want(seen: dict[datetime, list[Want]], after: datetime) -> datetime | None:
    return next((t for t, w in sorted(seen.items()) if t >= after and w), None)


def test_learns_a_weekly_spike_and_prewarms_before_the_third_occurrence() -> None:
    p = forecast()
    seen = run(
        p,
        MONDAY,
        MONDAY + timedelta(weeks=3),
        tuesday_spike,
        step=timedelta(minutes=30),
        fine_from=MONDAY + timedelta(weeks=2),
    )
    spikes = [MONDAY + timedelta(weeks=k, days=1, hours=14) for k in range(3)]
    # Weeks 1 and 2: one past week is not enough history (min_periods 2) — nothing wanted at all
    # (a want in week 2 would also have shown in a 30 min tick).
    assert first_want(seen, MONDAY) == spikes[2] - HORIZON
    # Week 3: exactly p90 + margin ahead of the spike, with what was predicted in the reason.
    [w] = seen[spikes[2] - HORIZON]
    assert w.cores == 4000
    assert w.policy == "forecast" and w.campaign == ""
    assert w.until == spikes[2] + timedelta(hours=3)
    assert w.reason == (
        "forecast: 4000 cores predicted in 35m (Tue 19 Jan 14:00, q80 of the same slot in 2 past weeks: "
        "4000–4000); pre-warming 35m ahead (tsystems p90 provisioning 20m)"
    )
    assert seen[spikes[2] - HORIZON - STEP] == []
    # It keeps wanting through the spike and lets go when the predicted spike is over.
    assert all(seen[spikes[2] + timedelta(minutes=m)] for m in range(0, 180, 5))
    assert seen[spikes[2] + timedelta(hours=3)] == []
    assert seen[spikes[2] + timedelta(days=1)] == []


def test_measured_latency_moves_the_prewarm_earlier() -> None:
    p = forecast()
    run(p, MONDAY, MONDAY + timedelta(weeks=2), tuesday_spike, step=timedelta(minutes=30))
    spike = MONDAY + timedelta(weeks=2, days=1, hours=14)
    slow = {"tsystems": 95 * 60.0}  # measured p90 1h35m → 1h50m ahead
    early = spike - timedelta(hours=1, minutes=50)
    assert p.want(policy_input(early - STEP, offerings=[TS], dem=demand(early - STEP), latency=slow)) == []
    [w] = p.want(policy_input(early, offerings=[TS], dem=demand(early), latency=slow))
    assert "pre-warming 1h50m ahead (tsystems p90 provisioning 1h35m)" in w.reason


def test_more_history_required_delays_acting_to_the_fourth_week() -> None:
    p = forecast(min_periods=3)
    seen = run(
        p,
        MONDAY,
        MONDAY + timedelta(weeks=4),
        tuesday_spike,
        step=timedelta(minutes=30),
        fine_from=MONDAY + timedelta(weeks=3),
    )
    assert first_want(seen, MONDAY) == MONDAY + timedelta(weeks=3, days=1, hours=14) - HORIZON


@pytest.mark.parametrize(("q", "cores"), [(0.5, 4000), (1.0, 6000), (0.25, 3000)])
def test_confidence_is_the_quantile_of_past_weeks(q: float, cores: int) -> None:
    sizes = {0: 2000, 1: 6000}  # the spike was 2000 cores in week 1 and 6000 in week 2
    p = forecast(quantile=q)
    run(
        p,
        MONDAY,
        MONDAY + timedelta(weeks=2),
        lambda t: tuesday_spike(t, sizes[(t - MONDAY).days // 7]),
        step=timedelta(hours=1),
    )
    at = MONDAY + timedelta(weeks=2, days=1, hours=14)
    [w] = p.want(policy_input(at, offerings=[TS], dem=demand(at)))
    assert w.cores == cores
    assert "2000–6000" in w.reason


def test_a_spike_absorbed_by_burst_capacity_is_still_learned() -> None:
    """Week 2's spike ran on burst clusters (nothing pended): the burstable demand still saw it."""
    p = forecast()

    def dem(t: datetime) -> Demand:
        week = (t - MONDAY).days // 7
        if week == 1 and tuesday_spike(t):
            return demand(t, 0, onprem=1000, running=1000 + 4000)
        return demand(t, tuesday_spike(t))

    for t in ticks(MONDAY, MONDAY + timedelta(weeks=2), timedelta(hours=1)):
        p.want(policy_input(t, offerings=[TS], dem=dem(t)))
    at = MONDAY + timedelta(weeks=2, days=1, hours=14) - HORIZON
    [w] = p.want(policy_input(at, offerings=[TS], dem=demand(at)))
    assert w.cores == 4000


def test_burstable_cores_count_cpu_pending_beyond_free_onprem_plus_burst_running() -> None:
    t = MONDAY
    assert burstable_cores(demand(t, 3000, onprem=1000, running=1000, free=500)) == 2500
    assert burstable_cores(demand(t, 0, onprem=1000, running=1600)) == 600
    assert burstable_cores(demand(t, 800, gpus=1, job_cpus=8)) == 0  # GPU work is not forecast


def test_stale_demand_teaches_nothing() -> None:
    p = forecast()

    def stale_in_week_2(t: datetime) -> Demand:
        d = demand(t, tuesday_spike(t))
        return replace(d, pending=(), stale=True) if (t - MONDAY).days // 7 == 1 else d

    for t in ticks(MONDAY, MONDAY + timedelta(weeks=3), timedelta(hours=1)):
        p.want(policy_input(t, offerings=[TS], dem=stale_in_week_2(t)))
    # Week 2 was blind, not quiet: the slots of week 2 are missing, not zero.
    slots = dict(p.history())
    assert MONDAY + timedelta(weeks=1, days=1, hours=14) not in slots
    assert slots[MONDAY + timedelta(days=1, hours=14)] == 4000


def test_the_ring_buffer_is_bounded_by_lookback() -> None:
    p = forecast(lookback=2)
    run(p, MONDAY, MONDAY + timedelta(weeks=5), tuesday_spike, step=timedelta(minutes=30))
    hist = p.history()
    assert len(hist) == 2 * 7 * 24
    assert hist[0][0] == MONDAY + timedelta(weeks=3)
    assert hist[-1][0] == MONDAY + timedelta(weeks=5) - timedelta(hours=1)


def test_daily_rhythm_acts_on_the_third_day() -> None:
    p = forecast(periods=["day"], slot="15m")
    seen = run(
        p,
        MONDAY,
        MONDAY + timedelta(days=4),
        lambda t: 1200 if 9 <= t.hour < 11 else 0,
        step=timedelta(minutes=15),
        fine_from=MONDAY + timedelta(days=2),
    )
    assert first_want(seen, MONDAY) == MONDAY + timedelta(days=2, hours=9) - HORIZON
    [w] = seen[MONDAY + timedelta(days=2, hours=9) - HORIZON]
    assert "q80 of the same slot in 2 past days" in w.reason


def test_yearly_rhythm_learns_a_conference_every_spring() -> None:
    """A conference in the same week each year (52 weeks apart, so weekdays align)."""
    p = forecast(periods=["year"], slot="1d", horizon="2d", lookback=3)
    start = utc(2024, 1, 1)
    conf = [utc(2024, 3, 4) + timedelta(weeks=52 * k) for k in range(3)]

    def pending(t: datetime) -> int:
        return 5000 if any(c <= t < c + timedelta(days=5) for c in conf) else 0

    seen = run(p, start, conf[2] + timedelta(days=10), pending, step=timedelta(hours=6))
    assert first_want(seen, start) == conf[2] - timedelta(days=2)
    [w] = seen[conf[2]]
    assert w.cores == 5000 and "2 past years" in w.reason
    assert w.until == conf[2] + timedelta(days=5)


def test_configured_horizon_and_caps() -> None:
    p = forecast(horizon="3h", max_cores=2500, min_cores=100, campaign="weekly", prefer=["gce"])
    seen = run(p, MONDAY, MONDAY + timedelta(weeks=3), tuesday_spike, step=timedelta(minutes=30))
    spike = MONDAY + timedelta(weeks=2, days=1, hours=14)
    assert first_want(seen, MONDAY) == spike - timedelta(hours=3)
    [w] = seen[spike]
    assert (w.cores, w.campaign, w.prefer) == (2500, "weekly", ("gce",))
    assert "pre-warming 3h ahead (configured)" in w.reason
    small = forecast(min_cores=5000)
    assert not any(run(small, MONDAY, MONDAY + timedelta(weeks=3), tuesday_spike, step=timedelta(hours=1)).values())


def test_next_wake_points_at_the_next_prewarm() -> None:
    p = forecast()
    assert p.next_wake(MONDAY) is None  # no history: only demand can change the answer
    run(p, MONDAY, MONDAY + timedelta(weeks=2, days=1), tuesday_spike, step=timedelta(hours=1))
    now = MONDAY + timedelta(weeks=2, days=1)  # Tuesday 00:00 of week 3
    p.want(policy_input(now, offerings=[TS], dem=demand(now)))
    assert p.next_wake(now) == now + timedelta(hours=14) - HORIZON
    # Monday with nothing predicted within a day: look again a day later.
    p2 = forecast()
    run(p2, MONDAY, MONDAY + timedelta(weeks=2), tuesday_spike, step=timedelta(hours=1))
    mon = MONDAY + timedelta(weeks=2)
    p2.want(policy_input(mon, offerings=[TS], dem=demand(mon)))
    # (the first slot not scanned is Tue 01:00; its pre-warm would start at 00:25)
    assert p2.next_wake(mon) == mon + timedelta(days=1, hours=1) - HORIZON
    # While wanting, it wakes at the next slot boundary.
    at = mon + timedelta(days=1, hours=14, minutes=10)
    assert p2.want(policy_input(at, offerings=[TS], dem=demand(at)))
    assert p2.next_wake(at) == mon + timedelta(days=1, hours=15)


def test_skipping_from_wake_to_wake_never_misses_the_prewarm() -> None:
    """A simulation that only runs when a policy may change its answer still pre-warms on time."""
    p = forecast()
    run(p, MONDAY, MONDAY + timedelta(weeks=2), tuesday_spike, step=timedelta(hours=1))
    t = MONDAY + timedelta(weeks=2)
    spike = t + timedelta(days=1, hours=14)
    visited = []
    while t <= spike:
        if p.want(policy_input(t, offerings=[TS], dem=demand(t))):
            visited.append(t)
        nxt = p.next_wake(t)
        assert nxt is not None and nxt > t
        t = nxt
    assert visited[0] == spike - HORIZON


def test_quantile_matches_linear_interpolation() -> None:
    assert quantile([1.0], 0.8) == 1.0
    assert quantile([0.0, 10.0], 0.8) == pytest.approx(8.0)
    assert quantile([3.0, 1.0, 2.0, 4.0], 0.5) == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"slot": "7m"}, "divide a day evenly"),
        ({"slot": "30s"}, "at least 1m"),
        ({"quantile": 0}, "greater than 0"),
        ({"periods": []}, "at least 1 item"),
        ({"periods": ["month"]}, "'day', 'week' or 'year'"),
        ({"min_periods": 0}, "greater than or equal to 1"),
    ],
)
def test_config_errors(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ForecastPolicyConfig.model_validate({"kind": "forecast", **cfg})


def test_registered_as_the_forecast_kind() -> None:
    assert config_class("burst.policies", "forecast") is ForecastPolicyConfig
