"""CSV traces: columns, offsets or ISO dates, the ``# start`` anchor, and bad lines."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from burst.backlog.trace import FIXED_EPOCH, load_trace, read_trace
from burst.errors import TraceError
from burst.model import Shape

Write = Callable[[str, str], Path]
TINY = Path(__file__).resolve().parents[2] / "examples" / "traces" / "tiny.csv"


def test_offsets_with_all_columns(write: Write) -> None:
    text = "submit,runtime,cpus,memory_mb,gpus\n600,3600,4,8000,0\n0,60,1,0,1\n"
    parsed = read_trace(write("a.csv", text))
    trace = parsed.trace
    assert trace.start == FIXED_EPOCH
    assert [(j.job_id, j.submit_s, j.runtime_s, j.shape) for j in trace.jobs] == [
        (2, 0.0, 60.0, Shape(1, 0, 1)),
        (1, 600.0, 3600.0, Shape(4, 8000, 0)),
    ]
    assert parsed.stats.format == "csv"
    assert list(parsed.stats.waits) == [-1.0, -1.0]
    assert trace.citation == ""


def test_start_comment_anchors_offsets(write: Write) -> None:
    text = "# made by hand\n# start: 2026-03-02T08:00:00+01:00\nsubmit,runtime,cpus\n10,20,2\n"
    trace = load_trace(write("b.csv", text))
    assert trace.start == datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def test_iso_dates_make_the_first_submit_the_start(write: Write) -> None:
    text = (
        "cpus,submit,runtime,user,job_id\n"
        "2,2026-03-02T10:00:00Z,100,alice,17\n"
        "4,2026-03-02T09:30:00,50,bob,18\n"  # naive = UTC
    )
    trace = load_trace(write("c.csv", text))
    assert trace.start == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    assert [(j.job_id, j.submit_s, j.user, j.shape.cpus) for j in trace.jobs] == [
        (18, 0.0, "bob", 4),
        (17, 1800.0, "alice", 2),
    ]


def test_zero_runtime_or_cpus_is_skipped_and_counted(write: Write) -> None:
    parsed = read_trace(write("d.csv", "submit,runtime,cpus\n0,0,1\n1,10,0\n2,10,1\n"))
    assert len(parsed.trace.jobs) == 1
    assert parsed.stats.skipped_total == 2


def test_shapes_are_interned(write: Write) -> None:
    rows = "".join(f"{i},60,2,1024,0\n" for i in range(100))
    trace = load_trace(write("e.csv", "submit,runtime,cpus,memory_mb,gpus\n" + rows))
    assert len({id(j.shape) for j in trace.jobs}) == 1


def test_tiny_example() -> None:
    trace = load_trace(TINY)
    assert len(trace.jobs) == 50
    assert trace.start == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    spike = [j for j in trace.jobs if j.shape == Shape(16, 32768, 0)]
    assert len(spike) == 26
    assert all(3 * 3600 <= j.submit_s < 3 * 3600 + 900 for j in spike)
    assert sum(j.shape.gpus for j in trace.jobs) == 4


@pytest.mark.parametrize(
    ("rows", "line", "message"),
    [
        ("1,2\n", 2, "expected 3 fields, found 2"),
        ("1,2,3,4\n", 2, "expected 3 fields, found 4"),
        ("0,10,1\nabc,10,1\n", 3, "submit is neither seconds nor an ISO-8601 date: 'abc'"),
        ("0,ten,1\n", 2, "runtime is not a number: 'ten'"),
        ("0,10,1.5\n", 2, "cpus is not a whole number: '1.5'"),
        ("0,-10,1\n", 2, "runtime must be a finite number ≥ 0"),
        ("0,10,-1\n", 2, "cpus must not be negative"),
        ("-5,10,1\n", 2, "submit is negative"),
        ("0,10,1\n2026-03-02T10:00:00,10,1\n", 3, "submit mixes seconds and dates"),
    ],
)
def test_bad_row_names_file_and_line(rows: str, line: int, message: str, write: Write) -> None:
    path = write("bad.csv", "submit,runtime,cpus\n" + rows)
    with pytest.raises(TraceError) as err:
        load_trace(path)
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("submit,runtime,cores", "unknown column 'cores'"),
        ("submit,runtime", "lacks the column(s) cpus"),
        ("submit,runtime,cpus,cpus", "a column is named twice"),
    ],
)
def test_bad_header(header: str, message: str, write: Write) -> None:
    path = write("h.csv.gz", f"# comment\n{header}\n0,1,1\n")
    with pytest.raises(TraceError) as err:
        load_trace(path)
    assert str(err.value).startswith(f"{path}:2: ")
    assert message in str(err.value)


def test_bad_start_comment(write: Write) -> None:
    path = write("s.csv", "# start: next monday\nsubmit,runtime,cpus\n0,1,1\n")
    with pytest.raises(TraceError, match=r"s\.csv:1: start is neither seconds nor an ISO-8601 date"):
        load_trace(path)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "submit,runtime,cpus\n", "submit,runtime,cpus\n0,0,4\n"])
def test_empty_csv(text: str, write: Write) -> None:
    with pytest.raises(TraceError, match=r"empty\.csv: empty trace"):
        load_trace(write("empty.csv", text))


def test_sniffs_csv_without_extension(write: Write) -> None:
    assert len(load_trace(write("jobs.txt", "submit,runtime,cpus\n0,1,1\n")).jobs) == 1
