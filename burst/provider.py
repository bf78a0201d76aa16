"""The provider plugin contract (DESIGN.md §5).

A provider wraps one cloud's SDK.  No call waits for a cloud: ``create_cluster`` and
``delete_cluster`` *advance* a long operation one step and return at once; the reconciler calls
them again on later ticks until the cluster is READY or gone.  That keeps one slow cloud from
holding up another, and makes the same code run under a simulated clock.

Plugins are distributions that register a :class:`ProviderConfig` subclass under the entry-point
group ``burst.providers``; its ``kind`` is the entry-point name.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from burst.clock import Clock
from burst.model import CloudCluster, ClusterSpec, Offering, Quota

#: No provider section asks for more nodes or clusters than this (a typo, not a fleet).
MAX_NODES = 1_000_000


@runtime_checkable
class Provider(Protocol):
    """One cloud account in one region.  Every method may raise the typed errors of ``burst.errors``
    (QuotaExceeded, CapacityUnavailable, Throttled, NotFound, AuthFailed, ProvisioningFailed,
    ProviderError) and nothing else: SDK exceptions never escape a provider."""

    name: str

    def offerings(self) -> Sequence[Offering]:
        """The flavors this provider may use, with prices and provisioning latency.  No I/O
        beyond reading the catalog; safe to call every tick."""
        ...

    def create_cluster(self, spec: ClusterSpec) -> CloudCluster:
        """Start or advance creating ``spec``; idempotent on ``spec.cluster_id``.

        The first call asks the cloud for the cluster (tagged with ``spec.tags()``); later calls
        with the same spec find it by name/tag, take the next step (e.g. the node pool once the
        control plane is up) and report progress.  Returns status CREATING until the cluster and
        its nodes are usable, then READY.  Never creates a second cluster for the same id.
        QuotaExceeded / CapacityUnavailable mean "try another provider"; ProvisioningFailed means
        the cloud gave up on this cluster (delete it)."""
        ...

    def get_cluster(self, cluster_id: str) -> CloudCluster:
        """Read-only status of one cluster; NotFound when the cloud has no such cluster."""
        ...

    def resize(self, cluster_id: str, nodes: int) -> CloudCluster:
        """Ask for ``nodes`` worker nodes; idempotent (asking for the current size is a no-op)."""
        ...

    def delete_cluster(self, cluster_id: str) -> CloudCluster:
        """Start or advance deleting the cluster and everything billed with it (node pools,
        disks, addresses); idempotent.  Returns status DELETING while work remains and raises
        NotFound once nothing is left, which the reconciler treats as done."""
        ...

    def list_clusters(self, owner: str) -> Sequence[CloudCluster]:
        """Clusters carrying ``burst.owner=<owner>``; clusters without that tag are never listed,
        so burst never touches what it did not create."""
        ...

    def quota(self) -> Quota:
        """What the account still allows (clusters, cores)."""
        ...

    def credentials(self, cluster_id: str) -> str:
        """A kubeconfig (YAML text) for the federation to reach the cluster.  A secret: callers
        must never log it."""
        ...


@runtime_checkable
class RemovesNodes(Protocol):
    """Optional: a provider that can delete *named* worker nodes and shrink the pool by as many.

    ``resize`` to a smaller size lets the cloud pick which nodes go, which would kill the jobs on
    them, so burst never shrinks that way.  With this capability the reconciler releases idle nodes
    (ones the federation has already stopped giving work, see ``burst.federation.api.ReleasesNodes``)
    of a draining or shrinking cluster instead of paying for them until its last job ends — what the
    cluster autoscaler does with ``TerminateInstanceInAutoScalingGroup``."""

    def remove_nodes(self, cluster_id: str, nodes: Sequence[str]) -> CloudCluster:
        """Delete exactly the worker nodes named ``nodes`` (their Kubernetes node names, as the
        federation reports them) and lower the cluster's node count by as many, so the cloud does
        not replace them.  Idempotent: names already gone (or being deleted) are ignored.  Returns
        the cluster with ``desired_nodes`` already lowered.  Raises NotFound when the cluster is gone,
        ProviderError when a name is not a node of this cluster, and the usual typed errors."""
        ...


@dataclass(frozen=True)
class ProviderContext:
    """What burst hands a provider when it builds one: passed in, never global."""

    clock: Clock
    owner: str
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    config_dir: str = "."
    #: Hooks the local cloud uses to let jobs run on its nodes in a simulation.
    extras: Mapping[str, object] = field(default_factory=dict)
    #: Seconds one SDK call may take (connect + read), below the leader's lease: a provider
    #: passes it to its SDK client so no call outlives the lease it was started under.
    call_timeout: float = 10.0


class PriceOverride(BaseModel):
    """An operator's own price for one flavor (negotiated rates, a private cloud's internal cost)."""

    model_config = ConfigDict(extra="forbid")
    price_per_hour: float = Field(ge=0)
    currency: str | None = None


class ProviderConfig(BaseModel):
    """Base of every provider's config section.  ``extra="forbid"`` makes unknown keys errors."""

    model_config = ConfigDict(extra="forbid")
    kind: str
    max_nodes: int = Field(default=1000, ge=0, le=MAX_NODES, description="most nodes across this provider's clusters")
    min_nodes: int = Field(
        default=0,
        ge=0,
        le=MAX_NODES,
        description="keep at least this many nodes here whatever the backlog (a warm pool), within budget",
    )
    max_clusters: int = Field(default=20, ge=0, le=MAX_NODES)
    nodes_per_cluster: int = Field(default=50, ge=1, le=MAX_NODES, description="nodes in one burst cluster")
    priority: int = Field(default=0, description="higher is preferred when placement is 'priority'")
    prices: dict[str, PriceOverride] = Field(default_factory=dict, description="flavor → price override")

    @model_validator(mode="after")
    def _min_within_max(self) -> ProviderConfig:
        if self.min_nodes > self.max_nodes:
            raise ValueError(f"min_nodes ({self.min_nodes}) is more than max_nodes ({self.max_nodes})")
        return self

    def build(self, name: str, ctx: ProviderContext) -> Provider:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply_price_overrides(self, offerings: Sequence[Offering]) -> list[Offering]:
        """Offerings with the operator's prices in place of the catalog's."""
        from dataclasses import replace

        out = []
        for off in offerings:
            o = self.prices.get(off.flavor)
            if o is not None:
                off = replace(off, price_per_hour=o.price_per_hour, currency=o.currency or off.currency)
            out.append(off)
        return out
