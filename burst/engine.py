"""One reconcile tick, end to end: backlog → demand → policies → plan → reconciler → store.

The engine is the thin shell around pure decisions (COBalD's ``regulate()`` pattern): it gathers
inputs, asks the policy stack, diffs against the fleet and hands the plan to the reconciler.  The
daemon calls :meth:`Engine.tick` on an interval with a RealClock; the simulator calls it with a
SimClock.  ``burst plan`` calls :meth:`Engine.preview`, which never acts.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from burst.backlog.api import BacklogContext, BacklogSource
from burst.clock import Clock
from burst.config import Config
from burst.errors import BacklogUnavailable, ConfigError, FederationError, ProviderError
from burst.federation.api import CountsRunning, Federation, FederationContext, SteersWork
from burst.lifecycle import ClusterRecord, ClusterState
from burst.model import Demand, Offering, Quota
from burst.plan import Plan, make_plan
from burst.policy import (
    JSON,
    CapacityPolicy,
    LearnsFromSamples,
    LimitPolicy,
    Placement,
    PolicyInput,
    PolicyStack,
    ProviderLimits,
    Sample,
    check_version,
    time_from_json,
    time_to_json,
)
from burst.provider import Provider, ProviderContext
from burst.reconciler import Reconciler, StepReport
from burst.registry import config_class
from burst.steering import MemberWeight, describe, member_weights
from burst.store import Store

log = logging.getLogger("burst.engine")
S = ClusterState
#: the engine's own cross-tick memory (the quota cache) lives beside the policies' snapshots
_ENGINE_KEY = "engine:quotas"


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
                clock,
                cfg.file.installation,
                random.Random(rng.random()),
                cfg.config_dir,
                dict(extras or {}),
                cfg.file.reconciler.call_timeout.total_seconds(),
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
        *,
        remember: bool = True,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.store = store
        self.providers = dict(providers)
        #: the federation, if it can count running jobs (checked once: a Protocol check is slow)
        self._counter = federation if isinstance(federation, CountsRunning) else None
        #: the federation, if it can steer new work among members (see burst.steering)
        self._steerer = federation if isinstance(federation, SteersWork) else None
        self._running: dict[str, int] = {}
        self._last_steering = ""
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
        #: keep what the policies remember in the store (a simulation that never restarts opts out)
        self.remember = remember
        #: key → (last snapshot object, its JSON text) as saved to or read from the store
        self._known: dict[str, tuple[object, str]] = {}
        self._resume()

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
        remember: bool = True,
    ) -> Engine:
        extras = dict(extras or {})
        owner = cfg.file.installation
        store = store or Store(cfg.state_url(), owner)
        rng = random.Random(seed)
        providers = {
            name: pc.build(
                name,
                ProviderContext(
                    clock,
                    owner,
                    random.Random(rng.random()),
                    cfg.config_dir,
                    extras,
                    cfg.file.reconciler.call_timeout.total_seconds(),
                ),
            )
            for name, pc in cfg.providers.items()
        }
        federation = cfg.federation.build(FederationContext(clock, owner, cfg.config_dir, extras))
        if backlog is None:
            backlog = cfg.backlog.build(BacklogContext(clock, cfg.config_dir, extras))
        return cls(cfg, clock, store, providers, federation, backlog, stack or build_stack(cfg), remember=remember)

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
        self._running = self.running(inp)
        return make_plan(self.stack.decide(inp), inp.fleet, self.limits, new_id, self._running, shrinkable)

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
        self.reconciler.check_installation()  # another store acts under our name: do nothing
        demand = self.poll_demand()
        inp = self.policy_input(demand)
        plan = self._plan(inp, self._new_id)
        self._record(plan)
        self._save_state()
        self.reconciler.apply(plan)
        report = self.reconciler.step(stop)
        total = report
        replans = 0
        # A provider failed a create (and now backs off): placement picks another in the same tick.
        while report.fallbacks and replans < len(self.providers) and not (stop and stop()):
            replans += 1
            inp = self.policy_input(demand)
            plan = self._plan(inp, self._new_id)
            self._record(plan, note=f"fallback after {', '.join(f'{p}: {e}' for p, e in report.fallbacks.items())}")
            self._save_state()
            self.reconciler.apply(plan)
            report = self.reconciler.step(stop)
            total.merge(report)  # every pass's errors reach the tick result, logs and metrics
        self._sample(demand, inp)
        self._steer()
        return TickResult(self.clock.now(), demand, plan, total, replans)

    def steering(self, fleet: Sequence[ClusterRecord]) -> tuple[MemberWeight, ...]:
        """The member weights a tick hands to a federation that steers work (none when it cannot);
        the running jobs are those the last plan counted."""
        return member_weights(fleet, self._running) if self._steerer is not None else ()

    def _steer(self) -> None:
        """Member weights to a federation that steers work (logged when they change); a failure
        is logged and retried next tick, it never stops the tick."""
        if self._steerer is None:
            return
        weights = self.steering(self.store.fleet())
        line = describe(weights)
        if line != self._last_steering:
            self._last_steering = line
            if weights:
                log.info("steering: %s", line)
        try:
            self._steerer.steer(weights)
        except FederationError as err:
            log.warning("steering failed: %s", err)

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

    # --- memory across processes --------------------------------------------------------------

    def _resume(self) -> None:
        """Pick up where the last process left off: the policies' snapshots (a learner without
        one is seeded from the stored samples), the quota cache, the last decision's summary (so
        it is not recorded twice) and when the next sample is due."""
        last = self.store.decisions(1)
        self._last_summary = last[0]["summary"] if last else ""
        at = self.store.last_sample_at()
        self._next_sample = at + self.cfg.file.reconciler.sample_every if at is not None else None
        if not self.remember:
            return
        fresh = self._restore(self.store.policy_states())
        learners = [p for k, p in self.stack.stateful() if k in fresh and isinstance(p, LearnsFromSamples)]
        if learners:
            samples = [
                Sample(s["at"], s["pending_cores"], s["running_cores"], s["onprem_cores"], s["onprem_free_cores"])
                for s in self.store.samples()
            ]
            for p in learners:
                p.seed(samples)

    def reload_state(self) -> None:
        """Take up snapshots another process wrote since (``burst apply`` beside the daemon, the
        replica that led before a failover); the daemon calls this before each tick."""
        if self.remember:
            self._restore(self.store.policy_states())

    def _restore(self, stored: Mapping[str, str]) -> set[str]:
        """Restore the snapshots whose text differs from what this engine knows; returns the keys of
        stateful policies that have no usable snapshot."""
        states: dict[str, dict[str, JSON]] = {}
        unusable: set[str] = set()
        for key, text in stored.items():
            known = self._known.get(key)
            if known is not None and known[1] == text:
                continue
            try:
                state = json.loads(text)
            except ValueError as err:
                log.warning("stored state of %s is not JSON (%s); starting it fresh", key, err)
                unusable.add(key)
                continue
            if not isinstance(state, dict):
                log.warning("stored state of %s is not an object; starting it fresh", key)
                unusable.add(key)
                continue
            if key == _ENGINE_KEY:
                self._restore_quotas(state)
            else:
                states[key] = state
            self._known[key] = (state, text)
        failed = set(self.stack.restore(states)) & states.keys()
        return {k for k, _ in self.stack.stateful() if k not in stored} | unusable | failed

    def _snapshot_quotas(self) -> dict[str, JSON]:
        quotas: dict[str, JSON] = {
            name: {
                "max_clusters": q.max_clusters,
                "used_clusters": q.used_clusters,
                "max_cores": q.max_cores,
                "used_cores": q.used_cores,
            }
            for name, q in sorted(self._quotas.items())
        }
        return {"v": 1, "at": time_to_json(self._quotas_at), "quotas": quotas}

    def _restore_quotas(self, state: Mapping[str, JSON]) -> None:
        """The quota cache a new process would otherwise refill at once: with it, the cloud is
        asked again on the same tick as the old process would have asked."""
        try:
            check_version(state, 1, "engine quota cache")
            at, raw = time_from_json(state["at"]), state["quotas"]
            if not isinstance(raw, dict):
                raise ValueError("quotas must be an object")
            quotas = {name: _quota(q) for name, q in raw.items() if name in self.providers}
        except (KeyError, TypeError, ValueError) as err:
            log.warning("stored quota cache not usable (%s); asking the clouds again", err)
            return
        self._quotas, self._quotas_at = quotas, at

    def _save_state(self) -> None:
        """Write the snapshots that changed since the last save (after each acting tick's decision;
        ``burst plan`` never calls this: read-only verbs write nothing)."""
        if not self.remember:
            return
        current: dict[str, object] = dict(self.stack.snapshot())
        current[_ENGINE_KEY] = self._snapshot_quotas()
        changed: dict[str, str] = {}
        for key, snap in current.items():
            known = self._known.get(key)
            if known is not None and known[0] is snap:
                continue
            text = json.dumps(snap, separators=(",", ":"))
            if known is None or known[1] != text:
                changed[key] = text
            self._known[key] = (snap, text)
        self.store.save_policy_states(self.clock.now(), changed)

    def idle(self) -> bool:
        """Nothing pending and no cluster alive: ticks would change nothing until new work."""
        d = self._last_demand
        return (d is None or (d.pending_jobs == 0 and not d.stale)) and not self.store.fleet()


def _quota(v: JSON) -> Quota:
    if not isinstance(v, dict):
        raise ValueError(f"a quota must be an object, not {v!r}")
    return Quota(
        _whole(v["max_clusters"]), _whole(v["used_clusters"]) or 0, _whole(v["max_cores"]), _whole(v["used_cores"]) or 0
    )


def _whole(x: JSON) -> int | None:
    if x is None or (isinstance(x, int) and not isinstance(x, bool)):
        return x
    raise ValueError(f"quota numbers must be whole, not {x!r}")
