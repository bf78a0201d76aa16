"""``burst run``: the daemon.

APScheduler runs the reconcile tick on an interval, plus one-off wake-ups when a policy's answer
changes without new demand (a schedule window opening, a pre-warm deadline).  When several
replicas run, a Kubernetes ``Lease`` elects the one that acts; the others stand by.  SIGTERM
stops cleanly between steps: the next start resumes from the store.  Every decision and
transition is stored with its reason; logs are structured (``--log-format json``).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from burst.alarms import AlarmSignals, cluster_ages
from burst.clock import Clock, RealClock
from burst.config import Config, LeaderElectionConfig
from burst.engine import Engine, TickResult
from burst.errors import BurstError, ConfigError
from burst.federation.kube import client_from_kubeconfig

if TYPE_CHECKING:
    from burst.metrics import AlarmMetrics

log = logging.getLogger("burst.daemon")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log collectors (Loki, Elasticsearch) ingest as is."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("cluster", "event", "tick", "actions", "transitions", "errors", "duration_s", "leader"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(fmt: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger("burst")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class LeaseElector:
    """Leader election with a ``coordination.k8s.io/v1`` Lease, as client-go's leaderelection does:
    the holder renews ``renewTime``; anyone may take a lease not renewed for ``leaseDurationSeconds``.
    Conflicting writes (two replicas at once) are resolved by the API server's resourceVersion check."""

    def __init__(self, cfg: LeaderElectionConfig, config_dir: str, clock: Clock) -> None:
        from kubernetes import client

        path = cfg.kubeconfig if os.path.isabs(cfg.kubeconfig) else os.path.join(config_dir, cfg.kubeconfig)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"leader_election.kubeconfig: cannot read {path}: {err.strerror}") from None
        api_client, _ = client_from_kubeconfig(text, cfg.context)
        self.api = client.CoordinationV1Api(api_client)
        self.cfg = cfg
        self.clock = clock
        self.identity = cfg.identity or f"{socket.gethostname()}-{os.getpid()}"
        self.leading = False
        #: at the last try_lead: another replica held a live lease (False: none, or unknown)
        self.others_lead = False

    def _lease(self, resource_version: str | None, transitions: int, acquire: datetime) -> Any:
        from kubernetes import client

        return client.V1Lease(
            api_version="coordination.k8s.io/v1",
            kind="Lease",
            metadata=client.V1ObjectMeta(
                name=self.cfg.name, namespace=self.cfg.namespace, resource_version=resource_version
            ),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=int(self.cfg.lease_duration.total_seconds()),
                acquire_time=acquire,
                renew_time=self.clock.now(),
                lease_transitions=transitions,
            ),
        )

    def try_lead(self) -> bool:
        """Acquire or renew the lease; False when another live replica holds it or the API fails."""
        from kubernetes.client.exceptions import ApiException

        now = self.clock.now()
        self.others_lead = False
        try:
            try:
                lease = self.api.read_namespaced_lease(self.cfg.name, self.cfg.namespace)
            except ApiException as err:
                if err.status != 404:
                    raise
                self.api.create_namespaced_lease(self.cfg.namespace, self._lease(None, 0, now))
                self.leading = True
                return True
            spec = lease.spec
            holder = spec.holder_identity if spec else None
            renew = spec.renew_time if spec else None
            duration = timedelta(seconds=(spec.lease_duration_seconds or 0) if spec else 0)
            expired = renew is None or renew.astimezone(UTC) + duration < now
            if holder != self.identity and not expired:
                self.leading = False
                self.others_lead = True
                return False
            transitions = (spec.lease_transitions or 0) if spec else 0
            acquire = spec.acquire_time if (spec and holder == self.identity and spec.acquire_time) else now
            if holder != self.identity:
                transitions += 1
            version = lease.metadata.resource_version if lease.metadata else None
            self.api.replace_namespaced_lease(
                self.cfg.name,
                self.cfg.namespace,
                self._lease(version, transitions, acquire.astimezone(UTC)),
            )
            self.leading = True
            return True
        except ApiException as err:
            log.warning(
                "leader election: lease %s/%s: %s %s", self.cfg.namespace, self.cfg.name, err.status, err.reason
            )
            self.leading = False
            return False
        except OSError as err:  # the API server is unreachable: never act on a guess
            log.warning("leader election: cannot reach the API server: %s", err)
            self.leading = False
            return False

    def release(self) -> None:
        """Hand the lease over at shutdown, so a standby takes over at once."""
        if not self.leading:
            return
        from kubernetes.client.exceptions import ApiException

        try:
            lease = self.api.read_namespaced_lease(self.cfg.name, self.cfg.namespace)
            if lease.spec and lease.spec.holder_identity == self.identity:
                lease.spec.renew_time = datetime(1970, 1, 1, tzinfo=UTC)
                lease.spec.holder_identity = None
                self.api.replace_namespaced_lease(self.cfg.name, self.cfg.namespace, lease)
        except (ApiException, OSError) as err:
            log.warning("leader election: could not release the lease: %s", err)
        self.leading = False


class Daemon:
    def __init__(
        self,
        cfg: Config,
        *,
        clock: Clock | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        max_ticks: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock or RealClock()
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.max_ticks = max_ticks
        self.stopping = threading.Event()
        self.ticks = 0
        self._lock = threading.Lock()
        self.engine: Engine | None = None
        self.elector: LeaseElector | None = None
        self.signals = AlarmSignals(providers=tuple(cfg.providers))
        self._alarm_metrics: AlarmMetrics | None = None

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if not self.stopping.is_set():
            log.info("stopping (%s): finishing the current step", signal.Signals(signum).name if signum else "request")
        self.stopping.set()

    def run(self) -> int:
        cfg = self.cfg
        self.engine = Engine.build(cfg, self.clock, extras={"onprem_cores": cfg.file.onprem.cores})
        if cfg.file.leader_election is not None:
            self.elector = LeaseElector(cfg.file.leader_election, cfg.config_dir, self.clock)
        status = None
        metrics = None
        if self.metrics_port is not None:
            from prometheus_client import CollectorRegistry

            from burst.metrics import AlarmMetrics, BurstMetrics
            from burst.report import budgets_from_config
            from burst.status import start_status_server

            registry = CollectorRegistry()
            metrics = BurstMetrics(registry, budgets_from_config(cfg))
            self._alarm_metrics = AlarmMetrics(registry)
            status = start_status_server(
                self.engine.store, cfg, registry, self.metrics_host, self.metrics_port, signals=self.signals
            )
            log.info("status page and /metrics on %s", status.url)
        self._metrics = metrics
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)

        tick_s = cfg.file.reconciler.tick.total_seconds()
        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(
            self._tick,
            IntervalTrigger(seconds=tick_s, timezone=UTC),
            id="tick",
            next_run_time=datetime.now(UTC),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self._scheduler = scheduler
        scheduler.start()
        log.info(
            "burst %s running: tick every %ss, %d provider(s), federation %s",
            cfg.file.installation,
            tick_s,
            len(cfg.providers),
            cfg.federation.kind,
        )
        try:
            while not self.stopping.wait(0.2):
                pass
        finally:
            scheduler.shutdown(wait=True)  # a running tick finishes its current step first
            if self.elector is not None:
                self.elector.release()
            if status is not None:
                status.stop()
            self.engine.store.close()
            log.info("stopped after %d tick(s); the next start resumes from the store", self.ticks)
        return 0

    def _tick(self) -> None:
        if self.stopping.is_set():
            return
        with self._lock:
            assert self.engine is not None
            eng = self.engine
            if self.elector is not None and not self.elector.try_lead():
                log.info("standing by: another replica holds the lease", extra={"leader": False})
                self._observe_alarms(None)
                return
            started = time.perf_counter()
            try:
                eng.store.refresh()  # an operator's `burst drain` may have written meanwhile
                eng.reload_state()  # ...and `burst apply`, or the replica that led before a failover
                # Each tick's step lists the accounts for orphans when due (and again after a
                # failed listing), so one transient error never leaves an orphan for good.
                result = eng.tick(stop=self.stopping.is_set)
                self.signals.orphans_found += len(result.step.orphans_removed)
                for cid in result.step.orphans_removed:
                    log.warning(
                        "adopted orphan cluster %s: drained, then removed",
                        cid,
                        extra={"cluster": cid, "event": "orphan"},
                    )
            except BurstError as err:
                log.error("tick failed: %s", err)
                return
            duration = time.perf_counter() - started
            self.ticks += 1
            self._log_tick(result, duration)
            if self._metrics is not None:
                self._metrics.observe_tick(eng, result, duration)
            self._observe_alarms(result)
            self._schedule_wake()
            if self.max_ticks is not None and self.ticks >= self.max_ticks:
                self.stopping.set()

    def _observe_alarms(self, result: TickResult | None) -> None:
        """Feed the alarm signals (and their gauges): ``result`` of a tick this replica led, None
        when it stood by.  Only the leader exports cluster ages, so an alert fires once."""
        assert self.engine is not None
        now = self.clock.now()
        if result is None:
            self.signals.observe_standby(now, leader_alive=self.elector is not None and self.elector.others_lead)
            ages = []
        else:
            fleet = self.engine.store.fleet()
            # adopted orphans are store records too, so the fleet names every cluster's provider
            provider_of = {c.cluster_id: c.provider for c in fleet}
            failed = [cid for cid, _from, to in result.step.transitions if to == "FAILED"]
            self.signals.observe_tick(
                now,
                demand_stale=result.demand.stale,
                errors=result.step.errors,
                provider_of=provider_of,
                failed=failed,
            )
            ages = cluster_ages(fleet, now, self.cfg.file.reconciler)
        if self._alarm_metrics is not None:
            self._alarm_metrics.observe(ages, self.signals, now)

    def _schedule_wake(self) -> None:
        assert self.engine is not None
        wake = self.engine.stack.next_wake(self.clock.now())
        if wake is not None and wake > self.clock.now():
            self._scheduler.add_job(
                self._tick,
                DateTrigger(run_date=wake, timezone=UTC),
                id="wake",
                replace_existing=True,
                misfire_grace_time=None,
            )

    def _log_tick(self, result: TickResult, duration: float) -> None:
        actions = [a.describe() for a in result.plan.actions]
        transitions = [f"{c}: {a} → {b}" for c, a, b in result.step.transitions]
        errors = [f"{c}: {k}: {m}" for c, k, m in result.step.errors]
        d = result.demand
        log.info(
            "tick %d: %d cores pending (%d jobs)%s, %d action(s), %d transition(s), %d error(s) in %.2fs",
            self.ticks,
            d.pending_cores,
            d.pending_jobs,
            " [stale]" if d.stale else "",
            len(actions),
            len(transitions),
            len(errors),
            duration,
            extra={
                "event": "tick",
                "tick": self.ticks,
                "actions": actions,
                "transitions": transitions,
                "errors": errors,
                "duration_s": round(duration, 4),
                "leader": True,
            },
        )
        for a in actions:
            log.info("decision: %s", a, extra={"event": "decision"})
