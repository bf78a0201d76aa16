"""Member weights: cheaper and emptier members first, draining members none."""

from __future__ import annotations

from datetime import UTC, datetime

from burst.api import ClusterRecord, ClusterState
from burst.steering import member_weights

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


def rec(
    cid: str, price: float, state: ClusterState = ClusterState.ACTIVE, nodes: int = 2, cp: float = 0.0
) -> ClusterRecord:
    return ClusterRecord(cid, "aws", "eu", "m5.2xlarge", 8, 32768, 0, nodes, nodes, state, T0, T0, price, cp, "EUR")


def test_the_cheapest_empty_member_weighs_most_and_draining_none() -> None:
    fleet = [
        rec("pricey", 0.8),
        rec("cheap", 0.4),
        rec("old", 0.1, ClusterState.DRAINING),
        rec("new", 0.1, ClusterState.JOINING),
        rec("gone", 0.1, ClusterState.REMOVED),
    ]
    got = member_weights(fleet, {})
    assert [(m.cluster_id, m.weight) for m in got] == [("cheap", 100), ("pricey", 50), ("old", 0)]
    assert got[0].reason == "0.0500 EUR/core-h (the cheapest), 16 of 16 cores free"
    assert got[1].reason == "0.1000 EUR/core-h (2.0× the cheapest), 16 of 16 cores free"
    assert got[2].reason == "draining: no new work"


def test_a_fuller_member_weighs_less_and_a_full_one_keeps_a_minimum() -> None:
    fleet = [rec("a", 0.4), rec("b", 0.4), rec("c", 0.4)]
    got = {m.cluster_id: m for m in member_weights(fleet, {"a": 12, "b": 4, "c": 99})}
    assert (got["a"].weight, got["a"].free_cores) == (25, 4)
    assert (got["b"].weight, got["b"].free_cores) == (75, 12)
    assert (got["c"].weight, got["c"].free_cores) == (1, 0)  # still a member: never starved to nothing


def test_the_control_plane_fee_counts_in_the_price() -> None:
    fleet = [rec("eks", 0.4, cp=1.6), rec("gke", 0.5)]
    got = [(m.cluster_id, m.weight) for m in member_weights(fleet, {})]
    # eks: (0.8 + 1.6) / 16 = 0.15 per core-h; gke: 1.0 / 16 = 0.0625
    assert got == [("gke", 100), ("eks", 42)]


def test_free_members_and_an_empty_fleet() -> None:
    assert member_weights([], {}) == ()
    got = [(m.cluster_id, m.weight) for m in member_weights([rec("free", 0.0), rec("paid", 0.4)], {})]
    assert got == [("free", 100), ("paid", 1)]
