"""Alarm conditions, defined once: the Prometheus rules and the status page both come from here.

Each :class:`Alarm` carries its threshold, its PromQL expression over burst's metrics and a Python
check over :class:`AlarmInputs`.  ``deploy/prometheus/burst-alerts.yaml`` is generated from
:data:`ALARMS` (``python -m burst.alarms > deploy/prometheus/burst-alerts.yaml``; a test keeps the
committed file up to date), and the status page evaluates the same checks, so a threshold changed
here changes both.

Inputs come from two places.  What the store knows — budgets, how long each cluster has been in its
state and the deadline of that state — is read from the store, so every replica shows the same.
What only a running daemon sees — its provider error streaks, when the backlog was last read, the
Lease, orphans found at start-up — lives in an :class:`AlarmSignals` object the daemon updates each
tick and hands to its status page (never a global).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import yaml

from burst.lifecycle import ClusterRecord, ClusterState

if TYPE_CHECKING:
    from burst.config import ReconcilerConfig

S = ClusterState

# --- thresholds: the one definition ---------------------------------------------------------------

BUDGET_WARN_RATIO = 0.8
BUDGET_EXHAUSTED_RATIO = 1.0
#: Past a state's own deadline (the reconciler's timeout, a drain's hard stop) this long, the
#: reconciler should have acted: it did not, or its action failed.  Two default ticks and margin.
STATE_GRACE_S = 600.0
#: A delete no cloud finishes in: EKS takes ~15 min for node groups and control plane.
REMOVING_LIMIT_S = 1800.0
#: Consecutive reconcile ticks with an error from one provider.
PROVIDER_ERROR_STREAK = 5
#: The backlog not read for this long: decisions run on stale demand.
BACKLOG_STALE_S = 600.0
#: No replica leads for this long (the default Lease is 30 s).
NO_LEADER_S = 120.0

#: States whose time is watched, and by which alarm.
WATCHED_STATES = (S.PROVISIONING, S.JOINING, S.DRAINING, S.REMOVING)


def state_limit_s(rec: ClusterRecord, settings: ReconcilerConfig) -> float | None:
    """Seconds a cluster may stay in its current state before the reconciler must have moved it;
    None when the state has no deadline (a graceful drain waits for its jobs)."""
    if rec.state is S.PROVISIONING:
        return settings.provisioning_timeout.total_seconds()
    if rec.state is S.JOINING:
        return settings.joining_timeout.total_seconds()
    if rec.state is S.DRAINING and rec.drain_deadline is not None:
        return max(0.0, (rec.drain_deadline - rec.state_since).total_seconds())
    if rec.state is S.REMOVING:
        return REMOVING_LIMIT_S
    return None


# --- inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClusterAge:
    cluster_id: str
    provider: str
    state: ClusterState
    age_s: float
    limit_s: float | None


@dataclass
class AlarmSignals:
    """What one daemon process sees that no store holds; updated on the tick's thread, read by the
    status page's (single attribute reads and writes only)."""

    providers: tuple[str, ...] = ()
    #: consecutive ticks with at least one error, per provider (0 after a clean tick)
    error_streaks: dict[str, int] = field(default_factory=dict)
    started_at: datetime | None = None
    #: last tick at which the backlog source answered (demand not stale)
    backlog_read_at: datetime | None = None
    #: this replica leads (True), stands by (False) or has not ticked yet (None)
    leading: bool | None = None
    #: last time a live leader was known (this replica leading, or another holding the Lease)
    leader_seen_at: datetime | None = None
    orphans_found: int = 0
    #: clusters that failed (went to FAILED), per provider, since the start
    interruptions: dict[str, int] = field(default_factory=dict)

    def observe_tick(
        self,
        now: datetime,
        *,
        demand_stale: bool,
        errors: Iterable[tuple[str, str, str]],
        provider_of: Mapping[str, str],
        failed: Iterable[str] = (),
    ) -> None:
        """After a tick this replica led: ``errors`` are the step's (cluster, kind, message), counted
        for the provider ``provider_of`` names (an error of no known cluster counts for none);
        ``failed`` the cluster ids that moved to FAILED."""
        if self.started_at is None:
            self.started_at = now
        if not demand_stale:
            self.backlog_read_at = now
        self.leading = True
        self.leader_seen_at = now
        erring = {provider_of[cid] for cid, _kind, _msg in errors if cid in provider_of}
        for p in set(self.providers) | erring | set(self.error_streaks):
            self.error_streaks[p] = self.error_streaks.get(p, 0) + 1 if p in erring else 0
        for cid in failed:
            p = provider_of.get(cid, "unknown")
            self.interruptions[p] = self.interruptions.get(p, 0) + 1

    def observe_standby(self, now: datetime, leader_alive: bool) -> None:
        """A tick at which another replica held the Lease (``leader_alive``) or none could be seen."""
        if self.started_at is None:
            self.started_at = now
        self.leading = False
        if leader_alive:
            self.leader_seen_at = now


@dataclass(frozen=True)
class AlarmInputs:
    now: datetime
    #: (budget label, spent / cap)
    budgets: Sequence[tuple[str, float]] = ()
    clusters: Sequence[ClusterAge] = ()
    signals: AlarmSignals | None = None


def cluster_ages(fleet: Iterable[ClusterRecord], now: datetime, settings: ReconcilerConfig) -> list[ClusterAge]:
    return [
        ClusterAge(c.cluster_id, c.provider, c.state, (now - c.state_since).total_seconds(), state_limit_s(c, settings))
        for c in fleet
        if c.state in WATCHED_STATES
    ]


# --- the alarms -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Firing:
    alarm: str
    severity: str
    subject: str
    message: str


@dataclass(frozen=True)
class Alarm:
    name: str
    severity: str
    summary: str
    expr: str
    for_: str
    check: Callable[[AlarmInputs], list[Firing]]
    #: the Prometheus alert's annotations.description; ``{{ $labels.x }}`` / ``{{ $value }}`` allowed
    description: str = ""


def _budget(name: str, severity: str, ratio: float) -> Alarm:
    def check(inp: AlarmInputs) -> list[Firing]:
        return [
            Firing(name, severity, label, f"{used:.0%} of the cap spent (alarm at {ratio:.0%})")
            for label, used in inp.budgets
            if used >= ratio
        ]

    return Alarm(
        name=name,
        severity=severity,
        summary=f"Budget {{{{ $labels.budget }}}} at {ratio:.0%} or more",
        expr=f"burst_budget_used_ratio >= {ratio:g}",
        for_="0m",
        check=check,
        description="{{ $value | humanizePercentage }} of the cap is spent.",
    )


def _stuck(name: str, states: Sequence[ClusterState], what: str) -> Alarm:
    def check(inp: AlarmInputs) -> list[Firing]:
        return [
            Firing(
                name,
                "critical",
                c.cluster_id,
                f"{c.state} for {c.age_s / 60:.0f} min on {c.provider}, deadline {c.limit_s / 60:.0f} min",
            )
            for c in inp.clusters
            if c.state in states and c.limit_s is not None and c.age_s > c.limit_s + STATE_GRACE_S
        ]

    sel = "|".join(s.value for s in states)
    return Alarm(
        name=name,
        severity="critical",
        summary=f"Cluster {{{{ $labels.cluster }}}} {what}",
        expr=(
            f'burst_cluster_state_age_seconds{{state=~"{sel}"}}'
            f' > burst_cluster_state_limit_seconds{{state=~"{sel}"}} + {STATE_GRACE_S:g}'
        ),
        for_="0m",
        check=check,
        description=(
            "{{ $labels.cluster }} ({{ $labels.provider }}) has been {{ $labels.state }} for "
            "{{ $value | humanizeDuration }}, past its deadline and the grace the reconciler has to act."
        ),
    )


def _provider_failing(inp: AlarmInputs) -> list[Firing]:
    if inp.signals is None:
        return []
    return [
        Firing("BurstProviderFailing", "warning", p, f"errors in the last {n} ticks")
        for p, n in sorted(inp.signals.error_streaks.items())
        if n >= PROVIDER_ERROR_STREAK
    ]


def _backlog_stale(inp: AlarmInputs) -> list[Firing]:
    sig = inp.signals
    if sig is None or not sig.leading or sig.started_at is None:
        return []  # a standby does not read the backlog
    since = sig.backlog_read_at or sig.started_at
    age = (inp.now - since).total_seconds()
    if age <= BACKLOG_STALE_S:
        return []
    return [Firing("BurstBacklogStale", "warning", "backlog", f"not read for {age / 60:.0f} min")]


def _no_leader(inp: AlarmInputs) -> list[Firing]:
    sig = inp.signals
    if sig is None or sig.started_at is None:
        return []
    since = sig.leader_seen_at or sig.started_at
    age = (inp.now - since).total_seconds()
    if age <= NO_LEADER_S:
        return []
    return [Firing("BurstNoLeader", "critical", "lease", f"no replica has led for {age:.0f} s")]


def _orphans(inp: AlarmInputs) -> list[Firing]:
    n = inp.signals.orphans_found if inp.signals is not None else 0
    if not n:
        return []
    return [Firing("BurstOrphanFound", "warning", "clouds", f"{n} cluster(s) with burst's tag but no record: removed")]


ALARMS: tuple[Alarm, ...] = (
    _budget("BurstBudgetWarning", "warning", BUDGET_WARN_RATIO),
    _budget("BurstBudgetExhausted", "critical", BUDGET_EXHAUSTED_RATIO),
    _stuck("BurstClusterStuckProvisioning", (S.PROVISIONING, S.JOINING), "stuck provisioning or joining"),
    _stuck("BurstDrainStalled", (S.DRAINING,), "still draining past its deadline"),
    _stuck("BurstDeletionStuck", (S.REMOVING,), "not deleted"),
    Alarm(
        name="BurstProviderFailing",
        severity="warning",
        summary="Provider {{ $labels.provider }} failing repeatedly",
        expr=f"burst_provider_error_streak >= {PROVIDER_ERROR_STREAK}",
        for_="0m",
        check=_provider_failing,
        description="{{ $value }} reconcile ticks in a row had errors from {{ $labels.provider }}.",
    ),
    Alarm(
        name="BurstBacklogStale",
        severity="warning",
        summary="The backlog source has not been read",
        expr=f"burst_backlog_age_seconds > {BACKLOG_STALE_S:g}",
        for_="0m",
        check=_backlog_stale,
        description="Demand is {{ $value | humanizeDuration }} old: decisions run on the last demand read.",
    ),
    Alarm(
        name="BurstNoLeader",
        severity="critical",
        summary="No burst replica leads",
        expr="max(burst_leader) < 1 or absent(burst_leader)",
        for_=f"{NO_LEADER_S:g}s",
        check=_no_leader,
        description="No replica holds the Lease (or none is scraped): nothing reconciles.",
    ),
    Alarm(
        name="BurstOrphanFound",
        severity="warning",
        summary="A cloud cluster with burst's tag had no record",
        expr="increase(burst_orphans_found_total[1h]) > 0",
        for_="0m",
        check=_orphans,
        description="burst removed cluster(s) it created but had no record of (a lost store?).",
    ),
)


def evaluate(inp: AlarmInputs) -> list[Firing]:
    """The alarms firing for these inputs, in :data:`ALARMS` order."""
    return [f for alarm in ALARMS for f in alarm.check(inp)]


# --- the Prometheus rules file ----------------------------------------------------------------------


def rules() -> dict[str, object]:
    alerts = []
    for a in ALARMS:
        rule: dict[str, object] = {"alert": a.name, "expr": a.expr}
        if a.for_ != "0m":
            rule["for"] = a.for_
        rule["labels"] = {"severity": a.severity}
        rule["annotations"] = {"summary": a.summary, "description": a.description}
        alerts.append(rule)
    return {"groups": [{"name": "burst", "rules": alerts}]}


def render_rules() -> str:
    head = (
        "# Generated from burst/alarms.py (python -m burst.alarms > deploy/prometheus/burst-alerts.yaml):\n"
        "# edit the thresholds there; a test fails when this file is out of date.\n"
    )
    return head + yaml.safe_dump(rules(), sort_keys=False, width=200)


if __name__ == "__main__":  # pragma: no cover - exercised by the file-up-to-date test through render_rules
    sys.stdout.write(render_rules())
