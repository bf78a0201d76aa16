"""The schedule policy: capacity for calendar windows (conferences, reconstruction campaigns).

Operators know their peaks in advance — the weeks before Moriond, a reprocessing campaign — so a
window says *when* and *how much*; this policy wants that capacity for the window's whole length,
tagged with the campaign so the ledger can bill it.

**Pre-warm.**  A cluster takes minutes to tens of minutes to provision, so capacity wanted at the
window start would be late.  The policy starts wanting it ``p90 + margin`` before the window,
where ``p90`` is the provisioning latency of the offering placement will most likely use (the
first preferred provider that can hold the shape and is not backing off, else the cheapest able
one): the p90 measured from the store's own history when there is one, the offering's latency
model otherwise (:meth:`PolicyInput.provisioning_p90_s`).  The margin absorbs the reconcile tick
and the federation join.  After the window the policy simply stops wanting; the backlog policy
keeps whatever the queue still needs.

A window is either a date range (``start``/``end``, UTC; a bare date ``end`` is inclusive) or a
crontab expression with a ``duration``, evaluated by APScheduler's ``CronTrigger`` as a pure
function of time (no scheduler runs here).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from burst.api import (
    JSON,
    MAX_CORES,
    Duration,
    Offering,
    PolicyConfig,
    PolicyInput,
    Shape,
    Want,
    check_version,
    span_from_json,
    span_to_json,
)
from burst.units import format_duration

# --- config -----------------------------------------------------------------------------------


def _parse_when(value: object) -> object:
    """Keep a bare date a date (so an ``end`` date can be inclusive) and a timestamp a datetime,
    even for an explicit midnight like ``2027-03-01T00:00Z`` which pydantic would turn into a date."""
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
        try:
            return datetime.fromisoformat(text.replace(" ", "T", 1))
        except ValueError as err:
            raise ValueError(f"not a date or timestamp: {value!r} (write 2027-03-01 or 2027-03-01T08:00Z)") from err
    return value


When = Annotated[date | datetime, BeforeValidator(_parse_when)]


class ShapeConfig(BaseModel):
    """The per-node job shape a window's capacity must hold (GPU campaigns need GPU offerings)."""

    model_config = ConfigDict(extra="forbid")
    cpus: int = Field(default=1, ge=1, le=MAX_CORES)
    memory_mb: int = Field(default=0, ge=0)
    gpus: int = Field(default=0, ge=0)

    def to_shape(self) -> Shape:
        return Shape(self.cpus, self.memory_mb, self.gpus)


class SchedulePolicyConfig(PolicyConfig):
    """One named window: a date range or a recurring cron window, and how much capacity it needs."""

    kind: Literal["schedule"] = "schedule"
    name: str = Field(
        min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="window name; the campaign tag in the ledger"
    )
    start: When | None = Field(default=None, description="first day (or instant) of the window, UTC")
    end: When | None = Field(default=None, description="last day (inclusive) or end instant (exclusive), UTC")
    cron: str | None = Field(default=None, description="crontab expression (UTC) at which a recurring window opens")
    duration: Duration | None = Field(default=None, description="length of each cron window")
    cores: int | None = Field(default=None, ge=1, le=MAX_CORES, description="burst cores wanted during the window")
    clusters: int | None = Field(default=None, ge=1, description="or: this many clusters of `nodes` nodes")
    nodes: int | None = Field(default=None, ge=1, description="nodes per cluster when `clusters` is given")
    prefer: list[str] = Field(default_factory=list, description="providers to use first, in order")
    prewarm: bool = Field(default=True, description="ask early enough that capacity is ACTIVE at window start")
    margin: Duration = Field(
        default=timedelta(minutes=15), description="safety margin added to the p90 provisioning latency"
    )
    max_prewarm: Duration = Field(
        default=timedelta(hours=12), description="never pre-warm earlier than this before a window"
    )
    shape: ShapeConfig | None = Field(default=None, description="per-node job shape (e.g. GPU campaigns)")

    @model_validator(mode="after")
    def _check(self) -> SchedulePolicyConfig:
        dated = self.start is not None or self.end is not None
        cron = self.cron is not None or self.duration is not None
        if dated == cron:
            raise ValueError("give either start and end, or cron and duration")
        if dated:
            if self.start is None or self.end is None:
                raise ValueError("a dated window needs both start and end")
            if window_bounds(self.start, self.end)[1] <= window_bounds(self.start, self.end)[0]:
                raise ValueError("end must be after start")
        else:
            if self.cron is None or self.duration is None:
                raise ValueError("a cron window needs both cron and duration")
            if self.duration <= timedelta(0):
                raise ValueError("duration must be positive")
            cron_trigger(self.cron)  # raises ValueError with APScheduler's message
        if (self.cores is None) == (self.clusters is None):
            raise ValueError("give either cores, or clusters and nodes")
        if self.clusters is not None and self.nodes is None:
            raise ValueError("clusters needs nodes (nodes per cluster)")
        if self.nodes is not None and self.clusters is None:
            raise ValueError("nodes only applies together with clusters")
        return self

    def build(self) -> SchedulePolicy:
        return SchedulePolicy(self)


# --- time helpers -----------------------------------------------------------------------------


def as_utc(when: date | datetime, *, end: bool = False) -> datetime:
    """A config date/time as an aware UTC datetime; a naive time is UTC, a bare ``end`` date is
    inclusive (the window closes at the following midnight)."""
    if isinstance(when, datetime):
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    day = when + timedelta(days=1) if end else when
    return datetime.combine(day, time(0), tzinfo=UTC)


def window_bounds(start: date | datetime, end: date | datetime) -> tuple[datetime, datetime]:
    return as_utc(start), as_utc(end, end=True)


_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _dow_number(token: str) -> int:
    t = token.strip().lower()
    if t.isdigit():
        n = int(t)
        if not 0 <= n <= 7:
            raise ValueError(f"day of week {token!r} is out of range 0-7")
        return n % 7
    if t[:3] in _DOW_NAMES:
        return _DOW_NAMES.index(t[:3])
    raise ValueError(f"not a day of week: {token!r}")


def crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field rewritten with names, the form APScheduler reads unambiguously.

    In crontab 0 (and 7) is Sunday and 1 Monday; APScheduler's ``CronTrigger`` counts 0 = Monday,
    so ``from_crontab("… 1-5")`` would fire Tuesday to Saturday.  Expanding the field into a set of
    days and writing names (``mon,tue,wed,thu,fri``) also sidesteps ranges that wrap over Sunday,
    which APScheduler rejects.
    """
    f = field.strip()
    if f in {"*", "?"}:
        return "*"
    days: set[int] = set()
    for part in f.split(","):
        rng, _, step_s = part.partition("/")
        step = int(step_s) if step_s else 1
        if step < 1:
            raise ValueError(f"bad step in day of week {part!r}")
        if rng == "*":
            lo, hi = 0, 6
        elif "-" in rng:
            a, b = rng.split("-", 1)
            lo, hi = _dow_number(a), _dow_number(b)
            if b.strip() == "7":
                hi = 7
            if hi < lo:  # a range over Sunday, e.g. fri-mon
                hi += 7
        else:
            lo = hi = _dow_number(rng)
        days.update(d % 7 for d in range(lo, hi + 1, step))
    if len(days) == 7:
        return "*"
    # APScheduler's order (mon first) keeps the printed trigger readable.
    return ",".join(_DOW_NAMES[d] for d in sorted(days, key=lambda d: (d - 1) % 7))


def cron_trigger(expr: str) -> CronTrigger:
    """``CronTrigger`` for a five-field crontab expression in UTC, weekdays converted to names."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"cron needs 5 fields (minute hour day month day-of-week), got {expr!r}")
    if fields[2] not in {"*", "?"} and fields[4] not in {"*", "?"}:
        # crontab fires when *either* field matches, APScheduler only when both do.
        raise ValueError(
            f"cron {expr!r} restricts both day of month and day of week, which crontab and APScheduler "
            "read differently; write two schedule entries instead"
        )
    fields[4] = crontab_weekdays(fields[4])
    try:
        return CronTrigger.from_crontab(" ".join(fields), timezone=UTC)
    except ValueError as err:
        raise ValueError(f"bad cron expression {expr!r}: {err}") from err


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime

    def label(self) -> str:
        """'1–20 Mar', '28 Feb–3 Mar', '2 Mar 08:00–18:00' — short, for reasons."""
        s, e = self.start, self.end
        whole_days = s.time() == time(0) and e.time() == time(0)
        if whole_days:
            last = e - timedelta(days=1)
            if s.date() == last.date():
                return f"{s.day} {s:%b}"
            if (s.year, s.month) == (last.year, last.month):
                return f"{s.day}–{last.day} {s:%b}"
            if s.year == last.year:
                return f"{s.day} {s:%b}–{last.day} {last:%b}"
            return f"{s.day} {s:%b %Y}–{last.day} {last:%b %Y}"
        if s.date() == e.date():
            return f"{s.day} {s:%b %H:%M}–{e:%H:%M}"
        return f"{s.day} {s:%b %H:%M}–{e.day} {e:%b %H:%M}"


# --- offering choice shared with the forecast policy -------------------------------------------


def able_offerings(inp: PolicyInput, shape: Shape | None) -> list[Offering]:
    """Offerings whose clusters can hold ``shape`` (a multi-node job may span a cluster's nodes);
    CPU work never counts GPU flavors while others exist (placement does the same, and GPU nodes
    would skew both price and latency)."""
    able = [o for o in inp.offerings if shape is None or inp.can_host(o, shape)]
    if shape is None or shape.gpus == 0:
        able = [o for o in able if o.gpus == 0] or able
    return able


def likely_offering(inp: PolicyInput, shape: Shape | None, prefer: Sequence[str]) -> Offering | None:
    """The offering placement will most likely use: the first preferred provider that can hold the
    shape and is not backing off, else the cheapest able offering not backing off."""
    able = able_offerings(inp, shape)
    usable = [o for o in able if inp.backoff_until.get(o.provider, inp.now) <= inp.now] or able
    for provider in prefer:
        mine = [o for o in usable if o.provider == provider]
        if mine:
            return min(mine, key=lambda o: o.price_per_core_hour)
    return min(usable, key=lambda o: o.price_per_core_hour, default=None)


def nodes_per_cluster(inp: PolicyInput, off: Offering, nodes: int) -> int:
    """Nodes in one cluster when ``nodes`` are bought on ``off``: clusters provision in parallel,
    so the latency that matters is that of one cluster's size."""
    lim = inp.limits.get(off.provider)
    per = lim.nodes_per_cluster if lim else off.max_nodes_per_cluster
    return max(1, min(nodes, per, off.max_nodes_per_cluster))


def provisioning_p90(inp: PolicyInput, off: Offering, cores: int) -> float:
    nodes = max(1, math.ceil(cores / off.cpus))
    return inp.provisioning_p90_s(off, nodes_per_cluster(inp, off, nodes))


# --- the policy -------------------------------------------------------------------------------


_MAX_WINDOWS = 10_000  # a safety stop for cron expressions that fire every minute


class SchedulePolicy:
    role: Literal["capacity"] = "capacity"

    def __init__(self, cfg: SchedulePolicyConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.shape = cfg.shape.to_shape() if cfg.shape else None
        # Exactly one of the two is set (the config validator guarantees it).
        self._dated = window_bounds(cfg.start, cfg.end) if cfg.start is not None and cfg.end is not None else None
        self._cron = (cron_trigger(cfg.cron), cfg.duration) if cfg.cron and cfg.duration else None
        #: The pre-warm lead computed at the last want(); next_wake() needs it without inputs.
        self._lead: timedelta | None = None

    # memory across processes ---------------------------------------------------------------

    def snapshot(self) -> dict[str, JSON]:
        """Only the last pre-warm lead: without it a new process wakes at ``max_prewarm`` before
        the next window instead of when the old one would have."""
        return {"v": 1, "lead_us": span_to_json(self._lead)}

    def restore(self, state: Mapping[str, JSON]) -> None:
        check_version(state, 1, "schedule")
        self._lead = span_from_json(state["lead_us"])

    # windows -------------------------------------------------------------------------------

    def windows(self, after: datetime) -> Iterator[Window]:
        """Windows that end after ``after``, in order of start."""
        if self._dated is not None:
            start, end = self._dated
            if end > after:
                yield Window(start, end)
            return
        if self._cron is None:
            return
        trigger, dur = self._cron
        fire: datetime | None = trigger.get_next_fire_time(None, after - dur + timedelta(microseconds=1))
        for _ in range(_MAX_WINDOWS):
            if fire is None:
                return
            fire = fire.astimezone(UTC)
            yield Window(fire, fire + dur)
            fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))

    # want ----------------------------------------------------------------------------------

    def _target(self, off: Offering | None) -> tuple[int, str]:
        cfg = self.cfg
        if cfg.cores is not None:
            return cfg.cores, f"{cfg.cores} cores"
        clusters, nodes = cfg.clusters or 0, cfg.nodes or 0
        what = f"{clusters}×{nodes} nodes"
        if off is None:
            return 0, what
        cores = clusters * nodes * off.cpus
        return cores, f"{what} of {off.flavor} ({cores} cores)"

    def lead(self, inp: PolicyInput, off: Offering | None, cores: int) -> tuple[timedelta, str]:
        """How long before a window to start asking, and the latency it is based on."""
        if not self.cfg.prewarm:
            return timedelta(0), "pre-warm off"
        if off is None:
            return self.cfg.margin, "no offering can hold the shape"
        if self.cfg.nodes is not None:  # clusters × nodes: the cluster size is given
            p90 = inp.provisioning_p90_s(off, self.cfg.nodes)
        else:
            p90 = provisioning_p90(inp, off, max(cores, off.cpus))
        source = "measured" if off.provider in inp.latency_p90_s else "model"
        lead = min(timedelta(seconds=p90) + self.cfg.margin, self.cfg.max_prewarm)
        return lead, f"{off.provider} p90 provisioning {format_duration(p90)} ({source})"

    def want(self, inp: PolicyInput) -> list[Want]:
        now = inp.now
        off = likely_offering(inp, self.shape, self.cfg.prefer)
        cores, target = self._target(off)
        lead, why = self.lead(inp, off, cores)
        self._lead = lead
        for w in self.windows(now):
            if w.start - lead > now:
                break
            if cores <= 0:
                return []
            if w.start <= now:
                reason = f"schedule {self.name}: window {w.label()}, {target}"
            else:
                reason = f"pre-warm: {self.name} starts in {format_duration(w.start - now)}; {why}; {target}"
            return [
                Want(
                    cores=cores,
                    policy="schedule",
                    reason=reason,
                    campaign=self.name,
                    shape=self.shape,
                    prefer=tuple(self.cfg.prefer),
                    until=w.end,
                )
            ]
        return []

    def next_wake(self, now: datetime) -> datetime | None:
        """The next pre-warm start, window start or window end after ``now``.  Before the first
        want() the lead is unknown, so the earliest possible pre-warm (``max_prewarm``) is used:
        waking early is harmless, waking late would miss the pre-warm."""
        if not self.cfg.prewarm:
            lead = timedelta(0)
        else:
            lead = self._lead if self._lead is not None else self.cfg.max_prewarm
        best: datetime | None = None
        for w in self.windows(now):
            if best is not None and w.start - lead > best:
                break
            for t in (w.start - lead, w.start, w.end):
                if t > now and (best is None or t < best):
                    best = t
        return best
