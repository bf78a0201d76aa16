"""``burst trace info``: what a job trace holds, before simulating anything on it.

An operator sizing a burst budget first wants to know how big the spikes are: how many jobs and
core-hours, over which dates, the peak of pending work and when it came, and which weeks were the
busiest.  The peak pending demand comes from the trace's own recorded waits (SWF field 3: a job is
pending from its submit until submit + wait), i.e. what the real site saw; with ``onprem_cores``
it is also replayed first-come-first-served on that many cores (what a site of that size would
see, the same model as the ``trace`` backlog source).
"""

from __future__ import annotations

import math
import os
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from statistics import median
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from burst.backlog.trace import ARCHIVE_CITATION, FcfsReplay, TraceStats, read_trace
from burst.model import Job, Trace

BUSIEST_WEEKS = 5
_WEEK_S = 7 * 86400


@dataclass(frozen=True, slots=True)
class Peak:
    """The most cores (and jobs) at once in some state, and when it first happened."""

    cores: int
    jobs: int
    at: datetime
    method: str


@dataclass(frozen=True, slots=True)
class Week:
    """One ISO week, Monday to Sunday (UTC), by the core-hours of the jobs submitted in it."""

    label: str
    monday: date
    sunday: date
    jobs: int
    core_hours: float
    vs_median: float | None


@dataclass(frozen=True, slots=True)
class TraceInfo:
    name: str
    jobs: int
    skipped: int
    first_submit: datetime
    last_submit: datetime
    days: float
    core_hours: float
    shapes: int
    widest_job_cores: int
    median_week_core_hours: float
    busiest_weeks: tuple[Week, ...]
    waits_known: int
    recorded_pending: Peak | None
    recorded_running: Peak | None
    onprem_cores: int | None
    fcfs_pending: Peak | None
    citation: str


def info_for_file(path: str | os.PathLike[str], onprem_cores: int | None = None) -> TraceInfo:
    """Read a trace file and describe it (raises TraceError like :func:`read_trace`)."""
    parsed = read_trace(path)
    return trace_info(parsed.trace, onprem_cores, stats=parsed.stats)


def trace_info(trace: Trace, onprem_cores: int | None, *, stats: TraceStats | None = None) -> TraceInfo:
    """The figures of ``trace``; ``stats`` (from :func:`read_trace`) supplies recorded waits and skips."""
    jobs = trace.jobs
    if not jobs:
        raise ValueError("a trace without jobs has no figures")
    if onprem_cores is not None and onprem_cores < 0:
        raise ValueError("on-prem cores cannot be negative")
    first = min(j.submit_s for j in jobs)
    last = max(j.submit_s for j in jobs)
    core_hours = math.fsum(j.shape.cpus * j.runtime_s for j in jobs) / 3600.0
    waits = stats.waits if stats is not None and len(stats.waits) == len(jobs) else None
    pending = running = None
    waits_known = sum(1 for w in waits if w >= 0) if waits is not None else 0
    if waits is not None and waits_known:
        pending, running = _recorded_peaks(trace, waits)
    fcfs = _fcfs_peak(trace, onprem_cores) if onprem_cores is not None else None
    weeks, week_median = _busiest_weeks(trace, first)
    citation = trace.citation
    if stats is not None and stats.format == "swf":
        citation = f"{citation}\nPlease cite: {ARCHIVE_CITATION}".strip()
    return TraceInfo(
        name=trace.name,
        jobs=len(jobs),
        skipped=stats.skipped_total if stats is not None else 0,
        first_submit=_at(trace, first),
        last_submit=_at(trace, last),
        days=(last - first) / 86400.0,
        core_hours=core_hours,
        shapes=len({j.shape for j in jobs}),
        widest_job_cores=max(j.shape.cpus for j in jobs),
        median_week_core_hours=week_median,
        busiest_weeks=weeks,
        waits_known=waits_known,
        recorded_pending=pending,
        recorded_running=running,
        onprem_cores=onprem_cores,
        fcfs_pending=fcfs,
        citation=citation,
    )


def _at(trace: Trace, offset_s: float) -> datetime:
    return (trace.start + timedelta(seconds=offset_s)).astimezone(UTC)


def _recorded_peaks(trace: Trace, waits: array[float]) -> tuple[Peak | None, Peak | None]:
    """Peak pending (submit → submit+wait) and running (→ +runtime) from the log's own waits."""
    jobs = trace.jobs
    known = [i for i, w in enumerate(waits) if w >= 0]
    begin_p = array("d", (jobs[i].submit_s for i in known))
    end_p = array("d", (jobs[i].submit_s + waits[i] for i in known))
    cores = array("q", (jobs[i].shape.cpus for i in known))
    end_r = array("d", (end_p[k] + jobs[i].runtime_s for k, i in enumerate(known)))
    pending = _peak(begin_p, end_p, cores)
    running = _peak(end_p, end_r, cores)
    note = "recorded waits" + ("" if len(known) == len(jobs) else f" ({len(known)} of {len(jobs)} jobs)")
    return (
        Peak(pending[0], pending[1], _at(trace, pending[2]), note) if pending[0] > 0 else None,
        Peak(running[0], running[1], _at(trace, running[2]), note) if running[0] > 0 else None,
    )


def _peak(begin: Sequence[float], end: Sequence[float], weight: Sequence[int]) -> tuple[int, int, float]:
    """Max total weight of intervals [begin, end) alive at once: (weight, count, first time)."""
    alive = [i for i in range(len(begin)) if end[i] > begin[i]]  # zero-length: never alive
    n = len(alive)
    by_begin = sorted(alive, key=begin.__getitem__)
    by_end = sorted(alive, key=end.__getitem__)
    total = count = best = best_count = 0
    best_at = 0.0
    e = 0
    for i in by_begin:
        t = begin[i]
        while e < n and end[by_end[e]] <= t:  # an interval ending when another begins: end first
            total -= weight[by_end[e]]
            count -= 1
            e += 1
        total += weight[i]
        count += 1
        if total > best:
            best, best_count, best_at = total, count, t
    return best, best_count, best_at


def _fcfs_peak(trace: Trace, onprem_cores: int) -> Peak | None:
    replay = FcfsReplay(trace.jobs, onprem_cores)
    best = best_jobs = 0
    best_at = 0.0
    while (t := replay.next_event()) != math.inf:
        replay.advance(t)
        if replay.pending_cores > best:
            best, best_jobs, best_at = replay.pending_cores, replay.pending_jobs, t
    if best == 0:
        return None
    return Peak(best, best_jobs, _at(trace, best_at), f"FCFS on {onprem_cores} cores")


def _busiest_weeks(trace: Trace, first: float) -> tuple[tuple[Week, ...], float]:
    jobs: Sequence[Job] = trace.jobs
    first_day = _at(trace, first)
    monday0 = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC) - timedelta(days=first_day.weekday())
    shift = (trace.start - monday0).total_seconds()
    core_s: dict[int, float] = {}
    counts: dict[int, int] = {}
    for j in jobs:
        w = int((shift + j.submit_s) // _WEEK_S)
        core_s[w] = core_s.get(w, 0.0) + j.shape.cpus * j.runtime_s
        counts[w] = counts.get(w, 0) + 1
    n_weeks = max(core_s) + 1
    per_week = [core_s.get(w, 0.0) / 3600.0 for w in range(n_weeks)]
    mid = median(per_week)
    top = sorted(core_s, key=lambda w: (-core_s[w], w))[:BUSIEST_WEEKS]
    weeks = []
    for w in top:
        monday = (monday0 + timedelta(weeks=w)).date()
        year, number, _ = monday.isocalendar()
        ch = core_s[w] / 3600.0
        weeks.append(
            Week(
                f"{year}-W{number:02d}",
                monday,
                monday + timedelta(days=6),
                counts[w],
                ch,
                ch / mid if mid > 0 else None,
            )
        )
    return tuple(weeks), mid


# --- output ------------------------------------------------------------------------------------


def _peak_text(peak: Peak | None) -> str:
    if peak is None:
        return "none"
    return f"{peak.cores:,} cores ({peak.jobs:,} jobs) at {peak.at:%Y-%m-%d %H:%M} UTC — {peak.method}"


def render_trace_info(info: TraceInfo) -> Group:
    """A summary table, the busiest weeks and the citation, for a terminal."""
    summary = Table(title=f"trace {info.name}", show_header=False, title_justify="left")
    summary.add_column("what", style="bold")
    summary.add_column("value")
    skipped = f" ({info.skipped:,} skipped: no run time or processors)" if info.skipped else ""
    summary.add_row("jobs", f"{info.jobs:,}{skipped}")
    summary.add_row(
        "span", f"{info.first_submit:%Y-%m-%d} → {info.last_submit:%Y-%m-%d} ({info.days:,.1f} days of submissions)"
    )
    summary.add_row("core-hours", f"{info.core_hours:,.0f}")
    summary.add_row("shapes", f"{info.shapes:,} distinct (widest job {info.widest_job_cores:,} cores)")
    if info.waits_known:
        summary.add_row("peak pending", _peak_text(info.recorded_pending))
    else:
        summary.add_row("peak pending", "waits not recorded in this trace (see --onprem-cores)")
    if info.recorded_running is not None:
        summary.add_row("peak running", _peak_text(info.recorded_running))
    if info.onprem_cores is not None:
        summary.add_row(f"peak pending on {info.onprem_cores:,} cores", _peak_text(info.fcfs_pending))
    weeks = Table(
        title=f"busiest weeks (median week {info.median_week_core_hours:,.0f} core-hours)", title_justify="left"
    )
    for name, justify in (
        ("week", "left"),
        ("dates", "left"),
        ("jobs", "right"),
        ("core-hours", "right"),
        ("× median", "right"),
    ):
        weeks.add_column(name, justify=justify)  # type: ignore[arg-type]
    for w in info.busiest_weeks:
        ratio = f"{w.vs_median:.1f}" if w.vs_median is not None else "–"
        weeks.add_row(
            w.label, f"{w.monday:%Y-%m-%d} – {w.sunday:%Y-%m-%d}", f"{w.jobs:,}", f"{w.core_hours:,.0f}", ratio
        )
    parts: list[Table | Text] = [summary, weeks]
    if info.citation:
        parts.append(Text(info.citation, style="dim"))
    return Group(*parts)


def _peak_json(peak: Peak | None) -> dict[str, Any] | None:
    if peak is None:
        return None
    return {"cores": peak.cores, "jobs": peak.jobs, "at": peak.at.isoformat(), "method": peak.method}


def as_json(info: TraceInfo) -> dict[str, Any]:
    """The same figures as plain JSON types (dates as ISO-8601 strings)."""
    return {
        "name": info.name,
        "jobs": info.jobs,
        "skipped": info.skipped,
        "first_submit": info.first_submit.isoformat(),
        "last_submit": info.last_submit.isoformat(),
        "days": round(info.days, 3),
        "core_hours": round(info.core_hours, 3),
        "shapes": info.shapes,
        "widest_job_cores": info.widest_job_cores,
        "waits_known": info.waits_known,
        "peak_pending": _peak_json(info.recorded_pending),
        "peak_running": _peak_json(info.recorded_running),
        "onprem_cores": info.onprem_cores,
        "peak_pending_fcfs": _peak_json(info.fcfs_pending),
        "median_week_core_hours": round(info.median_week_core_hours, 3),
        "busiest_weeks": [
            {
                "week": w.label,
                "monday": w.monday.isoformat(),
                "sunday": w.sunday.isoformat(),
                "jobs": w.jobs,
                "core_hours": round(w.core_hours, 3),
                "vs_median": round(w.vs_median, 3) if w.vs_median is not None else None,
            }
            for w in info.busiest_weeks
        ],
        "citation": info.citation,
    }
