"""Steering in simulation: the executor tries steered members first, the local federation steers."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

import pytest

from burst.api import Bucket, FederationContext, FederationError, SimClock, SteersWork
from burst.executor import Executor
from burst.federation.local import LocalFederation, LocalFederationConfig, SteeringLocalFederation
from burst.lifecycle import ClusterRecord, ClusterState
from burst.model import Job, Shape
from burst.steering import MemberWeight
from burst.testing.builders import T0, StaticBacklog, make_config, make_engine


def rec(cid: str) -> ClusterRecord:
    return ClusterRecord(
        cid, "aws", "eu", "m5.2xlarge", 8, 32768, 0, 2, 2, ClusterState.ACTIVE, T0, T0, 0.4, 0.1, "EUR"
    )


def jobs(n: int) -> list[Job]:
    return [Job(i, float(i), 3600.0, Shape(4, 1000)) for i in range(n)]


def test_jobs_fill_the_steered_order_not_the_join_order() -> None:
    unsteered = Executor(0, None, T0, jobs=jobs(3))
    steered = Executor(0, None, T0, jobs=jobs(3))
    for ex in (unsteered, steered):
        ex.attach(rec("first-joined"))
        ex.attach(rec("cheapest"))
    steered.set_order(["cheapest", "first-joined"])
    for ex in (unsteered, steered):
        ex.run_until(10)
    assert (unsteered.running_on("first-joined"), unsteered.running_on("cheapest")) == (3, 0)
    assert (steered.running_on("first-joined"), steered.running_on("cheapest")) == (0, 3)


def test_members_outside_the_order_take_the_overflow() -> None:
    ex = Executor(0, None, T0, jobs=jobs(5))
    ex.attach(rec("first-joined"))
    ex.attach(rec("cheapest"))
    ex.set_order(["cheapest"])
    ex.run_until(10)
    assert (ex.running_on("cheapest"), ex.running_on("first-joined")) == (4, 1)  # 16 cores full, then the rest


def test_the_local_federation_steers_only_when_configured() -> None:
    clock = SimClock(T0)
    ex = Executor(0, None, T0, jobs=jobs(2))
    ctx = FederationContext(clock=clock, owner="o", extras={"executor": ex})
    plain = LocalFederationConfig().build(ctx)
    assert type(plain) is LocalFederation and not isinstance(plain, SteersWork)
    fed = LocalFederationConfig(steering=True, join_latency=timedelta(0)).build(ctx)
    assert isinstance(fed, SteeringLocalFederation) and isinstance(fed, SteersWork)
    for cid in ("a", "b"):
        fed.join(replace(rec(cid), state=ClusterState.JOINING), "")
    fed.steer((MemberWeight("b", 90, 16, 16, ""), MemberWeight("a", 0, 16, 16, "draining")))
    ex.run_until(5)
    assert (ex.running_on("a"), ex.running_on("b")) == (0, 2)


def test_the_engine_steers_once_per_tick_logs_changes_and_survives_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    clock = SimClock(T0)
    cfg = make_config({"federation": {"kind": "local", "join_latency": "0s", "steering": True}})
    backlog = StaticBacklog(clock)
    backlog.demand = replace(backlog.demand, pending=(Bucket(Shape(4, 1000), 8, 600.0),))
    eng = make_engine(cfg, clock, backlog=backlog)
    seen: list[tuple[MemberWeight, ...]] = []
    steer = eng.federation.steer  # type: ignore[attr-defined]

    def recording(weights: tuple[MemberWeight, ...]) -> None:
        seen.append(weights)
        steer(weights)

    eng.federation.steer = recording  # type: ignore[attr-defined]
    with caplog.at_level(logging.INFO, logger="burst.engine"):
        ticks = 0
        while not [c for c in eng.store.fleet() if c.state is ClusterState.ACTIVE] and ticks < 120:
            eng.tick()
            clock.advance(60)
            ticks += 1
        for _ in range(3):
            eng.tick()
            ticks += 1
    active = sorted(c.cluster_id for c in eng.store.fleet() if c.state is ClusterState.ACTIVE)
    assert active and len(seen) == ticks  # once per tick
    assert seen[0] == () and sorted(m.cluster_id for m in seen[-1]) == active
    assert all(m.weight > 0 for m in seen[-1])
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("steering: ")]
    assert 0 < len(logged) < ticks and logged[-1].startswith(f"steering: {seen[-1][0].cluster_id} ")

    def failing(weights: tuple[MemberWeight, ...]) -> None:
        raise FederationError("karmada: steering work: Karmada API: cannot reach the API server")

    eng.federation.steer = failing  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="burst.engine"):
        result = eng.tick()
    assert result.step.transitions == [] and result.at == clock.now()  # the tick completed
    assert "steering failed: karmada: steering work" in caplog.text
