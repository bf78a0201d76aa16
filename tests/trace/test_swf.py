"""SWF parsing: slices of every real archive log, field mapping, -1 handling and bad lines."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from burst.backlog.trace import FIXED_EPOCH, MEMORY_QUANTUM_MB, load_trace, read_trace
from burst.errors import TraceError
from burst.model import Shape

Write = Callable[[str, str], Path]

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT.parent / "shared" / "traces"  # the archive logs next to the repository (../shared/traces)
REAL_TRACES = {  # file -> UnixStartTime in its header
    "KTH-SP2-1996-2.1-cln.swf.gz": 843480031,
    "LPC-EGEE-2004-1.2-cln.swf.gz": 1091615532,
    "HPC2N-2002-2.2-cln.swf.gz": 1027839845,
    "CEA-Curie-2011-2.1-cln.swf.gz": 1296571124,
}
EXAMPLE = ROOT / "examples" / "traces" / "KTH-SP2-1996-slice-1997w06-w11.swf.gz"

HEADER = """\
; Version: 2.2
; Computer: Test machine
; Acknowledge: A. Person
; Information: http://example.org/
;              http://example.org/more
; UnixStartTime: 1772409600
; MaxProcs: 16
;
"""
START = datetime(2026, 3, 2, tzinfo=UTC)  # UnixStartTime 1772409600


def swf_line(
    job: int,
    submit: float,
    runtime: float,
    procs: int,
    *,
    wait: float = 0,
    req_procs: int = -1,
    used_mem: float = -1,
    req_mem: float = -1,
    status: int = 1,
    user: int = 3,
) -> str:
    """One job line with the 18 SWF fields, the unused ones -1."""
    fields = [job, submit, wait, runtime, procs, -1, used_mem, req_procs, -1, req_mem, status, user]
    fields += [1, -1, 1, 1, -1, -1]
    return "  ".join(f"{f:g}" for f in fields) + "\n"


def head_of(name: str, job_lines: int) -> str:
    """The header and the first ``job_lines`` job lines of a real trace, as text."""
    out: list[str] = []
    with gzip.open(TRACES / name, "rt", encoding="latin-1") as fh:
        jobs = 0
        for line in fh:
            out.append(line)
            if not line.startswith(";") and line.strip():
                jobs += 1
                if jobs == job_lines:
                    break
    return "".join(out)


def expected_jobs(text: str) -> int:
    """Runnable jobs counted the plain way: run time > 0 and allocated or requested processors > 0."""
    n = 0
    for line in text.splitlines():
        f = line.split()
        if not f or f[0].startswith(";"):
            continue
        procs = int(f[4]) if int(f[4]) > 0 else int(f[7])
        n += float(f[3]) > 0 and procs > 0 and float(f[1]) >= 0
    return n


# --- real traces -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REAL_TRACES))
@pytest.mark.parametrize("suffix", [".swf", ".swf.gz"])
def test_slice_of_every_real_trace_parses(name: str, suffix: str, write: Write) -> None:
    text = head_of(name, 3000)
    path = write(name.removesuffix(".swf.gz") + suffix, text)
    parsed = read_trace(path)
    trace = parsed.trace
    assert len(trace.jobs) == expected_jobs(text)
    assert parsed.stats.records == 3000
    assert parsed.stats.skipped_total == 3000 - len(trace.jobs)
    assert trace.start == datetime.fromtimestamp(REAL_TRACES[name], UTC)
    assert "Acknowledge: " in trace.citation
    submits = [j.submit_s for j in trace.jobs]
    assert submits == sorted(submits)
    assert all(j.runtime_s > 0 and j.shape.cpus > 0 for j in trace.jobs)
    # Shapes are interned: one object per distinct shape.
    assert len({id(j.shape) for j in trace.jobs}) == len({j.shape for j in trace.jobs})
    assert len(parsed.stats.waits) == len(trace.jobs)


def test_gz_and_plain_give_the_same_jobs(write: Write) -> None:
    text = head_of("HPC2N-2002-2.2-cln.swf.gz", 2000)
    plain = load_trace(write("h.swf", text))
    gz = load_trace(write("h.swf.gz", text))
    assert plain.jobs == gz.jobs
    assert plain.citation == gz.citation


def test_whole_kth_log() -> None:
    parsed = read_trace(TRACES / "KTH-SP2-1996-2.1-cln.swf.gz")
    assert len(parsed.trace.jobs) == 28467
    assert parsed.stats.skipped == {"zero run time": 8, "unknown processors": 1}
    first = parsed.trace.jobs[0]
    # "15 599850 192180 3477 4 -1 -1 4 53940 -1 1 12 12 ..." — the first job line of the log.
    assert (first.job_id, first.submit_s, first.runtime_s, first.shape, first.user) == (
        15,
        599850.0,
        3477.0,
        Shape(4, 0, 0),
        "12",
    )
    assert parsed.stats.waits[0] == 192180.0
    assert parsed.stats.header["MaxProcs"] == "100"


def test_largest_log_stays_lean() -> None:
    """Curie (313 k records): every record kept or counted as skipped, and a few hundred shared shapes."""
    parsed = read_trace(TRACES / "CEA-Curie-2011-2.1-cln.swf.gz")
    assert parsed.stats.records == 312826
    assert len(parsed.trace.jobs) + parsed.stats.skipped_total == 312826
    shapes = {id(j.shape) for j in parsed.trace.jobs}
    assert len(shapes) < 1000
    # Memory is rounded up to the quantum: that is what keeps per-job memory values from making shapes.
    assert all(j.shape.memory_mb % MEMORY_QUANTUM_MB == 0 for j in parsed.trace.jobs)


def test_citation_keeps_acknowledge_note_and_continuations(write: Write) -> None:
    text = HEADER + "; Note: a first note\n;       continued here\n; MaxNodes: 8\n" + swf_line(1, 0, 10, 1)
    trace = load_trace(write("c.swf", text))
    assert trace.citation.splitlines() == [
        "Computer: Test machine",
        "Acknowledge: A. Person",
        "Information: http://example.org/",
        "    http://example.org/more",
        "Note: a first note",
        "    continued here",
    ]
    assert trace.name == "c"


def test_example_slice_is_unchanged_lines_of_kth() -> None:
    with gzip.open(TRACES / "KTH-SP2-1996-2.1-cln.swf.gz", "rt") as fh:
        original = {line for line in fh if not line.startswith(";")}
    with gzip.open(EXAMPLE, "rt") as fh:
        lines = fh.readlines()
    jobs = [line for line in lines if not line.startswith(";")]
    assert 3000 <= len(jobs) <= 6000
    assert all(line in original for line in jobs)
    header = "".join(line for line in lines if line.startswith(";"))
    assert "Acknowledge: Lars Malinowsky" in header
    assert "SLICE of KTH-SP2-1996-2.1-cln.swf.gz" in header
    trace = load_trace(EXAMPLE)
    assert trace.start == datetime.fromtimestamp(843480031, UTC)
    assert len(trace.jobs) == 3786


# --- field mapping and -1 ---------------------------------------------------------------------


def test_fields_map_to_job(write: Write) -> None:
    text = HEADER + swf_line(7, 100, 3600, 4, wait=30, req_mem=600000, user=42)
    parsed = read_trace(write("m.swf", text))
    job = parsed.trace.jobs[0]
    assert (job.job_id, job.submit_s, job.runtime_s, job.user) == (7, 100.0, 3600.0, "42")
    # 600000 KB per processor × 4 = 2343.75 MB → 2344 → rounded up to 2560 (10 × 256).
    assert job.shape == Shape(4, 2560, 0)
    assert parsed.stats.waits[0] == 30.0
    assert parsed.trace.start == START


def test_unknowns_fall_back_or_skip(write: Write) -> None:
    text = HEADER + "".join(
        [
            swf_line(1, 10, 100, -1, req_procs=8),  # allocated unknown → requested
            swf_line(2, 20, 100, 2, used_mem=1024, req_mem=-1),  # requested memory unknown → used
            swf_line(3, 30, 100, 2, used_mem=-1, req_mem=-1),  # no memory known → 0
            swf_line(4, 40, -1, 2),  # run time unknown → skipped
            swf_line(5, 50, 0, 2),  # never ran → skipped
            swf_line(6, 60, 100, -1, req_procs=-1),  # processors unknown → skipped
            swf_line(7, -1, 100, 2),  # submit unknown → skipped
            swf_line(8, 80, 100, 0, req_procs=3),  # "0 processors used": cancelled before start → requested
            swf_line(9, 90, 500, 4, status=5, wait=-1),  # cancelled but ran: kept, wait unknown
        ]
    )
    parsed = read_trace(write("u.swf", text))
    jobs = {j.job_id: j for j in parsed.trace.jobs}
    assert sorted(jobs) == [1, 2, 3, 8, 9]
    assert jobs[1].shape == Shape(8, 0, 0)
    assert jobs[2].shape == Shape(2, 256, 0)  # 1024 KB × 2 = 2 MB → 256
    assert jobs[3].shape == Shape(2, 0, 0)
    assert jobs[8].shape == Shape(3, 0, 0)
    assert parsed.stats.skipped == {
        "unknown run time": 1,
        "zero run time": 1,
        "unknown processors": 1,
        "unknown submit time": 1,
    }
    assert list(parsed.stats.waits) == [0.0, 0.0, 0.0, 0.0, -1.0]
    assert parsed.stats.known_waits == 4


def test_unsorted_log_is_sorted_with_its_waits(write: Write) -> None:
    text = HEADER + swf_line(1, 500, 10, 1, wait=5) + swf_line(2, 100, 10, 2, wait=1) + swf_line(3, 300, 10, 4, wait=3)
    parsed = read_trace(write("s.swf", text))
    assert [j.job_id for j in parsed.trace.jobs] == [2, 3, 1]
    assert list(parsed.stats.waits) == [1.0, 3.0, 5.0]


def test_float_fields_are_accepted(write: Write) -> None:
    text = HEADER + "1 10.5 0 99.25 2 552.21 -1 2 100 -1 1 1 1 -1 1 1 -1 -1\n"
    job = load_trace(write("f.swf", text)).jobs[0]
    assert (job.submit_s, job.runtime_s) == (10.5, 99.25)


def test_start_from_starttime_when_unixstarttime_is_absent(write: Write) -> None:
    header = "; StartTime: Mon Mar 02 01:00:00 CET 2026\n; TimeZoneString: Europe/Berlin\n"
    trace = load_trace(write("t.swf", header + swf_line(1, 0, 10, 1)))
    assert trace.start == START


def test_fixed_epoch_without_any_start(write: Write) -> None:
    trace = load_trace(write("e.swf", "; Version: 2.2\n" + swf_line(1, 0, 10, 1)))
    assert trace.start == FIXED_EPOCH == datetime(1970, 1, 1, tzinfo=UTC)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1 2 3 4 5\n", "expected 18 fields, found 5"),
        (swf_line(1, 0, 10, 1).rstrip("\n") + " 7\n", "expected 18 fields, found 19"),
        (swf_line(1, 0, 10, 1).replace(" 3 ", " bob ", 1), "field 12 (user) is not a number: 'bob'"),
        ("1 10 0 1e 2 -1 -1 2 100 -1 1 1 1 -1 1 1 -1 -1\n", "field 4 (run time) is not a number: '1e'"),
        ("1 x 0 10 2 -1 -1 2 100 -1 1 1 1 -1 1 1 -1 -1\n", "field 2 (submit time) is not a number: 'x'"),
        (swf_line(1, 0, -5, 1), "field 4 (run time) is -5; only -1 (unknown) may be negative"),
        (swf_line(1, 0, 10, -3), "field 5 (allocated processors) is -3"),
    ],
)
def test_bad_line_names_file_and_line(line: str, message: str, write: Write) -> None:
    good = swf_line(1, 0, 10, 1)
    path = write("bad.swf.gz", HEADER + good + good + line + good)
    lineno = HEADER.count("\n") + 3
    with pytest.raises(TraceError) as err:
        load_trace(path)
    assert str(err.value).startswith(f"{path}:{lineno}: ")
    assert message in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.swf.gz"
    with pytest.raises(TraceError, match=r"nope\.swf\.gz: trace file not found"):
        load_trace(path)


def test_directory_is_not_a_trace(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="is a directory"):
        load_trace(tmp_path)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("empty.swf", ""),
        ("header-only.swf", HEADER),
        ("nothing-ran.swf.gz", HEADER + swf_line(1, 0, 0, 4) + swf_line(2, 5, -1, 4)),
    ],
)
def test_trace_without_runnable_jobs_is_an_error(name: str, text: str, write: Write) -> None:
    path = write(name, text)
    with pytest.raises(TraceError, match=rf"{name}: empty trace"):
        load_trace(path)


def test_not_gzip_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "fake.swf.gz"
    bad.write_bytes(b"this is not gzip at all" * 4)
    with pytest.raises(TraceError, match=r"fake\.swf\.gz: not a valid gzip file"):
        load_trace(bad)


def test_truncated_gzip_is_an_error(write: Write) -> None:
    full = write("full.swf.gz", HEADER + "".join(swf_line(i, i, 10, 1) for i in range(1, 2000)))
    cut = full.with_name("cut.swf.gz")
    cut.write_bytes(full.read_bytes()[:200])
    with pytest.raises(TraceError, match=r"cut\.swf\.gz: cannot read trace"):
        load_trace(cut)


def test_sniffs_swf_without_extension(write: Write) -> None:
    trace = load_trace(write("log.txt", HEADER + swf_line(1, 0, 10, 1)))
    assert len(trace.jobs) == 1


def test_real_slices_count_lines_like_the_file(write: Write) -> None:
    """Line numbers in errors count header lines too: break line N of a real slice and see N."""
    text = head_of("LPC-EGEE-2004-1.2-cln.swf.gz", 500).splitlines(keepends=True)
    n = next(i for i, line in enumerate(text) if not line.startswith(";")) + 100
    text[n] = text[n].replace(" ", " z ", 1)
    path = write("lpc.swf", "".join(text))
    with pytest.raises(TraceError, match=rf"lpc\.swf:{n + 1}: expected 18 fields, found 19"):
        load_trace(path)
