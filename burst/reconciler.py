"""The reconciler: executes plans through each cluster's lifecycle, one step per tick.

Each step persists the transition first (write-ahead intent) and then performs the side effect
through an idempotent provider or federation call, so a crash anywhere resumes without leaking or
duplicating a cluster.  No step waits for a cloud: long operations are started in one tick and
polled in later ones.

    PLANNED → PROVISIONING → JOINING → ACTIVE → DRAINING → REMOVING → REMOVED  (+ FAILED)
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from burst.clock import Clock
from burst.config import ReconcilerConfig
from burst.errors import (
    AuthFailed,
    BurstError,
    CapacityUnavailable,
    FederationError,
    InstallationConflict,
    NotFound,
    ProviderError,
    ProvisioningFailed,
    QuotaExceeded,
    Throttled,
)
from burst.federation.api import Federation, FollowsResize, ReleasesNodes
from burst.fence import AlwaysHeld, Fence, LeaseLost
from burst.lifecycle import ClusterRecord, ClusterState
from burst.model import CAMPAIGN_TAG, OWNER_TAG, STORE_TAG, CloudCluster, CloudStatus, ClusterSpec
from burst.plan import ROLLBACK, Action, Op, Plan
from burst.provider import Provider, RemovesNodes
from burst.store import StaleRecord, Store

S = ClusterState
log = logging.getLogger("burst.reconciler")

#: Errors that mean the cloud refused a create outright: nothing was made, nothing is billed.
REFUSED = (QuotaExceeded, CapacityUnavailable, Throttled, AuthFailed)
#: How often the account is listed for orphans at most, whatever ``orphan_grace`` says.
SCAN_EVERY_MIN = timedelta(minutes=5)


def provider_delay(provider: str, attempts: int, first: timedelta, cap: timedelta) -> timedelta:
    """How long placement avoids a provider after ``attempts`` failures in a row: ``first``,
    doubling, at most ``cap``, plus up to 10 % jitter (deterministic per provider and attempt, so
    replicas and reruns agree, while two providers failing together do not probe in lockstep)."""
    base: timedelta = min(first * (2 ** min(max(attempts - 1, 0), 20)), cap)
    jitter = (zlib.crc32(f"{provider}:{attempts}".encode()) % 1000) / 10000
    return min(base * (1 + jitter), cap)


@dataclass
class StepReport:
    """What one reconcile step did: for logs, metrics and same-tick fallback."""

    transitions: list[tuple[str, ClusterState, ClusterState]] = field(default_factory=list)
    #: providers that failed a create this step (any kind): placement tries another in the same tick
    fallbacks: dict[str, str] = field(default_factory=dict)
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # cluster, error type, message
    #: (provider, error type) of each entry of ``errors``, in the same order: metrics by provider
    error_kinds: list[tuple[str, str]] = field(default_factory=list)
    #: providers backed off this step: provider → until
    backoffs: dict[str, datetime] = field(default_factory=dict)
    stuck_deleted: int = 0
    #: tagged clusters unknown to the store, adopted this step to be drained and removed
    orphans_removed: list[str] = field(default_factory=list)
    #: jobs still running on clusters removed at a hard-stop deadline
    killed: int = 0

    def error(self, cluster: str, provider: str, kind: str, message: str) -> None:
        self.errors.append((cluster, kind, message))
        self.error_kinds.append((provider, kind))

    def merge(self, other: StepReport) -> None:
        """Add a later pass of the same tick (a placement fallback): nothing one pass saw is lost."""
        self.transitions.extend(other.transitions)
        self.fallbacks.update(other.fallbacks)
        self.errors.extend(other.errors)
        self.error_kinds.extend(other.error_kinds)
        self.backoffs.update(other.backoffs)
        self.stuck_deleted += other.stuck_deleted
        self.orphans_removed.extend(other.orphans_removed)
        self.killed += other.killed


class Reconciler:
    def __init__(
        self,
        store: Store,
        providers: Mapping[str, Provider],
        federation: Federation,
        clock: Clock,
        settings: ReconcilerConfig,
        owner: str,
        fence: Fence | None = None,
    ) -> None:
        self.store = store
        #: asked before every provider or federation side effect (burst.fence)
        self.fence: Fence = fence or AlwaysHeld()
        self.providers = providers
        self.federation = federation
        self.clock = clock
        self.settings = settings
        self.owner = owner
        #: tagged clusters unknown to the store: cluster id → (provider, first seen).  Not
        #: persisted: after a restart the grace period starts again (the safe direction).
        self._unknown: dict[str, tuple[str, datetime]] = {}
        #: when each provider's account is listed next for orphans (absent: at the next step)
        self._next_scan: dict[str, datetime] = {}
        #: ids each provider listed the first time: clusters there before this process started
        self._first_listing: dict[str, frozenset[str]] = {}
        #: set once another store is seen creating clusters under our name: every step refuses
        self.conflict: str | None = None
        self._releases_nodes: frozenset[str] | None = None

    def releases_nodes(self) -> frozenset[str]:
        """Providers whose clusters can give back single idle nodes: the provider deletes named
        nodes and the federation can find and fence idle ones.  Elsewhere capacity only leaves
        with whole drained clusters."""
        if self._releases_nodes is None:
            fed = self.settings.release_idle_nodes and isinstance(self.federation, ReleasesNodes)
            self._releases_nodes = frozenset(
                n for n, p in self.providers.items() if fed and isinstance(p, RemovesNodes)
            )
        return self._releases_nodes

    # --- plan → intents -----------------------------------------------------------------------

    def apply(self, plan: Plan) -> list[ClusterRecord]:
        """Record the plan's actions as intents in the store.  Cloud calls happen in :meth:`step`."""
        now = self.clock.now()
        touched = []
        for a in plan.actions:
            if a.op is Op.CREATE:  # a new id: nothing to read
                touched.append(self.store.add(self._new_record(a, now), a.reason))
                continue
            rec = self.store.get(a.cluster_id)
            if rec is None:
                log.warning("plan names unknown cluster %s; skipped", a.cluster_id)
            elif a.op is Op.GROW and rec.state is S.ACTIVE:
                touched.append(self.store.update(rec, now, desired_nodes=a.nodes))
            elif a.op is Op.SHRINK and rec.state is S.ACTIVE:
                touched.append(self.store.update(rec, now, desired_nodes=a.nodes, reason=a.reason))
            elif a.op in (Op.DRAIN, Op.DELETE):
                touched.append(self.release(rec, a.reason, a.deadline))
            elif a.op is Op.UNDRAIN and rec.state is S.DRAINING:
                self.fence.check(f"undrain {rec.cluster_id}")
                self.federation.undrain(rec)
                touched.append(self.store.transition(rec, S.ACTIVE, now, a.reason))
        return touched

    def _new_record(self, a: Action, now: datetime) -> ClusterRecord:
        assert a.target is not None
        off = a.target.offering
        return ClusterRecord(
            cluster_id=a.cluster_id,
            provider=a.provider,
            region=off.region,
            flavor=a.flavor,
            cpus_per_node=off.cpus,
            memory_mb_per_node=off.memory_mb,
            gpus_per_node=off.gpus,
            nodes=0,
            desired_nodes=a.nodes,
            state=S.PLANNED,
            state_since=now,
            created_at=now,
            price_per_hour=off.price_per_hour,
            control_plane_per_hour=off.control_plane_per_hour,
            currency=off.currency,
            campaign=a.campaign,
            policy=a.policy,
            reason=a.reason,
        )

    def release(self, rec: ClusterRecord, reason: str, deadline: datetime | None = None) -> ClusterRecord:
        """Take a cluster out of service the gentlest way its state allows.  A ``deadline`` (the
        budget's hard stop) removes it then even if jobs still run."""
        now = self.clock.now()
        if rec.state is S.PLANNED:
            return self.store.transition(rec, S.REMOVED, now, f"cancelled before creation: {reason}", removed_at=now)
        if rec.state is S.PROVISIONING:
            return self.store.transition(rec, S.REMOVING, now, f"cancelled while provisioning: {reason}")
        if deadline is not None and rec.drain_deadline is not None:
            deadline = min(deadline, rec.drain_deadline)
        if rec.state in (S.ACTIVE, S.JOINING):
            return self.store.transition(rec, S.DRAINING, now, reason, drain_deadline=deadline)
        if rec.state is S.DRAINING and deadline is not None and deadline != rec.drain_deadline:
            return self.store.update(rec, now, drain_deadline=deadline, reason=reason)
        return rec

    # --- one step for every cluster -----------------------------------------------------------

    def step(self, stop: Callable[[], bool] | None = None, only: str | None = None) -> StepReport:
        """Advance every cluster (or ``only`` one) by one step.  ``stop`` is checked between
        clusters, so a SIGTERM never interrupts a cluster mid-step."""
        report = StepReport()
        self.check_installation()
        if only is None:
            self._scan_orphans(report)
        for rec in self.store.fleet():
            if stop is not None and stop():
                break
            if only is not None and rec.cluster_id != only:
                continue
            try:
                try:
                    self._step_one(rec, report)
                except (StaleRecord, LeaseLost):
                    raise
                except BurstError as err:
                    self._failed_call(rec, err, report)
            except StaleRecord as err:
                # Another process (an operator's command, a second replica) moved this cluster
                # meanwhile; nothing was written over it.  The next step re-reads the store.
                log.info("%s: skipped this step: %s", rec.cluster_id, err)
        return report

    def _spec(self, rec: ClusterRecord) -> ClusterSpec:
        return ClusterSpec(
            rec.cluster_id,
            rec.provider,
            rec.region,
            rec.flavor,
            rec.desired_nodes,
            self.owner,
            rec.campaign,
            rec.policy,
            {STORE_TAG: self.store.token},
        )

    def _provider(self, rec: ClusterRecord) -> Provider:
        try:
            return self.providers[rec.provider]
        except KeyError:
            raise ProviderError(f"provider {rec.provider!r} is no longer configured") from None

    def _move(
        self, rec: ClusterRecord, target: ClusterState, reason: str, report: StepReport, **changes: object
    ) -> ClusterRecord:
        new = self.store.transition(rec, target, self.clock.now(), reason, **changes)
        report.transitions.append((rec.cluster_id, rec.state, target))
        log.info("%s: %s → %s (%s)", rec.cluster_id, rec.state, target, reason)
        return new

    def _due(self, rec: ClusterRecord) -> bool:
        return rec.next_attempt_at is None or rec.next_attempt_at <= self.clock.now()

    def _step_one(self, rec: ClusterRecord, report: StepReport) -> None:
        now = self.clock.now()
        if not self._due(rec):
            return
        st = rec.state
        if st is S.PLANNED:
            backoff = self.store.backoff(rec.provider)
            if backoff is not None and backoff.until > now:
                # Planned before its provider failed (earlier in this step): not sent, so a fault
                # costs one create call per back-off window, not one per planned cluster.
                until = backoff.until
                report.fallbacks.setdefault(rec.provider, f"backing off until {until:%H:%M:%S}")
                self._move(
                    rec,
                    S.REMOVED,
                    f"not sent: {rec.provider} backs off until {until:%Y-%m-%d %H:%M:%S}",
                    report,
                    removed_at=now,
                )
                return
            if backoff is not None and self._probing(rec.provider):
                # After a failure streak one create probes the provider; the others wait for its
                # answer (a failed provisioning shows only once the cloud gives up building).
                return
            # Intent first: once PROVISIONING is committed, a restart will (idempotently) create.
            rec = self._move(rec, S.PROVISIONING, "create requested", report, requested_at=now)
            self._provisioning(rec, report)
        elif st is S.PROVISIONING:
            self._provisioning(rec, report)
        elif st is S.JOINING:
            self._joining(rec, report)
        elif st is S.ACTIVE:
            self._active(rec)
        elif st is S.DRAINING:
            hard_stop = rec.drain_deadline is not None and now >= rec.drain_deadline
            try:
                self.fence.check(f"drain {rec.cluster_id}")
                running: int | None = self.federation.drain(rec)
            except FederationError as err:
                if not hard_stop:
                    raise  # cannot tell what runs there: keep it (retried later)
                # At a hard stop (budget, `burst remove --force`) an unreachable member must
                # not keep the cluster alive: what it still runs is unknown, and killed.
                log.warning("%s: cannot count its running jobs at the hard stop: %s", rec.cluster_id, err)
                running = None
            if running == 0:
                rec = self._move(rec, S.REMOVING, "drained: no job runs there", report)
                self._removing(rec, report)
            elif not hard_stop:
                self._release_idle_nodes(rec, rec.nodes)  # the busy ones stay until their jobs end
            else:
                assert rec.drain_deadline is not None
                report.killed += running or 0
                count = f"{running}" if running is not None else "an unknown number of"
                unknown = " (the member cannot be reached to count them)" if running is None else ""
                why = (
                    f"hard stop at {rec.drain_deadline:%Y-%m-%d %H:%M}: {count} running job(s) killed{unknown} "
                    f"({rec.reason})"
                )
                log.warning("%s: %s", rec.cluster_id, why)
                rec = self._move(rec, S.REMOVING, why, report)
                self._removing(rec, report)
        elif st is S.REMOVING:
            self._removing(rec, report)
        elif st is S.FAILED:
            self._failed(rec, report)

    def _probing(self, provider: str) -> bool:
        """A create of ``provider`` is in flight (sent, not yet ready)."""
        return any(c.provider == provider and c.state is S.PROVISIONING for c in self.store.fleet())

    def _provisioning(self, rec: ClusterRecord, report: StepReport) -> None:
        now = self.clock.now()
        started = rec.requested_at or rec.state_since
        if now - started > self.settings.provisioning_timeout:
            report.stuck_deleted += 1
            why = f"stuck provisioning for more than {self.settings.provisioning_timeout}"
            self._move(rec, S.REMOVING, why, report)
            report.error(rec.cluster_id, rec.provider, "StuckProvisioning", why)
            self._back_off(rec.provider, "StuckProvisioning", why, report)
            report.fallbacks[rec.provider] = f"StuckProvisioning: {why}"
            return
        self.fence.check(f"create {rec.cluster_id}")
        cloud = self._provider(rec).create_cluster(self._spec(rec))
        if not self.store.billing_started(rec.cluster_id):
            # The cloud accepted the create (the call returned): billing starts now, or when the
            # cloud says it created the cluster (a create resent after a crash).
            at = min(cloud.created_at, now) if cloud.created_at is not None else now
            self.store.start_billing(rec, max(at, started))
        if cloud.status is CloudStatus.READY:
            self.store.clear_backoff(rec.provider)
            rec = self._move(
                rec,
                S.JOINING,
                "cluster ready; joining the federation",
                report,
                ready_at=now,
                nodes=cloud.nodes or rec.desired_nodes,
            )
            self._joining(rec, report)
        elif cloud.status is CloudStatus.FAILED:
            raise ProvisioningFailed(cloud.message or "the cloud reports the cluster failed")

    def _joining(self, rec: ClusterRecord, report: StepReport) -> None:
        now = self.clock.now()
        if now - rec.state_since > self.settings.joining_timeout:
            self._move(rec, S.DRAINING, f"{ROLLBACK} never took work within {self.settings.joining_timeout}", report)
            return
        kubeconfig = self._provider(rec).credentials(rec.cluster_id)
        self.fence.check(f"join {rec.cluster_id}")
        status = self.federation.join(rec, kubeconfig)
        if status.ready:
            self._move(rec, S.ACTIVE, status.message or "member takes work", report)

    def _active(self, rec: ClusterRecord) -> None:
        if rec.nodes == rec.desired_nodes:
            return
        if rec.nodes > rec.desired_nodes:
            self._release_idle_nodes(rec, rec.nodes - rec.desired_nodes)
            return
        prov = self._provider(rec)
        self.fence.check(f"resize {rec.cluster_id}")
        cloud = prov.resize(rec.cluster_id, rec.desired_nodes)
        if cloud.status is CloudStatus.READY and cloud.nodes != rec.nodes:
            rec = self.store.update(rec, self.clock.now(), nodes=cloud.nodes)
            if isinstance(self.federation, FollowsResize):  # rare: once per finished resize
                try:
                    self.federation.resized(rec)
                except FederationError as err:
                    log.warning("%s: the federation did not follow the resize: %s", rec.cluster_id, err)

    def _release_idle_nodes(self, rec: ClusterRecord, count: int) -> ClusterRecord:
        """Give back up to ``count`` idle nodes: the federation fences them, then the provider
        deletes exactly those.  The ledger keeps billing them until the cloud took them back."""
        if rec.provider not in self.releases_nodes():
            return rec
        # Checked once in releases_nodes(): a runtime Protocol check per call costs more than the call.
        prov = cast(RemovesNodes, self._provider(rec))
        self.fence.check(f"release idle nodes of {rec.cluster_id}")
        names = cast(ReleasesNodes, self.federation).release_idle(rec, count)
        if not names:
            return rec
        self.fence.check(f"remove nodes of {rec.cluster_id}")
        cloud = prov.remove_nodes(rec.cluster_id, names)
        left = min(rec.nodes, cloud.desired_nodes) if cloud.desired_nodes > 0 else rec.nodes - len(names)
        desired = left if rec.state is S.DRAINING else min(rec.desired_nodes, left)
        log.info("%s: released %d idle node(s), %d left", rec.cluster_id, rec.nodes - left, left)
        return self.store.update(rec, self.clock.now(), nodes=left, desired_nodes=desired)

    def _removing(self, rec: ClusterRecord, report: StepReport) -> None:
        self.fence.check(f"unjoin {rec.cluster_id}")
        self.federation.unjoin(rec)
        try:
            self.fence.check(f"delete {rec.cluster_id}")
            self._provider(rec).delete_cluster(rec.cluster_id)
        except NotFound:
            now = self.clock.now()
            self._move(rec, S.REMOVED, "deleted; nothing left in the cloud", report, removed_at=now, nodes=0)

    def _failed(self, rec: ClusterRecord, report: StepReport) -> None:
        """A failed cluster is cleaned up; placement buys replacement capacity as a new cluster, so a
        half-created cloud object is never reused."""
        self._move(rec, S.REMOVING, f"cleaning up after failure: {rec.last_error}", report)

    # --- errors ---------------------------------------------------------------------------------

    def _failed_call(self, rec: ClusterRecord, err: BurstError, report: StepReport) -> None:
        """One place decides what an error means for a cluster's lifecycle and its provider."""
        now = self.clock.now()
        rec = self.store.get(rec.cluster_id) or rec
        kind = type(err).__name__
        report.error(rec.cluster_id, rec.provider, kind, str(err))
        log.warning("%s in %s: %s: %s", rec.cluster_id, rec.state, kind, err)
        attempts = rec.attempts + 1
        if isinstance(err, Throttled):
            delay = timedelta(seconds=err.retry_after)
        else:
            delay = min(self.settings.retry_backoff * (2 ** min(rec.attempts, 6)), timedelta(hours=1))
        changes: dict[str, object] = {
            "attempts": attempts,
            "last_error": f"{kind}: {err}",
            "next_attempt_at": now + delay,
        }
        provisioning = rec.state is S.PROVISIONING
        refused = provisioning and isinstance(err, REFUSED) and not self.store.billing_started(rec.cluster_id)
        if refused or (provisioning and isinstance(err, ProvisioningFailed)):
            # The cloud refused the create, or gave up building it: this provider backs off (for
            # longer at each failure in a row) and placement picks another one now.  A refused
            # create was never billed; a failed one is billed until its delete completes.
            retry_after = timedelta(seconds=err.retry_after) if isinstance(err, Throttled) else None
            until = self._back_off(rec.provider, kind, str(err), report, retry_after)
            report.fallbacks[rec.provider] = f"{kind}: {err}"
            why = f"{kind}: {err}; {rec.provider} avoided until {until:%Y-%m-%d %H:%M:%S}"
            self._move(rec, S.FAILED, why, report, **changes)
            return
        if isinstance(err, Throttled | AuthFailed):
            # Throttled or refused on a cluster the cloud holds: the account is unwell, so no new
            # cluster is asked of it for a while; this one is retried later.
            self._back_off(rec.provider, kind, str(err), report, delay if isinstance(err, Throttled) else None)
        if provisioning and attempts >= self.settings.max_attempts:
            self._move(rec, S.FAILED, f"{kind}: {err}; gave up after {attempts} attempts", report, **changes)
        elif rec.state is S.JOINING and isinstance(err, FederationError) and attempts >= self.settings.max_attempts:
            self._move(rec, S.DRAINING, f"{ROLLBACK} cannot join: {err}", report, **changes)
        else:
            # Transient (throttled, network, a federation hiccup): same state, try again later.
            self.store.update(rec, now, **changes)

    def _back_off(
        self, provider: str, kind: str, message: str, report: StepReport, at_least: timedelta | None = None
    ) -> datetime:
        """Placement avoids ``provider`` for a delay that doubles with each failure in a row (up to
        ``provider_backoff``) and resets when it delivers a cluster.  Failures while a back-off
        runs (other clusters of the same step) do not grow it again."""
        now = self.clock.now()
        prev = self.store.backoff(provider)
        if prev is not None and prev.until > now:
            return prev.until
        attempts = prev.attempts + 1 if prev is not None else 1
        delay = provider_delay(provider, attempts, self.settings.provider_backoff_first, self.settings.provider_backoff)
        if at_least is not None:
            delay = max(delay, at_least)
        until = now + delay
        self.store.set_backoff(provider, until, f"{kind}: {message}", attempts, kind)
        report.backoffs[provider] = until
        log.warning(
            "%s backs off until %s (%d failure(s) in a row, last %s)", provider, f"{until:%H:%M:%S}", attempts, kind
        )
        return until

    # --- orphans: tagged clusters the store does not know ---------------------------------------

    def check_installation(self) -> None:
        """Refuse to act while another store creates clusters under our installation name."""
        if self.conflict is not None:
            raise InstallationConflict(self.conflict)

    def _scan_orphans(self, report: StepReport, force: bool = False) -> None:
        """List each provider's clusters with our owner tag (when due) and adopt those the store
        does not know once they stayed unknown for ``orphan_grace``.  A failed listing is reported
        and retried at the next step; untagged clusters are never listed, so never touched."""
        now = self.clock.now()
        grace = self.settings.orphan_grace
        for name, prov in self.providers.items():
            due = self._next_scan.get(name)
            if not force and due is not None and now < due:
                continue
            try:
                listed: list[CloudCluster] = list(prov.list_clusters(self.owner))
            except ProviderError as err:
                report.error("*", name, type(err).__name__, f"listing {name} for orphans: {err}")
                log.warning("cannot list %s for orphans (retried next tick): %s", name, err)
                self._next_scan[name] = now + timedelta(seconds=1)  # the next tick, not this one's fallback pass
                continue
            first = self._first_listing.setdefault(name, frozenset(c.cluster_id for c in listed))
            seen: set[str] = set()
            waiting: list[datetime] = []
            for cloud in listed:
                cid = cloud.cluster_id
                # A fresh read: a miss in memory asks the database, so a cluster another process
                # (the daemon, while `burst apply` runs) has just recorded is never an orphan.
                if cloud.tags.get(OWNER_TAG) != self.owner or self.store.get(cid) is not None:
                    continue
                seen.add(cid)
                self._check_other_store(name, cloud, cid in first)
                since = self._unknown.setdefault(cid, (name, now))[1]
                if now - since < grace:
                    waiting.append(since + grace)
                    continue
                self.fence.check(f"adopt orphan {cid}")
                if self._known(cid):  # re-read under the fence: the last word before adopting
                    continue
                self._adopt_orphan(name, prov, cloud, report)
            for cid in [c for c, (p, _) in self._unknown.items() if p == name and c not in seen]:
                del self._unknown[cid]
            self._next_scan[name] = min(waiting, default=now + max(grace, SCAN_EVERY_MIN))

    def _check_other_store(self, provider: str, cloud: CloudCluster, there_at_start: bool) -> None:
        """A cluster with our owner tag made by another store after ours was claimed means a
        second installation under our name (or a wrong ``state:`` URL) is acting now: stop."""
        token = cloud.tags.get(STORE_TAG)
        if not token or token == self.store.token:
            return
        created = cloud.created_at
        new = created >= self.store.claimed_at if created is not None else not there_at_start
        if not new:
            return  # a lost store's leftover: adopted after the grace period
        when = f"created {created:%Y-%m-%d %H:%M} UTC, " if created is not None else ""
        self.conflict = (
            f"installation {self.owner!r}: cluster {cloud.cluster_id} on {provider} carries our owner tag but "
            f"another store made it ({when}burst.store={token}, this store is {self.store.token}, claimed "
            f"{self.store.claimed_at:%Y-%m-%d %H:%M} UTC): a second installation uses the same name or a "
            "different `state:` URL; refusing to act — give each installation its own `installation` name"
        )
        log.error("%s", self.conflict)
        raise InstallationConflict(self.conflict)

    def _adopt_orphan(self, name: str, prov: Provider, cloud: CloudCluster, report: StepReport) -> None:
        """Take an orphan into the store, DRAINING: the lifecycle drains it through the federation
        and deletes it only once no job runs there."""
        now = self.clock.now()
        offs = list(prov.offerings())
        off = next((o for o in offs if o.flavor == cloud.flavor), None)
        reason = f"adopted: tagged {OWNER_TAG}={self.owner} but unknown to the store for {self.settings.orphan_grace}"
        rec = ClusterRecord(
            cluster_id=cloud.cluster_id,
            provider=name,
            region=cloud.region or (off.region if off else ""),
            flavor=cloud.flavor,
            cpus_per_node=off.cpus if off else 0,
            memory_mb_per_node=off.memory_mb if off else 0,
            gpus_per_node=off.gpus if off else 0,
            nodes=cloud.nodes,
            desired_nodes=cloud.nodes,
            state=S.DRAINING,
            state_since=now,
            created_at=cloud.created_at or now,
            price_per_hour=off.price_per_hour if off else 0.0,
            control_plane_per_hour=off.control_plane_per_hour if off else 0.0,
            currency=off.currency if off else (offs[0].currency if offs else "EUR"),
            campaign=cloud.tags.get(CAMPAIGN_TAG, ""),
            policy="orphan",
            reason=reason,
        )
        self.store.add_adopted(rec, reason)
        self._unknown.pop(cloud.cluster_id, None)
        report.orphans_removed.append(cloud.cluster_id)
        log.warning("orphan cluster %s on %s adopted: drained, then removed", cloud.cluster_id, name)

    def adopt(self) -> StepReport:
        """Scan every provider for orphans now (start-up, ``burst apply``); each step scans again
        when due.  Orphans past their grace period are adopted; the others wait."""
        report = StepReport()
        self.check_installation()
        self._scan_orphans(report, force=True)
        return report

    def _known(self, cluster_id: str) -> bool:
        """The store has a live record of ``cluster_id`` (read from the database, not the cache)."""
        rec = self.store.read(cluster_id)
        return rec is not None and rec.state is not S.REMOVED
