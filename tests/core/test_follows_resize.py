"""A federation that follows resizes (FollowsResize) hears once when an ACTIVE member grew."""

from __future__ import annotations

import logging

import pytest

from burst.api import Bucket, ClusterRecord, ClusterState, Demand, FederationError, Shape, SimClock
from burst.testing.builders import T0, StaticBacklog, make_config, make_engine


def _pending(backlog: StaticBacklog, cores: int) -> None:
    backlog.demand = Demand(
        backlog.clock.now(), (Bucket(Shape(8, 1000), cores // 8, 600.0),), 100, 100, onprem_free_cores=0
    )


def test_the_federation_hears_of_a_finished_grow_once_and_a_failure_is_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = SimClock(T0)
    backlog = StaticBacklog(clock)
    eng = make_engine(make_config(), clock, backlog=backlog)
    heard: list[ClusterRecord] = []
    eng.federation.resized = heard.append  # type: ignore[attr-defined]

    def tick(minutes: int) -> None:
        for _ in range(minutes):
            clock.advance(60)
            eng.tick()

    _pending(backlog, 16)
    tick(40)
    [rec] = [c for c in eng.store.fleet() if c.state is ClusterState.ACTIVE]
    assert rec.nodes == 1 and rec.cpus_per_node == 16 and heard == []
    _pending(backlog, 48)
    tick(40)
    grown = eng.store.get(rec.cluster_id)
    assert grown is not None and grown.nodes == 3
    assert [(r.cluster_id, r.nodes) for r in heard] == [(rec.cluster_id, 3)]

    def failing(cluster: ClusterRecord) -> None:
        raise FederationError("multikueue: resizing the quota of x: member: cannot reach the API server")

    eng.federation.resized = failing  # type: ignore[attr-defined]
    _pending(backlog, 64)
    with caplog.at_level(logging.WARNING, logger="burst.reconciler"):
        tick(40)
    again = eng.store.get(rec.cluster_id)
    assert again is not None and again.nodes == 4 and again.state is ClusterState.ACTIVE
    assert "the federation did not follow the resize: multikueue: resizing" in caplog.text
