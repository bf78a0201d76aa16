"""Whole seasons on slices of every real trace: nobody killed, nothing leaked, numbers that add up."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

import pytest

from burst.backlog.trace import load_trace
from burst.model import Job, Shape, Trace
from burst.simulate import quantile, simulate
from burst.testing.builders import T0, make_config

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT.parent / "shared" / "traces"
# On-prem cores for the slices: smaller than the real machines, so each slice overflows them.
ONPREM = {
    "KTH-SP2-1996-2.1-cln": 64,
    "LPC-EGEE-2004-1.2-cln": 24,
    "HPC2N-2002-2.2-cln": 96,
    "CEA-Curie-2011-2.1-cln": 4000,
}


def slice_of(path: Path, tmp_path: Path, lines: int = 4000) -> Path:
    """The header and the first ``lines`` job lines of a real log, as a small SWF file."""
    out = tmp_path / path.name
    with gzip.open(path, "rt") as src, gzip.open(out, "wt") as dst:
        jobs = 0
        for line in src:
            dst.write(line)
            if not line.startswith(";") and line.strip():
                jobs += 1
                if jobs >= lines:
                    break
    return out


SEASON_CONFIG = {
    "providers": {
        "tsystems": {"kind": "local", "cloud": "tsystems", "max_nodes": 32, "nodes_per_cluster": 16},
        "aws": {"kind": "local", "cloud": "aws", "max_nodes": 32, "nodes_per_cluster": 16},
        "gce": {"kind": "local", "cloud": "gce", "max_nodes": 32, "nodes_per_cluster": 16},
    },
    "policies": [{"kind": "backlog", "pending_cores_above": 16, "for": "10m", "idle_after": "30m"}],
    "simulation": {"tick": "5m"},
}


@pytest.mark.parametrize("name", sorted(ONPREM))
def test_slice_of_every_trace(name: str, tmp_path: Path) -> None:
    path = TRACES / f"{name}.swf.gz"
    assert path.exists(), f"{path} is missing: the real traces live in ../shared/traces"
    trace = load_trace(slice_of(path, tmp_path))
    cfg = make_config(SEASON_CONFIG)
    summary, store = simulate(cfg, trace, onprem_cores=ONPREM[name], keep_store=True)
    assert summary.leaked_clusters == 0
    assert summary.killed_jobs == 0
    assert summary.jobs + summary.unrunnable_jobs >= 2500  # zero-runtime records are skipped
    assert summary.clusters_created > 0 and summary.jobs_on_burst > 0, "the slice should overflow on-prem"
    # The summary's money is the ledger's money.
    removed = [c.removed_at for c in store.all_clusters() if c.removed_at is not None]
    if removed:
        assert summary.cost_total == pytest.approx(sum(s.cost(max(removed)) for s in store.ledger()))
    assert summary.cost_total == pytest.approx(sum(summary.cost_by_provider.values()))
    assert summary.wait_p50_s <= summary.wait_p95_s <= summary.wait_max_s
    store.close()


def spike_trace() -> Trace:
    """100 on-prem cores; a burst of 60 eight-core one-hour jobs at t=1 h that on-prem cannot hold."""
    jobs = [Job(i, 0.0, 7200.0, Shape(4, 1000)) for i in range(25)]
    jobs += [Job(100 + i, 3600.0, 3600.0, Shape(8, 1000)) for i in range(60)]
    return Trace("spike", T0, jobs)


def test_bursting_cuts_waits_and_costs_money() -> None:
    trace = spike_trace()
    cfg = make_config({**SEASON_CONFIG, "simulation": {"tick": "1m"}})
    burst, _ = simulate(cfg, trace)
    onprem_only, _ = simulate(make_config({**SEASON_CONFIG, "policies": []}), trace)
    assert onprem_only.cost_total == 0 and onprem_only.clusters_created == 0
    assert burst.clusters_created >= 1 and burst.cost_total > 0
    assert burst.jobs_on_burst > 0
    assert burst.wait_p95_s < onprem_only.wait_p95_s
    assert burst.spike_wait_p95_s < onprem_only.spike_wait_p95_s
    assert burst.leaked_clusters == 0 and burst.killed_jobs == 0
    # On-prem only the waits are exact: the 4-core jobs hold all 100 cores until t=2 h; then 12
    # eight-core jobs run per hour, so the last of the 60 starts at t=6 h, 5 h after its submit.
    assert onprem_only.wait_max_s == pytest.approx(5 * 3600.0)


def test_jobs_that_fit_nowhere_are_reported_not_lost() -> None:
    trace = Trace("wide", T0, [Job(1, 0.0, 60.0, Shape(10_000, 0)), Job(2, 0.0, 60.0, Shape(1, 0))])
    summary, _ = simulate(make_config(SEASON_CONFIG), trace)
    assert summary.jobs == 1 and summary.unrunnable_jobs == 1


def test_summary_json_has_the_documented_keys() -> None:
    summary, _ = simulate(make_config(SEASON_CONFIG), spike_trace())
    keys = {
        "jobs",
        "wait_p50_s",
        "wait_p95_s",
        "wait_max_s",
        "spike_wait_p95_s",
        "cost_total",
        "cost_by_provider",
        "currency",
        "node_hours",
        "clusters_created",
        "peak_burst_cores",
        "leaked_clusters",
        "killed_jobs",
        "sim_seconds",
        "wall_seconds",
    }
    assert keys <= set(summary.as_json())


def test_quantile_is_nearest_rank() -> None:
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.95) == 4.0
    assert quantile([], 0.5) == 0.0


def test_waits_sorted_with_zeros_counted_give_the_same_quantiles() -> None:
    from burst.simulate import _Sorted

    values = [0.0, 5.0, 0.0, -2.0, 3.5, 0.0, 120.0, 0.0, 1.0, -0.5]
    lean, full = _Sorted(values), sorted(values)
    assert list(lean) == full and len(lean) == len(full) and lean[-1] == full[-1]
    for q in (0.0, 0.1, 0.25, 0.5, 0.75, 0.95, 1.0):
        assert quantile(lean, q) == quantile(full, q)
    assert quantile(_Sorted([]), 0.5) == 0.0


def test_same_seed_same_season() -> None:
    cfg = make_config(SEASON_CONFIG)
    a, _ = simulate(cfg, spike_trace())
    b, _ = simulate(cfg, spike_trace())
    assert replace(a, wall_seconds=0) == replace(b, wall_seconds=0)


def test_jobs_no_policy_serves_never_hang_the_simulation() -> None:
    """Four GPU jobs wait below the backlog threshold: nothing buys GPUs, the season still ends
    (after the drain horizon) and says so."""
    jobs = [Job(i, 0.0, 600.0, Shape(1, 1000)) for i in range(3)]
    jobs += [Job(10 + i, 60.0, 600.0, Shape(4, 1000, gpus=1)) for i in range(4)]
    cfg = make_config(
        {
            **SEASON_CONFIG,
            "policies": [{"kind": "backlog", "pending_cores_above": 100}],
            "simulation": {"tick": "5m", "drain_horizon": "1d"},
        }
    )
    summary, _ = simulate(cfg, Trace("gpu-only", T0, jobs))
    assert summary.jobs == 7 and summary.never_started == 4
    assert summary.leaked_clusters == 0 and summary.killed_jobs == 0


def test_releasing_idle_nodes_cuts_spend_and_kills_nothing(tmp_path: Path) -> None:
    trace = load_trace(slice_of(TRACES / "KTH-SP2-1996-2.1-cln.swf.gz", tmp_path, 3000))
    whole_only = make_config({**SEASON_CONFIG, "reconciler": {"release_idle_nodes": False}})
    released, _ = simulate(make_config(SEASON_CONFIG), trace, onprem_cores=64)
    kept, _ = simulate(whole_only, trace, onprem_cores=64)
    for s in (released, kept):
        assert s.killed_jobs == 0 and s.leaked_clusters == 0 and s.never_started == 0
    # The same jobs ran on burst capacity at about the same time; idle nodes were not paid for.
    assert released.node_hours < 0.9 * kept.node_hours
    assert released.cost_total < 0.9 * kept.cost_total


def test_a_provider_floor_keeps_a_warm_pool_and_leaves_with_the_season(tmp_path: Path) -> None:
    trace = load_trace(slice_of(TRACES / "KTH-SP2-1996-2.1-cln.swf.gz", tmp_path, 1500))
    providers = dict(SEASON_CONFIG["providers"])  # type: ignore[call-overload]
    floored = {**providers, "tsystems": {**providers["tsystems"], "min_nodes": 2}}
    warm, store = simulate(
        make_config({**SEASON_CONFIG, "providers": floored}), trace, onprem_cores=64, keep_store=True
    )
    cold, _ = simulate(make_config(SEASON_CONFIG), trace, onprem_cores=64)
    assert warm.leaked_clusters == 0 and warm.killed_jobs == 0
    # two tsystems nodes were paid for the whole season, on top of what the backlog bought
    hours = (trace.jobs[-1].submit_s - trace.jobs[0].submit_s) / 3600
    ts_node_hours = sum(
        s.quantity * (s.end - s.start).total_seconds() / 3600
        for s in store.ledger()
        if s.provider == "tsystems" and s.item == "nodes" and s.end is not None
    )
    assert ts_node_hours >= 2 * hours * 0.95
    assert warm.cost_total > cold.cost_total
