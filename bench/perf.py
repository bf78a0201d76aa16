"""Performance of the core (issue 3): a whole simulated season, and one policy+plan tick at scale.

    uv run python -m bench.perf [--trace FILE] [--config FILE] [--skip-simulate]

Every figure is printed with a ratio against a baseline measured in the same run, so a slower or
busier machine moves both:

* ``burst simulate`` on the largest trace: wall time vs a parse-only pass over the same file;
  jobs per second and simulated seconds per wall second;
* peak RSS (``ru_maxrss``) vs the RSS of the interpreter with burst imported;
* one ``PolicyStack.decide`` + ``make_plan`` at 1 M pending jobs in 1 000 shape buckets with 1 000
  clusters in the fleet, vs the same tick with an empty fleet and an empty queue.

Targets: a year of a ≥ 100 k-job trace in ≤ 30 s; a tick ≤ 100 ms; RSS ≤ 150 MB.
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from burst import config as config_mod
from burst.backlog.trace import load_trace
from burst.clock import SimClock
from burst.engine import Engine, build_stack
from burst.executor import Executor
from burst.lifecycle import ClusterRecord, ClusterState
from burst.model import Bucket, Demand, Offering, Shape
from burst.plan import make_plan
from burst.policy import PolicyInput, PolicyStack, ProviderLimits, Spend
from burst.simulate import simulate
from burst.store import Store

ROOT = Path(__file__).resolve().parent.parent
LARGEST = ROOT.parent / "shared" / "traces" / "CEA-Curie-2011-2.1-cln.swf.gz"
SCENARIO = ROOT / "examples" / "scenarios" / "CEA-Curie-2011-2.1-cln.yaml"
YEAR_S = 365 * 86400


def rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss_mb()


# --- the tick at scale ---------------------------------------------------------------------


def synthetic_demand(now: datetime, jobs: int, buckets: int, onprem_cores: int) -> Demand:
    """``jobs`` pending jobs spread over ``buckets`` distinct shapes (1–16 cores, 2–64 GB)."""
    per, extra = divmod(jobs, buckets)
    out = []
    for i in range(buckets):
        shape = Shape(1 + i % 16, 2048 * (1 + (i // 16) % 32), 0)
        out.append(Bucket(shape, per + (1 if i < extra else 0), 60.0 * (i % 120)))
    return Demand(now, tuple(out), running_cores=onprem_cores, onprem_cores=onprem_cores, onprem_free_cores=0)


def synthetic_fleet(now: datetime, offerings: list[Offering], clusters: int, nodes: int) -> list[ClusterRecord]:
    cpu = [o for o in offerings if o.gpus == 0]
    fleet = []
    for i in range(clusters):
        o = cpu[i % len(cpu)]
        fleet.append(
            ClusterRecord(
                cluster_id=f"perf-{o.provider}-{i:05d}",
                provider=o.provider,
                region=o.region,
                flavor=o.flavor,
                cpus_per_node=o.cpus,
                memory_mb_per_node=o.memory_mb,
                gpus_per_node=o.gpus,
                nodes=nodes,
                desired_nodes=nodes,
                state=ClusterState.ACTIVE,
                state_since=now - timedelta(hours=1),
                created_at=now - timedelta(hours=2, seconds=i),
                price_per_hour=o.price_per_hour,
                control_plane_per_hour=o.control_plane_per_hour,
                currency=o.currency,
                policy="backlog",
                requested_at=now - timedelta(hours=2, seconds=i),
                ready_at=now - timedelta(hours=1),
            )
        )
    return fleet


def time_tick(
    make_stack: Callable[[], PolicyStack],
    offerings: list[Offering],
    limits: dict[str, ProviderLimits],
    demand_of: Callable[[datetime], Demand],
    fleet: list[ClusterRecord],
    repeats: int = 7,
) -> float:
    """Median seconds of decide+plan, on a stack that has seen the demand long enough to act."""
    counter = iter(range(10**9))
    t0 = datetime(2027, 3, 1, tzinfo=UTC)
    samples = []
    for r in range(repeats):
        stack = make_stack()
        # Warm the policies' memory: the backlog has been above threshold for an hour.
        for k in range(13):
            now = t0 + timedelta(minutes=5 * k)
            inp = PolicyInput(now, demand_of(now), fleet, offerings, Spend("EUR"), limits=limits)
            stack.decide(inp)
        now = t0 + timedelta(minutes=65 + r)
        inp = PolicyInput(now, demand_of(now), fleet, offerings, Spend("EUR"), limits=limits)
        start = time.perf_counter()
        decision = stack.decide(inp)
        make_plan(decision, fleet, limits, lambda p: f"new-{p}-{next(counter)}")
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def bench_tick(cfg_path: Path) -> tuple[float, float]:
    cfg = config_mod.load(cfg_path)
    t0 = datetime(2027, 3, 1, tzinfo=UTC)
    probe = Engine.build(
        cfg, SimClock(t0), store=Store("sqlite://", cfg.file.installation), backlog=Executor(0, None, t0)
    )
    offerings = probe.offerings
    probe.store.close()
    fleet = synthetic_fleet(t0, offerings, 1000, 16)
    # Each provider's limit holds its share of the fleet and ~10 more clusters: the plan grows the
    # fleet a little, as a real tick near the limits does (not 60 000 creates at once).
    share: dict[str, int] = {}
    for c in fleet:
        share[c.provider] = share.get(c.provider, 0) + c.desired_nodes
    limits = {p: ProviderLimits(share.get(p, 0) + 10 * 16, 10**4, 16, lim.priority) for p, lim in probe.limits.items()}
    onprem = cfg.file.onprem.cores

    def full(now: datetime) -> Demand:
        return synthetic_demand(now, 1_000_000, 1000, onprem)

    def empty(now: datetime) -> Demand:
        return Demand(now, (), 0, onprem, onprem)

    base = time_tick(lambda: build_stack(cfg), offerings, limits, empty, [])
    big = time_tick(lambda: build_stack(cfg), offerings, limits, full, fleet)
    return big, base


# --- the season ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=LARGEST)
    ap.add_argument("--config", type=Path, default=SCENARIO)
    ap.add_argument("--skip-simulate", action="store_true", help="only the tick")
    args = ap.parse_args(argv)
    logging.getLogger("burst").setLevel(logging.ERROR)

    rss_base = current_rss_mb()
    rows: list[tuple[str, str, str, str]] = []

    def row(what: str, value: str, baseline: str, ratio: str) -> None:
        rows.append((what, value, baseline, ratio))
        print(f"{what:<44} {value:>14}   baseline {baseline:>14}   ratio {ratio}", flush=True)

    big, base = bench_tick(args.config)
    row(
        "tick: decide+plan, 1M jobs/1000 buckets/1000 clusters",
        f"{big * 1000:.1f} ms",
        f"{base * 1000:.2f} ms",
        f"{big / base:.0f}× empty tick (target ≤ 100 ms: {'met' if big <= 0.1 else 'MISSED'})",
    )

    if not args.skip_simulate:
        cfg = config_mod.load(args.config)
        t = time.perf_counter()
        trace = load_trace(args.trace)
        parse_s = time.perf_counter() - t
        t = time.perf_counter()
        summary, _ = simulate(cfg, trace)
        sim_wall = time.perf_counter() - t
        total = parse_s + sim_wall
        jobs = len(trace.jobs)
        span = summary.sim_seconds
        year_s = total * YEAR_S / span if span else float("inf")
        row(
            f"simulate {trace.name} (parse+run)",
            f"{total:.1f} s",
            f"{parse_s:.1f} s parse",
            f"{total / parse_s:.1f}× parse-only",
        )
        row("  jobs per second", f"{jobs / total:,.0f}", f"{jobs / parse_s:,.0f} parse", f"{parse_s / total:.2f}")
        row(
            "  simulated seconds per wall second",
            f"{span / sim_wall:,.0f}",
            f"{span / total:,.0f} incl. parse",
            f"{sim_wall / total:.2f}",
        )
        row(
            "  a year of this trace",
            f"{year_s:.1f} s",
            f"{parse_s * YEAR_S / span:.1f} s parse",
            f"{year_s / (parse_s * YEAR_S / span):.1f}× (target ≤ 30 s: {'met' if year_s <= 30 else 'MISSED'})",
        )
        row(
            "  season",
            f"{jobs:,} jobs",
            f"{span / 86400:,.0f} days",
            f"{summary.leaked_clusters} leaked, {summary.killed_jobs} killed, {summary.ticks:,} ticks",
        )
    peak = rss_mb()
    row(
        "peak RSS",
        f"{peak:.0f} MB",
        f"{rss_base:.0f} MB imports",
        f"{peak / rss_base:.1f}× (target ≤ 150 MB: {'met' if peak <= 150 else 'MISSED'})",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
