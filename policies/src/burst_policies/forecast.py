"""The forecast policy: learn the periodic pattern of demand and pre-warm for predicted peaks.

Batch sites have rhythms — a Monday-morning submission wave, a nightly reprocessing, the same
conference every spring.  The reactive backlog policy pays a full provisioning latency at each
such peak; this policy predicts the peak from the same slot in past periods and asks for the
capacity ``horizon`` ahead (by default the likely offering's p90 provisioning latency plus a
margin), so it is ready when the peak arrives.

What it learns is the *burstable demand*: CPU cores pending beyond the free on-prem cores plus the
work already running on burst capacity.  Counting the latter means its own success (a peak absorbed
by pre-warmed clusters, so nothing pends) does not erase the pattern it learned.

The history is a compact ring buffer on the policy object: one value (the maximum seen) per slot
(``slot``, 1 h by default), for ``lookback`` of the longest period, fed by successive ``want()``
calls — so a replay of the same inputs gives the same answers.  The prediction for a slot is the
``quantile`` of the values at the same phase in past periods (the same weekday-hour in past weeks
for ``period: week``; "year" is 52 weeks, so weekdays stay aligned).  No prediction is made before
``min_periods`` past periods have been seen at that phase.  Off unless configured.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import Field, model_validator

from burst.api import (
    JSON,
    MAX_CORES,
    Demand,
    Duration,
    PolicyConfig,
    PolicyInput,
    PositiveDuration,
    Sample,
    StateMismatch,
    Want,
    check_version,
    span_from_json,
    span_to_json,
)
from burst.units import format_duration

from .schedule import likely_offering, provisioning_p90

PERIODS: dict[str, timedelta] = {"day": timedelta(days=1), "week": timedelta(weeks=1), "year": timedelta(weeks=52)}
_PLURAL = {"day": "days", "week": "weeks", "year": "years"}


Period = Literal["day", "week", "year"]


def _weekly() -> list[Period]:
    return ["week"]


class ForecastPolicyConfig(PolicyConfig):
    kind: Literal["forecast"] = "forecast"
    name: str = "forecast"
    periods: list[Period] = Field(
        default_factory=_weekly, min_length=1, description="rhythms to learn; the largest prediction wins"
    )
    slot: PositiveDuration = Field(default=timedelta(hours=1), description="time resolution of the learned pattern")
    quantile: float = Field(
        default=0.8, gt=0, le=1, description="confidence: quantile of the same slot in past periods"
    )
    min_periods: int = Field(default=2, ge=1, description="past periods seen at a slot before it predicts it")
    lookback: int = Field(default=8, ge=1, description="past periods remembered (of the longest period)")
    horizon: Duration | None = Field(
        default=None, description="how far ahead to pre-warm; unset = p90 provisioning latency + margin"
    )
    margin: Duration = Field(default=timedelta(minutes=15), description="added to the p90 when horizon is unset")
    min_cores: int = Field(default=1, ge=1, le=MAX_CORES, description="ignore predictions below this many cores")
    max_cores: int | None = Field(default=None, ge=1, le=MAX_CORES, description="never want more than this")
    campaign: str = Field(default="", description="campaign tag for capacity this policy buys")
    prefer: list[str] = Field(default_factory=list, description="providers to use first, in order")

    @model_validator(mode="after")
    def _check(self) -> ForecastPolicyConfig:
        s = self.slot.total_seconds()
        if s < 60 or 86400 % s != 0:
            raise ValueError("slot must be at least 1m and divide a day evenly (e.g. 15m, 1h, 3h)")
        return self

    def build(self) -> ForecastPolicy:
        return ForecastPolicy(self)


def burstable_cores(d: Demand) -> int:
    """CPU demand burst capacity could serve now: pending beyond free on-prem plus what already
    runs on burst capacity."""
    pending = sum(b.cores for b in d.pending if b.shape.gpus == 0)
    return max(0, pending - d.onprem_free_cores) + max(0, d.running_cores - d.onprem_cores)


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default) of a non-empty list."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class ForecastPolicy:
    role: Literal["capacity"] = "capacity"

    def __init__(self, cfg: ForecastPolicyConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self._slot_s = int(cfg.slot.total_seconds())
        self._period_slots = {p: int(PERIODS[p].total_seconds()) // self._slot_s for p in cfg.periods}
        longest = max(self._period_slots.values())
        self._span = longest * cfg.lookback  # slots remembered
        self._day_slots = 86400 // self._slot_s
        #: slot index → the largest burstable demand seen in it; keys in increasing order.
        self._seen: dict[int, float] = {}
        self._order: deque[int] = deque()
        self._largest = 0.0
        self._horizon: timedelta | None = cfg.horizon
        self._wanting = False
        #: the last snapshot, until something in it changes (the history is the bulk of it)
        self._snap: dict[str, JSON] | None = None

    # history -------------------------------------------------------------------------------

    def slot_of(self, t: datetime) -> int:
        return int(t.timestamp()) // self._slot_s

    def slot_start(self, slot: int) -> datetime:
        return datetime.fromtimestamp(slot * self._slot_s, tz=UTC)

    def observe(self, t: datetime, cores: float) -> None:
        """Remember ``cores`` at ``t``; older slots than ``lookback`` periods are forgotten."""
        s = self.slot_of(t)
        if self._order and s < self._order[-1]:
            return  # time never goes backwards in one run; ignore a replayed older sample
        #: The largest value ever seen sizes the clusters whose latency sets the horizon (an
        #: over-estimate after old peaks are forgotten only makes the pre-warm a little earlier).
        if cores > self._largest:
            self._largest, self._snap = max(self._largest, cores), None
        if s not in self._seen:
            self._order.append(s)
            self._seen[s] = cores
            self._snap = None
        elif cores > self._seen[s]:
            self._seen[s] = cores
            self._snap = None
        while self._order and self._order[0] <= s - self._span:
            old = self._order.popleft()
            del self._seen[old]
            self._snap = None

    def seed(self, samples: Sequence[Sample]) -> None:
        """Learn the history from stored samples (taken every ``sample_every``, so a slot's
        maximum may be a little lower than the ticks saw) when there is no snapshot to restore."""
        for smp in samples:
            free = smp.onprem_free_cores or 0
            burstable = max(0, smp.pending_cores - free) + max(0, smp.running_cores - smp.onprem_cores)
            self.observe(smp.at, burstable)

    # memory across processes ---------------------------------------------------------------

    def snapshot(self) -> dict[str, JSON]:
        """The learned history and what next_wake() needs; the same object while unchanged."""
        if self._snap is None:
            order = list(self._order)
            self._snap = {
                "v": 1,
                "slot_s": self._slot_s,
                "slots": list[JSON](order),
                "values": list[JSON](self._seen[s] for s in order),
                "largest": self._largest,
                "horizon_us": span_to_json(self._horizon),
                "wanting": self._wanting,
            }
        return self._snap

    def restore(self, state: Mapping[str, JSON]) -> None:
        """A history learned with another ``slot`` means nothing here: refused (seeded instead)."""
        check_version(state, 1, "forecast")
        if state["slot_s"] != self._slot_s:
            raise StateMismatch(f"history has {state['slot_s']}s slots, the config says {self._slot_s}s")
        slots, values, largest = state["slots"], state["values"], state["largest"]
        if not isinstance(slots, list) or not isinstance(values, list) or len(slots) != len(values):
            raise StateMismatch("slots and values must be lists of one length")
        if not all(isinstance(x, int) for x in slots) or not all(isinstance(x, int | float) for x in values):
            raise StateMismatch("slots must be whole numbers and values numbers")
        if not isinstance(largest, int | float):
            raise StateMismatch(f"largest must be a number, not {largest!r}")
        seen: dict[int, float] = dict(zip(slots, values, strict=True))  # type: ignore[arg-type]
        order = deque(sorted(seen))
        if order:  # a shorter lookback than the snapshot's keeps only the newest periods
            while order[0] <= order[-1] - self._span:
                del seen[order.popleft()]
        self._seen, self._order, self._largest = seen, order, largest
        self._horizon = span_from_json(state["horizon_us"])
        self._wanting = bool(state["wanting"])
        self._snap = None

    def history(self) -> list[tuple[datetime, float]]:
        """The remembered (slot start, cores) pairs, oldest first."""
        return [(self.slot_start(s), self._seen[s]) for s in self._order]

    # prediction ----------------------------------------------------------------------------

    def predict(self, slot: int) -> tuple[float, str]:
        """Predicted cores for ``slot`` and how: the largest over the configured periods."""
        best, how = 0.0, ""
        for period, ps in self._period_slots.items():
            vals = [self._seen[slot - k * ps] for k in range(1, self.cfg.lookback + 1) if slot - k * ps in self._seen]
            if len(vals) < self.cfg.min_periods:
                continue
            v = quantile(vals, self.cfg.quantile)
            if v > best or not how:
                best = v
                how = (
                    f"q{self.cfg.quantile * 100:g} of the same slot in {len(vals)} past {_PLURAL[period]}: "
                    f"{min(vals):.0f}–{max(vals):.0f}"
                )
        return best, how

    def horizon(self, inp: PolicyInput, cores: int) -> tuple[timedelta, str]:
        if self.cfg.horizon is not None:
            return self.cfg.horizon, "configured"
        off = likely_offering(inp, None, self.cfg.prefer)
        if off is None:
            return self.cfg.margin, "no offering"
        p90 = provisioning_p90(inp, off, max(cores, off.cpus))
        return timedelta(seconds=p90) + self.cfg.margin, f"{off.provider} p90 provisioning {format_duration(p90)}"

    def want(self, inp: PolicyInput) -> list[Want]:
        now = inp.now
        if not inp.demand.stale:  # a blind tick is not an empty queue: learn nothing from it
            self.observe(now, burstable_cores(inp.demand))
        first = self.slot_of(now)
        horizon, why = self.horizon(inp, max(1, math.ceil(self._largest)))
        if horizon != self._horizon:
            self._horizon, self._snap = horizon, None
        last = self.slot_of(now + horizon)
        peak_slot, peak, how = first, 0.0, ""
        for s in range(first, last + 1):
            v, h = self.predict(s)
            if v > peak:
                peak_slot, peak, how = s, v, h
        cores = math.ceil(peak)
        if self.cfg.max_cores is not None:
            cores = min(cores, self.cfg.max_cores)
        if cores < self.cfg.min_cores:
            self._set_wanting(False)
            return []
        self._set_wanting(True)
        # The predicted peak lasts while the prediction stays up (looked at up to a week, or one
        # period, ahead): when the capacity is expected to be released, for the budget's
        # committed spend.
        end, stop = peak_slot + 1, peak_slot + min(7 * self._day_slots, *self._period_slots.values())
        while end < stop and self.predict(end)[0] >= self.cfg.min_cores:
            end += 1
        at = self.slot_start(peak_slot)
        when = "now" if peak_slot == first else f"in {format_duration(at - now)}"
        reason = (
            f"forecast: {cores} cores predicted {when} ({at:%a %d %b %H:%M}, {how}); "
            f"pre-warming {format_duration(horizon)} ahead ({why})"
        )
        return [
            Want(
                cores=cores,
                policy=self.name,
                reason=reason,
                campaign=self.cfg.campaign,
                prefer=tuple(self.cfg.prefer),
                until=self.slot_start(end),
            )
        ]

    def _set_wanting(self, wanting: bool) -> None:
        if wanting != self._wanting:
            self._wanting, self._snap = wanting, None

    def next_wake(self, now: datetime) -> datetime | None:
        """While wanting: the next slot boundary (the prediction changes per slot).  Otherwise the
        pre-warm time of the first slot in the next day (or horizon, if longer) predicted at or above
        ``min_cores``; when there is none, the time to look again one scan later.  Nothing is
        predicted before any history, so then only new demand can change the answer: None."""
        if not self._seen:
            return None
        cur = self.slot_of(now)
        if self._wanting:
            return self.slot_start(cur + 1)
        horizon = self._horizon if self._horizon is not None else timedelta(0)
        scan = max(self._day_slots, math.ceil(horizon.total_seconds() / self._slot_s) + 1)
        for target in range(cur + 1, cur + scan + 1):
            if self.predict(target)[0] >= self.cfg.min_cores:
                wake = self.slot_start(target) - horizon
                return wake if wake > now else self.slot_start(cur + 1)
        return self.slot_start(cur + scan + 1) - horizon
