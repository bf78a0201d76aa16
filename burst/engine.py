"""One reconcile tick, end to end: backlog → demand → policies → plan → reconciler → store.

The engine is the thin shell around pure decisions (COBalD's ``regulate()`` pattern): it gathers
inputs, asks the policy stack, diffs against the fleet and hands the plan to the reconciler.  The
daemon calls :meth:`Engine.tick` on an interval with a RealClock; the simulator calls it with a
SimClock.  ``burst plan`` calls :meth:`Engine.preview`, which never acts.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from burst.backlog.api import BacklogContext, BacklogSource
from burst.clock import Clock
from burst.config import Config
from burst.errors import BacklogUnavailable, ConfigError, FederationError, ProviderError
from burst.federation.api import CountsRunning, Federation, FederationContext
from burst.lifecycle import ClusterState
from burst.model import Demand, Offering, Quota
from burst.plan import Plan, make_plan
from burst.policy import (
    CapacityPolicy,
    LimitPolicy,
    Placement,
    PolicyInput,
    PolicyStack,
    ProviderLimits,
)
from burst.provider import Provider, ProviderContext
from burst.reconciler import Reconciler, StepReport
from burst.registry import config_class
from burst.store import Store

log = logging.getLogger("burst.engine")
S = ClusterState


def build_stack(cfg: Config) -> PolicyStack:
    capacity: list[CapacityPolicy] = []
    limits: list[LimitPolicy] = []
    placement: Placement | None = None
    for pc in cfg.policies:
        pol = pc.build()
        if isinstance(pol, CapacityPolicy) and pol.role == "capacity":
            capacity.append(pol)
        elif isinstance(pol, LimitPolicy) and pol.role == "limit":
            limits.append(pol)
        elif isinstance(pol, Placement) and pol.role == "placement":
            if placement is not None:
                raise ConfigError("policies: more than one placement policy")
            placement = pol
    if placement is None:
        default = config_class("burst.policies", "placement").model_validate({"kind": "placement"})
        placement = default.build()  # type: ignore[attr-defined]
    assert placement is not None
    return PolicyStack(capacity, limits, placement)


def cluster_namer(installation: str, store: Store) -> Any:
    def new_id(provider: str) -> str:
        prov = re.sub(r"[^a-z0-9]", "-", provider.lower())[:12].strip("-") or "p"
        return f"{installation}-{prov}-{store.next_cluster_number():05d}"

    return new_id


def build_providers(
    cfg: Config, clock: Clock, extras: Mapping[str, object] | None = None, seed: int = 0
) -> dict[str, Provider]:
    rng = random.Random(seed)
    return {
        name: pc.build(
            name,
            ProviderContext(
                clock, cfg.file.installation, random.Random(rng.random()), cfg.config_dir, dict(extras or {})
            ),
        )
        for name, pc in cfg.providers.items()
    }


def collect_offerings(cfg: Config, providers: Mapping[str, Provider]) -> list[Offering]:
    """Every provider's offerings, all priced in the config's currency (else a ConfigError).

    ``burst config validate`` runs it too, so a currency mismatch is found before the daemon starts.
    """
    offs: list[Offering] = []
    for p in providers.values():
        offs.extend(p.offerings())
    currencies = {o.currency for o in offs if o.price_per_hour > 0 or o.control_plane_per_hour > 0}
    want = cfg.file.currency
    wrong = sorted(currencies - {want})
    if wrong:
        raise ConfigError(
            f"currency: offerings are priced in {', '.join(wrong)} but the config's currency is "
            f"{want}; set prices in {want} with `prices:` or change `currency`",
            cfg.path,
        )
    return offs


@dataclass
class TickResult:
    at: datetime
    demand: Demand
    plan: Plan
    step: StepReport
    replans: int = 0
    notes: list[str] = field(default_factory=list)


class Engine:
    def __init__(
        self,
        cfg: Config,
        clock: Clock,
        store: Store,
        providers: Mapping[str, Provider],
        federation: Federation,
        backlog: BacklogSource,
        stack: PolicyStack,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.store = store
        self.providers = dict(providers)
        #: the federation, if it can count running jobs (checked once: a Protocol check is slow)
        self._counter = federation if isinstance(federation, CountsRunning) else None
        self.federation = federation
        self.backlog = backlog
        self.stack = stack
        self.owner = cfg.file.installation
        self.reconciler = Reconciler(store, self.providers, federation, clock, cfg.file.reconciler, self.owner)
        self.limits = {
            name: ProviderLimits(p.max_nodes, p.max_clusters, p.nodes_per_cluster, p.priority, p.min_nodes)
            for name, p in cfg.providers.items()
        }
        self._offerings = self._collect_offerings()
        self._quotas: dict[str, Quota] = {}
        self._quotas_at: datetime | None = None
        self._last_demand: Demand | None = None
        self._new_id = cluster_namer(self.owner, store)
        self._last_summary = ""
        self._next_sample: datetime | None = None

    @classmethod
    def build(
        cls,
        cfg: Config,
        clock: Clock,
        *,
        store: Store | None = None,
        backlog: BacklogSource | None = None,
        extras: Mapping[str, object] | None = None,
        seed: int = 0,
        stack: PolicyStack | None = None,
    ) -> Engine:
        extras = dict(extras or {})
        owner = cfg.file.installation
        store = store or Store(cfg.state_url(), owner)
        rng = random.Random(seed)
        providers = {
            name: pc.build(name, ProviderContext(clock, owner, random.Random(rng.random()), cfg.config_dir, extras))
            for name, pc in cfg.providers.items()
        }
        federation = cfg.federation.build(FederationContext(clock, owner, cfg.config_dir, extras))
        if backlog is None:
            backlog = cfg.backlog.build(BacklogContext(clock, cfg.config_dir, extras))
        return cls(cfg, clock, store, providers, federation, backlog, stack or build_stack(cfg))

    def _collect_offerings(self) -> list[Offering]:
        return collect_offerings(self.cfg, self.providers)

    @property
    def offerings(self) -> list[Offering]:
        return self._offerings

    # --- inputs -------------------------------------------------------------------------------

    def poll_demand(self) -> Demand:
        """The backlog now; when the source cannot be read, the last demand marked stale."""
        try:
            d = self.backlog.poll()
        except BacklogUnavailable as err:
            log.warning("backlog unavailable: %s; holding capacity (stale demand)", err)
            last = self._last_demand or Demand(self.clock.now())
            return Demand(
                self.clock.now(),
                last.pending,
                last.running_cores,
                last.onprem_cores,
                last.onprem_free_cores,
                stale=True,
                note=str(err),
            )
        self._last_demand = d
        return d

    def quotas(self) -> dict[str, Quota]:
        now = self.clock.now()
        if self._quotas_at is None or now - self._quotas_at >= timedelta(minutes=5):
            for name, p in self.providers.items():
                try:
                    self._quotas[name] = p.quota()
                except ProviderError as err:
                    log.warning("quota of %s unavailable: %s", name, err)
            self._quotas_at = now
        return self._quotas

    def latency_p90(self) -> dict[str, float]:
        out = {}
        for name in self.providers:
            hist = sorted(self.store.provisioning_latencies(name))
            if len(hist) >= 3:
                out[name] = hist[min(len(hist) - 1, round(0.9 * (len(hist) - 1)))]
        return out

    def policy_input(self, demand: Demand) -> PolicyInput:
        now = self.clock.now()
        return PolicyInput(
            now=now,
            demand=demand,
            fleet=self.store.fleet(),
            offerings=self._offerings,
            spend=self.store.spend(now, self.cfg.file.currency),
            latency_p90_s=self.latency_p90(),
            quotas=self.quotas(),
            backoff_until=self.store.backoffs(),
            limits=self.limits,
        )

    # --- preview and tick ---------------------------------------------------------------------

    def preview(self) -> tuple[PolicyInput, Plan]:
        """What a tick would do now, without acting (cluster ids are provisional)."""
        inp = self.policy_input(self.poll_demand())
        counter = iter(range(1, 10**9))
        return inp, self._plan(inp, lambda p: f"{self.owner}-{p}-new{next(counter)}")

    def _plan(self, inp: PolicyInput, new_id: Callable[[str], str]) -> Plan:
        shrinkable = self.reconciler.releases_nodes()
        return make_plan(self.stack.decide(inp), inp.fleet, self.limits, new_id, self.running(inp), shrinkable)

    def running(self, inp: PolicyInput) -> dict[str, int]:
        """Jobs running on each ACTIVE cluster, when the federation can tell without side effects
        (it picks which clusters to drain); empty when it cannot or the question fails."""
        fed = self._counter
        if fed is None:
            return {}
        try:
            return {c.cluster_id: fed.running(c) for c in inp.fleet if c.state is S.ACTIVE}
        except FederationError as err:
            log.warning("cannot count running jobs per cluster: %s", err)
            return {}

    def tick(self, stop: Callable[[], bool] | None = None) -> TickResult:
        """One reconcile tick.  ``stop`` (the daemon's SIGTERM flag) is checked between steps."""
        demand = self.poll_demand()
        inp = self.policy_input(demand)
        plan = self._plan(inp, self._new_id)
        self._record(plan)
        self.reconciler.apply(plan)
        report = self.reconciler.step(stop)
        replans = 0
        # Quota or capacity errors: placement picks the next provider in the same tick.
        while report.fallbacks and replans < len(self.providers) and not (stop and stop()):
            replans += 1
            inp = self.policy_input(demand)
            plan = self._plan(inp, self._new_id)
            self._record(plan, note=f"fallback after {', '.join(f'{p}: {e}' for p, e in report.fallbacks.items())}")
            self.reconciler.apply(plan)
            report = self.reconciler.step(stop)
        self._sample(demand, inp)
        return TickResult(self.clock.now(), demand, plan, report, replans)

    def _record(self, plan: Plan, note: str = "") -> None:
        d = plan.decision
        if plan.empty and not d.notes and not note:
            return
        summary = "; ".join(a.describe() for a in plan.actions) or "; ".join(d.notes) or note
        if summary == self._last_summary:
            return
        self._last_summary = summary
        detail = {
            "wants": [
                {"cores": w.cores, "policy": w.policy, "campaign": w.campaign, "reason": w.reason} for w in d.wants
            ],
            "targets": [
                {
                    "provider": t.offering.provider,
                    "flavor": t.offering.flavor,
                    "nodes": t.nodes,
                    "campaign": t.campaign,
                    "reason": t.reason,
                }
                for t in d.targets
            ],
            "actions": [
                {
                    "op": a.op.value,
                    "cluster": a.cluster_id,
                    "provider": a.provider,
                    "flavor": a.flavor,
                    "nodes": a.nodes,
                    "reason": a.reason,
                    "cost_per_hour": round(a.cost_per_hour, 4),
                }
                for a in plan.actions
            ],
            "notes": list(d.notes) + ([note] if note else []),
        }
        self.store.record_decision(d.at, summary, detail)

    def _sample(self, demand: Demand, inp: PolicyInput) -> None:
        now = self.clock.now()
        if self._next_sample is not None and now < self._next_sample:
            return
        self._next_sample = now + self.cfg.file.reconciler.sample_every
        burst = sum(c.cores for c in inp.fleet if c.state is S.ACTIVE)
        self.store.add_sample(
            now,
            demand.pending_cores,
            demand.running_cores,
            demand.onprem_cores,
            burst,
            inp.spend.burn_per_hour,
            onprem_free_cores=demand.onprem_free_cores,
        )

    def idle(self) -> bool:
        """Nothing pending and no cluster alive: ticks would change nothing until new work."""
        d = self._last_demand
        return (d is None or (d.pending_jobs == 0 and not d.stale)) and not self.store.fleet()
