"""``trace_info`` figures on a hand-built trace whose answers are worked out by hand."""

from __future__ import annotations

import json
from array import array
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from rich.console import Console

from burst.backlog.trace import TraceStats
from burst.model import Job, Shape, Trace
from burst.traceinfo import as_json, info_for_file, render_trace_info, trace_info

MONDAY = datetime(2026, 3, 2, tzinfo=UTC)  # ISO week 2026-W10
DAY = 86400.0
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "traces"


def job(job_id: int, submit: float, runtime: float, cpus: int) -> Job:
    return Job(job_id, submit, runtime, Shape(cpus))


def hand_built() -> tuple[Trace, TraceStats]:
    """Five jobs over four weeks.

    Recorded waits: A pends [0, 100), B pends [50, 150) → peak pending 12 cores (2 jobs) at 50 s.
    Running: A [100, 1100), C [120, 3720), B [150, 650) → peak running 14 cores (3 jobs) at 150 s.
    Core-hours: A 4×1000 s, B 8×500 s, C 2×3600 s → 15 200 core-s in week 10; D 10×36 000 s =
    100 core-hours in week 11; week 12 empty; E 1×3600 s = 1 core-hour in week 13.
    """
    jobs = [
        job(1, 0, 1000, 4),  # A
        job(2, 50, 500, 8),  # B
        job(3, 120, 3600, 2),  # C
        job(4, 7 * DAY + 10, 36000, 10),  # D
        job(5, 21 * DAY, 3600, 1),  # E
    ]
    waits = array("d", [100, 100, 0, 0, -1])
    stats = TraceStats("hand.swf", "swf", 5, {"zero run time": 2}, {}, waits)
    return Trace("hand", MONDAY, jobs, citation="Acknowledge: someone"), stats


def test_figures_of_the_hand_built_trace() -> None:
    trace, stats = hand_built()
    info = trace_info(trace, None, stats=stats)
    assert info.jobs == 5
    assert info.skipped == 2
    assert info.first_submit == MONDAY
    assert info.last_submit == datetime(2026, 3, 23, tzinfo=UTC)
    assert info.days == 21.0
    assert info.core_hours == pytest.approx(15200 / 3600 + 100 + 1)
    assert info.shapes == 5
    assert info.widest_job_cores == 10
    assert info.waits_known == 4

    assert info.recorded_pending is not None
    assert (info.recorded_pending.cores, info.recorded_pending.jobs) == (12, 2)
    assert info.recorded_pending.at == datetime(2026, 3, 2, 0, 0, 50, tzinfo=UTC)
    assert info.recorded_pending.method == "recorded waits (4 of 5 jobs)"
    assert info.recorded_running is not None
    assert (info.recorded_running.cores, info.recorded_running.jobs) == (14, 3)
    assert info.recorded_running.at == datetime(2026, 3, 2, 0, 2, 30, tzinfo=UTC)

    weeks = info.busiest_weeks
    assert [w.label for w in weeks] == ["2026-W11", "2026-W10", "2026-W13"]
    assert weeks[0].monday == date(2026, 3, 9)
    assert weeks[0].sunday == date(2026, 3, 15)
    assert weeks[0].jobs == 1
    assert weeks[0].core_hours == pytest.approx(100)
    assert weeks[1].jobs == 3
    # The median over all four weeks, the empty one included: (1 + 4.22) / 2.
    median = (1 + 15200 / 3600) / 2
    assert info.median_week_core_hours == pytest.approx(median)
    assert weeks[0].vs_median == pytest.approx(100 / median)
    assert info.fcfs_pending is None
    assert "Please cite: D. G. Feitelson" in info.citation


def test_fcfs_peak_on_a_small_site() -> None:
    """On 8 cores: A runs, B (8) must wait, C (2) queues behind B → 10 cores pending at 120 s.

    D (10 cores) can never start on 8: it stays pending but does not block E.
    """
    trace, stats = hand_built()
    info = trace_info(trace, 8, stats=stats)
    assert info.fcfs_pending is not None
    assert (info.fcfs_pending.cores, info.fcfs_pending.jobs) == (10, 2)
    assert info.fcfs_pending.at == datetime(2026, 3, 2, 0, 2, tzinfo=UTC)
    assert info.fcfs_pending.method == "FCFS on 8 cores"
    assert info.onprem_cores == 8


def test_no_waits_no_recorded_peak() -> None:
    trace, _ = hand_built()
    info = trace_info(trace, 64)
    assert info.waits_known == 0
    assert info.recorded_pending is None
    assert info.recorded_running is None
    assert info.fcfs_pending is None  # 64 cores: nothing ever waits
    assert info.citation == "Acknowledge: someone"


def test_busiest_weeks_are_top_five() -> None:
    jobs = [job(i, i * 7 * DAY, 3600 * (i + 1), 1) for i in range(8)]
    info = trace_info(Trace("weeks", MONDAY, jobs), None)
    assert [w.jobs for w in info.busiest_weeks] == [1] * 5
    assert [round(w.core_hours) for w in info.busiest_weeks] == [8, 7, 6, 5, 4]


def test_json_is_plain_and_complete() -> None:
    trace, stats = hand_built()
    data = as_json(trace_info(trace, 8, stats=stats))
    assert json.loads(json.dumps(data)) == data
    assert data["peak_pending"] == {
        "cores": 12,
        "jobs": 2,
        "at": "2026-03-02T00:00:50+00:00",
        "method": "recorded waits (4 of 5 jobs)",
    }
    assert data["peak_pending_fcfs"]["cores"] == 10
    assert data["busiest_weeks"][0]["week"] == "2026-W11"
    assert data["busiest_weeks"][0]["monday"] == "2026-03-09"
    assert data["jobs"] == 5
    assert data["days"] == 21.0


def test_rendered_table_shows_the_figures() -> None:
    trace, stats = hand_built()
    console = Console(width=160, record=True, color_system=None)
    console.print(render_trace_info(trace_info(trace, 8, stats=stats)))
    text = console.export_text()
    assert "12 cores (2 jobs) at 2026-03-02 00:00 UTC" in text
    assert "peak pending on 8 cores" in text
    assert "2026-W11" in text and "2026-03-09 – 2026-03-15" in text
    assert "5 (2 skipped" in text


def test_rendered_table_says_when_waits_are_missing() -> None:
    console = Console(width=160, record=True, color_system=None)
    console.print(render_trace_info(info_for_file(EXAMPLES / "tiny.csv", 64)))
    text = console.export_text()
    assert "waits not recorded" in text
    assert "peak pending on 64 cores" in text


def test_info_of_the_example_slice() -> None:
    """The bundled KTH slice: recorded demand far above the 100-processor machine."""
    info = info_for_file(EXAMPLES / "KTH-SP2-1996-slice-1997w06-w11.swf.gz", 100)
    assert info.jobs == 3786
    assert info.first_submit.date() == date(1997, 2, 3)
    assert info.busiest_weeks[0].label == "1997-W10"
    assert info.recorded_pending is not None and info.recorded_pending.cores > 1000
    assert info.recorded_running is not None and info.recorded_running.cores <= 100
    assert "Acknowledge: Lars Malinowsky" in info.citation
