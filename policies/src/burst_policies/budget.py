"""The budget policy: spend caps per calendar month and per campaign that are never run past.

Two rules make the cap hard, both checked every tick:

* **No new capacity that cannot be paid for.**  A want that needs more cores than its campaign's
  live clusters hold is cut so that the *committed* spend of the extra capacity — nodes (and
  control planes) billed until the want's ``until`` (a schedule window's end), or for twice
  ``horizon`` when it has none, but never less than the offering's minimum billed time or one
  tick — fits in what is left after the live fleet's own commitment (a window's clusters to the
  window's end, other clusters for twice ``horizon``, so that what is bought is not drained again
  a few ticks later).  The extra is priced at the dearest
  offering placement could choose for it, so no placement choice can break the cap.  A monthly
  commitment stops at the month's end (UTC): what runs after it is next month's money.
* **Drain before the money runs out.**  When what is left is less than the live fleet burns in the
  next ``horizon``, clusters are drained, newest first (least work lost) and, among equally new
  ones, most expensive first, until the burn fits.

The hard stop is opt-in (``hard_stop: true``): drained clusters are then removed at a deadline even
if jobs still run there.  The deadline is announced (a plan note, the status page, a metric) before
it comes; without it a budget never kills a job and accepts the overrun of what drains.

So spend can pass a cap only by what drained clusters burn while they are being removed: about one
tick's worth when removal is prompt.  Amounts are in one currency; a budget in another currency
than the offerings, the fleet or the ledger is a configuration error, never a silent conversion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import Field, model_validator

from burst.api import (
    JSON,
    ClusterRecord,
    ClusterState,
    ConfigError,
    Duration,
    ForcedDrain,
    Limited,
    Money,
    MoneyField,
    Offering,
    PolicyConfig,
    PolicyInput,
    StateMismatch,
    Want,
    check_version,
    span_from_json,
    span_to_json,
    time_from_json,
    time_to_json,
)
from burst.units import format_duration

S = ClusterState
#: States in which a cluster bills now or is about to (a PLANNED cluster starts billing next tick).
COSTLY = frozenset({S.PLANNED, S.PROVISIONING, S.JOINING, S.ACTIVE, S.DRAINING, S.REMOVING, S.FAILED})
#: How long a delete may take after the hard stop (the local cloud's default delete latency).
DELETE_MARGIN = timedelta(minutes=5)
#: States a forced drain can still stop; DRAINING/REMOVING are already on their way out.
DRAINABLE = frozenset({S.PLANNED, S.PROVISIONING, S.JOINING, S.ACTIVE})
#: States whose capacity a want already has.
LIVE = frozenset({S.PLANNED, S.PROVISIONING, S.JOINING, S.ACTIVE})


class BudgetPolicyConfig(PolicyConfig):
    kind: Literal["budget"] = "budget"
    name: str = "budget"
    monthly: MoneyField | None = Field(default=None, description="cap per calendar month (UTC), e.g. '40000 EUR'")
    campaigns: dict[str, MoneyField] = Field(
        default_factory=dict, description="cap per campaign tag over its whole life, e.g. {moriond-2027: 20000 EUR}"
    )
    warn_at: float | None = Field(default=None, gt=0, lt=1, description="add a note once this fraction is spent")
    hard_stop: bool = Field(
        default=False,
        description="opt-in: remove drained clusters when the money runs out even if jobs still run there "
        "(spend never passes the cap by more than a tick; the deadline is announced in plan notes, the "
        "status page and burst_budget_hard_stop_timestamp_seconds first; kills are counted as "
        "budget_killed_jobs); false (default): drain gracefully, never kill, accept the overrun",
    )
    horizon: Duration = Field(
        default=timedelta(hours=1),
        description="drain when what is left is less than the live fleet burns in this time",
    )
    tick: Duration | None = Field(
        default=None, description="shortest commitment of new capacity; unset = the interval between ticks seen"
    )

    @model_validator(mode="after")
    def _check(self) -> BudgetPolicyConfig:
        caps = self.caps()
        if not caps:
            raise ValueError("a budget needs `monthly` or at least one entry in `campaigns`")
        currencies = {m.currency for m in caps.values()}
        if len(currencies) > 1:
            raise ValueError(f"all caps must be in one currency, got {', '.join(sorted(currencies))}")
        if any(m.amount < 0 for m in caps.values()):
            raise ValueError("a cap cannot be negative")
        if self.horizon <= timedelta(0):
            raise ValueError("horizon must be positive")
        return self

    def caps(self) -> dict[str, Money]:
        out = {"monthly": self.monthly} if self.monthly is not None else {}
        out.update({f"campaign {name}": m for name, m in self.campaigns.items()})
        return out

    @property
    def currency(self) -> str:
        return next(iter(self.caps().values())).currency

    def build(self) -> BudgetPolicy:
        return BudgetPolicy(self)


def burn_per_hour(c: ClusterRecord) -> float:
    """What one cluster costs per hour: its nodes (the larger of actual and desired, so a growing
    cluster is not under-counted) and its control plane."""
    return max(c.nodes, c.desired_nodes) * c.price_per_hour + c.control_plane_per_hour


def month_end(now: datetime) -> datetime:
    """The first instant of the next calendar month, UTC."""
    n = now.astimezone(UTC)
    year, month = (n.year + 1, 1) if n.month == 12 else (n.year, n.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def _is_gpu(w: Want) -> bool:
    return bool(w.shape and w.shape.gpus)


def _hours(td: timedelta) -> float:
    return td.total_seconds() / 3600


@dataclass(frozen=True)
class _Cap:
    label: str
    limit: float
    spent: float
    #: End of the period the cap covers (month end); None for a campaign's whole life.
    period_end: datetime | None
    #: The campaign tag the cap is for; None = everything (the monthly cap).
    campaign: str | None

    def covers(self, campaign: str) -> bool:
        return self.campaign is None or campaign == self.campaign


@dataclass
class _Tick:
    """What one limit() call accumulates over the caps it applies."""

    inp: PolicyInput
    tick: timedelta
    #: Ledger burn that no fleet record explains; it counts against the monthly cap.
    unexplained: float
    drained: set[str] = field(default_factory=set)
    drains: list[ForcedDrain] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class BudgetPolicy:
    role: Literal["limit"] = "limit"

    def __init__(self, cfg: BudgetPolicyConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        #: The last ``now`` seen, to learn the tick length when it is not configured.
        self._last_now: datetime | None = None
        self._tick = cfg.tick or timedelta(minutes=1)

    # inputs --------------------------------------------------------------------------------

    def check_currency(self, inp: PolicyInput) -> None:
        """Every amount must be in the budget's currency: a mismatch is a configuration error."""
        cur = self.cfg.currency
        where = f"policies.{self.name}"
        if inp.spend.currency != cur:
            raise ConfigError(
                f"budget is in {cur} but the ledger counts spend in {inp.spend.currency}; "
                "set the budget in the offerings' currency",
                where,
            )
        for o in inp.offerings:
            if o.currency != cur:
                raise ConfigError(
                    f"budget is in {cur} but {o.provider} prices {o.flavor} in {o.currency}; "
                    "set the budget (or the provider's price override) in one currency",
                    where,
                )
        for c in inp.fleet:
            if c.currency != cur and c.state in COSTLY:
                raise ConfigError(f"budget is in {cur} but cluster {c.cluster_id} is billed in {c.currency}", where)

    # memory across processes ---------------------------------------------------------------

    def snapshot(self) -> dict[str, JSON]:
        """The learned tick length and the time it was last learned from."""
        return {"v": 1, "last_now": time_to_json(self._last_now), "tick_us": span_to_json(self._tick)}

    def restore(self, state: Mapping[str, JSON]) -> None:
        check_version(state, 1, "budget")
        last_now, tick = time_from_json(state["last_now"]), span_from_json(state["tick_us"])
        if tick is None:
            raise StateMismatch("tick_us is missing")
        self._last_now, self._tick = last_now, self.cfg.tick or tick

    def tick(self, now: datetime) -> timedelta:
        if self.cfg.tick is None and self._last_now is not None and now > self._last_now:
            self._tick = min(now - self._last_now, timedelta(hours=1))
        self._last_now = now
        return self._tick

    def caps(self, inp: PolicyInput) -> list[_Cap]:
        out: list[_Cap] = []
        if self.cfg.monthly is not None:
            out.append(_Cap("monthly", self.cfg.monthly.amount, inp.spend.month_to_date, month_end(inp.now), None))
        for name, money in self.cfg.campaigns.items():
            out.append(_Cap(f"campaign {name}", money.amount, inp.spend.by_campaign.get(name, 0.0), None, name))
        return out

    # the limit -----------------------------------------------------------------------------

    def limit(self, inp: PolicyInput, wants: Sequence[Want]) -> Limited:
        self.check_currency(inp)
        known_burn = sum(burn_per_hour(c) for c in inp.fleet if c.state in COSTLY and c.state != S.PLANNED)
        # Burn the ledger sees that no record explains (e.g. a cluster being adopted) still costs.
        t = _Tick(inp, self.tick(inp.now), max(0.0, inp.spend.burn_per_hour - known_burn))
        out = list(wants)
        for cap in self.caps(inp):
            out = self._apply(cap, t, out)
        return Limited(tuple(w for w in out if w.cores > 0), tuple(t.drains), tuple(t.notes))

    def _apply(self, cap: _Cap, t: _Tick, wants: list[Want]) -> list[Want]:
        inp, tick, drained, drains, notes = t.inp, t.tick, t.drained, t.drains, t.notes
        unexplained = t.unexplained if cap.campaign is None else 0.0
        now, cur = inp.now, self.cfg.currency
        remaining = cap.limit - cap.spent
        head = f"budget {cap.label}: {cap.spent:,.0f} of {cap.limit:,.0f} {cur} spent"
        if self.cfg.warn_at is not None and cap.limit > 0 and cap.spent >= self.cfg.warn_at * cap.limit:
            notes.append(f"{head} ({cap.spent / cap.limit:.0%}, warning at {self.cfg.warn_at:.0%})")

        # The stretch the live fleet's burn is checked over: the horizon, at least a tick, and a
        # monthly cap only up to the month's end.
        window = max(self.cfg.horizon, tick)
        if cap.period_end is not None:
            window = max(min(window, cap.period_end - now), tick)
        mine = [c for c in inp.fleet if c.state in COSTLY and cap.covers(c.campaign) and c.cluster_id not in drained]
        burn = unexplained + sum(burn_per_hour(c) for c in mine)

        # 1. Drain, newest and most expensive first, until the fleet's burn fits what is left.
        order = sorted(
            (c for c in mine if c.state in DRAINABLE),
            key=lambda c: (c.created_at, burn_per_hour(c)),
            reverse=True,
        )
        # The hard stop: when the money runs out at today's burn, less a tick and a delete, every
        # cluster drained for this cap is removed even if jobs still run there.
        deadline = None
        if self.cfg.hard_stop and burn > 0 and burn * _hours(window) > remaining:
            left_h = max(remaining, 0.0) / burn
            deadline = now + timedelta(hours=left_h) - tick - DELETE_MARGIN
            deadline = max(deadline, now)
        for c in order:
            if burn * _hours(window) <= remaining:
                break
            drained.add(c.cluster_id)
            burn -= burn_per_hour(c)
            why = (
                f"{head}; draining {c.cluster_id} ({burn_per_hour(c):,.2f} {cur}/h): "
                f"{max(remaining, 0):,.0f} {cur} left, less than the fleet burns in {format_duration(window)}"
            )
            drains.append(ForcedDrain(c.cluster_id, self.name, why, deadline))
            notes.append(f"{head}; draining {c.cluster_id}")
        if deadline is not None:
            # Announced before it acts: plan, status page (decision notes) and the metric show it.
            notes.append(
                f"{head}; HARD STOP at {deadline:%Y-%m-%d %H:%M} UTC: clusters drained for this cap are removed "
                "then even if jobs still run there (those jobs are killed)"
            )
        if deadline is not None:
            for c in mine:
                if (
                    c.state is S.DRAINING
                    and c.cluster_id not in drained
                    and (c.drain_deadline is None or c.drain_deadline > deadline)
                ):
                    drained.add(c.cluster_id)
                    why = f"{head}; {c.cluster_id} must be gone by {deadline:%Y-%m-%d %H:%M} (hard stop)"
                    drains.append(ForcedDrain(c.cluster_id, self.name, why, deadline))
        if burn > 0 and burn * _hours(window) > remaining:
            notes.append(f"{head}; {burn:,.2f} {cur}/h that no drain can stop still burn (clusters already leaving)")

        # 2. Cut wants so new capacity's committed spend fits what is left after the fleet's own
        # commitment: live capacity of a campaign whose want has an ``until`` is committed to it
        # (a window's clusters run to its end), the rest for twice the drain horizon — that
        # hysteresis keeps the budget from buying a node one tick and draining it a few ticks
        # later.  Nothing new is bought in a tick that drains.
        grace = 2 * window

        def release(until: datetime | None) -> datetime:
            end = until if until is not None else now + grace
            return min(end, cap.period_end) if cap.period_end is not None else end

        releases = {(w.campaign, _is_gpu(w)): release(w.until) for w in wants if w.until is not None}
        committed = unexplained * _hours(grace)
        for c in mine:
            end = releases.get((c.campaign, c.gpus_per_node > 0)) if c.state in LIVE else None
            committed += burn_per_hour(c) * _hours(max(grace, end - now if end is not None else grace))
        avail = 0.0 if any(c.cluster_id in drained for c in mine) else remaining - committed
        if committed > remaining > 0 and burn > 0 and not drained.intersection(c.cluster_id for c in mine):
            runs_out = now + timedelta(hours=remaining / burn)
            notes.append(
                f"{head}; the fleet's commitments exceed what is left: at {burn:,.2f} {cur}/h the money runs out "
                f"around {runs_out:%d %b %H:%M}, then clusters are drained"
            )
        # Live capacity per (campaign, GPU or not), handed out to that class's wants in turn (a
        # policy may want several node classes for one campaign): what a want gets from it is not
        # new, the rest is.
        live: dict[tuple[str, bool], int] = {}
        for c in inp.fleet:
            if c.state in LIVE and c.cluster_id not in drained and cap.covers(c.campaign):
                key = (c.campaign, c.gpus_per_node > 0)
                live[key] = live.get(key, 0) + c.desired_nodes * c.cpus_per_node
        out: list[Want] = []
        for w in wants:
            if not cap.covers(w.campaign):
                out.append(w)
                continue
            key = (w.campaign, _is_gpu(w))
            have = min(w.cores, live.get(key, 0))
            live[key] = live.get(key, 0) - have
            extra = w.cores - have
            if extra <= 0:
                out.append(w)
                continue
            cands = self._candidates(inp, w)
            if not cands:
                out.append(w)  # placement will report that nothing can hold it
                continue
            until = release(w.until)
            fit, cost = _fit(inp, cands, extra, max(until - now, tick), avail)
            avail -= cost
            if fit >= extra:
                out.append(w)
                continue
            cores = have + fit
            span = f"to {until:%d %b %H:%M}" if w.until is not None else f"for {format_duration(until - now)}"
            why = f"{head}; cut {w.campaign or w.policy} from {w.cores} to {cores} cores (committed spend {span})"
            notes.append(why)
            out.append(replace(w, cores=cores, reason=f"{w.reason}; {why}"))
        return out

    @staticmethod
    def _candidates(inp: PolicyInput, w: Want) -> list[Offering]:
        """Offerings placement could choose for ``w`` (same filters as placement's)."""
        able = [o for o in inp.offerings if w.shape is None or inp.can_host(o, w.shape)]
        if not _is_gpu(w):
            able = [o for o in able if o.gpus == 0] or able
        return [o for o in able if inp.backoff_until.get(o.provider, inp.now) <= inp.now] or able


def _commit(o: Offering, nodes: int, span: timedelta, per_cluster: int) -> float:
    """Committed spend of ``nodes`` new nodes of ``o`` over ``span`` (at least the minimum billed
    time), with one control plane per cluster of ``per_cluster`` nodes."""
    hours = max(_hours(span), o.min_billed_s / 3600)
    clusters = math.ceil(nodes / max(per_cluster, 1))
    return (nodes * o.price_per_hour + clusters * o.control_plane_per_hour) * hours


def _fit(inp: PolicyInput, cands: Sequence[Offering], extra: int, span: timedelta, avail: float) -> tuple[int, float]:
    """The most extra cores (≤ ``extra``) whose committed spend fits ``avail`` on *every* candidate
    (placement rounds cores up to whole nodes of the offering it picks), and that spend."""
    if avail <= 0:
        return 0, 0.0

    def per_cluster(o: Offering) -> int:
        lim = inp.limits.get(o.provider)
        return lim.nodes_per_cluster if lim else o.max_nodes_per_cluster

    fit = extra
    for o in cands:
        lo, hi = 0, math.ceil(extra / o.cpus)  # binary search: the most nodes whose commitment fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if _commit(o, mid, span, per_cluster(o)) <= avail else (lo, mid - 1)
        fit = min(fit, lo * o.cpus)
    cost = max(_commit(o, math.ceil(fit / o.cpus), span, per_cluster(o)) for o in cands) if fit > 0 else 0.0
    return fit, cost
