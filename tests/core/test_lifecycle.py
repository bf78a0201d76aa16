"""Every (state, target) pair of the lifecycle: the legal ones move, the rest raise."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from burst.errors import IllegalTransition
from burst.lifecycle import TRANSITIONS, ClusterRecord, ClusterState, check_transition

S = ClusterState
T0 = datetime(2027, 3, 1, tzinfo=UTC)

LEGAL = {
    (S.PLANNED, S.PROVISIONING),
    (S.PLANNED, S.REMOVED),
    (S.PLANNED, S.FAILED),
    (S.PROVISIONING, S.JOINING),
    (S.PROVISIONING, S.FAILED),
    (S.PROVISIONING, S.REMOVING),
    (S.JOINING, S.ACTIVE),
    (S.JOINING, S.DRAINING),
    (S.JOINING, S.FAILED),
    (S.ACTIVE, S.DRAINING),
    (S.DRAINING, S.REMOVING),
    (S.DRAINING, S.ACTIVE),
    (S.REMOVING, S.REMOVED),
    (S.REMOVING, S.FAILED),
    (S.FAILED, S.PROVISIONING),
    (S.FAILED, S.REMOVING),
}


def record(state: ClusterState) -> ClusterRecord:
    return ClusterRecord("c1", "aws", "eu", "m5.2xlarge", 8, 32768, 0, 0, 2, state, T0, T0, 0.4, 0.1, "EUR")


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_every_pair(current: ClusterState, target: ClusterState) -> None:
    rec = record(current)
    if (current, target) in LEGAL:
        moved = rec.moved(target, T0, reason="test")
        assert moved.state is target and moved.reason == "test"
    else:
        with pytest.raises(IllegalTransition, match=f"{current} → {target}"):
            rec.moved(target, T0)


def test_table_is_what_design_says() -> None:
    assert {(a, b) for a, bs in TRANSITIONS.items() for b in bs} == LEGAL
    assert TRANSITIONS[S.REMOVED] == frozenset()  # terminal


def test_happy_path_is_connected() -> None:
    path = [S.PLANNED, S.PROVISIONING, S.JOINING, S.ACTIVE, S.DRAINING, S.REMOVING, S.REMOVED]
    for a, b in itertools.pairwise(path):
        check_transition(a, b)
