"""The store: fleet, transitions (audit log), ledger, decisions — SQLAlchemy, SQLite or PostgreSQL.

Every lifecycle transition is committed *before* the reconciler performs its side effect
(write-ahead intent), so after a crash the state says what was about to happen, and the
idempotent provider calls make doing it again safe.

The live fleet and the open ledger segments are also kept in memory: the policies read them on
every tick, and a year-long simulation runs hundreds of thousands of ticks.  Writes always go to
the database first.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import (
    Engine,
    Integer,
    bindparam,
    case,
    cast,
    create_engine,
    delete,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from burst import tables as t
from burst.errors import BurstError, ConfigError
from burst.lifecycle import BILLABLE, ClusterRecord, ClusterState
from burst.policy import Spend

S = ClusterState
_RECORD_FIELDS = [f.name for f in fields(ClusterRecord)]
# Statements built once: a simulation writes thousands of transitions.
_UPDATE_CLUSTER = (
    update(t.clusters)
    .where(t.clusters.c.cluster_id == bindparam("_key"), t.clusters.c.state == bindparam("_expected"))
    .values({name: bindparam(name) for name in _RECORD_FIELDS if name != "cluster_id"})
)
_CLOSE_SEGMENT = update(t.ledger).where(t.ledger.c.id == bindparam("_id")).values(end=bindparam("end"))
_INSERT_CLUSTER = t.clusters.insert()
_INSERT_TRANSITION = t.transitions.insert()
_INSERT_SEGMENT = t.ledger.insert()
_INSERT_SAMPLE = t.samples.insert()
# One atomic statement (SQLite ≥ 3.35 and PostgreSQL both have RETURNING): no read-then-write race
# with another process numbering a cluster meanwhile.
_NEXT_CLUSTER_NUMBER = (
    update(t.meta)
    .where(t.meta.c.key == "cluster_seq")
    .values(value=cast(cast(t.meta.c.value, Integer) + 1, t.meta.c.value.type))
    .returning(t.meta.c.value)
)


#: meta keys naming this store: its random token and when it was claimed
_IDENTITY = ("store_token", "claimed_at")


def _row(rec: ClusterRecord) -> dict[str, Any]:
    """The record's columns (a shallow read: ``dataclasses.asdict`` deep-copies and is slow)."""
    return {name: getattr(rec, name) for name in _RECORD_FIELDS}


class StoreError(BurstError):
    """The store cannot be opened or written."""


class StaleRecord(StoreError):
    """The cluster's state changed in the database since this process read it (an operator's
    ``burst drain`` while the daemon ticks, ``burst remove`` beside the daemon): the write is
    refused rather than putting an older state back; re-read the store and decide again."""


@dataclass(frozen=True, slots=True)
class LedgerSegment:
    """``quantity`` units billed at ``rate_per_hour`` each from ``start`` to ``end`` (None = still open)."""

    segment_id: int
    cluster_id: str
    provider: str
    region: str
    flavor: str
    campaign: str
    policy: str
    item: str
    quantity: int
    cores: int
    rate_per_hour: float
    currency: str
    start: datetime
    end: datetime | None

    def hours(self, until: datetime) -> float:
        end = self.end or until
        return max(0.0, (min(end, until) - self.start).total_seconds() / 3600)

    def cost(self, until: datetime) -> float:
        return self.hours(until) * self.quantity * self.rate_per_hour

    def cost_between(self, start: datetime, end: datetime) -> float:
        s = max(self.start, start)
        e = min(self.end or end, end)
        return max(0.0, (e - s).total_seconds() / 3600) * self.quantity * self.rate_per_hour


@dataclass(frozen=True, slots=True)
class Backoff:
    """A provider placement avoids until ``until``: ``attempts`` failures in a row, the last of
    ``kind``.  Kept in the store so a restart resumes the growing delay, not its first step."""

    provider: str
    until: datetime
    reason: str
    attempts: int = 1
    kind: str = ""


def _month(at: datetime) -> tuple[int, int]:
    return (at.year, at.month)


def _month_start(at: datetime) -> datetime:
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def _next_month(at: datetime) -> datetime:
    return datetime(at.year + (at.month == 12), at.month % 12 + 1, 1, tzinfo=UTC)


#: pg_advisory_xact_lock key of a store's opening (any constant; "burst" in ASCII)
_PG_OPEN_LOCK = 0x6275727374


@contextmanager
def _open_lock(engine: Engine) -> Iterator[None]:
    """Serialise opening one SQLite file across processes: SQLite's own locks make a second
    process's ``CREATE TABLE`` fail (not wait) while the first one migrates.  A private in-memory
    database and PostgreSQL (an advisory lock in the transaction) need no file."""
    db = engine.url.database if engine.dialect.name == "sqlite" else None
    if not db or db == ":memory:":
        yield
        return
    import fcntl

    with open(db + ".lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


#: the extra that brings each database's driver (``pip install 'burst[postgres]'``)
_DRIVER_EXTRAS = {"postgresql": "postgres"}


def missing_driver(url: str, err: ImportError) -> str:
    """Why a store URL cannot be opened when its driver module is absent, and what to install."""
    from sqlalchemy.engine import make_url

    try:
        backend = make_url(url).get_backend_name()
    except Exception:  # an unparseable URL raises its own error before the driver is imported
        backend = ""
    extra = _DRIVER_EXTRAS.get(backend)
    what = f"the {err.name or 'database driver'} module is not installed"
    return f"{what}; install it with: pip install 'burst[{extra}]'" if extra else what


def _alembic(conn: Connection | None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def migrate(conn: Connection, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (every open of a store upgrades to the newest)."""
    command.upgrade(_alembic(conn), revision)


def downgrade(conn: Connection, revision: str) -> None:
    """Take the schema back to ``revision`` before an older burst is deployed: the older code
    does not know the newer migrations, so the newer one must undo them."""
    command.downgrade(_alembic(conn), revision)


def schema_revisions() -> list[str]:
    """Every migration's revision id, oldest first."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_alembic(None))
    return [s.revision for s in reversed(list(scripts.walk_revisions()))]


def schema_revision(conn: Connection) -> str | None:
    """The revision the database is at (None: an empty database)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


class Store:
    def __init__(self, url: str, installation: str) -> None:
        self.url = url
        try:
            self.engine = self._engine(url)
            with _open_lock(self.engine), self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Held until this transaction commits: the migrations and the claim of a
                    # fresh store run in one process at a time, the others then find them done.
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_OPEN_LOCK})
                migrate(conn)
                self.token, self.claimed_at = self._claim(conn, installation)
        except OSError as err:
            raise StoreError(f"cannot open store {self._safe_url()}: {err.strerror or err}") from err
        except SQLAlchemyError as err:
            raise StoreError(
                f"cannot open store {self._safe_url()}: {err.__class__.__name__}: {err.args[0] if err.args else err}"
            ) from err
        except ImportError as err:  # the URL's driver is an extra that is not installed
            raise StoreError(f"cannot open store {self._safe_url()}: {missing_driver(url, err)}") from None
        self.installation = installation
        # A private in-memory database has exactly one connection (StaticPool) that no other
        # process can see: keep it checked out instead of checking it out for every write.
        self._held: Connection | None = self.engine.connect() if isinstance(self.engine.pool, StaticPool) else None
        self._fleet: dict[str, ClusterRecord] = {}
        self._fleet_sorted: list[ClusterRecord] | None = None  # fleet() order, until the fleet changes
        self._open: dict[int, LedgerSegment] = {}
        self._closed_by_month: dict[tuple[int, int], float] = defaultdict(float)
        self._closed_by_campaign: dict[str, float] = defaultdict(float)
        self._latencies: dict[str, list[float]] = defaultdict(list)
        self._backoffs: dict[str, Backoff] = {}
        self._load()

    @classmethod
    def reader(cls, url: str) -> Store:
        """A read-only view of the store at ``url`` for the status page: its own small connection
        pool (a flood of page views waits there, never in the daemon's pool), read-only sessions
        with a statement timeout, no migration and nothing cached.  Only the methods that read the
        database (ledger, samples, decisions, transitions, all_clusters, read) are meaningful."""
        self = cls.__new__(cls)
        self.url = url
        self.installation = ""
        self._held = None
        self._fleet, self._fleet_sorted, self._open = {}, None, {}
        self._closed_by_month, self._closed_by_campaign = defaultdict(float), defaultdict(float)
        self._latencies, self._backoffs = defaultdict(list), {}
        try:
            if url.startswith("sqlite"):
                eng = create_engine(url, pool_size=2, max_overflow=2, pool_timeout=10, connect_args={"timeout": 5})

                @event.listens_for(eng, "connect")
                def _read_only(dbapi_conn: Any, _: Any) -> None:
                    cur = dbapi_conn.cursor()
                    cur.execute("PRAGMA query_only=ON")
                    cur.close()

            else:
                eng = create_engine(
                    url,
                    pool_size=2,
                    max_overflow=2,
                    pool_timeout=10,
                    pool_pre_ping=True,
                    connect_args={"options": "-c default_transaction_read_only=on -c statement_timeout=10000"},
                )
        except SQLAlchemyError as err:
            raise StoreError(f"cannot open store {self._safe_url()} to read: {err.__class__.__name__}") from err
        self.engine = eng
        return self

    def _safe_url(self) -> str:
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # an unparseable URL is already the error being reported
            return "<unparseable URL>"

    @staticmethod
    def _engine(url: str) -> Engine:
        if url in ("sqlite://", "sqlite:///:memory:"):
            eng = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            eng = create_engine(url, pool_pre_ping=True)
        if eng.dialect.name == "sqlite":

            @event.listens_for(eng, "connect")
            def _pragmas(dbapi_conn: Any, _: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA foreign_keys=ON")
                if url not in ("sqlite://", "sqlite:///:memory:"):
                    cur.execute("PRAGMA journal_mode=WAL")
                    cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

        return eng

    @staticmethod
    def _claim(conn: Connection, installation: str) -> tuple[str, datetime]:
        """A store belongs to one installation: its owner tag decides which clusters burst may touch.
        It also holds a random token, tagged on every cluster it creates (``burst.store``), and the
        time of its claim: a cluster with our owner tag but another store's token comes from a lost
        store (created before the claim) or from a second installation under the same name."""
        row = conn.execute(select(t.meta.c.value).where(t.meta.c.key == "installation")).scalar_one_or_none()
        if row is None:
            conn.execute(insert(t.meta).values(key="installation", value=installation))
            conn.execute(insert(t.meta).values(key="cluster_seq", value="0"))
        elif row != installation:
            raise ConfigError(
                f"the store belongs to installation {row!r}, the config says {installation!r}; "
                "use another state URL or fix `installation`"
            )
        found = dict(conn.execute(select(t.meta.c.key, t.meta.c.value).where(t.meta.c.key.in_(_IDENTITY))).all())
        if "store_token" not in found:  # a new store, or one from before tokens: claim one now
            found["store_token"] = uuid.uuid4().hex[:16]
            conn.execute(insert(t.meta).values(key="store_token", value=found["store_token"]))
        if "claimed_at" not in found:
            found["claimed_at"] = datetime.now(UTC).isoformat()
            conn.execute(insert(t.meta).values(key="claimed_at", value=found["claimed_at"]))
        return found["store_token"], datetime.fromisoformat(found["claimed_at"])

    def _load(self) -> None:
        self._fleet_sorted = None
        with self.engine.connect() as conn:
            for row in conn.execute(select(t.clusters).where(t.clusters.c.state != S.REMOVED.value)):
                rec = self._record(row._mapping)
                self._fleet[rec.cluster_id] = rec
            q = (
                select(t.clusters.c.provider, t.clusters.c.requested_at, t.clusters.c.ready_at)
                .where(t.clusters.c.ready_at.is_not(None), t.clusters.c.requested_at.is_not(None))
                .order_by(t.clusters.c.ready_at)
            )
            for row in conn.execute(q):
                self._latencies[row.provider].append((row.ready_at - row.requested_at).total_seconds())
            self._backoffs = {
                r.provider: Backoff(r.provider, r.until, r.reason, r.attempts, r.kind)
                for r in conn.execute(select(t.backoffs))
            }
            for row in conn.execute(select(t.ledger)):
                seg = self._segment(row._mapping)
                if seg.end is None:
                    self._open[seg.segment_id] = seg
                else:
                    self._account_closed(seg)

    @staticmethod
    def _record(m: Mapping[Any, Any]) -> ClusterRecord:
        vals = {k: m[k] for k in _RECORD_FIELDS}
        vals["state"] = ClusterState(vals["state"])
        return ClusterRecord(**vals)

    @staticmethod
    def _segment(m: Mapping[Any, Any]) -> LedgerSegment:
        return LedgerSegment(
            m["id"],
            m["cluster_id"],
            m["provider"],
            m["region"],
            m["flavor"],
            m["campaign"],
            m["policy"],
            m["item"],
            m["quantity"],
            m["cores"],
            m["rate_per_hour"],
            m["currency"],
            m["start"],
            m["end"],
        )

    def refresh(self) -> None:
        """Re-read the fleet and ledger: another process (an operator's ``burst drain``) may have
        written.  The daemon calls this at the start of each tick."""
        self._fleet.clear()
        self._open.clear()
        self._closed_by_month.clear()
        self._closed_by_campaign.clear()
        self._latencies.clear()
        self._load()

    def close(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None
        self.engine.dispose()

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """A write transaction, committed on leaving (rolled back on an exception)."""
        held = self._held
        if held is None:
            with self.engine.begin() as conn:
                yield conn
        else:
            with held.begin():
                yield held

    # --- fleet -------------------------------------------------------------------------------

    def fleet(self) -> list[ClusterRecord]:
        """Every cluster not yet REMOVED, oldest first."""
        if self._fleet_sorted is None:
            self._fleet_sorted = sorted(self._fleet.values(), key=lambda c: (c.created_at, c.cluster_id))
        return list(self._fleet_sorted)

    def get(self, cluster_id: str) -> ClusterRecord | None:
        rec = self._fleet.get(cluster_id)
        if rec is not None:
            return rec
        with self.engine.connect() as conn:
            row = conn.execute(select(t.clusters).where(t.clusters.c.cluster_id == cluster_id)).first()
        return self._record(row._mapping) if row is not None else None

    def read(self, cluster_id: str) -> ClusterRecord | None:
        """The cluster's row as the database has it now, whatever this process cached."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.clusters).where(t.clusters.c.cluster_id == cluster_id)).first()
        return self._record(row._mapping) if row is not None else None

    def all_clusters(self) -> list[ClusterRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.clusters).order_by(t.clusters.c.created_at, t.clusters.c.cluster_id))
            return [self._record(r._mapping) for r in rows]

    def next_cluster_number(self) -> int:
        with self._begin() as conn:
            return int(conn.execute(_NEXT_CLUSTER_NUMBER).scalar_one())

    def add(self, rec: ClusterRecord, reason: str) -> ClusterRecord:
        """Record a new PLANNED cluster: the intent, before any cloud call."""
        if rec.state is not S.PLANNED:
            raise ValueError("new clusters start PLANNED")
        return self._insert(rec, reason, billed=False)

    def add_adopted(self, rec: ClusterRecord, reason: str) -> ClusterRecord:
        """Record a cluster found in the cloud with our owner tag but unknown to the store (a lost
        store's leftover), already DRAINING so the lifecycle drains and removes it; it is billed
        from now on, as it costs from now on."""
        if rec.state is not S.DRAINING:
            raise ValueError("an adopted cluster starts DRAINING")
        return self._insert(rec, reason, billed=True)

    def _insert(self, rec: ClusterRecord, reason: str, *, billed: bool) -> ClusterRecord:
        """A cluster's first row and its first transition (from nowhere), in one transaction."""
        with self._begin() as conn:
            vals = _row(rec)
            vals["state"] = rec.state.value
            conn.execute(_INSERT_CLUSTER, vals)
            conn.execute(
                _INSERT_TRANSITION,
                dict(
                    cluster_id=rec.cluster_id,
                    at=rec.state_since,
                    from_state=None,
                    to_state=rec.state.value,
                    reason=reason,
                ),
            )
            if billed:
                self._open_segments(conn, rec, rec.state_since)
        self._fleet[rec.cluster_id] = rec
        self._fleet_sorted = None
        return rec

    def transition(
        self, rec: ClusterRecord, target: ClusterState, at: datetime, reason: str, **changes: Any
    ) -> ClusterRecord:
        """Move ``rec`` to ``target`` (checked against the lifecycle) and commit it, with its ledger
        effect: billing ends when the delete completed.  It starts with :meth:`start_billing`, once
        the cloud accepted the create — a refused create costs nothing."""
        new = rec.moved(target, at, reason=reason, **changes)
        with self._begin() as conn:
            self._write(conn, new, rec.state)
            conn.execute(
                _INSERT_TRANSITION,
                dict(
                    cluster_id=rec.cluster_id, at=at, from_state=rec.state.value, to_state=target.value, reason=reason
                ),
            )
            if target is S.REMOVED:
                self._close_segments(conn, new.cluster_id, at)
        self._remember(new)
        return new

    def update(self, rec: ClusterRecord, at: datetime, **changes: Any) -> ClusterRecord:
        """Change fields other than the state.  A change in billed nodes re-segments the ledger."""
        new = replace(rec, **changes)
        with self._begin() as conn:
            self._write(conn, new, rec.state)
            if _billed_nodes(new) != _billed_nodes(rec) and self._is_billed(rec):
                self._close_segments(conn, rec.cluster_id, at, item="nodes")
                self._open_segments(conn, new, at, items=("nodes",))
        self._remember(new)
        return new

    def _write(self, conn: Connection, rec: ClusterRecord, expected: ClusterState) -> None:
        """Write ``rec`` over the row only if the row is still in the ``expected`` state."""
        vals = _row(rec)
        vals["state"] = rec.state.value
        vals["_key"] = vals.pop("cluster_id")
        vals["_expected"] = expected.value
        if conn.execute(_UPDATE_CLUSTER, vals).rowcount == 0:
            raise StaleRecord(
                f"cluster {rec.cluster_id} is no longer {expected} in the store (changed by another process); "
                "it is read again at the next tick"
            )

    def _remember(self, rec: ClusterRecord) -> None:
        old = self._fleet.get(rec.cluster_id)
        if rec.ready_at is not None and rec.requested_at is not None and (old is None or old.ready_at is None):
            self._latencies[rec.provider].append((rec.ready_at - rec.requested_at).total_seconds())
        if rec.state is S.REMOVED:
            self._fleet.pop(rec.cluster_id, None)
        else:
            self._fleet[rec.cluster_id] = rec
        self._fleet_sorted = None

    def transitions(self, cluster_id: str | None = None) -> list[dict[str, Any]]:
        q = select(t.transitions).order_by(t.transitions.c.id)
        if cluster_id is not None:
            q = q.where(t.transitions.c.cluster_id == cluster_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    # --- ledger ------------------------------------------------------------------------------

    def _is_billed(self, rec: ClusterRecord) -> bool:
        return self.billing_started(rec.cluster_id)

    def billing_started(self, cluster_id: str) -> bool:
        """True once the cloud accepted the cluster's create (and until its delete completed)."""
        return any(s.cluster_id == cluster_id for s in self._open.values())

    def start_billing(self, rec: ClusterRecord, at: datetime) -> None:
        """Open the cluster's ledger segments at ``at``: when the cloud accepted the create, or the
        cloud's own creation time when it reports one.  Idempotent: a cluster is billed once."""
        if rec.state not in BILLABLE or self._is_billed(rec):
            return
        with self._begin() as conn:
            self._open_segments(conn, rec, at)

    def _open_segments(
        self, conn: Connection, rec: ClusterRecord, at: datetime, items: Sequence[str] = ("nodes", "control_plane")
    ) -> None:
        for item in items:
            if item == "control_plane" and rec.control_plane_per_hour <= 0:
                continue
            qty = _billed_nodes(rec) if item == "nodes" else 1
            rate = rec.price_per_hour if item == "nodes" else rec.control_plane_per_hour
            cores = qty * rec.cpus_per_node if item == "nodes" else 0
            vals = dict(
                cluster_id=rec.cluster_id,
                provider=rec.provider,
                region=rec.region,
                flavor=rec.flavor,
                campaign=rec.campaign,
                policy=rec.policy,
                item=item,
                quantity=qty,
                cores=cores,
                rate_per_hour=rate,
                currency=rec.currency,
                start=at,
                end=None,
            )
            seg_id = conn.execute(_INSERT_SEGMENT, vals).inserted_primary_key[0]  # type: ignore[index]
            vals.pop("start")
            vals.pop("end")
            self._open[int(seg_id)] = LedgerSegment(int(seg_id), start=at, end=None, **vals)  # type: ignore[arg-type]

    def _close_segments(self, conn: Connection, cluster_id: str, at: datetime, item: str | None = None) -> None:
        segs = [s for s in self._open.values() if s.cluster_id == cluster_id and (item is None or s.item == item)]
        if not segs:
            return
        conn.execute(_CLOSE_SEGMENT, [{"_id": seg.segment_id, "end": at} for seg in segs])  # one executemany
        for seg in segs:
            del self._open[seg.segment_id]
            self._account_closed(replace(seg, end=at))

    def _account_closed(self, seg: LedgerSegment) -> None:
        assert seg.end is not None
        cursor = seg.start
        while cursor < seg.end:
            nxt = min(_next_month(cursor), seg.end)
            self._closed_by_month[_month(cursor)] += seg.cost_between(cursor, nxt)
            cursor = nxt
        self._closed_by_campaign[seg.campaign] += seg.cost(seg.end)

    def spend(self, now: datetime, currency: str) -> Spend:
        """Money committed so far: this month, per campaign, and the fleet's current burn rate."""
        month_start = _month_start(now)
        month = self._closed_by_month.get(_month(now), 0.0)
        by_campaign = dict(self._closed_by_campaign)
        burn = 0.0
        for seg in self._open.values():
            cost = seg.cost(now)
            # An open segment that began this month costs the same within the month: one call, not two.
            month += cost if seg.start >= month_start else seg.cost_between(month_start, now)
            by_campaign[seg.campaign] = by_campaign.get(seg.campaign, 0.0) + cost
            burn += seg.quantity * seg.rate_per_hour
        return Spend(currency=currency, month_to_date=month, by_campaign=by_campaign, burn_per_hour=burn)

    def total_cost(self, now: datetime) -> float:
        return sum(self._closed_by_campaign.values()) + sum(s.cost(now) for s in self._open.values())

    def ledger(self, start: datetime | None = None, end: datetime | None = None) -> list[LedgerSegment]:
        return list(self.iter_ledger(start, end))

    def iter_ledger(self, start: datetime | None = None, end: datetime | None = None) -> Iterator[LedgerSegment]:
        """:meth:`ledger` one segment at a time (a season's ledger need not be held whole)."""
        q = select(t.ledger).order_by(t.ledger.c.id)
        if end is not None:
            q = q.where(t.ledger.c.start < end)
        if start is not None:
            q = q.where((t.ledger.c.end.is_(None)) | (t.ledger.c.end > start))
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                yield self._segment(r._mapping)

    # --- decisions, back-offs, samples, history ---------------------------------------------

    def record_decision(self, at: datetime, summary: str, detail: Mapping[str, Any]) -> None:
        with self._begin() as conn:
            conn.execute(insert(t.decisions).values(at=at, summary=summary, detail=json.dumps(detail, default=str)))

    def decisions(self, limit: int = 20) -> list[dict[str, Any]]:
        q = select(t.decisions).order_by(t.decisions.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            out = []
            for r in conn.execute(q):
                d = dict(r._mapping)
                d["detail"] = json.loads(d["detail"])
                out.append(d)
            return out

    def set_backoff(self, provider: str, until: datetime, reason: str, attempts: int = 1, kind: str = "") -> None:
        with self._begin() as conn:
            conn.execute(delete(t.backoffs).where(t.backoffs.c.provider == provider))
            conn.execute(
                insert(t.backoffs).values(provider=provider, until=until, reason=reason, attempts=attempts, kind=kind)
            )
        self._backoffs[provider] = Backoff(provider, until, reason, attempts, kind)

    def clear_backoff(self, provider: str) -> None:
        """The provider delivered a cluster: its next failure starts the delays from the first step."""
        if provider not in self._backoffs:
            return
        with self._begin() as conn:
            conn.execute(delete(t.backoffs).where(t.backoffs.c.provider == provider))
        del self._backoffs[provider]

    def backoffs(self) -> dict[str, datetime]:
        """Provider → until when placement avoids it."""
        return {p: b.until for p, b in self._backoffs.items()}

    def backoff(self, provider: str) -> Backoff | None:
        return self._backoffs.get(provider)

    def add_sample(
        self,
        at: datetime,
        pending_cores: int,
        running_cores: int,
        onprem_cores: int,
        burst_cores: int,
        burn_per_hour: float,
        onprem_free_cores: int | None = None,
    ) -> None:
        with self._begin() as conn:
            conn.execute(
                _INSERT_SAMPLE,
                dict(
                    at=at,
                    pending_cores=pending_cores,
                    running_cores=running_cores,
                    onprem_cores=onprem_cores,
                    burst_cores=burst_cores,
                    burn_per_hour=burn_per_hour,
                    onprem_free_cores=onprem_free_cores,
                ),
            )

    def samples(self, start: datetime | None = None) -> list[dict[str, Any]]:
        q = select(t.samples).order_by(t.samples.c.at)
        if start is not None:
            q = q.where(t.samples.c.at >= start)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def last_sample_at(self) -> datetime | None:
        """When the newest sample was taken: a new engine samples next one interval after it."""
        q = select(t.samples.c.at).order_by(t.samples.c.at.desc()).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(q).scalar_one_or_none()

    # --- policy state -------------------------------------------------------------------------

    def policy_states(self) -> dict[str, str]:
        """Every stored policy snapshot (JSON text), by policy key."""
        with self.engine.connect() as conn:
            return {r.key: r.state for r in conn.execute(select(t.policy_state.c.key, t.policy_state.c.state))}

    def save_policy_states(self, at: datetime, states: Mapping[str, str]) -> None:
        """Replace the snapshots of these keys (others are kept), all in one transaction."""
        if not states:
            return
        with self._begin() as conn:
            conn.execute(delete(t.policy_state).where(t.policy_state.c.key.in_(list(states))))
            conn.execute(insert(t.policy_state), [{"key": k, "saved_at": at, "state": v} for k, v in states.items()])

    def provisioning_latencies(self, provider: str, last: int = 20) -> list[float]:
        """Seconds from create request to cluster ready, for the provider's last ``last`` clusters."""
        return self._latencies.get(provider, [])[-last:]

    # --- the leader lease of replicas without a Kubernetes Lease -------------------------------

    def try_lease(
        self, name: str, holder: str, now: datetime, duration: timedelta, take_from: str | None = None
    ) -> int | None:
        """Acquire or renew lease ``name`` for ``holder`` until ``now + duration``: one conditional
        UPDATE, so two replicas never both win.  It succeeds when ``holder`` already holds it, nobody
        does, the holder's lease ended, or the holder is ``take_from`` (a replica known to be dead).
        Returns the fencing token (it grows with each change of holder), or None."""
        lt = t.leases.c
        takeable = (lt.holder == holder) | lt.holder.is_(None) | (lt.expires_at < now)
        if take_from is not None:
            takeable = takeable | (lt.holder == take_from)
        stmt = (
            update(t.leases)
            .where(lt.name == name, takeable)
            .values(
                holder=holder,
                token=lt.token + case((lt.holder == holder, 0), else_=1),
                renewed_at=now,
                expires_at=now + duration,
            )
        )
        try:
            with self._begin() as conn:
                if conn.execute(stmt).rowcount == 1:
                    return int(conn.execute(select(lt.token).where(lt.name == name)).scalar_one())
                if conn.execute(select(lt.name).where(lt.name == name)).first() is not None:
                    return None
            with self._begin() as conn:
                vals = dict(name=name, holder=holder, token=1, renewed_at=now, expires_at=now + duration)
                conn.execute(insert(t.leases).values(vals))
            return 1
        except IntegrityError:  # another replica created the row first: it holds the lease
            return None

    def lease(self, name: str) -> tuple[str | None, datetime | None]:
        """Who holds lease ``name`` and until when (None, None when it was never taken)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.leases.c.holder, t.leases.c.expires_at).where(t.leases.c.name == name)).first()
        return (row.holder, row.expires_at) if row is not None else (None, None)

    def release_lease(self, name: str, holder: str) -> None:
        """Give lease ``name`` up, if ``holder`` still holds it, so a standby takes over at once."""
        with self._begin() as conn:
            conn.execute(
                update(t.leases)
                .where(t.leases.c.name == name, t.leases.c.holder == holder)
                .values(holder=None, expires_at=datetime(1970, 1, 1, tzinfo=UTC))
            )

    def iter_billable(self) -> Iterator[ClusterRecord]:
        return (c for c in self._fleet.values() if c.state in BILLABLE)


def _billed_nodes(rec: ClusterRecord) -> int:
    """Nodes asked for are billed from the request (a grow), nodes given back only once the cloud
    has taken them (a shrink waits for idle nodes): the larger of the two."""
    return max(rec.nodes, rec.desired_nodes)
