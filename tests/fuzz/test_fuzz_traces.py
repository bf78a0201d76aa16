"""Job traces, fuzzed: SWF and CSV files with hostile numbers (NaN, infinities, 1e999, huge
counts), garbage lines and stray bytes either load (and then ``trace info`` finishes, also with
an FCFS replay) or raise TraceError naming the file and line; never a traceback, never a hang."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from burst.backlog.trace import MAX_TRACE_SECONDS, read_trace
from burst.errors import TraceError
from burst.traceinfo import trace_info
from burst.units import MAX_CORES

from .support import FUZZ, HOSTILE_NUMBER_TEXT, watchdog

SANE = st.sampled_from(["1", "2", "4", "60", "3600", "-1", "0", "128", "1000"])
FIELD = st.one_of(SANE, SANE, HOSTILE_NUMBER_TEXT)

SWF_LINE = st.lists(FIELD, min_size=18, max_size=18).map(" ".join)
SWF_TEXT = st.lists(
    st.one_of(SWF_LINE, SWF_LINE, SWF_LINE, st.text(max_size=40), st.sampled_from(["; UnixStartTime: 1e999", ";"])),
    min_size=1,
    max_size=8,
).map("\n".join)

CSV_ROW = st.tuples(FIELD, FIELD, FIELD, FIELD).map(",".join)
CSV_TEXT = st.tuples(
    st.sampled_from(["submit,runtime,cpus,memory_mb", "submit,runtime,cpus,gpus", "submit,runtime,cpus,job_id"]),
    st.lists(st.one_of(CSV_ROW, CSV_ROW, st.text(max_size=30), st.sampled_from(["# start: 9999-12-31"])), max_size=6),
).map(lambda t: "\n".join([t[0], *t[1]]))

ONPREM = st.one_of(st.none(), st.integers(min_value=0, max_value=MAX_CORES))


def _check(path: Path, onprem: int | None) -> None:
    with watchdog():
        try:
            parsed = read_trace(path)
        except TraceError as err:
            assert str(err).startswith(str(path)) and "\n" not in str(err), str(err)
            return
        jobs = parsed.trace.jobs
        assert jobs and all(
            math.isfinite(j.submit_s) and 0 <= j.submit_s <= MAX_TRACE_SECONDS and j.runtime_s > 0 for j in jobs
        )
        assert all(0 < j.shape.cpus <= MAX_CORES for j in jobs)
        info = trace_info(parsed.trace, onprem, stats=parsed.stats)
        assert info.jobs == len(jobs) and math.isfinite(info.core_hours)


@FUZZ
@given(SWF_TEXT, ONPREM)
def test_swf_text_loads_or_is_a_trace_error(
    tmp_path_factory: pytest.TempPathFactory, text: str, onprem: int | None
) -> None:
    path = tmp_path_factory.mktemp("swf") / "fuzz.swf"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    _check(path, onprem)


@FUZZ
@given(CSV_TEXT, ONPREM)
def test_csv_text_loads_or_is_a_trace_error(
    tmp_path_factory: pytest.TempPathFactory, text: str, onprem: int | None
) -> None:
    path = tmp_path_factory.mktemp("csv") / "fuzz.csv"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    _check(path, onprem)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["t.swf", "t.csv", "t.swf.gz", "t.trace"]))
def test_any_bytes_are_a_trace_error_or_a_trace(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, name: str
) -> None:
    path = tmp_path_factory.mktemp("bin") / name
    path.write_bytes(data)
    _check(path, 64)


def test_the_cases_of_the_issue(tmp_path: Path) -> None:
    """`1e999` and `nan` in trace fields: a TraceError naming the field (once OverflowError, or a hang)."""
    ok = "1 0 0 60 4 -1 -1 4 -1 -1 1 1 -1 -1 -1 -1 -1 -1"
    cases = {
        "a.swf": (ok.replace("1 0 0 60 4", "1 1e999 0 60 4", 1), "field 2 (submit time) is 1e999"),
        "b.swf": (ok.replace("60 4 -1", "60 1e999 -1", 1), "fuzz"),
        "c.csv": ("submit,runtime,cpus\nnan,60,4\n", "submit must be seconds between 0 and"),
        "d.csv": ("submit,runtime,cpus\n0,60,99999999999999999999\n", "cpus is 99999999999999999999; at most 10000000"),
        "e.csv": ("submit,runtime,cpus\n0,inf,4\n", "runtime must be a finite number"),
    }
    for name, (text, expected) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(TraceError) as caught:
            read_trace(tmp_path / name)
        assert f"{tmp_path / name}:" in str(caught.value)
        if expected != "fuzz":
            assert expected in str(caught.value)
