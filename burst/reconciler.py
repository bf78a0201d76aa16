"""The reconciler: executes plans through each cluster's lifecycle, one step per tick.

Each step persists the transition first (write-ahead intent) and then performs the side effect
through an idempotent provider or federation call, so a crash anywhere resumes without leaking or
duplicating a cluster.  No step waits for a cloud: long operations are started in one tick and
polled in later ones.

    PLANNED → PROVISIONING → JOINING → ACTIVE → DRAINING → REMOVING → REMOVED  (+ FAILED)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from burst.clock import Clock
from burst.config import ReconcilerConfig
from burst.errors import (
    AuthFailed,
    BurstError,
    FederationError,
    NotFound,
    ProviderError,
    ProvisioningFailed,
    Throttled,
    is_fallback,
)
from burst.federation.api import Federation, ReleasesNodes
from burst.fence import AlwaysHeld, Fence, LeaseLost
from burst.lifecycle import ClusterRecord, ClusterState
from burst.model import CloudCluster, CloudStatus, ClusterSpec
from burst.plan import ROLLBACK, Action, Op, Plan
from burst.provider import Provider, RemovesNodes
from burst.store import StaleRecord, Store

S = ClusterState
log = logging.getLogger("burst.reconciler")


@dataclass
class StepReport:
    """What one reconcile step did: for logs, metrics and same-tick fallback."""

    transitions: list[tuple[str, ClusterState, ClusterState]] = field(default_factory=list)
    #: providers that answered QuotaExceeded / CapacityUnavailable this step
    fallbacks: dict[str, str] = field(default_factory=dict)
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # cluster, error type, message
    stuck_deleted: int = 0
    orphans_removed: list[str] = field(default_factory=list)
    #: jobs still running on clusters removed at a hard-stop deadline
    killed: int = 0


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
        #: orphans whose deletion :meth:`adopt` started: cluster id → provider name.  A cloud delete
        #: takes several calls (EKS: node groups first, then the control plane), so each step
        #: advances them until the provider answers NotFound.  Not persisted: after a restart,
        #: adopt() finds them again by their owner tag.
        self.orphans: dict[str, str] = {}
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
        if only is None:
            self._remove_orphans(report)
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

    def _provisioning(self, rec: ClusterRecord, report: StepReport) -> None:
        now = self.clock.now()
        started = rec.requested_at or rec.state_since
        if now - started > self.settings.provisioning_timeout:
            report.stuck_deleted += 1
            self._move(
                rec, S.REMOVING, f"stuck provisioning for more than {self.settings.provisioning_timeout}", report
            )
            return
        self.fence.check(f"create {rec.cluster_id}")
        cloud = self._provider(rec).create_cluster(self._spec(rec))
        if cloud.status is CloudStatus.READY:
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
            self.store.update(rec, self.clock.now(), nodes=cloud.nodes)

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

    # --- errors -------------------------------------------------------------------------------

    def _failed_call(self, rec: ClusterRecord, err: BurstError, report: StepReport) -> None:
        """One place decides what an error means for a cluster's lifecycle."""
        now = self.clock.now()
        rec = self.store.get(rec.cluster_id) or rec
        kind = type(err).__name__
        report.errors.append((rec.cluster_id, kind, str(err)))
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
        if rec.state is S.PROVISIONING and is_fallback(err):
            # This provider has no room: forget this cluster and let placement pick another now.
            report.fallbacks[rec.provider] = f"{kind}: {err}"
            self.store.set_backoff(rec.provider, now + self.settings.provider_backoff, f"{kind}: {err}")
            self._move(rec, S.FAILED, f"{kind}: {err}; giving up on {rec.provider} for now", report, **changes)
        elif rec.state is S.PROVISIONING and isinstance(err, ProvisioningFailed | AuthFailed):
            self._move(rec, S.FAILED, f"{kind}: {err}", report, **changes)
        elif rec.state is S.PROVISIONING and attempts >= self.settings.max_attempts:
            self._move(rec, S.FAILED, f"{kind}: {err}; gave up after {attempts} attempts", report, **changes)
        elif rec.state is S.JOINING and isinstance(err, FederationError) and attempts >= self.settings.max_attempts:
            self._move(rec, S.DRAINING, f"{ROLLBACK} cannot join: {err}", report, **changes)
        else:
            # Transient (throttled, network, a federation hiccup): same state, try again later.
            self.store.update(rec, now, **changes)

    def _remove_orphans(self, report: StepReport) -> None:
        """One more delete call for each orphan adopt() started removing, until it is gone."""
        for cluster_id, name in list(self.orphans.items()):
            prov = self.providers.get(name)
            if prov is None:
                del self.orphans[cluster_id]
                continue
            try:
                self.fence.check(f"delete orphan {cluster_id}")
                prov.delete_cluster(cluster_id)
            except NotFound:
                del self.orphans[cluster_id]
                log.info("orphan cluster %s on %s deleted", cluster_id, name)
            except ProviderError as err:
                report.errors.append((cluster_id, type(err).__name__, f"removing orphan: {err}"))

    # --- start-up: adopt what we know, remove orphans we created ---------------------------------

    def adopt(self) -> StepReport:
        """Compare each provider's tagged clusters with the store.  Known ones are kept; clusters
        carrying our owner tag but unknown to the store (a crash before the intent was written
        cannot happen, so these come from a lost store) are deleted.  Untagged clusters are never
        listed, so never touched.

        The store is read *after* the cloud listing, one cluster at a time from the database: a
        cluster a daemon created meanwhile had its intent committed before its create call, so a
        fleet read from before the listing would call it an orphan."""
        report = StepReport()
        for name, prov in self.providers.items():
            try:
                listed: list[CloudCluster] = list(prov.list_clusters(self.owner))
            except ProviderError as err:
                report.errors.append(("*", type(err).__name__, f"listing {name}: {err}"))
                continue
            for cloud in listed:
                if self._known(cloud.cluster_id):
                    continue
                try:
                    self.fence.check(f"delete orphan {cloud.cluster_id}")
                    if self._known(cloud.cluster_id):  # re-read under the fence: the last word
                        continue
                    prov.delete_cluster(cloud.cluster_id)
                    self.orphans[cloud.cluster_id] = name  # later steps finish the delete
                except NotFound:
                    pass
                except ProviderError as err:
                    report.errors.append((cloud.cluster_id, type(err).__name__, f"removing orphan: {err}"))
                    continue
                report.orphans_removed.append(cloud.cluster_id)
                log.warning("removing orphan cluster %s on %s (owner tag %s)", cloud.cluster_id, name, self.owner)
        return report

    def _known(self, cluster_id: str) -> bool:
        """The store has a live record of ``cluster_id`` (read from the database, not the cache)."""
        rec = self.store.read(cluster_id)
        return rec is not None and rec.state is not S.REMOVED
