"""``burst bench``: burst against its baselines, trace by trace, through the same simulator.

Each simulated strategy (see :mod:`bench.strategies`) replays the trace through
:func:`burst.simulate.simulate` with the same on-prem capacity, offerings and clock; only the
policy stack differs.  ``lower-bound`` is the offline clairvoyant minimum spend
(:mod:`bench.lower_bound`); every row's spend is also given as a ratio to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.lower_bound import lower_bound
from bench.strategies import EXTRA, SIMULATED, STRATEGIES, make_stack
from burst.backlog.trace import load_trace
from burst.clock import SimClock
from burst.config import Config
from burst.engine import Engine
from burst.executor import Executor
from burst.model import Trace
from burst.simulate import runnable, simulate
from burst.store import Store
from burst.units import format_duration

JSON_KEYS = (
    "trace",
    "strategy",
    "cost_total",
    "wait_p50_s",
    "wait_p95_s",
    "spike_wait_p95_s",
    "cost_ratio_to_lower_bound",
    "leaked_clusters",
    "killed_jobs",
)


@dataclass(frozen=True, slots=True)
class BenchRow:
    trace: str
    strategy: str
    cost_total: float
    #: None for the lower bound: it is fluid, every job starts within the wait target by construction.
    wait_p50_s: float | None
    wait_p95_s: float | None
    spike_wait_p95_s: float | None
    cost_ratio_to_lower_bound: float | None
    leaked_clusters: int
    killed_jobs: int
    currency: str = ""
    wall_seconds: float = 0.0
    clusters_created: int = 0
    peak_burst_cores: int = 0
    node_hours: float = 0.0
    #: Core-hours jobs actually ran on burst capacity (the rest of what was paid for sat idle).
    burst_core_hours_used: float = 0.0
    note: str = ""
    #: Jobs killed on purpose by an opt-in budget hard stop (``killed_jobs`` counts accidents).
    budget_killed_jobs: int = 0

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: d[k] for k in JSON_KEYS}


Progress = Callable[[str], None]


def bench_trace(
    cfg: Config,
    trace: Trace,
    *,
    onprem_cores: int | None = None,
    strategies: Sequence[str] = STRATEGIES,
    wait_target: timedelta = timedelta(hours=1),
    progress: Progress | None = None,
) -> list[BenchRow]:
    unknown = [s for s in strategies if s not in STRATEGIES and s not in EXTRA]
    if unknown:
        raise ValueError(f"unknown strategy {', '.join(unknown)}; choose from {', '.join((*STRATEGIES, *EXTRA))}")
    cores = cfg.file.onprem.cores if onprem_cores is None else onprem_cores
    # One engine only to read the offerings and limits the simulations will see.
    probe = Engine.build(
        cfg,
        SimClock(trace.start),
        store=Store("sqlite://", cfg.file.installation),
        backlog=Executor(cores, None, trace.start),
        seed=cfg.file.simulation.seed,
    )
    offerings, limits = probe.offerings, dict(probe.limits)
    jobs, _ = runnable(trace.jobs, cfg, probe, cores)
    probe.store.close()

    lb = lower_bound(jobs, cores, offerings, limits, wait_target.total_seconds())
    rows: list[BenchRow] = []
    for name in strategies:
        if name not in SIMULATED:
            continue
        if progress is not None:
            progress(f"{trace.name}: {name}")
        stack = make_stack(name, cfg, jobs, trace.start, cores, offerings, limits)
        s, _ = simulate(cfg, trace, onprem_cores=cores, stack=stack)
        rows.append(
            BenchRow(
                trace.name,
                name,
                round(s.cost_total, 2),
                s.wait_p50_s,
                s.wait_p95_s,
                s.spike_wait_p95_s,
                _ratio(s.cost_total, lb.cost),
                s.leaked_clusters,
                s.killed_jobs,
                s.currency,
                round(s.wall_seconds, 2),
                s.clusters_created,
                s.peak_burst_cores,
                round(s.node_hours, 1),
                round(s.burst_core_hours_used, 1),
                budget_killed_jobs=s.budget_killed_jobs,
            )
        )
    if "lower-bound" in strategies:
        rows.append(
            BenchRow(
                trace.name,
                "lower-bound",
                round(lb.cost, 2),
                None,
                None,
                None,
                1.0 if lb.cost > 0 else None,
                0,
                0,
                lb.currency,
                note=(
                    f"{lb.core_hours:,.0f} burst core-hours (mandatory {lb.mandatory_core_hours:,.0f}, "
                    f"EDF {lb.edf_core_hours:,.0f}, both {lb.combined_core_hours:,.0f}) "
                    f"at {lb.price_per_core_hour:.4f} {lb.currency}/core-h, "
                    f"every job within {format_duration(lb.wait_target_s)}"
                ),
            )
        )
    return rows


def _ratio(cost: float, bound: float) -> float | None:
    if bound > 0:
        return round(cost / bound, 3)
    return 0.0 if cost == 0 else None


def run_bench(
    traces: Sequence[Path],
    config: Config,
    onprem_cores: int | None = None,
    strategies: Sequence[str] = STRATEGIES,
    *,
    wait_target: timedelta = timedelta(hours=1),
    progress: Progress | None = None,
) -> list[BenchRow]:
    rows: list[BenchRow] = []
    for path in traces:
        rows += bench_trace(
            config,
            load_trace(path),
            onprem_cores=onprem_cores,
            strategies=strategies,
            wait_target=wait_target,
            progress=progress,
        )
    return rows


# --- renderers -----------------------------------------------------------------------------


def _dur(x: float | None) -> str:
    return "—" if x is None else format_duration(x)


def _money(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.2f}"


def _ratio_text(x: float | None) -> str:
    if x is None:
        return "—"
    return "∞" if math.isinf(x) else f"{x:.2f}×"


HEADER = (
    "trace",
    "strategy",
    "spend",
    "wait p50",
    "wait p95",
    "spike p95",
    "× lower bound",
    "leaked",
    "killed",
)


def row_cells(r: BenchRow) -> tuple[str, ...]:
    return (
        r.trace,
        r.strategy,
        f"{_money(r.cost_total)} {r.currency}".strip(),
        _dur(r.wait_p50_s),
        _dur(r.wait_p95_s),
        _dur(r.spike_wait_p95_s),
        _ratio_text(r.cost_ratio_to_lower_bound),
        str(r.leaked_clusters),
        str(r.killed_jobs),
    )


def render_markdown(rows: Sequence[BenchRow]) -> str:
    """The results table as GitHub markdown (for the README)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def render_json(rows: Sequence[BenchRow]) -> list[dict[str, Any]]:
    return [r.as_json() for r in rows]
