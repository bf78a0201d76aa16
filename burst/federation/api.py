"""The federation plugin contract (DESIGN.md §6).

A federation makes a ready cluster take work and stops it taking work.  Like providers, no call
waits: ``join`` and ``drain`` report progress and the lifecycle polls them on later ticks.
Removing a cluster only after ``drain`` reports zero running work is what keeps jobs alive.

Plugins register a :class:`FederationConfig` subclass under the entry-point group
``burst.federations``; its ``kind`` is the entry-point name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from burst.clock import Clock
from burst.lifecycle import ClusterRecord
from burst.steering import MemberWeight


@dataclass(frozen=True, slots=True)
class JoinStatus:
    """``ready`` once the federation says the member takes work."""

    ready: bool
    message: str = ""


@runtime_checkable
class Federation(Protocol):
    name: str

    def join(self, cluster: ClusterRecord, kubeconfig: str) -> JoinStatus:
        """Start or advance joining ``cluster``; idempotent.  ``kubeconfig`` is a secret."""
        ...

    def drain(self, cluster: ClusterRecord) -> int:
        """Stop new work landing on ``cluster`` (idempotent) and return how many jobs still run
        there.  Zero means it may be removed without killing anything."""
        ...

    def undrain(self, cluster: ClusterRecord) -> None:
        """Let a draining cluster take work again (demand came back before it emptied)."""
        ...

    def unjoin(self, cluster: ClusterRecord) -> None:
        """Delete exactly what ``join`` created; idempotent (already gone is fine)."""
        ...


@runtime_checkable
class CountsRunning(Protocol):
    """Optional: a federation that can say, without changing anything, how many jobs run on a
    member.  The engine then drains the least busy clusters first."""

    def running(self, cluster: ClusterRecord) -> int: ...


@runtime_checkable
class ReleasesNodes(Protocol):
    """Optional: a federation that can hand back single idle nodes of a member.

    With it (and a provider that :class:`~burst.provider.RemovesNodes`) a draining cluster stops
    being billed for nodes whose jobs have ended, and an active cluster can shrink by whole idle
    nodes without draining all of it."""

    def release_idle(self, cluster: ClusterRecord, count: int) -> list[str]:
        """Pick up to ``count`` nodes of ``cluster`` that run no job, stop new work landing on them
        (cordon, drain a startd), check again that they are still idle, and return their node names
        (the Kubernetes node names the provider's ``remove_nodes`` takes).  A node that took work
        in between is given back to the pool and not returned.  Nodes marked by an earlier call and
        still idle come first, so a retry after a failed removal returns the same nodes.  Never
        returns a node with a running job; may return fewer than ``count`` (or none)."""
        ...


@runtime_checkable
class FollowsResize(Protocol):
    """Optional: a federation whose member setup depends on the member's size (a MultiKueue
    worker's ClusterQueue quota).  Called once after an ACTIVE member grew or shrank in the cloud;
    a failure is logged, not retried."""

    def resized(self, cluster: ClusterRecord) -> None: ...


@runtime_checkable
class SteersWork(Protocol):
    """Optional: a federation that can tell its scheduler which members new work should go to.

    The engine calls it once per tick with every member's weight (:mod:`burst.steering`: cheaper
    and emptier members weigh more, draining ones 0), highest first.  Idempotent; it never moves
    or stops work already running, and never touches what other members (not burst's) get."""

    def steer(self, weights: Sequence[MemberWeight]) -> None: ...


@dataclass(frozen=True)
class FederationContext:
    clock: Clock
    owner: str
    config_dir: str = "."
    extras: Mapping[str, object] = field(default_factory=dict)


class FederationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str

    def build(self, ctx: FederationContext) -> Federation:  # pragma: no cover - abstract
        raise NotImplementedError
