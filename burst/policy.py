"""The policy contract and the stack that composes policies (DESIGN.md §2).

Policies are synchronous functions of a :class:`PolicyInput` with no I/O.  Three roles compose:

* **capacity** policies (backlog, schedule, forecast) each say how many cores they want, and why;
  the stack takes, per campaign, the largest want;
* **limit** policies (budget) cut wants down, and may force drains;
* one **placement** turns the remaining wants into per-provider node targets.

A policy may keep a little state between ticks (e.g. "backlog above threshold since 10:05") on its
own object; that state is a function of the inputs it was shown, so a replay gives the same answer.
Such a policy is :class:`Stateful`: the engine keeps its :meth:`~Stateful.snapshot` in the store
after every acting tick and restores it into the next process, so a restart, an upgrade, a failover
or ``burst plan`` beside the daemon decides exactly as the old process would have.

Policies register a :class:`PolicyConfig` subclass under the entry-point group ``burst.policies``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol, TypeAlias, runtime_checkable

from pydantic import BaseModel, ConfigDict

from burst.lifecycle import ClusterRecord
from burst.model import Demand, Offering, Quota, Shape

log = logging.getLogger("burst.policy")

#: What a policy's snapshot may hold: plain JSON, so any store backend keeps it as text.
JSON: TypeAlias = bool | int | float | str | list["JSON"] | dict[str, "JSON"] | None


@dataclass(frozen=True, slots=True)
class Spend:
    """Money already committed, in one currency (mixing currencies is a config error)."""

    currency: str
    month_to_date: float = 0.0
    by_campaign: Mapping[str, float] = field(default_factory=dict)
    #: What the live fleet costs per hour right now (nodes + control planes).
    burn_per_hour: float = 0.0


@dataclass(frozen=True)
class PolicyInput:
    now: datetime
    demand: Demand
    fleet: Sequence[ClusterRecord]
    offerings: Sequence[Offering]
    spend: Spend
    #: provider name → p90 of its measured provisioning latency (s); absent → use the offering's.
    latency_p90_s: Mapping[str, float] = field(default_factory=dict)
    quotas: Mapping[str, Quota] = field(default_factory=dict)
    #: provider name → time until which placement should not use it (after quota/capacity errors).
    backoff_until: Mapping[str, datetime] = field(default_factory=dict)
    #: provider name → settings the placement needs (max nodes, nodes per cluster, priority).
    limits: Mapping[str, ProviderLimits] = field(default_factory=dict)

    def can_host(self, offering: Offering, shape: Shape) -> bool:
        """One job of ``shape`` fits in one cluster of this provider's standard size."""
        lim = self.limits.get(offering.provider)
        per_cluster = lim.nodes_per_cluster if lim else offering.max_nodes_per_cluster
        return offering.can_host(shape, per_cluster)

    def provisioning_p90_s(self, offering: Offering, nodes: int) -> float:
        """Measured p90 when there is history, else the offering's own model."""
        measured = self.latency_p90_s.get(offering.provider)
        return measured if measured is not None else offering.latency.p90_s(nodes)


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    max_nodes: int
    max_clusters: int
    nodes_per_cluster: int
    priority: int = 0
    #: a warm pool: nodes kept on this provider whatever the backlog, within budget
    min_nodes: int = 0


@dataclass(frozen=True, slots=True)
class Want:
    """Cores one policy wants of burst capacity, and why."""

    cores: int
    policy: str
    reason: str
    campaign: str = ""
    #: The largest job shape the capacity must hold on one node (GPU work needs GPU offerings).
    shape: Shape | None = None
    #: Providers to use first, in order; empty = placement decides.
    prefer: tuple[str, ...] = ()
    #: When capacity bought for this want is expected to be released (for committed-spend checks).
    until: datetime | None = None
    #: A provider floor (``providers.<name>.min_nodes``): placement tops this provider up to its
    #: ``min_nodes`` nodes, counting what the other wants put there, and places it nowhere else;
    #: ``cores`` only caps it (what a budget left of it).
    floor_of: str = ""


@dataclass(frozen=True, slots=True)
class Target:
    """Placement's answer: keep ``nodes`` nodes of ``offering`` for ``campaign``."""

    offering: Offering
    nodes: int
    campaign: str
    policy: str
    reason: str


@dataclass(frozen=True, slots=True)
class ForcedDrain:
    """A limit policy's order to drain a cluster now (e.g. budget nearly spent).

    With a ``deadline`` the cluster is removed at that time even if jobs still run there (they are
    killed and counted): the budget's hard stop, so spend never runs past a cap by more than a tick.
    """

    cluster_id: str
    policy: str
    reason: str
    deadline: datetime | None = None


@dataclass(frozen=True, slots=True)
class Limited:
    wants: tuple[Want, ...]
    drains: tuple[ForcedDrain, ...] = ()
    notes: tuple[str, ...] = ()


@runtime_checkable
class CapacityPolicy(Protocol):
    name: str
    role: Literal["capacity"]

    def want(self, inp: PolicyInput) -> list[Want]: ...

    def next_wake(self, now: datetime) -> datetime | None:
        """The next time this policy's answer may change without new demand (a window opening,
        a pre-warm deadline); None when only demand changes it.  Lets a simulation skip idle
        stretches and the daemon schedule triggers."""
        ...


@runtime_checkable
class LimitPolicy(Protocol):
    name: str
    role: Literal["limit"]

    def limit(self, inp: PolicyInput, wants: Sequence[Want]) -> Limited: ...


@runtime_checkable
class Placement(Protocol):
    name: str
    role: Literal["placement"]

    def place(self, inp: PolicyInput, wants: Sequence[Want]) -> list[Target]: ...


AnyPolicy = CapacityPolicy | LimitPolicy | Placement


class StateMismatch(ValueError):
    """A stored snapshot this policy cannot use (another version, another ``slot``): the policy
    starts fresh, which is what a first start does too."""


@runtime_checkable
class Stateful(Protocol):
    """A policy whose answer depends on what it saw in earlier ticks.

    ``snapshot()`` returns everything it remembers as plain JSON with a version (``"v"``);
    ``restore()`` puts a snapshot back into a fresh object, so that it then answers every later
    input exactly as the object the snapshot was taken from.  ``restore`` raises
    :class:`StateMismatch` (and changes nothing) for a snapshot it cannot use.  Returning the same
    object from ``snapshot()`` while nothing changed lets the engine skip re-encoding it.
    """

    def snapshot(self) -> dict[str, JSON]: ...

    def restore(self, state: Mapping[str, JSON]) -> None: ...


def time_to_json(t: datetime | None) -> JSON:
    """An aware datetime as ISO text (microseconds kept: a restored timer must fire on the same tick)."""
    return None if t is None else t.isoformat()


def time_from_json(v: JSON) -> datetime | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise StateMismatch(f"a time must be ISO text, not {v!r}")
    t = datetime.fromisoformat(v)
    if t.tzinfo is None:
        raise StateMismatch(f"time {v!r} has no time zone")
    return t


def span_to_json(d: timedelta | None) -> JSON:
    """A duration as whole microseconds (a float of seconds could round)."""
    return None if d is None else d // timedelta(microseconds=1)


def span_from_json(v: JSON) -> timedelta | None:
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool):
        raise StateMismatch(f"a duration must be microseconds, not {v!r}")
    return timedelta(microseconds=v)


def check_version(state: Mapping[str, JSON], version: int, what: str) -> None:
    if state.get("v") != version:
        raise StateMismatch(f"{what} snapshot version {state.get('v')!r}, this version reads {version}")


@dataclass(frozen=True, slots=True)
class Sample:
    """One stored demand sample (the ``samples`` table): what a history-learning policy can be
    seeded from when it has no snapshot (it was just added, or its snapshot was unusable)."""

    at: datetime
    pending_cores: int
    running_cores: int
    onprem_cores: int
    #: None in samples written before the store recorded it
    onprem_free_cores: int | None = None


@runtime_checkable
class LearnsFromSamples(Protocol):
    def seed(self, samples: Sequence[Sample]) -> None:
        """Learn from stored samples, oldest first, as if they had been seen tick by tick."""
        ...


class PolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    kind: str
    name: str = ""

    def build(self) -> AnyPolicy:  # pragma: no cover - abstract
        raise NotImplementedError


def merge_wants(wants: Sequence[Want]) -> list[Want]:
    """The stack's composition rule.

    * Per (campaign, node class) the largest want wins: two policies asking for the same capacity
      do not buy it twice.
    * Capacity a campaign (a schedule window) wants also serves untagged work: an untagged want
      (the reactive backlog) only adds what goes beyond the campaigns' capacity of the same kind
      (GPU or not), so the total is the max of the two, never the sum.
    """
    best: dict[tuple[str, bool, int], Want] = {}
    for w in wants:
        key = (w.campaign, _is_gpu(w), w.shape.cpus if w.shape else 0)
        cur = best.get(key)
        if cur is None or w.cores > cur.cores:
            best[key] = w
    tagged: dict[bool, int] = {}
    for (campaign, gpu, _), w in best.items():
        if campaign:
            tagged[gpu] = tagged.get(gpu, 0) + w.cores
    out: list[Want] = []
    for (campaign, gpu, _), w in sorted(best.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        if not campaign and tagged.get(gpu):
            covered = min(w.cores, tagged[gpu])
            tagged[gpu] -= covered
            w = replace(w, cores=w.cores - covered, reason=f"{w.reason} (less {covered} cores campaigns provide)")
        if w.cores > 0:
            out.append(w)
    return out


def floor_wants(inp: PolicyInput) -> list[Want]:
    """One want per provider with ``min_nodes``: that many nodes of its largest CPU offering (the
    most the floor can cost; placement picks the flavor).  It goes through the limit policies like
    any want, so a budget can still cut it."""
    out = []
    for prov, lim in sorted(inp.limits.items()):
        if lim.min_nodes <= 0:
            continue
        cpu = [o for o in inp.offerings if o.provider == prov and o.gpus == 0]
        if not cpu:
            continue
        off = max(cpu, key=lambda o: (o.cpus, o.price_per_hour))
        reason = f"floor: keep {lim.min_nodes} nodes on {prov} (providers.{prov}.min_nodes)"
        out.append(Want(lim.min_nodes * off.cpus, "floor", reason, prefer=(prov,), floor_of=prov))
    return out


def _is_gpu(w: Want) -> bool:
    return bool(w.shape and w.shape.gpus)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the stack decided in one tick, with every reason: stored and shown to operators."""

    at: datetime
    targets: tuple[Target, ...]
    wants: tuple[Want, ...]
    drains: tuple[ForcedDrain, ...]
    notes: tuple[str, ...]


class PolicyStack:
    """capacity policies → max per campaign → limits → placement."""

    def __init__(
        self,
        capacity: Sequence[CapacityPolicy],
        limits: Sequence[LimitPolicy],
        placement: Placement,
    ) -> None:
        self.capacity = list(capacity)
        self.limits = list(limits)
        self.placement = placement
        #: keep the providers' ``min_nodes`` warm pools (a simulation turns this off when its
        #: trace is over: the season has ended, so they are not leaks to report)
        self.floors = True
        self._stateful: list[tuple[str, Stateful]] | None = None

    def decide(self, inp: PolicyInput) -> Decision:
        wants: list[Want] = []
        for p in self.capacity:
            wants.extend(p.want(inp))
        merged = merge_wants(wants) + (floor_wants(inp) if self.floors else [])
        drains: list[ForcedDrain] = []
        notes: list[str] = []
        for lim in self.limits:
            res = lim.limit(inp, merged)
            merged = list(res.wants)
            drains.extend(res.drains)
            notes.extend(res.notes)
        targets = self.placement.place(inp, merged)
        return Decision(inp.now, tuple(targets), tuple(merged), tuple(drains), tuple(notes))

    def next_wake(self, now: datetime) -> datetime | None:
        wakes = [w for p in self.capacity if (w := p.next_wake(now)) is not None]
        return min(wakes, default=None)

    # --- memory across processes ----------------------------------------------------------------

    def keyed(self) -> list[tuple[str, AnyPolicy]]:
        """Every policy under a key that stays the same across processes for the same config:
        ``<kind>:<name>``, with ``#<n>`` for the n-th repeat of the same kind and name."""
        out: list[tuple[str, AnyPolicy]] = []
        seen: dict[str, int] = {}
        policies: list[AnyPolicy] = [*self.capacity, *self.limits, self.placement]
        for p in policies:
            cfg = getattr(p, "cfg", None)
            kind = getattr(cfg, "kind", None) or type(p).__name__
            base = f"{kind}:{p.name}"
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.append((base if n == 0 else f"{base}#{n}", p))
        return out

    def stateful(self) -> list[tuple[str, Stateful]]:
        """The policies that remember, by key (found once: a Protocol check is slow)."""
        if self._stateful is None:
            self._stateful = [(k, p) for k, p in self.keyed() if isinstance(p, Stateful)]
        return self._stateful

    def snapshot(self) -> dict[str, dict[str, JSON]]:
        """What each stateful policy remembers, by key."""
        return {k: p.snapshot() for k, p in self.stateful()}

    def restore(self, states: Mapping[str, Mapping[str, JSON]]) -> list[str]:
        """Put stored snapshots back; returns the keys of stateful policies left fresh (no
        snapshot, or one they cannot use: logged, never fatal — a fresh policy is a first start)."""
        fresh = []
        for key, p in self.stateful():
            state = states.get(key)
            if state is None:
                fresh.append(key)
                continue
            try:
                p.restore(state)
            except (StateMismatch, KeyError, TypeError, ValueError) as err:
                log.warning("policy %s: stored state not usable (%s); starting fresh", key, err)
                fresh.append(key)
        return fresh
