"""The trace backlog source: FCFS replay against an injected clock, as the daemon sees it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from burst.backlog.api import BacklogContext
from burst.backlog.trace import FcfsReplay, TraceBacklogConfig, TraceBacklogSource, load_trace
from burst.clock import SimClock
from burst.errors import ConfigError, TraceError
from burst.model import Bucket, Demand, Shape
from burst.registry import config_class

Write = Callable[[str, str], Path]
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "traces" / "KTH-SP2-1996-slice-1997w06-w11.swf.gz"

# On 8 cores, strict FCFS: j1 runs 0-100; j2 (8 cores) waits for it, runs 100-150; j3 and j5
# (2 cores) queue behind j2 and run from 150; j4 (16 cores) never fits on 8 and pends forever.
JOBS = """\
submit,runtime,cpus,job_id
0,100,4,1
10,50,8,2
20,30,2,3
30,10,16,4
40,10,2,5
"""


class SettableClock:
    """A clock an operator could set back (NTP step): the source must cope."""

    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return 0.0


def build(tmp_path: Path, clock: SimClock | SettableClock, **options: object) -> TraceBacklogSource:
    (tmp_path / "jobs.csv").write_text(JOBS)
    cfg = TraceBacklogConfig.model_validate({"kind": "trace", "path": "jobs.csv", **options})
    source = cfg.build(BacklogContext(clock=clock, config_dir=str(tmp_path), extras={"onprem_cores": 8}))
    assert isinstance(source, TraceBacklogSource)
    return source


def at(clock: SimClock, source: TraceBacklogSource, seconds: float) -> Demand:
    clock.advance_to(T0 + timedelta(seconds=seconds))
    return source.poll()


def test_entry_point_names_the_config() -> None:
    assert config_class("burst.backlogs", "trace") is TraceBacklogConfig


def test_replay_in_real_time(tmp_path: Path) -> None:
    clock = SimClock(T0)
    source = build(tmp_path, clock)
    assert source.name == "trace:jobs"

    d = at(clock, source, 0)
    assert (d.at, d.pending, d.running_cores, d.onprem_cores, d.onprem_free_cores) == (T0, (), 4, 8, 4)

    d = at(clock, source, 25)
    assert d.pending == (Bucket(Shape(2), 1, 5.0), Bucket(Shape(8), 1, 15.0))
    assert (d.running_cores, d.onprem_free_cores) == (4, 4)

    d = at(clock, source, 45)
    assert d.pending == (Bucket(Shape(2), 2, 25.0), Bucket(Shape(8), 1, 35.0), Bucket(Shape(16), 1, 15.0))
    assert d.pending_cores == 28
    assert d.oldest_wait_s == 35.0

    d = at(clock, source, 120)  # j1 done at 100, j2 runs; j3, j5 behind it
    assert d.pending == (Bucket(Shape(2), 2, 100.0), Bucket(Shape(16), 1, 90.0))
    assert (d.running_cores, d.onprem_free_cores) == (8, 0)

    d = at(clock, source, 155)  # j2 done at 150, j3 and j5 started then
    assert d.pending == (Bucket(Shape(16), 1, 125.0),)
    assert d.running_cores == 4

    d = at(clock, source, 10_000)  # all done but the job wider than the site
    assert d.pending == (Bucket(Shape(16), 1, 9970.0),)
    assert (d.running_cores, d.onprem_free_cores) == (0, 8)
    assert not d.stale


def test_speedup_scales_time_and_reports_waits_in_clock_seconds(tmp_path: Path) -> None:
    clock = SimClock(T0)
    source = build(tmp_path, clock, speedup=10)
    d = at(clock, source, 2.5)  # trace second 25
    assert d.pending == (Bucket(Shape(2), 1, 0.5), Bucket(Shape(8), 1, 1.5))
    assert source.trace_time(clock.now()) == 25.0


def test_offset_starts_into_the_trace(tmp_path: Path) -> None:
    clock = SimClock(T0)
    source = build(tmp_path, clock, offset="45s")
    d = source.poll()
    assert d.pending_cores == 28
    assert "at +0:00:45" in d.note


def test_clock_set_back_replays_from_the_start(tmp_path: Path) -> None:
    clock = SettableClock(T0)
    source = build(tmp_path, clock)
    clock.at = T0 + timedelta(seconds=120)
    assert source.poll().running_cores == 8
    clock.at = T0 + timedelta(seconds=25)
    d = source.poll()
    assert d.pending == (Bucket(Shape(2), 1, 5.0), Bucket(Shape(8), 1, 15.0))
    assert d.running_cores == 4


def test_trace_from_the_context_when_no_path(tmp_path: Path) -> None:
    (tmp_path / "jobs.csv").write_text(JOBS)
    trace = load_trace(tmp_path / "jobs.csv")
    clock = SimClock(T0)
    source = TraceBacklogConfig(kind="trace").build(
        BacklogContext(clock=clock, extras={"trace": trace, "onprem_cores": 8})
    )
    clock.advance(25)
    assert source.poll().pending_cores == 10


def test_absolute_path_is_used_as_is(tmp_path: Path) -> None:
    (tmp_path / "jobs.csv").write_text(JOBS)
    cfg = TraceBacklogConfig(kind="trace", path=str(tmp_path / "jobs.csv"))
    source = cfg.build(BacklogContext(clock=SimClock(T0), config_dir="/nonexistent", extras={"onprem_cores": 8}))
    assert source.poll().running_cores == 4


def test_missing_onprem_cores_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "jobs.csv").write_text(JOBS)
    cfg = TraceBacklogConfig(kind="trace", path="jobs.csv")
    with pytest.raises(ConfigError, match="on-prem cores"):
        cfg.build(BacklogContext(clock=SimClock(T0), config_dir=str(tmp_path)))


def test_no_trace_at_all_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"backlog\.path"):
        TraceBacklogConfig(kind="trace").build(BacklogContext(clock=SimClock(T0), extras={"onprem_cores": 8}))


def test_missing_trace_file_is_a_trace_error(tmp_path: Path) -> None:
    cfg = TraceBacklogConfig(kind="trace", path="gone.swf")
    with pytest.raises(TraceError, match=r"gone\.swf: trace file not found"):
        cfg.build(BacklogContext(clock=SimClock(T0), config_dir=str(tmp_path), extras={"onprem_cores": 8}))


@pytest.mark.parametrize(
    "raw",
    [
        {"kind": "trace", "path": "x.swf", "speedup": 0},
        {"kind": "trace", "path": "x.swf", "offset": "soon"},
        {"kind": "trace", "path": "x.swf", "onprem_cores": 100},
    ],
)
def test_config_rejects_bad_values_and_unknown_keys(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TraceBacklogConfig.model_validate(raw)


def test_replay_of_the_example_slice_keeps_its_invariants() -> None:
    """Hour by hour over six weeks of KTH on its 100 processors."""
    trace = load_trace(EXAMPLE)
    clock = SimClock(trace.start)
    source = TraceBacklogSource(trace, clock, 100, offset_s=trace.jobs[0].submit_s)
    peak = 0
    for _ in range(6 * 7 * 24 + 24 * 30):
        clock.advance(3600)
        d = source.poll()
        assert 0 <= d.running_cores <= 100
        assert d.running_cores + d.onprem_free_cores == 100
        assert all(b.count > 0 and b.oldest_wait_s >= 0 for b in d.pending)
        peak = max(peak, d.pending_cores)
    assert peak > 1000  # the spike: ten times the machine waiting
    assert d.pending == ()  # a month after the last submit, everything has run
    assert d.running_cores == 0


def test_fcfs_replay_never_goes_back() -> None:
    replay = FcfsReplay([], 4)
    replay.advance(10)
    with pytest.raises(ValueError, match="never goes backwards"):
        replay.advance(5)
