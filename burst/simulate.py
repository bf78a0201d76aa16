"""``burst simulate``: a whole season on a trace, with the real policies, reconciler and store.

The same engine the daemon runs is driven by a discrete-event SimClock over the embedded local
cloud, with the trace replayed through the simulated batch system (:mod:`burst.executor`).
Between ticks the executor processes every job submit and finish at its exact time; long stretches
with no work and no cluster are skipped, so a year of trace runs in seconds.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, overload

from burst.clock import SimClock
from burst.config import Config
from burst.engine import Engine, build_stack
from burst.executor import Executor
from burst.lifecycle import ClusterState
from burst.model import Job, Trace
from burst.policy import PolicyStack
from burst.store import Store

S = ClusterState


@dataclass
class SeasonSummary:
    trace: str
    jobs: int
    unrunnable_jobs: int
    #: runnable jobs still waiting when the simulation ended (no policy bought capacity for them)
    never_started: int
    wait_p50_s: float
    wait_p95_s: float
    wait_max_s: float
    spike_jobs: int
    spike_wait_p95_s: float
    cost_total: float
    cost_by_provider: dict[str, float]
    currency: str
    node_hours: float
    clusters_created: int
    clusters_stuck_deleted: int
    peak_burst_cores: int
    burst_core_hours_used: float
    jobs_on_burst: int
    leaked_clusters: int
    #: jobs killed by accident (a cluster removed under them): must stay 0
    killed_jobs: int
    sim_seconds: float
    wall_seconds: float
    ticks: int
    errors_by_type: dict[str, int] = field(default_factory=dict)
    #: jobs killed on purpose by a budget's opt-in hard stop (announced before it acts)
    budget_killed_jobs: int = 0
    #: create calls that asked a cloud for a new cluster, refused ones included (polls of a
    #: cluster being built are not counted)
    create_requests: int = 0
    create_requests_by_provider: dict[str, int] = field(default_factory=dict)
    #: clusters that became ready (the clusters the season really needed)
    clusters_ready: int = 0

    def as_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in (
            "wait_p50_s",
            "wait_p95_s",
            "wait_max_s",
            "spike_wait_p95_s",
            "sim_seconds",
            "wall_seconds",
            "node_hours",
            "burst_core_hours_used",
        ):
            d[k] = round(d[k], 3)
        d["cost_total"] = round(self.cost_total, 2)
        d["cost_by_provider"] = {k: round(v, 2) for k, v in sorted(self.cost_by_provider.items())}
        return d


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return float(sorted_values[k])


def runnable(jobs: Sequence[Job], cfg: Config, engine: Engine, onprem_cores: int) -> tuple[list[Job], int]:
    """Jobs that fit on-prem or on some offering's node; the rest could never start anywhere."""
    mem = cfg.file.onprem.memory_gb
    onprem_mem = int(mem * 1024) if mem is not None else None
    offs = [(o, engine.limits[o.provider].nodes_per_cluster) for o in engine.offerings]
    ok, skipped = [], 0
    for j in jobs:
        s = j.shape
        fits_onprem = s.gpus == 0 and s.cpus <= onprem_cores and (onprem_mem is None or s.memory_mb <= onprem_mem)
        if fits_onprem or any(o.can_host(s, n) for o, n in offs):
            ok.append(j)
        else:
            skipped += 1
    return ok, skipped


class _Sorted(Sequence[float]):
    """Values in ascending order with the zeros only counted: most jobs of a trace never wait, and a
    list of 300 k float objects is the largest thing a season's summary would build."""

    def __init__(self, values: Iterable[float]) -> None:
        self.zeros = 0
        rest = []
        for v in values:
            if v == 0.0:
                self.zeros += 1
            else:
                rest.append(v)
        rest.sort()
        self.rest = rest
        self.negatives = bisect.bisect_left(rest, 0.0)

    def __len__(self) -> int:
        return self.zeros + len(self.rest)

    @overload
    def __getitem__(self, k: int) -> float: ...
    @overload
    def __getitem__(self, k: slice) -> Sequence[float]: ...
    def __getitem__(self, k: int | slice) -> float | Sequence[float]:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(k)
        if k < self.negatives:
            return self.rest[k]
        if k < self.negatives + self.zeros:
            return 0.0
        return self.rest[k - self.zeros]


Progress = Callable[[float, float], None]


def simulate(
    cfg: Config,
    trace: Trace,
    *,
    onprem_cores: int | None = None,
    store_url: str = "sqlite://",
    progress: Progress | None = None,
    keep_store: bool = False,
    stack: PolicyStack | None = None,
    restart: bool = False,
) -> tuple[SeasonSummary, Store]:
    """Replay ``trace`` through burst.  ``stack`` replaces the config's policies (benchmarks pass
    their baselines' stacks); everything else — cloud, reconciler, store, executor — is the same.

    With ``restart`` burst is a new process at every tick: a new Store on the same database and a
    new Engine with freshly built policies, which resume from the store alone (the cloud and the
    batch system, being outside the process, carry on).  A season decides the same either way;
    the tests hold it to that.  Without it, policy memory is not written to the store at all: a
    simulation that never restarts has no use for it."""
    if restart and (store_url in ("sqlite://", "sqlite:///:memory:") or stack is not None):
        raise ValueError("restart needs a database file (a new process cannot see memory) and the config's policies")
    wall0 = time.perf_counter()
    clock = SimClock(trace.start)
    cores = cfg.file.onprem.cores if onprem_cores is None else onprem_cores
    store = Store(store_url, cfg.file.installation)
    sim = cfg.file.simulation
    # The executor needs the offerings to know which jobs can run; build the engine around it.
    holder: dict[str, object] = {}
    mem = cfg.file.onprem.memory_gb
    executor = Executor(cores, int(mem * 1024) if mem is not None else None, trace.start, sim.spike_factor)
    holder["executor"] = executor
    engine = Engine.build(
        cfg, clock, store=store, backlog=executor, extras=holder, seed=sim.seed, stack=stack, remember=restart
    )
    jobs, unrunnable = runnable(trace.jobs, cfg, engine, cores)
    executor.load(jobs)

    tick_s = sim.tick.total_seconds()
    last_submit = jobs[-1].submit_s if jobs else 0.0
    horizon = last_submit + sim.drain_horizon.total_seconds()
    t0 = math.floor(jobs[0].submit_s / tick_s) * tick_s if jobs else 0.0
    t = t0
    ticks = 0
    peak = 0
    stuck = 0
    errors: dict[str, int] = {}
    while True:
        t += tick_s
        executor.run_until(t)
        clock.advance_to(trace.start + timedelta(seconds=t))
        if restart:
            engine, store = _restarted(engine, store_url)
        res = engine.tick()
        ticks += 1
        stuck += res.step.stuck_deleted
        for _, kind, _msg in res.step.errors:
            errors[kind] = errors.get(kind, 0) + 1
        if res.step.killed:
            # Jobs on a cluster removed at its hard-stop deadline (only budgets set one in a
            # season) are budget kills; the executor counts them when they would have finished.
            now = clock.now()
            for cid, _from, to in res.step.transitions:
                rec = store.get(cid) if to is S.REMOVING or to is S.REMOVED else None
                if rec is not None and rec.drain_deadline is not None and rec.drain_deadline <= now:
                    executor.budget_stopped.add(cid)
        fleet = store.fleet()
        executor.sync(fleet)
        live = sum(c.cores for c in fleet if c.state is S.ACTIVE)
        peak = max(peak, live)
        if progress is not None and ticks % 200 == 0:
            progress(t, horizon)
        if executor.done:
            engine.stack.floors = False  # the season is over: warm pools go too
            if not fleet:
                break
        if t >= horizon:
            break  # jobs still waiting never started (reported); clusters left are leaks
        if engine.idle() and executor.pending_jobs == 0:
            # Nothing runs on burst capacity and nothing waits: jump to the next submit (or policy wake).
            nxt = executor.next_submit_s()
            wake = engine.stack.next_wake(clock.now())
            candidates = [x for x in (nxt, (wake - trace.start).total_seconds() if wake else None) if x is not None]
            if candidates:
                jump = min(candidates)
                if jump > t + tick_s:
                    t = math.floor(jump / tick_s) * tick_s
    if progress is not None:
        progress(horizon, horizon)

    now = clock.now()
    wait, started, spiked = executor.wait, executor.started, executor.spike
    waits = _Sorted(wait[i] for i in range(len(jobs)) if started[i])
    never_started = len(jobs) - len(waits)
    wait_p50, wait_p95, wait_max = quantile(waits, 0.5), quantile(waits, 0.95), waits[-1] if waits else 0.0
    del waits
    spike = _Sorted(wait[i] for i in range(len(jobs)) if started[i] and spiked[i])
    spike_jobs, spike_p95 = len(spike), quantile(spike, 0.95)
    del spike
    by_provider: dict[str, float] = {}
    node_hours = 0.0
    for seg in store.iter_ledger():
        by_provider[seg.provider] = by_provider.get(seg.provider, 0.0) + seg.cost(now)
        if seg.item == "nodes":
            node_hours += seg.hours(now) * seg.quantity
    leaked = len(store.fleet())
    creates = {name: int(getattr(p, "create_requests", 0)) for name, p in engine.providers.items()}
    summary = SeasonSummary(
        trace=trace.name,
        jobs=len(jobs),
        unrunnable_jobs=unrunnable,
        never_started=never_started,
        wait_p50_s=wait_p50,
        wait_p95_s=wait_p95,
        wait_max_s=wait_max,
        spike_jobs=spike_jobs,
        spike_wait_p95_s=spike_p95,
        cost_total=sum(by_provider.values()),
        cost_by_provider=by_provider,
        currency=cfg.file.currency,
        node_hours=node_hours,
        clusters_created=sum(1 for c in store.all_clusters() if c.requested_at is not None),
        clusters_stuck_deleted=stuck,
        peak_burst_cores=peak,
        burst_core_hours_used=executor.burst_core_seconds / 3600,
        jobs_on_burst=sum(executor.on_burst),
        leaked_clusters=leaked,
        killed_jobs=executor.killed_jobs,
        sim_seconds=t - t0,
        wall_seconds=time.perf_counter() - wall0,
        ticks=ticks,
        errors_by_type=errors,
        budget_killed_jobs=executor.budget_killed_jobs,
        create_requests=sum(creates.values()),
        create_requests_by_provider=creates,
        clusters_ready=sum(1 for c in store.all_clusters() if c.ready_at is not None),
    )
    if not keep_store:
        store.close()
    return summary, store


def _restarted(old: Engine, store_url: str) -> tuple[Engine, Store]:
    """The engine a new process would build: nothing carried over but the world outside it
    (providers' clouds, the federation, the batch system) and the season's end (``floors``)."""
    floors = old.stack.floors
    old.store.close()
    store = Store(store_url, old.cfg.file.installation)
    stack = build_stack(old.cfg)
    stack.floors = floors
    engine = Engine(old.cfg, old.clock, store, old.providers, old.federation, old.backlog, stack, remember=True)
    return engine, store


def with_onprem(cfg: Config, cores: int) -> Config:
    file = cfg.file.model_copy(update={"onprem": cfg.file.onprem.model_copy(update={"cores": cores})})
    return replace(cfg, file=file)
