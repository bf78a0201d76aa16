"""Scenarios: what goes wrong in a run, and when — drawn from the run's seed, so a run is replayed
exactly by its (scenario, backend, store, seed).

A run's timeline (seconds since its daemons started): 32 cores of 8-core jobs pend on a full
4-core site from the start (two clusters of 2 × 8 cores needed), KubeFed runs one job on each
member as it joins, at ``DROP_AT`` the jobs finish and the queue empties, then burst drains and
removes everything; the run ends when the cloud is empty (or at ``MAX_S``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

SCENARIOS = (
    "baseline",
    "sigkill",
    "sigstop",
    "replicas",
    "cloud_faults",
    "federation_down",
    "backlog_down",
    "pg_restart",
    "budget",
)
#: scenarios that compare against an unrestarted twin (restart regret)
TWINNED = frozenset({"sigkill", "sigstop", "replicas"})
#: scenarios that only make sense on one store
STORES = {"pg_restart": ("postgres",)}
#: scenarios that only make sense on some backends (the budget run needs a per-second-billed cloud)
#: and the host's federation API matters only where KubeFed joins the members (the local cloud's)
BACKENDS = {"budget": ("local",), "federation_down": ("local",)}

PENDING_JOBS = 4
JOB_CPUS = 8
CLUSTER_CORES = 16  # 2 nodes × 8 cores
NEEDED = (PENDING_JOBS * JOB_CPUS + CLUSTER_CORES - 1) // CLUSTER_CORES
TICK_S = 1.0
LEASE_S = 4.0
DROP_AT = 12.0
MAX_S = 45.0
BUDGET = 8.0  # EUR: two clusters at 2 × 900 EUR/h per node spend it in about 8 s


@dataclass(frozen=True)
class Event:
    """At ``at`` seconds: ``kill`` (SIGKILL), ``restart``, ``stop`` (SIGSTOP for ``arg`` seconds, at
    the replica's next side effect — in the middle of its tick — or 3 s later at the latest),
    ``pg_restart`` (PostgreSQL crash-restarted, down ``arg`` seconds) on replica ``replica``."""

    at: float
    kind: str
    replica: str = "a"
    arg: float = 0.0


@dataclass(frozen=True)
class RunSpec:
    scenario: str
    backend: str
    store: str
    seed: int
    replicas: tuple[str, ...] = ("a",)
    events: tuple[Event, ...] = ()
    #: local cloud faults (the provider's ``faults`` section)
    faults: tuple[dict[str, Any], ...] = ()
    #: host API outages: (path fragment, methods, start, end)
    windows: tuple[tuple[str, tuple[str, ...], float, float], ...] = ()
    budget: float | None = None
    twin: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.scenario, self.backend, self.store)

    def untouched(self) -> RunSpec:
        """The twin: the same run with no process killed or stopped."""
        keep = tuple(e for e in self.events if e.kind not in ("kill", "restart", "stop", "cont"))
        return RunSpec(
            self.scenario,
            self.backend,
            self.store,
            self.seed,
            self.replicas[:1],
            keep,
            self.faults,
            self.windows,
            self.budget,
            twin=True,
        )


def make_spec(scenario: str, backend: str, store: str, seed: int) -> RunSpec:
    rng = random.Random(f"{scenario}/{backend}/{store}/{seed}")
    u = rng.uniform
    if scenario == "baseline":
        return RunSpec(scenario, backend, store, seed)
    if scenario == "sigkill":
        events = []
        at = u(1.0, 9.0)
        for _ in range(rng.choice((1, 1, 2))):
            back = at + u(0.0, 2.0)
            events += [Event(at, "kill"), Event(back, "restart")]
            at = back + u(2.0, 5.0)
        return RunSpec(scenario, backend, store, seed, events=tuple(events))
    if scenario == "sigstop":
        at = u(2.0, 8.0)
        down = LEASE_S + u(1.0, 3.0)
        return RunSpec(
            scenario,
            backend,
            store,
            seed,
            ("a", "b"),
            (Event(at, "stop", "leader", arg=down),),
        )
    if scenario == "replicas":
        return RunSpec(scenario, backend, store, seed, ("a", "b"), (Event(u(2.0, 9.0), "kill", "leader"),))
    if scenario == "cloud_faults" and backend == "aws":
        from bench.chaos import aws

        return RunSpec(scenario, backend, store, seed, faults=aws.draw_faults(rng))
    if scenario == "cloud_faults" and backend == "gke":
        from bench.chaos import gke

        return RunSpec(scenario, backend, store, seed, faults=gke.draw_faults(rng))
    if scenario == "cloud_faults" and backend == "magnum":
        from bench.chaos import magnum

        return RunSpec(scenario, backend, store, seed, faults=magnum.draw_faults(rng))
    if scenario == "cloud_faults":
        kinds = ["quota_exceeded", "capacity_unavailable", "throttled", "slow_provisioning", "provisioning_fails"]
        chosen = rng.sample(kinds, rng.randint(1, 3))
        faults = []
        for k in chosen:
            f: dict[str, Any] = {"kind": k, "probability": round(u(0.2, 0.5), 2)}
            if k == "slow_provisioning":
                f["factor"] = 2.0
            faults.append(f)
        return RunSpec(scenario, backend, store, seed, faults=tuple(faults))
    if scenario == "federation_down":
        start = u(1.0, 6.0)
        return RunSpec(
            scenario,
            backend,
            store,
            seed,
            windows=(("kube-federation-system", ("GET", "POST", "PUT", "PATCH", "DELETE"), start, start + u(3, 6)),),
        )
    if scenario == "backlog_down":
        start = u(2.0, 9.0)
        return RunSpec(scenario, backend, store, seed, windows=(("/pods", ("GET",), start, start + u(3, 6)),))
    if scenario == "pg_restart":
        return RunSpec(scenario, backend, store, seed, events=(Event(u(2.0, 9.0), "pg_restart", arg=u(0.5, 2.0)),))
    if scenario == "budget":
        return RunSpec(scenario, backend, store, seed, budget=BUDGET)
    raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")


def plan_runs(
    runs: int, seed: int, scenarios: tuple[str, ...], backends: tuple[str, ...], stores: tuple[str, ...]
) -> list[RunSpec]:
    """``runs`` specs, round-robin over every (scenario, backend, store) cell, seeds from ``seed``."""
    cells = [
        (s, b, st)
        for s in scenarios
        for b in backends
        for st in stores
        if st in STORES.get(s, stores) and b in BACKENDS.get(s, backends)
    ]
    if not cells:
        raise ValueError("no (scenario, backend, store) cell to run")
    return [make_spec(*cells[i % len(cells)], seed + i) for i in range(runs)]
