"""The plan diff: create, grow, shrink, drain, delete, undrain — and which cluster to drain."""

from __future__ import annotations

from datetime import timedelta

from burst.lifecycle import ClusterRecord, ClusterState
from burst.model import LatencyModel, Offering
from burst.plan import OPERATOR, Op, make_plan
from burst.policy import Decision, ProviderLimits, Target
from burst.testing.builders import T0

S = ClusterState
OFF = Offering("aws", "eu", "m5.2xlarge", 8, 32768, 0.4, "EUR", latency=LatencyModel(600))
LIMITS = {"aws": ProviderLimits(max_nodes=100, max_clusters=10, nodes_per_cluster=4)}


def rec(cid: str, nodes: int, age_h: float, state: ClusterState = S.ACTIVE, reason: str = "") -> ClusterRecord:
    at = T0 - timedelta(hours=age_h)
    return ClusterRecord(
        cid, "aws", "eu", "m5.2xlarge", 8, 32768, 0, nodes, nodes, state, at, at, 0.4, 0.1, "EUR", reason=reason
    )


def decide(nodes: int) -> Decision:
    targets = (Target(OFF, nodes, "", "backlog", "b"),) if nodes else ()
    return Decision(T0, targets, (), (), ())


def ids(prefix: str = "new") -> object:
    n = iter(range(1, 100))
    return lambda p: f"{prefix}-{p}-{next(n)}"


def test_creates_clusters_of_the_standard_size() -> None:
    plan = make_plan(decide(10), [], LIMITS, ids())  # type: ignore[arg-type]
    assert [(a.op, a.nodes) for a in plan.actions] == [(Op.CREATE, 4), (Op.CREATE, 4), (Op.CREATE, 2)]
    assert plan.cost_per_hour() > 0


def test_grows_a_small_cluster_before_creating() -> None:
    plan = make_plan(decide(6), [rec("a", 2, 1)], LIMITS, ids())  # type: ignore[arg-type]
    assert [(a.op, a.cluster_id, a.nodes) for a in plan.actions] == [(Op.GROW, "a", 4), (Op.CREATE, "new-aws-1", 2)]


def test_drains_newest_first_without_knowing_who_is_busy() -> None:
    fleet = [rec("old", 4, 5), rec("mid", 4, 3), rec("new", 4, 1)]
    plan = make_plan(decide(4), fleet, LIMITS, ids())  # type: ignore[arg-type]
    assert [(a.op, a.cluster_id) for a in plan.actions] == [(Op.DRAIN, "new"), (Op.DRAIN, "mid")]


def test_drains_the_least_busy_first_when_the_federation_can_tell() -> None:
    fleet = [rec("old", 4, 5), rec("mid", 4, 3), rec("new", 4, 1)]
    running = {"old": 0, "mid": 7, "new": 3}
    plan = make_plan(decide(4), fleet, LIMITS, ids(), running)  # type: ignore[arg-type]
    assert [(a.op, a.cluster_id) for a in plan.actions] == [(Op.DRAIN, "old"), (Op.DRAIN, "new")]


def test_undrains_before_buying_but_never_an_operator_drain() -> None:
    fleet = [rec("d", 4, 2, S.DRAINING), rec("o", 4, 1, S.DRAINING, reason=f"{OPERATOR} burst drain")]
    plan = make_plan(decide(8), fleet, LIMITS, ids())  # type: ignore[arg-type]
    assert [(a.op, a.cluster_id) for a in plan.actions] == [(Op.UNDRAIN, "d"), (Op.CREATE, "new-aws-1")]


def test_nothing_wanted_drains_everything() -> None:
    fleet = [rec("a", 4, 2), rec("b", 2, 1, S.PROVISIONING)]
    plan = make_plan(decide(0), fleet, LIMITS, ids())  # type: ignore[arg-type]
    assert {(a.op, a.cluster_id) for a in plan.actions} == {(Op.DRAIN, "a"), (Op.DELETE, "b")}  # b never ran work
    assert all(a.cost_per_hour < 0 for a in plan.actions)


def test_shrinks_an_active_cluster_by_what_whole_drains_leave_over() -> None:
    fleet = [rec("old", 4, 5), rec("new", 4, 1)]
    plan = make_plan(decide(2), fleet, LIMITS, ids(), shrinkable=frozenset({"aws"}))  # type: ignore[arg-type]
    assert [(a.op, a.cluster_id, a.nodes) for a in plan.actions] == [(Op.DRAIN, "new", 4), (Op.SHRINK, "old", 2)]
    shrink = plan.actions[1]
    assert shrink.cost_per_hour == -2 * 0.4 and "giving back 2 idle node(s)" in shrink.reason
    assert shrink.describe().startswith("shrink old (2× m5.2xlarge on aws)")


def test_never_shrinks_where_nodes_cannot_be_released_or_below_one_node() -> None:
    fleet = [rec("a", 4, 5)]
    assert make_plan(decide(2), fleet, LIMITS, ids()).actions == ()  # type: ignore[arg-type]
    # 1 node wanted of a 4-node cluster: shrink to 1, never to 0 (that would be a drain)
    plan = make_plan(decide(1), fleet, LIMITS, ids(), shrinkable=frozenset({"aws"}))  # type: ignore[arg-type]
    assert [(a.op, a.nodes) for a in plan.actions] == [(Op.SHRINK, 1)]
    # clusters not yet ACTIVE are never shrunk
    plan = make_plan(decide(1), [rec("p", 4, 0, S.PROVISIONING)], LIMITS, ids(), shrinkable=frozenset({"aws"}))  # type: ignore[arg-type]
    assert plan.actions == ()
