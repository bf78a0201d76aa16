"""``burst run``: the daemon.

APScheduler runs the reconcile tick on an interval, plus one-off wake-ups when a policy's answer
changes without new demand (a schedule window opening, a pre-warm deadline).  When several
replicas run, a lease (a Kubernetes ``Lease``, or a row in the store) elects the one that acts; the
others stand by, and the leader re-checks its lease before every side effect (``burst.fence``).  SIGTERM
stops cleanly between steps: the next start resumes from the store.  Every decision and
transition is stored with its reason; logs are structured (``--log-format json``).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from burst.alarms import AlarmSignals, cluster_ages
from burst.clock import Clock, RealClock
from burst.config import Config
from burst.engine import Engine, TickResult
from burst.errors import BurstError
from burst.fence import LeaseFence, LeaseLost
from burst.leader import LeaseElector, build_fence

if TYPE_CHECKING:
    from burst.metrics import AlarmMetrics, BurstMetrics

__all__ = ["Daemon", "JsonFormatter", "LeaseElector", "setup_logging"]

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


class TextFormatter(logging.Formatter):
    """One line per record even with an exception: its type and message, never a traceback
    (``--log-format json`` keeps the traceback, in the ``exc`` field)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            err = record.exc_info[1]
            line += f" ({type(err).__name__}: {err})"
        return line


def setup_logging(fmt: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("burst")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class Daemon:
    def __init__(
        self,
        cfg: Config,
        *,
        clock: Clock | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        max_ticks: int | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock or RealClock()
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.max_ticks = max_ticks
        #: set by SIGTERM/SIGINT; the CLI passes one its own early handler sets while burst starts
        self.stopping = stopping or threading.Event()
        self.ticks = 0
        self._lock = threading.Lock()
        self.engine: Engine | None = None
        self.fence: LeaseFence | None = None
        self._metrics: BurstMetrics | None = None
        #: ticks that ended in an exception, by exception type (also burst_tick_failures_total)
        self.failures: dict[str, int] = {}
        self.signals = AlarmSignals(providers=tuple(cfg.providers))
        self._alarm_metrics: AlarmMetrics | None = None

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if not self.stopping.is_set():
            log.info("stopping (%s): finishing the current step", signal.Signals(signum).name if signum else "request")
        self.stopping.set()

    def run(self) -> int:
        cfg = self.cfg
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        if self.stopping.is_set():
            log.info("stopped before the first tick (signal while starting); nothing was done")
            return 0
        self.engine = Engine.build(cfg, self.clock, extras={"onprem_cores": cfg.file.onprem.cores})
        self.fence = build_fence(cfg, self.engine.store, self.clock)
        self.engine.reconciler.fence = self.fence
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
            # its own read-only store: a flood of page views never takes the tick's connections
            url = cfg.state_url()
            source = self.engine.store if url in ("sqlite://", "sqlite:///:memory:") else url
            status = start_status_server(
                source, cfg, registry, self.metrics_host, self.metrics_port, signals=self.signals
            )
            log.info("status page and /metrics on %s", status.url)
        self._metrics = metrics

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
            self.fence.elector.release()
            if status is not None:
                status.stop()
            self.engine.store.close()
            log.info("stopped after %d tick(s); the next start resumes from the store", self.ticks)
        return 0

    def _tick(self) -> None:
        """One tick; whatever it raises is logged (one JSON line, traceback in ``exc``) and
        counted, and the scheduler runs the next tick on time."""
        if self.stopping.is_set():
            return
        with self._lock:
            try:
                self._tick_locked()
            except Exception as err:  # the last line of defence: a tick never kills the daemon
                self._failed(err)

    def _failed(self, err: Exception) -> None:
        kind = type(err).__name__
        self.failures[kind] = self.failures.get(kind, 0) + 1
        if self._metrics is not None:
            self._metrics.tick_failures.labels(kind).inc()
        if isinstance(err, LeaseLost):
            log.warning("%s; the rest of this tick is skipped", err, extra={"event": "lease_lost", "leader": False})
        elif isinstance(err, BurstError):
            log.error("tick failed: %s", err, extra={"event": "tick_failed"})
        elif isinstance(err, SQLAlchemyError):  # the store's database went away (a restart, a failover)
            first = str(err.orig if isinstance(err, DBAPIError) and err.orig is not None else err).splitlines()[0]
            log.error(
                "tick failed: the store is unavailable (%s: %s); retried next tick",
                kind,
                first,
                extra={"event": "store_unavailable"},
            )
        else:
            log.error("tick failed: unexpected %s: %s", kind, err, exc_info=err, extra={"event": "tick_failed"})

    def _tick_locked(self) -> None:
        assert self.engine is not None and self.fence is not None
        eng = self.engine
        if not self.fence.renew():
            log.info("standing by: another replica holds the lease", extra={"leader": False})
            self._observe_alarms(None)
            return
        started = time.perf_counter()
        eng.store.refresh()  # an operator's `burst drain` may have written meanwhile
        eng.reload_state()  # ...and `burst apply`, or the replica that led before a failover
        # Each tick's step lists the accounts for orphans when due (and again after a failed
        # listing), so one transient error never leaves an orphan for good.
        result = eng.tick(stop=self.stopping.is_set)
        self.signals.orphans_found += len(result.step.orphans_removed)
        for cid in result.step.orphans_removed:
            log.warning(
                "adopted orphan cluster %s: drained, then removed", cid, extra={"cluster": cid, "event": "orphan"}
            )
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
            self.signals.observe_standby(now, leader_alive=self.fence is not None and self.fence.elector.others_lead)
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
