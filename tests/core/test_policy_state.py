"""The store's ``policy_state`` table (migration 0004) and the engine's resume from it, on SQLite
and on a real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from burst.clock import SimClock
from burst.engine import Engine
from burst.model import Bucket, Demand, Shape
from burst.store import Store
from burst.testing.builders import T0, StaticBacklog, make_config

TIMERS = {"for": "5m", "cooldown": "10m", "idle_after": "30m"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'burst.db'}"
    pg: str = request.getfixturevalue("postgres_url")
    eng = create_engine(pg)
    with eng.begin() as conn:  # a fresh schema per test
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    eng.dispose()
    return pg


def test_snapshots_are_replaced_by_key_and_kept_across_stores(url: str) -> None:
    s = Store(url, "burst")
    assert s.policy_states() == {}
    assert "policy_state" in inspect(s.engine).get_table_names()
    s.save_policy_states(T0, {"backlog:backlog": '{"v":1}', "budget:budget": '{"v":1,"tick_us":60000000}'})
    s.save_policy_states(T0 + timedelta(minutes=1), {"backlog:backlog": '{"v":1,"classes":{}}'})
    s.save_policy_states(T0 + timedelta(minutes=2), {})  # nothing changed: nothing written
    s.close()
    again = Store(url, "burst")
    assert again.policy_states() == {
        "backlog:backlog": '{"v":1,"classes":{}}',
        "budget:budget": '{"v":1,"tick_us":60000000}',
    }
    with again.engine.connect() as conn:
        saved = dict(conn.execute(text("SELECT key, saved_at FROM policy_state")).all())  # type: ignore[arg-type]
    assert len(saved) == 2
    again.close()


def engine(url: str, clock: SimClock, backlog: StaticBacklog, policies: list[dict[str, object]]) -> Engine:
    cfg = make_config({"policies": policies, "state": url})
    return Engine.build(cfg, clock, store=Store(url, "burst"), backlog=backlog)


def test_an_engine_resumes_timers_mid_way_and_writes_only_what_changed(url: str) -> None:
    """Pending work for 3 minutes, a restart, 2 more minutes: the backlog raises at 5 minutes, as
    it would have without the restart."""
    clock = SimClock(T0)
    backlog = StaticBacklog(clock)
    backlog.demand = Demand(T0, (Bucket(Shape(1, 2048), 40, 60.0),), 100, 100)
    policies: list[dict[str, object]] = [{"kind": "backlog", "pending_cores_above": 0, **TIMERS}]
    eng = engine(url, clock, backlog, policies)
    for _ in range(4):  # minutes 0..3
        assert not eng.tick().plan.actions
        clock.advance(60)
    stored = eng.store.policy_states()
    assert set(stored) == {"backlog:backlog", "engine:quotas"}
    [memory] = json.loads(stored["backlog:backlog"])["classes"].values()
    assert memory["above_since"] == T0.isoformat() and memory["level"] == 0
    eng.store.close()
    eng = engine(url, clock, backlog, policies)
    assert not eng.tick().plan.actions  # minute 4
    clock.advance(60)
    assert [a.op.value for a in eng.tick().plan.actions] == ["create"]  # minute 5: `for` has passed
    eng.store.close()


def test_a_stateless_preview_reads_the_memory_and_writes_nothing(url: str) -> None:
    clock = SimClock(T0)
    backlog = StaticBacklog(clock)
    backlog.demand = Demand(T0, (Bucket(Shape(1, 2048), 40, 60.0),), 100, 100)
    policies: list[dict[str, object]] = [{"kind": "backlog", "pending_cores_above": 0, **TIMERS}]
    eng = engine(url, clock, backlog, policies)
    eng.tick()
    before = eng.store.policy_states()
    eng.store.close()
    clock.advance(6 * 60)
    viewer = engine(url, clock, backlog, policies)
    _, plan = viewer.preview()
    assert [a.op.value for a in plan.actions] == ["create"]  # it knows the backlog is 6 minutes old
    assert viewer.store.policy_states() == before
    viewer.store.close()


def test_a_new_forecast_is_seeded_from_the_stored_samples(url: str) -> None:
    """The forecast is added to a running installation: its history comes from the samples."""
    clock = SimClock(datetime(2027, 3, 1, tzinfo=UTC))
    backlog = StaticBacklog(clock)
    eng = engine(url, clock, backlog, [{"kind": "backlog", "pending_cores_above": 0, **TIMERS}])
    for _ in range(0, 26 * 60, 5):  # a day and two hours; 300 pending cores 13:00-15:00
        now = clock.now()
        cores = 300 if 13 <= now.hour < 15 else 0
        backlog.demand = Demand(now, (Bucket(Shape(1, 2048), cores, 60.0),) if cores else (), 100, 100)
        eng.tick()
        clock.advance(5 * 60)
    eng.store.close()
    policies: list[dict[str, object]] = [{"kind": "forecast", "periods": ["day"], "min_periods": 1}]
    forecast = engine(url, clock, backlog, policies)
    [(_, fc)] = forecast.stack.stateful()
    learned = dict(fc.history())  # type: ignore[attr-defined]
    assert learned[datetime(2027, 3, 1, 13, tzinfo=UTC)] == 300 and learned[datetime(2027, 3, 1, 9, tzinfo=UTC)] == 0
    clock.advance(int(timedelta(hours=10, minutes=30).total_seconds()))  # 12:30 on day 2
    wants = forecast.preview()[1].decision.wants
    assert [w.policy for w in wants] == ["forecast"] and wants[0].cores == 300
    forecast.store.close()


def test_an_unusable_stored_snapshot_starts_the_policy_fresh_without_failing(url: str) -> None:
    store = Store(url, "burst")
    store.save_policy_states(T0, {"backlog:backlog": "{not json", "engine:quotas": '{"v":7}'})
    store.close()
    clock = SimClock(T0)
    eng = engine(url, clock, StaticBacklog(clock), [{"kind": "backlog", **TIMERS}])
    eng.tick()
    stored = eng.store.policy_states()
    assert json.loads(stored["backlog:backlog"])["v"] == 1  # replaced by a good one at the first tick
    assert json.loads(stored["engine:quotas"])["v"] == 1
    eng.store.close()


def test_the_daemon_takes_up_memory_another_process_wrote(url: str) -> None:
    """``burst apply`` beside the daemon (or the replica that led before a failover) ticked last:
    before its next tick the daemon reloads that memory instead of writing its older one back."""
    clock = SimClock(T0)
    backlog = StaticBacklog(clock)
    backlog.demand = Demand(T0, (Bucket(Shape(1, 2048), 40, 60.0),), 100, 100)
    policies: list[dict[str, object]] = [{"kind": "backlog", "pending_cores_above": 0, **TIMERS}]
    daemon = engine(url, clock, backlog, policies)
    daemon.tick()  # minute 0: the backlog starts counting
    clock.advance(60)
    backlog.demand = Demand(clock.now(), (), 100, 100)
    other = engine(url, clock, backlog, policies)
    other.tick()  # minute 1, elsewhere: the backlog is gone, the timer reset
    other.store.close()
    assert daemon.stack.snapshot() != other.stack.snapshot()
    daemon.reload_state()
    assert daemon.stack.snapshot() == other.stack.snapshot()
    backlog.demand = Demand(clock.now(), (Bucket(Shape(1, 2048), 40, 60.0),), 100, 100)
    for _ in range(4):  # minutes 2..5: the timer restarted at minute 2, so nothing until minute 7
        clock.advance(60)
        daemon.reload_state()
        assert not daemon.tick().plan.actions
    daemon.store.close()
