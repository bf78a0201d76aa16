"""Prometheus metrics of a running burst: demand, capacity, fleet, spend, budgets, latency, errors.

Every metric lives in a :class:`~prometheus_client.CollectorRegistry` that the caller passes in —
never the process-global default registry — so tests, a daemon and a simulation can each have
their own without names colliding.  :meth:`BurstMetrics.observe_tick` updates them after each
reconcile tick from the engine and its :class:`~burst.engine.TickResult`; it runs on the tick's
thread, and the HTTP exposition (:mod:`burst.status`) only reads the registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from burst.alarms import AlarmSignals, ClusterAge
from burst.lifecycle import ClusterRecord, ClusterState
from burst.model import Demand
from burst.policy import Spend
from burst.report import BudgetLine

if TYPE_CHECKING:
    from burst.engine import Engine, TickResult

S = ClusterState

#: Provisioning takes minutes (Magnum at CERN: 2.5 min for 2 nodes, 23 min for 1 000).
LATENCY_BUCKETS = (60.0, 120.0, 180.0, 300.0, 450.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0)
#: A tick is a few provider calls; a slow one is the thing to see.
TICK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class BurstMetrics:
    """The metric families, registered in ``registry`` on creation."""

    def __init__(self, registry: CollectorRegistry, budgets: Sequence[BudgetLine] = ()) -> None:
        self.registry = registry
        self.budgets = list(budgets)
        r = registry
        self.tick_failures = Counter(
            "burst_tick_failures",
            "Ticks that ended in an exception, by its type (LeaseLost: the lease ended mid-tick)",
            ["error"],
            registry=r,
        )
        self.pending_cores = Gauge(
            "burst_pending_cores", "Cores of pending jobs, by job shape", ["cpus", "memory_mb", "gpus"], registry=r
        )
        self.pending_jobs = Gauge(
            "burst_pending_jobs", "Pending jobs, by job shape", ["cpus", "memory_mb", "gpus"], registry=r
        )
        self.oldest_wait = Gauge(
            "burst_pending_oldest_wait_seconds", "How long the oldest pending job has waited", registry=r
        )
        self.demand_stale = Gauge(
            "burst_demand_stale", "1 when the backlog could not be read and the last demand is held", registry=r
        )
        self.running_cores = Gauge("burst_running_cores", "Cores running jobs, on-prem and burst", registry=r)
        self.onprem_cores = Gauge("burst_onprem_cores", "On-prem capacity in cores", registry=r)
        self.onprem_free_cores = Gauge("burst_onprem_free_cores", "On-prem cores free", registry=r)
        self.burst_cores = Gauge(
            "burst_burst_cores", "Burst capacity taking work (ACTIVE clusters), in cores", ["provider"], registry=r
        )
        self.burst_desired_cores = Gauge(
            "burst_burst_desired_cores",
            "Burst capacity asked for (clusters not yet draining), in cores",
            ["provider"],
            registry=r,
        )
        self.clusters = Gauge(
            "burst_clusters", "Clusters by provider and lifecycle state", ["provider", "state"], registry=r
        )
        self.spend_month = Gauge(
            "burst_spend_month_to_date", "Spend committed this calendar month (UTC)", ["currency"], registry=r
        )
        self.spend_total = Gauge(
            "burst_spend_all_time", "Spend committed since the store began", ["currency"], registry=r
        )
        self.spend_campaign = Gauge(
            "burst_spend_campaign", "Spend committed per campaign tag", ["campaign", "currency"], registry=r
        )
        self.burn = Gauge("burst_burn_per_hour", "What the live fleet costs per hour now", ["currency"], registry=r)
        self.budget_limit = Gauge("burst_budget_limit", "A budget's cap", ["budget", "currency"], registry=r)
        self.budget_spent = Gauge(
            "burst_budget_spent", "Spend counted against a budget's cap", ["budget", "currency"], registry=r
        )
        self.budget_ratio = Gauge(
            "burst_budget_used_ratio", "Spent / cap of a budget (1 = cap reached)", ["budget"], registry=r
        )
        self.hard_stop_at = Gauge(
            "burst_budget_hard_stop_timestamp_seconds",
            "When a policy's hard stop removes its drained clusters even if jobs run there (Unix time; "
            "0 = none announced).  Set from the tick that announces it, before it acts",
            ["policy"],
            registry=r,
        )
        self._hard_stop_policies: set[str] = set()
        self.latency = Histogram(
            "burst_provisioning_latency_seconds",
            "Create request to cluster ready",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "burst_errors", "Errors seen by the reconciler, by provider and kind", ["provider", "kind"], registry=r
        )
        self.backoff = Gauge(
            "burst_provider_backoff_seconds",
            "How much longer placement avoids a provider after failed creates (0 = not backing off)",
            ["provider"],
            registry=r,
        )
        self.transitions = Counter(
            "burst_transitions", "Lifecycle transitions, by target state", ["provider", "to_state"], registry=r
        )
        self.ticks = Counter("burst_ticks", "Reconcile ticks run", registry=r)
        self.tick_duration = Histogram(
            "burst_tick_duration_seconds", "Wall time of one reconcile tick", buckets=TICK_BUCKETS, registry=r
        )
        self.last_tick = Gauge("burst_last_tick_timestamp_seconds", "When the last tick ran (Unix time)", registry=r)
        self._latency_seen: set[str] = set()
        for b in self.budgets:
            self.budget_limit.labels(b.label, b.currency).set(b.limit)

    # --- pieces, usable on their own ----------------------------------------------------------

    def observe_demand(self, demand: Demand) -> None:
        self.pending_cores.clear()
        self.pending_jobs.clear()
        for b in demand.pending:
            labels = (str(b.shape.cpus), str(b.shape.memory_mb), str(b.shape.gpus))
            self.pending_cores.labels(*labels).inc(b.cores)
            self.pending_jobs.labels(*labels).inc(b.count)
        self.oldest_wait.set(demand.oldest_wait_s)
        self.demand_stale.set(1 if demand.stale else 0)
        self.running_cores.set(demand.running_cores)
        self.onprem_cores.set(demand.onprem_cores)
        self.onprem_free_cores.set(demand.onprem_free_cores)

    def observe_fleet(self, fleet: Iterable[ClusterRecord], providers: Iterable[str] = ()) -> None:
        """Counts per (provider, state); every state of every known provider is exported, zeros
        included, so a cluster leaving a state shows as a drop rather than a vanished series."""
        clusters = list(fleet)
        names = sorted(set(providers) | {c.provider for c in clusters})
        for p in names:
            for st in S:
                if st is not S.REMOVED:
                    self.clusters.labels(p, st.value).set(0)
            self.burst_cores.labels(p).set(0)
            self.burst_desired_cores.labels(p).set(0)
        for c in clusters:
            self.clusters.labels(c.provider, c.state.value).inc()
            if c.state is S.ACTIVE:
                self.burst_cores.labels(c.provider).inc(c.cores)
            if c.state in (S.PLANNED, S.PROVISIONING, S.JOINING, S.ACTIVE):
                self.burst_desired_cores.labels(c.provider).inc(c.desired_cores)
            if c.ready_at is not None and c.requested_at is not None and c.cluster_id not in self._latency_seen:
                self._latency_seen.add(c.cluster_id)
                self.latency.labels(c.provider).observe((c.ready_at - c.requested_at).total_seconds())

    def observe_spend(self, spend: Spend, total: float) -> None:
        cur = spend.currency
        self.spend_month.labels(cur).set(spend.month_to_date)
        self.spend_total.labels(cur).set(total)
        self.burn.labels(cur).set(spend.burn_per_hour)
        for campaign, amount in spend.by_campaign.items():
            self.spend_campaign.labels(campaign or "(none)", cur).set(amount)
        for b in self.budgets:
            spent = spend.month_to_date if b.monthly else spend.by_campaign.get(b.campaign or "", 0.0)
            self.budget_spent.labels(b.label, b.currency).set(spent)
            self.budget_ratio.labels(b.label).set(spent / b.limit if b.limit > 0 else 0.0)

    def observe_errors(self, kinds: Iterable[tuple[str, str]]) -> None:
        """Count errors by (provider, kind); ``"*"`` when no one provider is concerned."""
        for provider, kind in kinds:
            self.errors.labels(provider or "*", kind).inc()

    def observe_backoffs(self, until: Mapping[str, datetime], providers: Iterable[str], now: datetime) -> None:
        for p in sorted(set(providers) | set(until)):
            left = (until[p] - now).total_seconds() if p in until else 0.0
            self.backoff.labels(p).set(max(left, 0.0))

    def observe_hard_stops(self, result: TickResult) -> None:
        soonest: dict[str, float] = {}
        for d in result.plan.decision.drains:
            if d.deadline is not None:
                ts = d.deadline.timestamp()
                soonest[d.policy] = min(ts, soonest.get(d.policy, ts))
        for policy in self._hard_stop_policies - set(soonest):
            self.hard_stop_at.labels(policy).set(0)
        for policy, ts in soonest.items():
            self.hard_stop_at.labels(policy).set(ts)
        self._hard_stop_policies |= set(soonest)

    # --- one tick ------------------------------------------------------------------------------

    def observe_tick(self, engine: Engine, result: TickResult, duration_s: float | None = None) -> None:
        """Everything after one :meth:`Engine.tick`; ``duration_s`` is its wall time when measured."""
        now = engine.clock.now()
        self.observe_demand(result.demand)
        fleet = engine.store.fleet()
        self.observe_fleet(fleet, engine.providers)
        provider_of = {c.cluster_id: c.provider for c in fleet}
        for cluster_id, _from, to in result.step.transitions:
            self.transitions.labels(provider_of.get(cluster_id, "unknown"), str(to)).inc()
        self.observe_spend(engine.store.spend(now, engine.cfg.file.currency), engine.store.total_cost(now))
        self.observe_hard_stops(result)
        self.observe_errors(result.step.error_kinds)
        self.observe_backoffs(engine.store.backoffs(), engine.providers, now)
        self.ticks.inc()
        if duration_s is not None:
            self.tick_duration.observe(duration_s)
        self.last_tick.set(now.timestamp())


def observe_tick(metrics: BurstMetrics, engine: Engine, result: TickResult, duration_s: float | None = None) -> None:
    """Function form of :meth:`BurstMetrics.observe_tick`, for a daemon loop."""
    metrics.observe_tick(engine, result, duration_s)


# --- alarm inputs ----------------------------------------------------------------------------------
# Kept apart from the families above: these are what deploy/prometheus/burst-alerts.yaml (generated
# from burst.alarms) evaluates.  Budget alarms use burst_budget_used_ratio above.


class AlarmMetrics:
    """The gauges behind each alarm of :mod:`burst.alarms`, set from the store and the daemon's
    :class:`~burst.alarms.AlarmSignals` after every tick."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.state_age = Gauge(
            "burst_cluster_state_age_seconds",
            "How long a cluster has been in its current (watched) state",
            ["cluster", "provider", "state"],
            registry=r,
        )
        self.state_limit = Gauge(
            "burst_cluster_state_limit_seconds",
            "How long the cluster may stay in that state before the reconciler must have moved it",
            ["cluster", "provider", "state"],
            registry=r,
        )
        self.error_streak = Gauge(
            "burst_provider_error_streak", "Consecutive ticks with an error from the provider", ["provider"], registry=r
        )
        self.backlog_age = Gauge(
            "burst_backlog_age_seconds",
            "Since the backlog source last answered (0 on a standby replica, which does not read it)",
            registry=r,
        )
        self.leader = Gauge("burst_leader", "1 when this replica leads (acts), 0 when it stands by", registry=r)
        self.orphans = Counter(
            "burst_orphans_found", "Cloud clusters with burst's owner tag but no record, removed", registry=r
        )
        self.interruptions = Counter(
            "burst_interruptions", "Clusters that failed (went to FAILED), by provider", ["provider"], registry=r
        )
        self._orphans_seen = 0
        self._interruptions_seen: dict[str, int] = {}

    def observe(self, ages: Iterable[ClusterAge], signals: AlarmSignals, now: datetime) -> None:
        self.state_age.clear()
        self.state_limit.clear()
        for c in ages:
            labels = (c.cluster_id, c.provider, c.state.value)
            self.state_age.labels(*labels).set(c.age_s)
            if c.limit_s is not None:
                self.state_limit.labels(*labels).set(c.limit_s)
        for p, n in signals.error_streaks.items():
            self.error_streak.labels(p).set(n)
        if signals.leading:
            since = signals.backlog_read_at or signals.started_at or now
            self.backlog_age.set(max(0.0, (now - since).total_seconds()))
        else:
            self.backlog_age.set(0)
        self.leader.set(1 if signals.leading else 0)
        self.orphans.inc(max(0, signals.orphans_found - self._orphans_seen))
        self._orphans_seen = signals.orphans_found
        for p, n in signals.interruptions.items():
            self.interruptions.labels(p).inc(max(0, n - self._interruptions_seen.get(p, 0)))
            self._interruptions_seen[p] = n
