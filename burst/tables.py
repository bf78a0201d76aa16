"""The store's schema (SQLAlchemy Core).  Alembic migrations in burst/migrations build it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone; PostgreSQL keeps it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

clusters = Table(
    "clusters",
    metadata,
    Column("cluster_id", String(64), primary_key=True),
    Column("provider", String(64), nullable=False),
    Column("region", String(64), nullable=False),
    Column("flavor", String(64), nullable=False),
    Column("cpus_per_node", Integer, nullable=False),
    Column("memory_mb_per_node", Integer, nullable=False),
    Column("gpus_per_node", Integer, nullable=False),
    Column("nodes", Integer, nullable=False),
    Column("desired_nodes", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("state_since", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("price_per_hour", Float, nullable=False),
    Column("control_plane_per_hour", Float, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("campaign", String(64), nullable=False, default=""),
    Column("policy", String(64), nullable=False, default=""),
    Column("reason", Text, nullable=False, default=""),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=False, default=""),
    Column("requested_at", UTCDateTime()),
    Column("ready_at", UTCDateTime()),
    Column("removed_at", UTCDateTime()),
    Column("next_attempt_at", UTCDateTime()),
    Column("drain_deadline", UTCDateTime()),
    Index("ix_clusters_state", "state"),
)

transitions = Table(
    "transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cluster_id", String(64), ForeignKey("clusters.cluster_id"), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("from_state", String(16)),
    Column("to_state", String(16), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Index("ix_transitions_cluster", "cluster_id"),
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cluster_id", String(64), ForeignKey("clusters.cluster_id"), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("region", String(64), nullable=False),
    Column("flavor", String(64), nullable=False),
    Column("campaign", String(64), nullable=False, default=""),
    Column("policy", String(64), nullable=False, default=""),
    Column("item", String(16), nullable=False),  # "nodes" or "control_plane"
    Column("quantity", Integer, nullable=False),  # nodes (or 1 control plane)
    Column("cores", Integer, nullable=False),  # cores covered by this segment
    Column("rate_per_hour", Float, nullable=False),  # per unit of quantity
    Column("currency", String(3), nullable=False),
    Column("start", UTCDateTime(), nullable=False),
    Column("end", UTCDateTime()),  # NULL while open
    Index("ix_ledger_start", "start"),
    Index("ix_ledger_cluster", "cluster_id"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("summary", Text, nullable=False),
    Column("detail", Text, nullable=False),  # JSON: wants, targets, actions, notes
    Index("ix_decisions_at", "at"),
)

backoffs = Table(
    "backoffs",
    metadata,
    Column("provider", String(64), primary_key=True),
    Column("until", UTCDateTime(), nullable=False),
    Column("reason", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="1"),  # failures in a row (0006)
    Column("kind", String(64), nullable=False, server_default=""),  # the last failure's kind (0006)
)

samples = Table(
    "samples",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("pending_cores", Integer, nullable=False),
    Column("running_cores", Integer, nullable=False),
    Column("onprem_cores", Integer, nullable=False),
    Column("burst_cores", Integer, nullable=False),
    Column("burn_per_hour", Float, nullable=False),
    Column("onprem_free_cores", Integer),  # NULL in samples written before migration 0003
    Index("ix_samples_at", "at"),
)

#: What each stateful policy (and the engine's quota cache) remembers between ticks, as JSON, so a
#: new process decides as the old one would (see ``Stateful`` in burst/policy.py).
policy_state = Table(
    "policy_state",
    metadata,
    Column("key", String(160), primary_key=True),  # "<kind>:<name>[#n]" or "engine:<what>"
    Column("saved_at", UTCDateTime(), nullable=False),
    Column("state", Text, nullable=False),
)

#: the store-level leader lease (migration 0005): one row per lease name; ``token`` grows with
#: each change of holder, a fencing token for anything that wants to compare it
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(255)),
    Column("token", Integer, nullable=False),
    Column("renewed_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)
