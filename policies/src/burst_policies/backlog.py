"""The reactive backlog policy: rent capacity when pending work overflows the on-prem cluster.

It wants as many burst cores as the work that burst capacity could run right now (what already runs
on burst capacity plus what is pending beyond on-prem), but only moves slowly:

* **up** only after the backlog has stayed above ``pending_cores_above`` for ``for`` — or at once
  when it is beyond ``at_once_above`` (a real spike: waiting would only add to every job's wait);
* **down** only after the want has stayed below the current level for ``idle_after``, and never
  within ``cooldown`` of the last raise — so a flapping queue does not create and delete clusters;
* never on a *stale* demand: when the on-prem system cannot be read, the last want is held.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field

from burst.api import (
    JSON,
    MAX_CORES,
    Bucket,
    Duration,
    Offering,
    PolicyConfig,
    PolicyInput,
    Shape,
    StateMismatch,
    Want,
    check_version,
    time_from_json,
    time_to_json,
)
from burst.units import format_duration


class BacklogPolicyConfig(PolicyConfig):
    kind: Literal["backlog"] = "backlog"
    name: str = "backlog"
    pending_cores_above: int = Field(
        default=0, ge=0, le=MAX_CORES, description="burst only when this many cores are pending"
    )
    for_: Duration = Field(default=timedelta(minutes=15), alias="for", description="…for at least this long")
    idle_after: Duration = Field(
        default=timedelta(minutes=30), description="shrink after the want stays lower this long"
    )
    cooldown: Duration = Field(default=timedelta(minutes=10), description="no shrink this soon after a raise")
    headroom: float = Field(default=1.0, gt=0, le=4, description="fraction of the burstable backlog to buy")
    max_cores: int | None = Field(default=None, ge=0, le=MAX_CORES, description="never want more burst cores than this")
    campaign: str = Field(default="", description="campaign tag for capacity this policy buys")
    at_once_above: int | None = Field(
        default=None,
        ge=0,
        le=MAX_CORES,
        description="a backlog of more pending cores than this is a real spike: burst without waiting `for` "
        "(a small one still has to last `for`, so on-prem can absorb a blip)",
    )

    def build(self) -> BacklogPolicy:
        return BacklogPolicy(self)


@dataclass
class _Memory:
    level: int = 0
    above_since: datetime | None = None
    below_since: datetime | None = None
    raised_at: datetime | None = None
    shape: Shape | None = None

    def to_json(self) -> JSON:
        s = self.shape
        return {
            "level": self.level,
            "above_since": time_to_json(self.above_since),
            "below_since": time_to_json(self.below_since),
            "raised_at": time_to_json(self.raised_at),
            "shape": None if s is None else [s.cpus, s.memory_mb, s.gpus],
        }

    @classmethod
    def from_json(cls, v: JSON) -> _Memory:
        if not isinstance(v, dict):
            raise StateMismatch(f"a node class's memory must be an object, not {v!r}")
        level, shape = v["level"], v["shape"]
        if not isinstance(level, int):
            raise StateMismatch(f"level must be whole cores, not {level!r}")
        sh = None
        if shape is not None:
            cpus, mem, gpus = shape if isinstance(shape, list) and len(shape) == 3 else (None, None, None)
            if not (isinstance(cpus, int) and isinstance(mem, int) and isinstance(gpus, int)):
                raise StateMismatch(f"shape must be [cpus, memory_mb, gpus], not {shape!r}")
            sh = Shape(cpus, mem, gpus)
        return cls(
            level,
            time_from_json(v["above_since"]),
            time_from_json(v["below_since"]),
            time_from_json(v["raised_at"]),
            sh,
        )


_VERSION = 1


class BacklogPolicy:
    """GPU and CPU work are tracked apart: GPU jobs only count towards offerings with GPUs, and a
    few GPU jobs must not turn all burst capacity into expensive GPU nodes."""

    role: Literal["capacity"] = "capacity"

    def __init__(self, cfg: BacklogPolicyConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self._mem: dict[str, _Memory] = {}
        self._class_key: tuple[object, ...] = ()
        self._classes: dict[Shape, Offering | None] = {}

    def next_wake(self, now: datetime) -> datetime | None:
        return None

    # memory across processes ---------------------------------------------------------------

    def snapshot(self) -> dict[str, JSON]:
        """Levels and timers per node class, in the order the classes were first seen (that
        order breaks ties when busy burst capacity is shared out)."""
        return {"v": _VERSION, "classes": {cls: m.to_json() for cls, m in self._mem.items()}}

    def restore(self, state: Mapping[str, JSON]) -> None:
        check_version(state, _VERSION, "backlog")
        classes = state["classes"]
        if not isinstance(classes, dict):
            raise StateMismatch("classes must be an object")
        self._mem = {cls: _Memory.from_json(v) for cls, v in classes.items()}

    def want(self, inp: PolicyInput) -> list[Want]:
        """One want per node class: pending work is grouped by the cheapest offering that can hold
        it, so a few 16-core jobs get 16-core nodes without turning all capacity into them."""
        d = inp.demand
        groups: dict[str, list[Bucket]] = {}
        self._node_cores: dict[str, tuple[int, int]] = {}
        for b in d.pending:
            off = self._node_class(inp, b.shape)
            if off is None:
                continue  # fits no offering: on-prem must run it
            key = ("gpu:" if b.shape.gpus else "cpu:") + off.flavor
            groups.setdefault(key, []).append(b)
            self._node_cores[key] = (off.cpus, off.gpus)
        for cls in self._mem:
            groups.setdefault(cls, [])
        busy_burst = max(0, d.running_cores - d.onprem_cores)
        # What runs on burst capacity now is shared among CPU classes in proportion to what each holds.
        cpu = [c for c in groups if c.startswith("cpu:")]
        levels = {c: self._mem[c].level if c in self._mem else 0 for c in cpu}
        total = sum(levels.values())
        out: list[Want] = []
        for cls, buckets in sorted(groups.items()):
            if not cls.startswith("cpu:"):
                share = 0
            elif total:
                share = round(busy_burst * levels[cls] / total)
            else:
                share = busy_burst if cls == max(cpu, key=lambda c: sum(b.cores for b in groups[c])) else 0
            out += self._want_class(cls, buckets, share, inp)
        return out

    def _want_class(self, cls: str, buckets: list[Bucket], busy_burst: int, inp: PolicyInput) -> list[Want]:
        cfg, now, d = self.cfg, inp.now, inp.demand
        m = self._mem.setdefault(cls, _Memory())
        if d.stale:
            reason = f"holding {m.level} {cls} cores: backlog is stale ({d.note or 'source unreadable'})"
            return self._emit(m.level, reason, m, cls)
        pending = sum(self._cores_needed(cls, b) for b in buckets)
        free = d.onprem_free_cores if cls.startswith("cpu:") else 0
        # Jobs wider than the whole on-prem machine can never start there: free cores don't absorb them.
        too_wide = sum(b.cores for b in buckets if b.shape.cpus > d.onprem_cores) if cls.startswith("cpu:") else 0
        overflow = too_wide + max(0, pending - too_wide - free)
        raw = busy_burst + int(overflow * cfg.headroom + 0.999)
        if cfg.max_cores is not None:
            raw = min(raw, cfg.max_cores)
        if buckets:
            m.shape = largest_shape(buckets)

        if pending > cfg.pending_cores_above and overflow > 0:
            m.above_since = m.above_since or now
        else:
            m.above_since = None

        reason = ""
        if raw > m.level:
            m.below_since = None
            sustained = m.above_since is not None and now - m.above_since >= cfg.for_
            spike = cfg.at_once_above is not None and pending > cfg.at_once_above and overflow > 0
            if sustained or spike:
                jobs = sum(b.count for b in buckets)
                oldest = max((b.oldest_wait_s for b in buckets), default=0.0)
                lasted = f"for {format_duration(now - m.above_since)}" if sustained and m.above_since else "at once"
                reason = (
                    f"backlog: {pending} {cls} cores pending ({jobs} jobs, oldest waits {format_duration(oldest)}) "
                    f"{lasted} beyond {free} free on-prem cores"
                )
                m.level, m.raised_at = raw, now
        elif raw < m.level:
            m.below_since = m.below_since or now
            idle_for = now - m.below_since
            cooled = m.raised_at is None or now - m.raised_at >= cfg.cooldown
            if idle_for >= cfg.idle_after and cooled:
                reason = (
                    f"backlog: only {raw} {cls} cores needed for {format_duration(idle_for)}; releasing {m.level - raw}"
                )
                m.level, m.below_since = raw, None
        else:
            m.below_since = None
        if not reason:
            reason = f"backlog: keeping {m.level} {cls} cores ({pending} pending, {busy_burst} busy on burst capacity)"
        return self._emit(m.level, reason, m, cls)

    def _node_class(self, inp: PolicyInput, shape: Shape) -> Offering | None:
        """The cheapest offering whose cluster holds a job of ``shape`` (memoised: shapes repeat
        tick after tick, and offerings and limits only change when the engine is rebuilt)."""
        key = (tuple(inp.offerings), tuple(sorted(inp.limits.items())))
        if key != self._class_key:
            self._class_key, self._classes = key, {}
        if shape not in self._classes:
            able = [o for o in inp.offerings if inp.can_host(o, shape)]
            self._classes[shape] = min(able, key=lambda o: (o.price_per_core_hour, o.cpus)) if able else None
        return self._classes[shape]

    def _cores_needed(self, cls: str, b: Bucket) -> int:
        """Cores of capacity a bucket needs.  GPU jobs are counted by the nodes their GPUs take
        (a 4-core 1-GPU job fills an 8-core 1-GPU node), so placement buys enough GPUs."""
        if b.shape.gpus == 0:
            return b.cores
        cpus, gpus = self._node_cores.get(cls, (b.shape.cpus, b.shape.gpus))
        per_job = max(b.shape.cpus, -(-b.shape.gpus // max(gpus, 1)) * cpus)
        return per_job * b.count

    def _emit(self, cores: int, reason: str, m: _Memory, cls: str) -> list[Want]:
        if cores <= 0:
            if m.level <= 0 and m.above_since is None and m.below_since is None:
                self._mem.pop(cls, None)  # forget classes with nothing to remember
            return []
        return [Want(cores=cores, policy=self.name, reason=reason, campaign=self.cfg.campaign, shape=m.shape)]


def largest_shape(buckets: list[Bucket]) -> Shape:
    """The largest per-node shape among pending buckets, so placement picks a flavor that holds it."""
    return Shape(
        max(b.shape.cpus for b in buckets),
        max(b.shape.memory_mb for b in buckets),
        max(b.shape.gpus for b in buckets),
    )
