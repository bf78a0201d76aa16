"""The store on SQLite and on a real PostgreSQL: write-ahead transitions, restart, ledger."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from burst.errors import ConfigError
from burst.lifecycle import ClusterRecord, ClusterState
from burst.store import Store

S = ClusterState
T0 = datetime(2027, 1, 31, 22, 0, tzinfo=UTC)


def new_record(cid: str = "burst-aws-00001", nodes: int = 3, campaign: str = "moriond") -> ClusterRecord:
    return ClusterRecord(
        cid,
        "aws",
        "eu-central-1",
        "m5.2xlarge",
        8,
        32768,
        0,
        0,
        nodes,
        S.PLANNED,
        T0,
        T0,
        0.40,
        0.10,
        "EUR",
        campaign=campaign,
        policy="backlog",
    )


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'burst.db'}"
    pg: str = request.getfixturevalue("postgres_url")
    # A fresh schema per test: drop what an earlier test left.
    from sqlalchemy import create_engine, text

    eng = create_engine(pg)
    with eng.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    eng.dispose()
    return pg


def test_state_survives_restart(url: str) -> None:
    s = Store(url, "burst")
    rec = s.add(new_record(), "backlog wants it")
    rec = s.transition(rec, S.PROVISIONING, T0 + timedelta(minutes=1), "create requested", requested_at=T0)
    s.close()

    s2 = Store(url, "burst")
    [again] = s2.fleet()
    assert again.state is S.PROVISIONING and again.requested_at == T0
    assert [t["to_state"] for t in s2.transitions("burst-aws-00001")] == ["PLANNED", "PROVISIONING"]
    assert s2.transitions()[0]["reason"] == "backlog wants it"
    s2.close()


def test_ledger_counts_from_create_request_to_completed_delete(url: str) -> None:
    s = Store(url, "burst")
    rec = s.add(new_record(nodes=3), "x")
    rec = s.transition(rec, S.PROVISIONING, T0, "create requested")
    assert s.ledger() == [], "a create request alone bills nothing: the cloud may refuse it"
    s.start_billing(rec, T0)  # the cloud accepted it
    s.start_billing(rec, T0 + timedelta(minutes=1))  # idempotent: billed once, from the first acceptance
    rec = s.transition(rec, S.JOINING, T0 + timedelta(minutes=12), "ready")
    rec = s.transition(rec, S.ACTIVE, T0 + timedelta(minutes=15), "joined")
    rec = s.update(rec, T0 + timedelta(hours=1), desired_nodes=5)  # grow: a new segment
    rec = s.transition(rec, S.DRAINING, T0 + timedelta(hours=2), "idle")
    rec = s.transition(rec, S.REMOVING, T0 + timedelta(hours=3), "drained")
    rec = s.transition(rec, S.REMOVED, T0 + timedelta(hours=3, minutes=6), "deleted")
    end = T0 + timedelta(hours=10)
    # nodes: 3 × 0.40 × 1 h + 5 × 0.40 × 2.1 h; control plane 0.10 × 3.1 h
    expected = 3 * 0.40 * 1 + 5 * 0.40 * 2.1 + 0.10 * 3.1
    segs = s.ledger()
    assert sum(seg.cost(end) for seg in segs) == pytest.approx(expected)
    assert s.total_cost(end) == pytest.approx(expected)
    assert all(seg.end is not None for seg in segs)
    assert s.fleet() == []  # removed clusters leave the live fleet
    # T0 is 22:00 on 31 January: the month split puts 2 h in January, the rest in February.
    feb = s.spend(T0 + timedelta(hours=4), "EUR")
    jan_part = 3 * 0.40 * 1 + 5 * 0.40 * 1 + 0.10 * 2
    assert feb.month_to_date == pytest.approx(expected - jan_part)
    assert feb.by_campaign["moriond"] == pytest.approx(expected)
    s.close()
    # Reloaded aggregates agree with the ones kept in memory.
    s2 = Store(url, "burst")
    assert s2.spend(T0 + timedelta(hours=4), "EUR").month_to_date == pytest.approx(expected - jan_part)
    s2.close()


def test_open_segments_burn(url: str) -> None:
    s = Store(url, "burst")
    rec = s.transition(s.add(new_record(nodes=2), "x"), S.PROVISIONING, T0, "create")
    s.start_billing(rec, T0)
    sp = s.spend(T0 + timedelta(hours=1), "EUR")
    assert sp.burn_per_hour == pytest.approx(2 * 0.40 + 0.10)
    assert s.total_cost(T0 + timedelta(minutes=30)) == pytest.approx(0.5 * 0.9)
    assert rec.state is S.PROVISIONING
    s.close()


def test_store_belongs_to_one_installation(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    Store(url, "cern-a").close()
    with pytest.raises(ConfigError, match="belongs to installation 'cern-a'"):
        Store(url, "cern-b")


def test_decisions_and_backoffs_persist(url: str) -> None:
    s = Store(url, "burst")
    s.record_decision(T0, "create x", {"actions": [{"op": "create"}]})
    s.set_backoff("aws", T0 + timedelta(minutes=30), "QuotaExceeded")
    s.close()
    s2 = Store(url, "burst")
    assert s2.decisions()[0]["detail"]["actions"][0]["op"] == "create"
    assert s2.backoffs() == {"aws": T0 + timedelta(minutes=30)}
    s2.set_backoff("gce", T0 + timedelta(minutes=4), "Throttled: slow down", attempts=3, kind="Throttled")
    s2.clear_backoff("aws")
    s2.close()
    s2 = Store(url, "burst")
    b = s2.backoff("gce")
    assert b is not None and (b.attempts, b.kind, b.until) == (3, "Throttled", T0 + timedelta(minutes=4))
    assert s2.backoff("aws") is None
    s2.close()


def test_unreachable_database_is_one_clear_error() -> None:
    from burst.store import StoreError

    with pytest.raises(StoreError, match="cannot open store postgresql") as info:
        Store("postgresql+psycopg://burst:secret@127.0.0.1:1/nowhere", "burst")
    assert "secret" not in str(info.value)  # passwords never reach a log line


def test_cluster_numbers_count_up_across_processes(url: str) -> None:
    """One UPDATE … RETURNING: each store (another process, e.g. a CLI next to the daemon) sees
    the numbers the others took."""
    a = Store(url, "burst")
    b = Store(url, "burst")
    assert [a.next_cluster_number(), a.next_cluster_number(), b.next_cluster_number()] == [1, 2, 3]
    assert a.next_cluster_number() == 4
    a.close()
    b.close()
    c = Store(url, "burst")
    assert c.next_cluster_number() == 5
    c.close()


def _schema_diff(url: str) -> list[object]:
    """What autogenerate would change: empty when the migrations built exactly ``burst.tables``."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    from burst.tables import metadata

    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))
    finally:
        eng.dispose()


def _at(url: str, step: Callable[[Connection], None]) -> str | None:
    from sqlalchemy import create_engine

    from burst.store import schema_revision

    eng = create_engine(url)
    try:
        with eng.begin() as conn:
            step(conn)
            return schema_revision(conn)
    finally:
        eng.dispose()


def test_every_migration_downgrades_and_upgrades_again_keeping_the_fleet(url: str) -> None:
    """An operator rolling back a release downgrades the schema one migration at a time with the
    newer burst; the fleet, its transitions and the ledger survive each step and the way back up."""
    from burst.store import downgrade, migrate, schema_revisions

    s = Store(url, "burst")
    rec = s.add(new_record(), "backlog wants it")
    s.transition(rec, S.PROVISIONING, T0 + timedelta(minutes=1), "create requested", requested_at=T0)
    ledger = s.ledger()
    s.close()
    revisions = schema_revisions()
    assert len(revisions) >= 3
    for older in reversed(revisions[:-1]):
        assert _at(url, lambda c, r=older: downgrade(c, r)) == older
        from sqlalchemy import create_engine, text

        eng = create_engine(url)
        with eng.connect() as conn:
            assert conn.execute(text("SELECT cluster_id, state FROM clusters")).all() == [
                ("burst-aws-00001", "PROVISIONING")
            ]
            assert conn.execute(text("SELECT count(*) FROM transitions")).scalar_one() == 2
        eng.dispose()
    assert _at(url, migrate) == revisions[-1]
    assert _schema_diff(url) == []
    again = Store(url, "burst")
    [back] = again.fleet()
    assert back.state is S.PROVISIONING and back.requested_at == T0
    assert again.ledger() == ledger
    again.close()


def test_downgrade_to_base_drops_everything_and_a_fresh_open_rebuilds_it(url: str) -> None:
    from burst.store import downgrade, schema_revisions

    Store(url, "burst").close()
    assert _at(url, lambda c: downgrade(c, "base")) is None
    Store(url, "burst").close()
    assert _at(url, lambda c: None) == schema_revisions()[-1]
    assert _schema_diff(url) == []


def test_a_postgres_url_without_its_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from burst.store import StoreError

    for name in [m for m in sys.modules if m == "psycopg" or m.startswith("psycopg.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StoreError) as info:
        Store("postgresql+psycopg://burst:secret@127.0.0.1:1/burst", "burst")
    assert "pip install 'burst[postgres]'" in str(info.value)
    assert "secret" not in str(info.value)
