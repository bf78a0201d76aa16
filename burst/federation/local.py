"""The ``local`` federation: the simulated counterpart of kubefed / Karmada / an HTCondor pool.

A joined cluster's nodes take jobs from the simulated on-prem queue (the executor handed in
through the context); draining stops new jobs landing there and reports what still runs.
Joining takes ``join_latency`` (the HTCondor annex documents ≈ 3 minutes for startds to join a
pool).  Without an executor (``burst run`` on the local cloud) joins still take their time and
drains report nothing running.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Literal, Protocol

from pydantic import Field

from burst.clock import Clock
from burst.federation.api import FederationConfig, FederationContext, JoinStatus
from burst.lifecycle import ClusterRecord
from burst.steering import MemberWeight
from burst.units import Duration


class JobHost(Protocol):
    """What the federation needs of the simulated batch system."""

    def attach(self, cluster: ClusterRecord) -> None: ...
    def set_schedulable(self, cluster_id: str, schedulable: bool) -> None: ...
    def running_on(self, cluster_id: str) -> int: ...
    def detach(self, cluster_id: str) -> None: ...
    def release_idle(self, cluster_id: str, count: int) -> list[str]: ...
    def set_order(self, cluster_ids: Sequence[str]) -> None: ...


class LocalFederationConfig(FederationConfig):
    kind: Literal["local"] = "local"
    join_latency: Duration = Field(default=timedelta(minutes=3), description="time for a member to take work")
    steering: bool = Field(
        default=False, description="model steering: new jobs go to the members of highest weight first"
    )

    def build(self, ctx: FederationContext) -> LocalFederation:
        host = ctx.extras.get("executor")
        cls = SteeringLocalFederation if self.steering else LocalFederation
        return cls(ctx.clock, self.join_latency, host if host is not None else None)  # type: ignore[arg-type]


class LocalFederation:
    name = "local"

    def __init__(self, clock: Clock, join_latency: timedelta, host: JobHost | None) -> None:
        self.clock = clock
        self.join_latency = join_latency
        self.host = host
        self.members: set[str] = set()

    def join(self, cluster: ClusterRecord, kubeconfig: str) -> JoinStatus:
        if cluster.cluster_id in self.members:
            return JoinStatus(True, "member takes work")
        waited = self.clock.now() - cluster.state_since
        if waited < self.join_latency:
            return JoinStatus(
                False, f"joining ({waited.total_seconds():.0f}s of {self.join_latency.total_seconds():.0f}s)"
            )
        self.members.add(cluster.cluster_id)
        if self.host is not None:
            self.host.attach(cluster)
        return JoinStatus(True, "member joined the pool and takes work")

    def drain(self, cluster: ClusterRecord) -> int:
        if self.host is None:
            return 0
        self.host.set_schedulable(cluster.cluster_id, False)
        return self.host.running_on(cluster.cluster_id)

    def running(self, cluster: ClusterRecord) -> int:
        return self.host.running_on(cluster.cluster_id) if self.host is not None else 0

    def release_idle(self, cluster: ClusterRecord, count: int) -> list[str]:
        """Without an executor no node runs anything burst can see, so none is released: the
        cluster leaves whole when it drains."""
        return self.host.release_idle(cluster.cluster_id, count) if self.host is not None else []

    def undrain(self, cluster: ClusterRecord) -> None:
        if self.host is not None:
            self.host.set_schedulable(cluster.cluster_id, True)

    def unjoin(self, cluster: ClusterRecord) -> None:
        self.members.discard(cluster.cluster_id)
        if self.host is not None:
            self.host.detach(cluster.cluster_id)


class SteeringLocalFederation(LocalFederation):
    """The simulated federation with steering (:class:`~burst.federation.api.SteersWork`): new
    jobs try the members of highest weight first — what Karmada's static weights or burst as
    MultiKueue's dispatcher do — instead of the order they joined in."""

    def steer(self, weights: Sequence[MemberWeight]) -> None:
        if self.host is not None:
            self.host.set_order([m.cluster_id for m in weights if m.weight > 0])
