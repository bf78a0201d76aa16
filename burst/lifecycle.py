"""The cluster lifecycle as an explicit state machine.

A cluster record only ever moves along :data:`TRANSITIONS`; anything else raises
:class:`~burst.errors.IllegalTransition`.  The reconciler persists each transition *before* it acts
on it (write-ahead intent), so after a crash the state says what was about to happen.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from burst.errors import IllegalTransition


class ClusterState(StrEnum):
    PLANNED = "PLANNED"
    PROVISIONING = "PROVISIONING"
    JOINING = "JOINING"
    ACTIVE = "ACTIVE"
    DRAINING = "DRAINING"
    REMOVING = "REMOVING"
    REMOVED = "REMOVED"
    FAILED = "FAILED"


S = ClusterState

TRANSITIONS: dict[ClusterState, frozenset[ClusterState]] = {
    # A planned cluster may be abandoned before anything was asked of a cloud.
    S.PLANNED: frozenset({S.PROVISIONING, S.REMOVED, S.FAILED}),
    # Stuck or cancelled provisioning goes straight to REMOVING: nothing ran there yet.
    S.PROVISIONING: frozenset({S.JOINING, S.FAILED, S.REMOVING}),
    # A member that never takes work is drained (a no-op when nothing runs) and removed.
    S.JOINING: frozenset({S.ACTIVE, S.DRAINING, S.FAILED}),
    S.ACTIVE: frozenset({S.DRAINING}),
    # Demand came back while draining: take work again instead of paying for a new cluster.
    S.DRAINING: frozenset({S.REMOVING, S.ACTIVE}),
    S.REMOVING: frozenset({S.REMOVED, S.FAILED}),
    S.REMOVED: frozenset(),
    # A failed cluster is either retried or cleaned up; it never silently disappears.
    S.FAILED: frozenset({S.PROVISIONING, S.REMOVING}),
}

#: States in which a cluster may exist in a cloud account and cost money.
BILLABLE = frozenset({S.PROVISIONING, S.JOINING, S.ACTIVE, S.DRAINING, S.REMOVING, S.FAILED})
#: States in which a cluster takes new jobs.
SCHEDULABLE = frozenset({S.ACTIVE})
#: States that count towards capacity a policy already has or will soon have.
LIVE = frozenset({S.PLANNED, S.PROVISIONING, S.JOINING, S.ACTIVE})


def check_transition(current: ClusterState, target: ClusterState) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"illegal lifecycle transition {current} → {target}")


@dataclass(frozen=True, slots=True)
class ClusterRecord:
    """burst's own record of one cluster: the row of the fleet table.

    Prices are copied from the offering at creation, so the ledger stays right when a catalog
    changes later.
    """

    cluster_id: str
    provider: str
    region: str
    flavor: str
    cpus_per_node: int
    memory_mb_per_node: int
    gpus_per_node: int
    nodes: int
    desired_nodes: int
    state: ClusterState
    state_since: datetime
    created_at: datetime
    price_per_hour: float
    control_plane_per_hour: float
    currency: str
    campaign: str = ""
    policy: str = ""
    reason: str = ""
    attempts: int = 0
    last_error: str = ""
    requested_at: datetime | None = None
    ready_at: datetime | None = None
    removed_at: datetime | None = None
    next_attempt_at: datetime | None = None
    #: A hard stop (budget): removed at this time even if jobs still run.
    drain_deadline: datetime | None = None

    @property
    def cores(self) -> int:
        return self.cpus_per_node * self.nodes

    @property
    def desired_cores(self) -> int:
        return self.cpus_per_node * self.desired_nodes

    def moved(self, target: ClusterState, at: datetime, **changes: object) -> ClusterRecord:
        """A copy in ``target`` state; raises IllegalTransition when the move is not allowed."""
        check_transition(self.state, target)
        return replace(self, state=target, state_since=at, **changes)  # type: ignore[arg-type]
