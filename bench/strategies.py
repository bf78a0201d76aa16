"""The baselines burst is measured against, as policy stacks for the same engine.

Every strategy runs through :func:`burst.simulate.simulate` with the same on-prem capacity, local
cloud, reconciler, store, executor and clock; only the capacity policy differs.  All baselines use
the config's own placement policy, so the comparison is about *how much and when*, not *where*.

* ``burst`` — the config's policy stack, unchanged;
* ``onprem-only`` — no capacity policy: nothing is ever bought;
* ``static-peak`` — a constant want, large enough for the trace's peak burst demand, from the first
  submit to the last;
* ``reactive-ca`` — cluster-autoscaler style: up as soon as anything pending cannot start on-prem,
  down after 10 minutes unneeded, no calendar, no budget;
* ``cobald`` — the real ``cobald.controller.linear.LinearController`` (PyPI ``cobald``, documented
  defaults) regulating a COBalD ``Pool`` whose supply is burst's active capacity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cobald.controller.linear import LinearController
from cobald.decorator.standardiser import Standardiser
from cobald.interfaces import Pool

from burst.api import Bucket, ClusterState, Offering, PolicyInput, ProviderLimits, Shape, Want
from burst.config import Config
from burst.engine import build_stack
from burst.model import Job
from burst.policy import CapacityPolicy, PolicyConfig, PolicyStack
from burst.registry import config_class

STRATEGIES: tuple[str, ...] = ("burst", "onprem-only", "static-peak", "reactive-ca", "cobald", "lower-bound")
#: Optional variants, run only when asked for: the config's stack plus a forecast policy with its
#: defaults (weekly pattern), to show whether forecasting helps (issue 4, policy 5).
EXTRA: tuple[str, ...] = ("burst+forecast",)
#: Strategies that are simulated (``lower-bound`` is computed offline).
SIMULATED: tuple[str, ...] = (*STRATEGIES[:-1], *EXTRA)


# --- shared views of the demand -------------------------------------------------------------------


def burstable(inp: PolicyInput) -> list[Bucket]:
    """Pending buckets some offering can hold; the rest can only ever run on-prem."""
    return [b for b in inp.demand.pending if any(inp.can_host(o, b.shape) for o in inp.offerings)]


def burst_busy_cores(inp: PolicyInput) -> int:
    """Cores running on burst capacity now: all running work less what runs on-prem."""
    d = inp.demand
    return max(0, d.running_cores - (d.onprem_cores - d.onprem_free_cores))


def largest(buckets: Sequence[Bucket]) -> Shape | None:
    if not buckets:
        return None
    return Shape(
        max(b.shape.cpus for b in buckets),
        max(b.shape.memory_mb for b in buckets),
        max(b.shape.gpus for b in buckets),
    )


def node_cores(offerings: Sequence[Offering]) -> int:
    """Cores of the smallest CPU node on offer: the granularity capacity is bought in."""
    return min((o.cpus for o in offerings if o.gpus == 0), default=1)


def burst_capacity_cores(offerings: Sequence[Offering], limits: dict[str, ProviderLimits]) -> int:
    """The most burst cores the providers' node limits allow (largest CPU flavor per provider)."""
    total = 0
    for prov, lim in limits.items():
        cpus = max((o.cpus for o in offerings if o.provider == prov and o.gpus == 0), default=0)
        total += lim.max_nodes * cpus
    return total


# --- static-peak -------------------------------------------------------------------------------


def peak_burst_demand(jobs: Sequence[Job], onprem_cores: int) -> int:
    """Peak of (cores all jobs would use if each started at its submit) − on-prem cores."""
    events: list[tuple[float, int]] = []
    for j in jobs:
        events.append((j.submit_s, j.shape.cpus))
        events.append((j.submit_s + j.runtime_s, -j.shape.cpus))
    events.sort()  # at equal times a finish (negative) comes first
    load = peak = 0
    for _, delta in events:
        load += delta
        peak = max(peak, load)
    return max(0, peak - onprem_cores)


@dataclass
class ConstantPolicy:
    """Wants the same capacity from ``start`` until ``until``: what an operator does who rents the
    peak for the whole season."""

    cores: int
    until: datetime
    name: str = "static-peak"
    role: Literal["capacity"] = "capacity"

    def want(self, inp: PolicyInput) -> list[Want]:
        if self.cores <= 0 or inp.now >= self.until:
            return []
        return [Want(self.cores, self.name, f"static-peak: {self.cores} cores for the whole trace", until=self.until)]

    def next_wake(self, now: datetime) -> datetime | None:
        return None


# --- reactive-ca -------------------------------------------------------------------------------


@dataclass
class ReactiveCA:
    """Kubernetes cluster-autoscaler's rule over burst capacity.

    Up at once: whenever pending work cannot start on-prem, want enough for all of it on top of
    what already runs on burst capacity (CA adds nodes for every unschedulable pod in one loop).
    Down only after the capacity has been unneeded for ``scale_down_after`` (CA's
    ``--scale-down-unneeded-time`` default, 10 min).  No calendar, no budget, no sustain time.
    """

    scale_down_after: timedelta = timedelta(minutes=10)
    name: str = "reactive-ca"
    role: Literal["capacity"] = "capacity"
    level: int = 0
    below_since: datetime | None = None
    shape: Shape | None = None

    def want(self, inp: PolicyInput) -> list[Want]:
        d = inp.demand
        if not d.stale:
            pending = burstable(inp)
            self.shape = largest(pending) or self.shape
            overflow = max(0, sum(b.cores for b in pending) - d.onprem_free_cores)
            need = burst_busy_cores(inp) + overflow
            if need > self.level:
                self.level, self.below_since = need, None
            elif need < self.level:
                self.below_since = self.below_since or inp.now
                if inp.now - self.below_since >= self.scale_down_after:
                    self.level, self.below_since = need, None
            else:
                self.below_since = None
        if self.level <= 0:
            return []
        return [Want(self.level, self.name, f"reactive-ca: {self.level} cores needed", shape=self.shape)]

    def next_wake(self, now: datetime) -> datetime | None:
        return None


# --- cobald ------------------------------------------------------------------------------------


class BurstPool(Pool):  # type: ignore[misc]
    """A COBalD pool over burst capacity, in cores.

    ``supply`` is the cores of ACTIVE burst clusters; ``allocation`` the fraction of them running
    jobs; ``utilisation`` the same (the simulated batch system has no claimed-but-idle slots).
    COBalD never sees the queue, so an *empty* pool needs a definition, or it never grows from 0:
    it counts as fully allocated and used while burstable work waits beyond on-prem, else as idle.
    """

    def __init__(self) -> None:
        self._demand = 0.0
        self._supply = 0.0
        self._busy = 0.0
        self._waiting = False

    def observe(self, inp: PolicyInput) -> None:
        self._supply = float(sum(c.cores for c in inp.fleet if c.state is ClusterState.ACTIVE))
        self._busy = float(burst_busy_cores(inp))
        self._waiting = sum(b.cores for b in burstable(inp)) > inp.demand.onprem_free_cores

    @property
    def supply(self) -> float:
        return self._supply

    @property
    def demand(self) -> float:
        return self._demand

    @demand.setter
    def demand(self, value: float) -> None:
        self._demand = value

    @property
    def allocation(self) -> float:
        if self._supply <= 0:
            return 1.0 if self._waiting else 0.0
        return min(1.0, self._busy / self._supply)

    @property
    def utilisation(self) -> float:
        return self.allocation


class CobaldPolicy:
    """Drives COBalD's ``LinearController.regulate(interval)`` once per simulated tick; the pool's
    demand (through a ``Standardiser``: 0 … provider limits, in whole nodes) becomes the want."""

    role: Literal["capacity"] = "capacity"
    name = "cobald"

    def __init__(self, maximum_cores: int, granularity: int) -> None:
        self.pool = BurstPool()
        self.standard = Standardiser(self.pool, minimum=0, maximum=maximum_cores, granularity=granularity)
        # Documented defaults: low_utilisation=0.5, high_allocation=0.5, rate=1 (per second).
        self.controller = LinearController(self.standard)
        self._last: datetime | None = None

    def want(self, inp: PolicyInput) -> list[Want]:
        self.pool.observe(inp)
        if self._last is not None and inp.now > self._last and not inp.demand.stale:
            self.controller.regulate((inp.now - self._last).total_seconds())
        if self._last is None or inp.now > self._last:
            self._last = inp.now
        cores = math.floor(self.pool.demand)
        if cores <= 0:
            return []
        return [
            Want(
                cores,
                self.name,
                f"cobald: demand {cores} cores (supply {self.pool.supply:.0f}, allocation {self.pool.allocation:.2f})",
            )
        ]

    def next_wake(self, now: datetime) -> datetime | None:
        return None


# --- the stacks --------------------------------------------------------------------------------


def make_stack(
    strategy: str,
    cfg: Config,
    jobs: Sequence[Job],
    start: datetime,
    onprem_cores: int,
    offerings: Sequence[Offering],
    limits: dict[str, ProviderLimits],
) -> PolicyStack:
    """A fresh stack for one simulated run (policies keep state between ticks)."""
    own = build_stack(cfg)
    if strategy == "burst":
        return own
    if strategy == "burst+forecast":
        if not any(getattr(p, "name", "") == "forecast" for p in own.capacity):
            fc = config_class("burst.policies", "forecast").model_validate({"kind": "forecast"})
            pol = fc.build() if isinstance(fc, PolicyConfig) else None
            if not isinstance(pol, CapacityPolicy):
                raise ValueError("the forecast policy plugin is not installed")
            own.capacity.append(pol)
        return own
    if strategy == "onprem-only":
        return PolicyStack([], [], own.placement)
    if strategy == "static-peak":
        cap = burst_capacity_cores(offerings, limits)
        step = node_cores(offerings)
        peak = min(cap, peak_burst_demand(jobs, onprem_cores))
        cores = math.ceil(peak / step) * step
        until = start + timedelta(seconds=jobs[-1].submit_s if jobs else 0.0)
        return PolicyStack([ConstantPolicy(cores, until)], [], own.placement)
    if strategy == "reactive-ca":
        return PolicyStack([ReactiveCA()], [], own.placement)
    if strategy == "cobald":
        pol = CobaldPolicy(burst_capacity_cores(offerings, limits), node_cores(offerings))
        return PolicyStack([pol], [], own.placement)
    raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(SIMULATED)}")
