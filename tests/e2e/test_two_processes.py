"""The store shared by the daemon and an operator's command: the two never undo each other.

Deterministic stand-in for the race the end-to-end tests can only hit by chance: two ``Store``
objects on one sqlite file, as the daemon and ``burst drain`` hold them in two processes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from burst.lifecycle import ClusterRecord, ClusterState
from burst.store import StaleRecord, Store

S = ClusterState
NOW = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)


def _active(store: Store) -> ClusterRecord:
    rec = ClusterRecord(
        cluster_id="e2e-aws-00001",
        provider="aws",
        region="eu-central-1",
        flavor="m5.2xlarge",
        cpus_per_node=8,
        memory_mb_per_node=32768,
        gpus_per_node=0,
        nodes=0,
        desired_nodes=2,
        state=S.PLANNED,
        state_since=NOW,
        created_at=NOW,
        price_per_hour=0.414,
        control_plane_per_hour=0.1,
        currency="EUR",
    )
    rec = store.add(rec, "backlog")
    for st in (S.PROVISIONING, S.JOINING, S.ACTIVE):
        rec = store.transition(rec, st, NOW, "step")
    return rec


def test_a_stale_write_never_puts_an_older_state_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'burst.db'}"
    daemon = Store(url, "e2e")
    rec = _active(daemon)
    operator = Store(url, "e2e")  # `burst drain` in another process
    operator.transition(operator.get(rec.cluster_id), S.DRAINING, NOW, "operator: burst drain")  # type: ignore[arg-type]

    # the daemon's tick still holds the ACTIVE record it read before
    with pytest.raises(StaleRecord, match="no longer ACTIVE"):
        daemon.update(daemon.get(rec.cluster_id), NOW, attempts=1)  # type: ignore[arg-type]
    with pytest.raises(StaleRecord):
        daemon.transition(daemon.get(rec.cluster_id), S.DRAINING, NOW, "backlog: idle")  # type: ignore[arg-type]

    fresh = Store(url, "e2e")
    got = fresh.get(rec.cluster_id)
    assert got is not None and got.state is S.DRAINING and got.attempts == 0
    # the refused transition left no audit row behind
    assert [t["to_state"] for t in fresh.transitions(rec.cluster_id)] == [
        "PLANNED",
        "PROVISIONING",
        "JOINING",
        "ACTIVE",
        "DRAINING",
    ]
    daemon.refresh()  # what the daemon does at its next tick
    assert daemon.get(rec.cluster_id).state is S.DRAINING  # type: ignore[union-attr]
    for s in (daemon, operator, fresh):
        s.close()
