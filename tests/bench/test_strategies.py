"""The benchmark's baselines and lower bound on tiny hand-built inputs (correctness, not timing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.lower_bound import cheapest_price, combined_excess_s, edf_excess_s, lower_bound, mandatory_excess_s
from bench.strategies import (
    STRATEGIES,
    CobaldPolicy,
    ConstantPolicy,
    ReactiveCA,
    make_stack,
    peak_burst_demand,
)
from burst import config as config_mod
from burst.backlog.trace import load_trace
from burst.bench import JSON_KEYS, bench_trace, render_json, render_markdown
from burst.lifecycle import ClusterRecord, ClusterState
from burst.model import Bucket, Demand, Job, LatencyModel, Offering, Shape
from burst.policy import PolicyInput, ProviderLimits, Spend

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2027, 3, 1, tzinfo=UTC)
H = 3600.0

CHEAP = Offering("gce", "eu", "e2-standard-8", 8, 32768, 0.24, "EUR", control_plane_per_hour=0.08)
DEAR = Offering("aws", "eu", "c5.4xlarge", 16, 32768, 0.64, "EUR", latency=LatencyModel(600.0))
LIMITS = {"gce": ProviderLimits(10, 5, 4), "aws": ProviderLimits(10, 5, 4)}


def job(i: int, submit_h: float, runtime_h: float, cpus: int) -> Job:
    return Job(i, submit_h * H, runtime_h * H, Shape(cpus, 1024))


def inp(now: datetime, pending: tuple[Bucket, ...] = (), running: int = 0, onprem: int = 10, fleet=()) -> PolicyInput:
    busy_onprem = min(running, onprem)
    d = Demand(now, pending, running, onprem, onprem - busy_onprem)
    return PolicyInput(now, d, list(fleet), [CHEAP, DEAR], Spend("EUR"), limits=LIMITS)


def active(cores: int) -> ClusterRecord:
    return ClusterRecord(
        "c1", "gce", "eu", "e2-standard-8", 8, 32768, 0, cores // 8, cores // 8, ClusterState.ACTIVE,
        T0, T0, 0.24, 0.08, "EUR",
    )  # fmt: skip


# --- lower bound -----------------------------------------------------------------------------


def test_lower_bound_of_one_wide_long_job() -> None:
    # 20 cores for 2 h on a 10-core site, 1 h allowed wait: from 1 h to 2 h it certainly runs,
    # 10 cores beyond on-prem → 10 core-hours; EDF: 40 core-h due by 3 h, on-prem does 30 → 10.
    jobs = [job(1, 0, 2, 20)]
    assert mandatory_excess_s(jobs, 10, H) == pytest.approx(10 * H)
    assert edf_excess_s(jobs, 10, H) == pytest.approx(10 * H)
    lb = lower_bound(jobs, 10, [CHEAP, DEAR], LIMITS, H)
    assert lb.core_hours == pytest.approx(10)
    # Cheapest: e2 with the control-plane fee over a full 4-node cluster: (0.24 + 0.02) / 8.
    assert lb.price_per_core_hour == pytest.approx(0.26 / 8)
    assert lb.cost == pytest.approx(10 * 0.26 / 8)


def test_no_bound_when_the_wait_target_absorbs_the_spike() -> None:
    # Two 10-core 30-min jobs at once on 10 cores: the second can wait 30 min, within 1 h.
    jobs = [job(1, 0, 0.5, 10), job(2, 0, 0.5, 10)]
    assert lower_bound(jobs, 10, [CHEAP], LIMITS, H).core_hours == pytest.approx(0)
    # With no wait allowed, one of them must run on burst capacity.
    assert lower_bound(jobs, 10, [CHEAP], LIMITS, 0).core_hours == pytest.approx(5)


def test_edf_bound_catches_many_short_jobs() -> None:
    # 40 one-core 30-min jobs at t=0 on 4 cores, 1 h allowed: by 1.5 h on-prem does 6 core-h of 20.
    jobs = [job(i, 0, 0.5, 1) for i in range(40)]
    assert mandatory_excess_s(jobs, 4, H) == 0  # no job is certainly running: each could wait
    lb = lower_bound(jobs, 4, [CHEAP], LIMITS, H)
    assert lb.edf_core_hours == pytest.approx(20 - 6)
    assert lb.core_hours == pytest.approx(14)


def test_both_relaxations_at_once_catch_what_each_misses() -> None:
    # 10 on-prem cores.  A (10 cores, 3 h) must start by 1 h, so it fills on-prem over [1 h, 3 h];
    # B (10 cores, 1 h, submitted at 1 h) must start by 2 h: it overlaps A by 1 h whatever is done.
    a, b = job(1, 0, 3, 10), job(2, 1, 1, 10)
    assert mandatory_excess_s([a, b], 10, H) == 0  # B is short: no mandatory part
    assert edf_excess_s([a, b], 10, H) == 0  # fluid, A's work slides around B
    assert combined_excess_s([a, b], 10, H) == pytest.approx(10 * H)
    lb = lower_bound([a, b], 10, [CHEAP], LIMITS, H)
    assert lb.core_hours == lb.combined_core_hours == pytest.approx(10)


def test_the_combined_bound_is_never_below_either_alone() -> None:
    import random

    rng = random.Random(3)
    for _ in range(30):
        jobs = [job(i, rng.uniform(0, 6), rng.uniform(0.1, 4), rng.choice([1, 2, 4, 8])) for i in range(25)]
        jobs.sort(key=lambda j: j.submit_s)
        both = combined_excess_s(jobs, 8, H)
        assert both >= mandatory_excess_s(jobs, 8, H) - 1e-6
        assert both >= edf_excess_s(jobs, 8, H) - 1e-6


def test_jobs_no_offering_holds_are_left_out() -> None:
    wide = job(1, 0, 3, 80)  # 80 cores > 4 nodes × 16 cores: fits no cluster
    lb = lower_bound([wide], 10, [CHEAP, DEAR], LIMITS, 0)
    assert lb.jobs_considered == 0 and lb.core_hours == 0


def test_cheapest_price_ignores_gpu_offerings() -> None:
    gpu = Offering("gce", "eu", "t4", 8, 30720, 0.01, "EUR", gpus=1)
    assert cheapest_price([gpu, DEAR], LIMITS) == (pytest.approx(0.64 / 16), "EUR")


# --- baselines -------------------------------------------------------------------------------


def test_peak_burst_demand_counts_overlap_beyond_onprem() -> None:
    jobs = [job(1, 0, 2, 8), job(2, 1, 2, 8), job(3, 2.5, 1, 4)]  # 16 cores over [1, 2)
    assert peak_burst_demand(jobs, 10) == 6
    assert peak_burst_demand(jobs, 16) == 0


def test_static_peak_wants_a_constant_until_the_trace_ends() -> None:
    pol = ConstantPolicy(48, T0 + timedelta(days=1))
    assert [w.cores for w in pol.want(inp(T0))] == [48]
    assert pol.want(inp(T0 + timedelta(days=1))) == []


def test_reactive_ca_scales_up_at_once_and_down_after_ten_minutes() -> None:
    ca = ReactiveCA()
    pending = (Bucket(Shape(4, 1024), 5),)  # 20 cores, nothing free on-prem
    assert [w.cores for w in ca.want(inp(T0, pending, running=10))] == [20]  # no sustain time
    # Work moved to burst capacity: 20 busy there, nothing pending → same level.
    assert [w.cores for w in ca.want(inp(T0 + timedelta(minutes=5), (), running=30))] == [20]
    # Nothing needed any more: held 10 minutes, then released.
    assert [w.cores for w in ca.want(inp(T0 + timedelta(minutes=10), (), running=5))] == [20]
    assert [w.cores for w in ca.want(inp(T0 + timedelta(minutes=15), (), running=5))] == [20]
    assert ca.want(inp(T0 + timedelta(minutes=20), (), running=5)) == []


def test_reactive_ca_ignores_work_no_offering_can_hold() -> None:
    ca = ReactiveCA()
    too_wide = (Bucket(Shape(200, 1024), 3),)
    assert ca.want(inp(T0, too_wide, running=10)) == []


def test_cobald_linear_controller_grows_an_empty_pool_and_shrinks_an_idle_one() -> None:
    pol = CobaldPolicy(maximum_cores=1000, granularity=8)
    pending = (Bucket(Shape(1, 1024), 500),)
    assert pol.want(inp(T0, pending, running=10)) == []  # first call only starts the clock
    # Empty pool with work waiting counts as fully allocated: +rate × interval = +300 cores,
    # floored to whole 8-core nodes by the Standardiser.
    assert [w.cores for w in pol.want(inp(T0 + timedelta(minutes=5), pending, running=10))] == [296]
    # A second call in the same tick (a replan) does not regulate again.
    assert [w.cores for w in pol.want(inp(T0 + timedelta(minutes=5), pending, running=10))] == [296]
    # 296 active cores, all busy: allocation 1 > 0.5 → up again from the Standardiser's unfloored
    # 300 to 600 (a multiple of 8).
    busy = inp(T0 + timedelta(minutes=10), pending, running=10 + 296, fleet=[active(296)])
    assert [w.cores for w in pol.want(busy)] == [600]
    # Everything idle: utilisation 0 < 0.5 → down by 300, floored to 296.
    idle = inp(T0 + timedelta(minutes=15), (), running=0, fleet=[active(600)])
    assert [w.cores for w in pol.want(idle)] == [296]
    # And the Standardiser's maximum caps growth.
    for k in range(6):
        busy = inp(T0 + timedelta(minutes=20 + 5 * k), pending, running=10 + 296, fleet=[active(296)])
        got = [w.cores for w in pol.want(busy)]
    assert got == [1000]


def test_every_strategy_builds_a_stack() -> None:
    cfg = config_mod.load(ROOT / "examples" / "burst.yaml")
    jobs = [job(1, 0, 2, 8)]
    for name in STRATEGIES[:-1]:
        stack = make_stack(name, cfg, jobs, T0, 100, [CHEAP, DEAR], LIMITS)
        assert stack.placement is not None
    with pytest.raises(ValueError, match="unknown strategy"):
        make_stack("nope", cfg, jobs, T0, 100, [CHEAP], LIMITS)


# --- end to end on the tiny trace --------------------------------------------------------------


def test_bench_on_the_tiny_trace() -> None:
    cfg = config_mod.load(ROOT / "examples" / "burst.yaml")
    trace = load_trace(ROOT / "examples" / "traces" / "tiny.csv")
    rows = bench_trace(cfg, trace, onprem_cores=64)
    by = {r.strategy: r for r in rows}
    assert list(by) == ["burst", "onprem-only", "static-peak", "reactive-ca", "cobald", "lower-bound"]
    assert by["onprem-only"].cost_total == 0
    assert by["static-peak"].cost_total > 0 and by["lower-bound"].cost_total > 0
    # The 26 × 16-core campaign overflows 64 cores: bursting shortens the spike's wait.
    onprem = by["onprem-only"].spike_wait_p95_s
    assert onprem is not None and by["static-peak"].spike_wait_p95_s is not None
    assert by["static-peak"].spike_wait_p95_s < onprem
    for r in rows:
        assert r.leaked_clusters == 0 and r.killed_jobs == 0
    data = render_json(rows)
    assert all(tuple(d) == JSON_KEYS for d in data)
    assert data[-1]["cost_ratio_to_lower_bound"] == 1.0 and data[-1]["wait_p95_s"] is None
    assert render_markdown(rows).count("\n") == len(rows) + 2


# --- the command function ---------------------------------------------------------------------


def test_bench_command_json_and_errors() -> None:
    import json

    import typer
    from typer.testing import CliRunner

    from burst.bench_cli import bench

    app = typer.Typer()
    app.command()(bench)
    tiny = str(ROOT / "examples" / "traces" / "tiny.csv")
    cfg = str(ROOT / "examples" / "burst.yaml")
    args = [tiny, "--config", cfg, "--onprem-cores", "64", "--strategies", "onprem-only,lower-bound"]
    res = CliRunner().invoke(app, [*args, "--output", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["strategy"] for r in rows] == ["onprem-only", "lower-bound"]
    assert [list(r) for r in rows] == [list(JSON_KEYS)] * 2
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0 and "onprem-only" in table.stdout
    bad = CliRunner().invoke(app, [tiny, "--config", cfg, "--strategies", "fastest"])
    assert bad.exit_code == 2 and "unknown strategy fastest" in bad.output


def test_burst_plus_forecast_adds_the_forecast_policy_once() -> None:
    cfg = config_mod.load(ROOT / "examples" / "burst.yaml")
    stack = make_stack("burst+forecast", cfg, [job(1, 0, 2, 8)], T0, 100, [CHEAP], LIMITS)
    assert [p.name for p in stack.capacity] == ["backlog", "forecast"]


def test_work_only_onprem_can_run_is_reserved_first() -> None:
    # A 100-core site; a 96-core job no cloud cluster holds (4 nodes × 16 = 64) takes 96 cores over
    # [1 h, 3 h) when it starts within 1 h; a burstable 8-core 3-hour job then finds 4 free cores.
    wide, small = job(1, 0, 3, 96), job(2, 0, 3, 8)
    assert mandatory_excess_s([small], 100, H) == 0
    assert mandatory_excess_s([small], 100, H, onprem_only=[wide]) == pytest.approx(4 * 2 * H)
    lb = lower_bound([wide, small], 100, [CHEAP, DEAR], LIMITS, H)
    assert lb.jobs_considered == 1 and lb.core_hours == pytest.approx(8)
