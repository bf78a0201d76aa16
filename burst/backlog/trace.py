"""Job traces: reading SWF and CSV files, and replaying one as a backlog source.

Two formats are read:

* **SWF** (Standard Workload Format of the Parallel Workloads Archive, ``.swf`` or ``.swf.gz``):
  ``;`` header comments, then 18 whitespace-separated numeric fields per job, ``-1`` = unknown.
  A job's shape comes from its allocated processors (field 5, else requested, field 8) and its
  memory (requested memory, field 10, else used memory, field 7; KB per processor, times the
  processors, rounded *up* to a multiple of :data:`MEMORY_QUANTUM_MB` so a trace has a few hundred
  shapes, not one per job).  Jobs with an unknown or zero run time or processor count never
  occupied a machine and are skipped (and counted); cancelled jobs that ran are kept.
* **CSV** with a header naming the columns ``submit,runtime,cpus`` and optionally
  ``memory_mb,gpus,job_id,user``.  ``submit`` is either seconds from the trace start or an ISO-8601
  datetime (one or the other for the whole file).  ``#`` lines are comments; ``# start: <ISO>``
  anchors numeric submit offsets to a date.

The parser is written for the largest archive logs (300 k jobs in a couple of seconds): one
``str.split`` per line, no regexes, and each distinct :class:`~burst.model.Shape` is built once.

The :class:`TraceBacklogSource` replays a trace against the injected clock for the daemon (demo
and test installations without an on-prem batch system): jobs start first-come-first-served on
the on-prem cores, and what has not started yet is the pending demand.  The simulator reads the
trace with :func:`load_trace` and runs its own execution model.
"""

from __future__ import annotations

import gzip
import heapq
import io
import math
import os
from array import array
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from burst.backlog.api import BacklogConfig, BacklogContext, BacklogSource
from burst.clock import Clock
from burst.errors import ConfigError, TraceError
from burst.model import Bucket, Demand, Job, Shape, Trace
from burst.units import MAX_CORES, MAX_TRACE_OFFSET, TraceOffset

#: SWF memory is rounded up to a multiple of this many MB (0 stays 0): shapes stay few.
MEMORY_QUANTUM_MB = 256

#: No submit offset, wait or run time in a trace is longer (30 years): past it a number is a typo
#: or hostile, and every loop over the trace's span (weeks, ticks) would run for ever.
MAX_TRACE_SECONDS = MAX_TRACE_OFFSET.total_seconds()
#: Memory of one job, in MB (a petabyte): past it ``Shape`` sizes overflow 64-bit integers.
MAX_JOB_MEMORY_MB = 10**9
#: A trace starting this late would run past year 9999 (``datetime``'s end) once offsets are added.
LAST_START_YEAR = 9000
#: GPUs of one job.
MAX_JOB_GPUS = 100_000

#: Where submit offsets are anchored when a file names no start date.
FIXED_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The archive asks every user of its logs to cite this paper (and the log's Acknowledge line).
ARCHIVE_CITATION = (
    'D. G. Feitelson, D. Tsafrir and D. Krakov, "Experience with using the Parallel Workloads Archive", '
    "J. Parallel & Distributed Computing 74(10), 2967-2982, 2014"
)

SWF_FIELDS = (
    "job id", "submit time", "wait time", "run time", "allocated processors", "average CPU time",
    "used memory", "requested processors", "requested time", "requested memory", "status", "user",
    "group", "executable", "queue", "partition", "preceding job", "think time",
)  # fmt: skip
_SWF_NUMERIC = frozenset("0123456789.-+eE \t\r\n")
# Header keys kept as the trace's citation text (with their continuation lines).
_CITATION_KEYS = frozenset({"Computer", "Installation", "Acknowledge", "Information", "Note"})
_CSV_COLUMNS = ("submit", "runtime", "cpus", "memory_mb", "gpus", "job_id", "user")
_CSV_REQUIRED = ("submit", "runtime", "cpus")


@dataclass(frozen=True, slots=True)
class TraceStats:
    """What reading a trace file found, beyond the jobs themselves.

    ``waits`` holds each kept job's recorded wait in seconds (SWF field 3), in the order of
    ``Trace.jobs``; ``-1.0`` where the log does not know it (and for every CSV job).  It lives
    here rather than on :class:`~burst.model.Job` because only ``burst trace info`` needs it.
    """

    path: str
    format: Literal["swf", "csv"]
    records: int
    skipped: Mapping[str, int]
    header: Mapping[str, str]
    waits: array[float] = field(default_factory=lambda: array("d"))

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def known_waits(self) -> int:
        return sum(1 for w in self.waits if w >= 0)


@dataclass(frozen=True, slots=True)
class ParsedTrace:
    trace: Trace
    stats: TraceStats


def load_trace(path: str | os.PathLike[str]) -> Trace:
    """The jobs of an SWF or CSV trace file, sorted by submit time.

    Raises :class:`~burst.errors.TraceError` ("FILE:LINE: what is wrong") for a malformed line,
    a missing or unreadable file, or a file without a single runnable job.
    """
    return read_trace(path).trace


def read_trace(path: str | os.PathLike[str]) -> ParsedTrace:
    """Like :func:`load_trace`, plus the header, skip counts and recorded waits."""
    p = str(path)
    if os.path.isdir(p):
        raise TraceError(f"{p}: is a directory, not a trace file")
    fmt = _format_of(p)
    try:
        with _open_text(p) as fh:
            parsed = _parse_swf(p, fh) if fmt == "swf" else _parse_csv(p, fh)
    except FileNotFoundError:
        raise TraceError(f"{p}: trace file not found") from None
    except gzip.BadGzipFile as err:
        raise TraceError(f"{p}: not a valid gzip file ({err})") from None
    except (EOFError, OSError) as err:
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise TraceError(f"{p}: cannot read trace: {reason}") from None
    if parsed.trace.start.year >= LAST_START_YEAR:
        # Offsets (≤ 30 years each for submit, wait and run time) added to it must stay dates.
        year = parsed.trace.start.year
        raise TraceError(f"{p}: the trace starts in {year}; a trace must start before {LAST_START_YEAR}")
    return parsed


def _format_of(path: str) -> Literal["swf", "csv"]:
    name = path.lower().removesuffix(".gz")
    if name.endswith(".swf"):
        return "swf"
    if name.endswith(".csv"):
        return "csv"
    # No telling extension: an SWF file starts with ';' comments or 18 numeric fields.
    try:
        with _open_text(path) as fh:
            for line in fh:
                text = line.strip()
                if text:
                    return "csv" if ("," in text and not text.startswith(";")) else "swf"
    except FileNotFoundError:
        raise TraceError(f"{path}: trace file not found") from None
    except (EOFError, OSError) as err:
        raise TraceError(f"{path}: cannot read trace: {getattr(err, 'strerror', None) or err}") from None
    raise TraceError(f"{path}: empty trace file")


def _open_text(path: str) -> io.TextIOBase:
    # latin-1 never fails to decode: some archive headers carry stray bytes.
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="latin-1")
    return open(path, encoding="latin-1")  # the caller closes it


# --- SWF ---------------------------------------------------------------------------------------


def _parse_swf(path: str, lines: Iterator[str] | io.TextIOBase) -> ParsedTrace:
    header: dict[str, str] = {}
    citation: list[str] = []
    last_key = ""
    shapes: dict[tuple[int, int], Shape] = {}
    users: dict[str, str] = {}
    runtimes: dict[float, float] = {}  # one float object per distinct run time saves ~10 % memory
    jobs: list[Job] = []
    waits = array("d")
    skipped = {"unknown run time": 0, "zero run time": 0, "unknown processors": 0, "unknown submit time": 0}
    records = 0
    in_order = True
    last_submit = -math.inf
    quantum = MEMORY_QUANTUM_MB
    numeric = _SWF_NUMERIC
    make_job = Job

    for lineno, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if parts[0][0] == ";":
            last_key = _header_line(line, header, citation, last_key)
            continue
        records += 1
        if len(parts) != 18 or not numeric.issuperset(line):
            raise TraceError(_swf_problem(path, lineno, parts))
        try:
            submit = float(parts[1])
            wait = float(parts[2])
            runtime = float(parts[3])
            procs = int(float(parts[4]))
            req_procs = int(float(parts[7]))
            mem_kb = float(parts[9])
            used_kb = float(parts[6])
        except (ValueError, OverflowError):  # OverflowError: int(inf) of a processor count like 1e999
            raise TraceError(_swf_problem(path, lineno, parts)) from None
        if min(submit, wait, runtime, procs, req_procs, mem_kb, used_kb) < -1:
            raise TraceError(_swf_negative(path, lineno, parts))
        if (
            max(submit, wait, runtime) > MAX_TRACE_SECONDS
            or max(procs, req_procs) > MAX_CORES
            or max(mem_kb, used_kb) > MAX_JOB_MEMORY_MB * 1024
        ):
            raise TraceError(_swf_too_large(path, lineno, parts))
        if procs <= 0:
            procs = req_procs
        if mem_kb <= 0:
            mem_kb = used_kb
        if submit < 0:
            skipped["unknown submit time"] += 1
            continue
        if runtime < 0:
            skipped["unknown run time"] += 1
            continue
        if runtime == 0:
            skipped["zero run time"] += 1
            continue
        if procs <= 0:
            skipped["unknown processors"] += 1
            continue
        mem_mb = 0
        if mem_kb > 0:
            mem_mb = -(-math.ceil(mem_kb * procs / 1024) // quantum) * quantum
        key = (procs, mem_mb)
        shape = shapes.get(key)
        if shape is None:
            shape = shapes[key] = Shape(procs, mem_mb, 0)
        user_field = parts[11]
        user = users.get(user_field)
        if user is None:
            user = users[user_field] = "" if user_field == "-1" else user_field
        try:
            job_id = int(parts[0])
        except ValueError:
            job_id = int(float(parts[0]))
        jobs.append(make_job(job_id, submit, runtimes.setdefault(runtime, runtime), shape, user))
        waits.append(wait)
        if submit < last_submit:
            in_order = False
        last_submit = submit

    stats_skipped = {k: v for k, v in skipped.items() if v}
    if not jobs:
        raise TraceError(f"{path}: empty trace: no runnable job in {records} records")
    if not in_order:
        jobs, waits = _sorted(jobs, waits)
    start = _swf_start(path, header)
    text = "\n".join(citation)
    trace = Trace(name=_trace_name(path), start=start, jobs=jobs, citation=text)
    stats = TraceStats(path, "swf", records, stats_skipped, header, waits)
    return ParsedTrace(trace, stats)


def _header_line(line: str, header: dict[str, str], citation: list[str], last_key: str) -> str:
    """Record one ``;`` line; returns the key that a following continuation line belongs to."""
    body = line.strip().lstrip(";").strip()
    if not body:
        return ""
    key, sep, value = body.partition(":")
    key = key.strip()
    if sep and key and key[0].isupper() and key.replace("_", "").isalnum():
        value = value.strip()
        header.setdefault(key, value)
        if key in _CITATION_KEYS:
            citation.append(f"{key}: {value}")
            return key
        return ""
    if last_key:  # a continuation of a kept line (an URL, a filter list)
        citation.append("    " + body)
        return last_key
    return ""


def _swf_problem(path: str, lineno: int, parts: Sequence[str]) -> str:
    where = f"{path}:{lineno}"
    if len(parts) != 18:
        return f"{where}: expected 18 fields, found {len(parts)}"
    for i, value in enumerate(parts):
        try:
            float(value)
        except ValueError:
            return f"{where}: field {i + 1} ({SWF_FIELDS[i]}) is not a number: {_clip(value)!r}"
    return f"{where}: malformed job line"


def _swf_too_large(path: str, lineno: int, parts: Sequence[str]) -> str:
    limits = {1: MAX_TRACE_SECONDS, 2: MAX_TRACE_SECONDS, 3: MAX_TRACE_SECONDS, 4: MAX_CORES, 7: MAX_CORES}
    limits |= {6: MAX_JOB_MEMORY_MB * 1024, 9: MAX_JOB_MEMORY_MB * 1024}
    for i, limit in sorted(limits.items()):
        if float(parts[i]) > limit:
            return f"{path}:{lineno}: field {i + 1} ({SWF_FIELDS[i]}) is {_clip(parts[i])}; at most {limit:g}"
    return f"{path}:{lineno}: a field is out of range"


def _clip(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _swf_negative(path: str, lineno: int, parts: Sequence[str]) -> str:
    for i in (1, 2, 3, 4, 6, 7, 9):
        if float(parts[i]) < -1:
            return f"{path}:{lineno}: field {i + 1} ({SWF_FIELDS[i]}) is {parts[i]}; only -1 (unknown) may be negative"
    return f"{path}:{lineno}: a negative field other than -1 (unknown)"


def _swf_start(path: str, header: Mapping[str, str]) -> datetime:
    """``UnixStartTime`` if present, else ``StartTime`` in ``TimeZoneString``, else the fixed epoch."""
    unix = header.get("UnixStartTime", "").split()
    if unix:
        try:
            return datetime.fromtimestamp(float(unix[0]), UTC)
        except (ValueError, OverflowError, OSError):
            raise TraceError(f"{path}: header UnixStartTime is not a number: {unix[0]!r}") from None
    text = header.get("StartTime", "").split()
    if len(text) == 6:  # "Mon Sep 23 14:00:31 CEST 1996": the zone name is not parseable, drop it
        try:
            naive = datetime.strptime(" ".join(text[:4] + text[5:]), "%a %b %d %H:%M:%S %Y")
        except ValueError:
            return FIXED_EPOCH
        try:
            zone = ZoneInfo(header.get("TimeZoneString", "UTC").split()[0])
        except (ZoneInfoNotFoundError, ValueError, IndexError):
            zone = ZoneInfo("UTC")
        return naive.replace(tzinfo=zone).astimezone(UTC)
    return FIXED_EPOCH


def _sorted(jobs: list[Job], waits: array[float]) -> tuple[list[Job], array[float]]:
    order = sorted(range(len(jobs)), key=lambda i: jobs[i].submit_s)
    return [jobs[i] for i in order], array("d", (waits[i] for i in order))


def _trace_name(path: str) -> str:
    name = Path(path).name
    for suffix in (".gz", ".swf", ".csv"):
        name = name.removesuffix(suffix)
    return name


# --- CSV ---------------------------------------------------------------------------------------


def _parse_csv(path: str, lines: Iterator[str] | io.TextIOBase) -> ParsedTrace:
    columns: dict[str, int] | None = None
    anchor: datetime | None = None
    rows: list[tuple[int, float | datetime, float, Shape, int, str]] = []
    shapes: dict[tuple[int, int, int], Shape] = {}
    mode: str = ""  # "offset" or "datetime", fixed by the first row
    records = 0
    skipped = 0

    for lineno, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            name, sep, value = text.lstrip("#").partition(":")
            if sep and name.strip().lower() == "start":
                anchor = _parse_iso(path, lineno, value.strip(), "start")
            continue
        cells = [c.strip() for c in text.split(",")]
        if columns is None:
            columns = _csv_header(path, lineno, cells)
            continue
        records += 1
        if len(cells) != len(columns):
            raise TraceError(f"{path}:{lineno}: expected {len(columns)} fields, found {len(cells)}")
        raw_submit = cells[columns["submit"]]
        submit: float | datetime
        try:
            submit = float(raw_submit)
            kind = "offset"
        except ValueError:
            submit = _parse_iso(path, lineno, raw_submit, "submit")
            kind = "datetime"
        mode = mode or kind
        if kind != mode:
            raise TraceError(f"{path}:{lineno}: submit mixes seconds and dates: {raw_submit!r}")
        runtime = _csv_number(path, lineno, cells, columns, "runtime")
        cpus = _csv_int(path, lineno, cells, columns, "cpus", MAX_CORES)
        memory = _csv_int(path, lineno, cells, columns, "memory_mb", MAX_JOB_MEMORY_MB) if "memory_mb" in columns else 0
        gpus = _csv_int(path, lineno, cells, columns, "gpus", MAX_JOB_GPUS) if "gpus" in columns else 0
        job_id = _csv_int(path, lineno, cells, columns, "job_id", 2**63 - 1) if "job_id" in columns else records
        user = cells[columns["user"]] if "user" in columns else ""
        if isinstance(submit, float) and submit < 0:
            raise TraceError(f"{path}:{lineno}: submit is negative: {_clip(raw_submit)!r}")
        if isinstance(submit, float) and not submit <= MAX_TRACE_SECONDS:  # also NaN
            raise TraceError(
                f"{path}:{lineno}: submit must be seconds between 0 and {MAX_TRACE_SECONDS:g}, "
                f"not {_clip(raw_submit)!r}"
            )
        if runtime > MAX_TRACE_SECONDS:
            raise TraceError(f"{path}:{lineno}: runtime is more than {MAX_TRACE_SECONDS:g} s")
        if runtime == 0 or cpus == 0:
            skipped += 1
            continue
        shape = shapes.get((cpus, memory, gpus))
        if shape is None:
            shape = shapes[(cpus, memory, gpus)] = Shape(cpus, memory, gpus)
        rows.append((job_id, submit, runtime, shape, lineno, user))

    if columns is None or not rows:
        raise TraceError(f"{path}: empty trace: no runnable job in {records} rows")
    if mode == "datetime":
        first = min(r[1] for r in rows if isinstance(r[1], datetime))
        start = anchor if anchor is not None and anchor <= first else first
        last = max(r[1] for r in rows if isinstance(r[1], datetime))
        if (last - start).total_seconds() > MAX_TRACE_SECONDS:
            raise TraceError(f"{path}: the submit dates span more than {MAX_TRACE_SECONDS / 86400 / 366:.0f} years")
        jobs = [
            Job(jid, (sub - start).total_seconds() if isinstance(sub, datetime) else sub, rt, shape, user)
            for jid, sub, rt, shape, _, user in rows
        ]
    else:
        start = anchor or FIXED_EPOCH
        jobs = [Job(jid, float(sub), rt, shape, user) for jid, sub, rt, shape, _, user in rows]  # type: ignore[arg-type]
    jobs.sort(key=lambda j: j.submit_s)
    waits = array("d", [-1.0]) * len(jobs)
    trace = Trace(name=_trace_name(path), start=start, jobs=jobs, citation="")
    header = {"start": start.isoformat()} if anchor else {}
    return ParsedTrace(
        trace, TraceStats(path, "csv", records, {"zero run time or cpus": skipped} if skipped else {}, header, waits)
    )


def _csv_header(path: str, lineno: int, cells: list[str]) -> dict[str, int]:
    names = [c.lower() for c in cells]
    for name in names:
        if name not in _CSV_COLUMNS:
            raise TraceError(
                f"{path}:{lineno}: unknown column {name!r} (a CSV trace has the columns {','.join(_CSV_COLUMNS)})"
            )
    if len(set(names)) != len(names):
        raise TraceError(f"{path}:{lineno}: a column is named twice")
    missing = [c for c in _CSV_REQUIRED if c not in names]
    if missing:
        raise TraceError(f"{path}:{lineno}: the header lacks the column(s) {', '.join(missing)}")
    return {name: i for i, name in enumerate(names)}


def _csv_number(path: str, lineno: int, cells: list[str], columns: Mapping[str, int], name: str) -> float:
    raw = cells[columns[name]]
    try:
        value = float(raw)
    except ValueError:
        raise TraceError(f"{path}:{lineno}: {name} is not a number: {_clip(raw)!r}") from None
    if value < 0 or not math.isfinite(value):
        raise TraceError(f"{path}:{lineno}: {name} must be a finite number ≥ 0, not {_clip(raw)!r}")
    return value


def _csv_int(path: str, lineno: int, cells: list[str], columns: Mapping[str, int], name: str, most: int) -> int:
    raw = cells[columns[name]]
    try:
        value = int(raw) if len(raw) <= 30 else None  # int() of a 5000-digit cell is slow and never sane
    except ValueError:
        value = None
    if value is None:
        raise TraceError(f"{path}:{lineno}: {name} is not a whole number: {_clip(raw)!r}")
    if value < 0:
        raise TraceError(f"{path}:{lineno}: {name} must not be negative: {_clip(raw)!r}")
    if value > most:
        raise TraceError(f"{path}:{lineno}: {name} is {raw}; at most {most}")
    return value


def _parse_iso(path: str, lineno: int, raw: str, what: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise TraceError(f"{path}:{lineno}: {what} is neither seconds nor an ISO-8601 date: {_clip(raw)!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- first-come-first-served replay -------------------------------------------------------------


class FcfsReplay:
    """Jobs of a trace starting in submit order on a fixed number of on-prem cores.

    Strict FCFS without backfilling: the oldest pending job starts as soon as its cores are free,
    and nothing overtakes it.  A job wider than the whole site can never start on-prem; it stays
    pending (it is exactly the demand a burst cluster exists for) but does not block the queue.
    Time only moves forward: :meth:`advance` processes submissions and completions up to ``t``
    (trace seconds) and can be called again with a later ``t``.
    """

    def __init__(self, jobs: Sequence[Job], onprem_cores: int) -> None:
        if onprem_cores < 0:
            raise ValueError("on-prem cores cannot be negative")
        self.jobs = jobs
        self.cores = onprem_cores
        self.free = onprem_cores
        self.now = -math.inf
        self.submitted = 0
        self.pending_cores = 0
        self._queue: deque[Job] = deque()
        self._too_wide: dict[Shape, deque[float]] = {}
        self._running: list[tuple[float, int]] = []  # (end, cpus)
        self._pending: dict[Shape, deque[float]] = {}  # submit times of pending jobs per shape

    def advance(self, t: float) -> None:
        """Process every submission and completion at or before ``t``."""
        if t < self.now:
            raise ValueError("an FCFS replay never goes backwards")
        jobs, running, n = self.jobs, self._running, len(self.jobs)
        while True:
            next_submit = jobs[self.submitted].submit_s if self.submitted < n else math.inf
            next_end = running[0][0] if running else math.inf
            if next_end <= next_submit and next_end <= t:
                self.now = next_end
                while running and running[0][0] == next_end:
                    self.free += heapq.heappop(running)[1]
                self._start_ready()
            elif next_submit <= t:
                self.now = next_submit
                while self.submitted < n and jobs[self.submitted].submit_s == next_submit:
                    self._submit(jobs[self.submitted])
                    self.submitted += 1
                self._start_ready()
            else:
                break
        self.now = max(self.now, t)

    def next_event(self) -> float:
        """Trace time of the next submission or completion (``inf`` when the replay is over)."""
        nxt = self.jobs[self.submitted].submit_s if self.submitted < len(self.jobs) else math.inf
        return min(nxt, self._running[0][0] if self._running else math.inf)

    def _submit(self, job: Job) -> None:
        self.pending_cores += job.shape.cpus
        if job.shape.cpus > self.cores:
            self._too_wide.setdefault(job.shape, deque()).append(job.submit_s)
        else:
            self._queue.append(job)
        self._pending.setdefault(job.shape, deque()).append(job.submit_s)

    def _start_ready(self) -> None:
        queue, running = self._queue, self._running
        while queue and queue[0].shape.cpus <= self.free:
            job = queue.popleft()
            self.free -= job.shape.cpus
            self.pending_cores -= job.shape.cpus
            heapq.heappush(running, (self.now + job.runtime_s, job.shape.cpus))
            waiting = self._pending[job.shape]
            waiting.popleft()
            if not waiting:
                del self._pending[job.shape]

    @property
    def running_cores(self) -> int:
        return self.cores - self.free

    @property
    def pending_jobs(self) -> int:
        return sum(len(q) for q in self._pending.values())

    def buckets(self, time_scale: float = 1.0) -> tuple[Bucket, ...]:
        """Pending work by shape, oldest wait in trace seconds divided by ``time_scale``."""
        out = [
            Bucket(shape, len(submits), max(0.0, (self.now - submits[0]) / time_scale))
            for shape, submits in self._pending.items()
        ]
        out.sort(key=lambda b: b.shape)
        return tuple(out)


# --- the backlog source --------------------------------------------------------------------------


class TraceBacklogConfig(BacklogConfig):
    """``backlog: {kind: trace, path: traces/kth.swf.gz, speedup: 60}``.

    The on-prem capacity the replay runs against is the core ``onprem.cores`` (passed to the
    source in the context extras as ``onprem_cores``).  Without ``path`` the source replays the
    trace the caller put in the extras as ``trace`` (``burst simulate TRACE`` names it on the
    command line).
    """

    kind: str = "trace"
    path: str | None = Field(default=None, description="SWF or CSV trace; relative to the config file")
    speedup: float = Field(default=1.0, gt=0, description="trace seconds replayed per clock second")
    offset: TraceOffset = Field(default=timedelta(0), description="start the replay this far into the trace")

    def build(self, ctx: BacklogContext) -> BacklogSource:
        trace = ctx.extras.get("trace")
        if self.path is not None:
            path = self.path if os.path.isabs(self.path) else os.path.join(ctx.config_dir, self.path)
            trace = load_trace(path)
        if not isinstance(trace, Trace):
            raise ConfigError("backlog.path: a trace backlog needs a trace file (set backlog.path)")
        cores = ctx.extras.get("onprem_cores")
        if not isinstance(cores, int) or isinstance(cores, bool) or cores < 0:
            raise ConfigError("a trace backlog needs the on-prem cores (onprem.cores) in its context")
        return TraceBacklogSource(trace, ctx.clock, cores, speedup=self.speedup, offset_s=self.offset.total_seconds())


class TraceBacklogSource:
    """Replays a trace against a clock: the daemon's demand without an on-prem batch system.

    The replay starts at trace time ``offset_s`` when the source is built and runs ``speedup``
    trace seconds per clock second.  Waits in the demand are in clock seconds.
    """

    def __init__(
        self, trace: Trace, clock: Clock, onprem_cores: int, *, speedup: float = 1.0, offset_s: float = 0.0
    ) -> None:
        if speedup <= 0:
            raise ValueError("speedup must be positive")
        self.name = f"trace:{trace.name}"
        self.trace = trace
        self._clock = clock
        self._origin = clock.now()
        self._speedup = speedup
        self._offset = offset_s
        self._cores = onprem_cores
        self._replay = FcfsReplay(trace.jobs, onprem_cores)

    def trace_time(self, now: datetime) -> float:
        """The trace second the replay has reached at clock time ``now``."""
        return self._offset + (now - self._origin).total_seconds() * self._speedup

    def poll(self) -> Demand:
        now = self._clock.now()
        t = self.trace_time(now)
        if t < self._replay.now:  # the clock was set back: replay again from the start
            self._replay = FcfsReplay(self.trace.jobs, self._cores)
        self._replay.advance(t)
        r = self._replay
        return Demand(
            at=now,
            pending=r.buckets(self._speedup),
            running_cores=r.running_cores,
            onprem_cores=r.cores,
            onprem_free_cores=r.free,
            note=f"trace {self.trace.name} at +{timedelta(seconds=int(max(t, 0)))}",
        )


_: type[BacklogSource] = TraceBacklogSource
