"""The nouns of burst: job shapes, demand, offerings, cluster specs and what a cloud reports.

Everything here is an immutable value (frozen dataclass) so policies can be pure functions of them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

OWNER_TAG = "burst.owner"
CLUSTER_TAG = "burst.cluster"
CAMPAIGN_TAG = "burst.campaign"
#: The random token of the store that created the cluster: tells a lost store's leftovers and a
#: second installation under the same name from our own clusters.
STORE_TAG = "burst.store"


@dataclass(frozen=True, slots=True, order=True)
class Shape:
    """What one job asks for.  Buckets of pending work are keyed by shape, like HTCondor autoclusters."""

    cpus: int
    memory_mb: int = 0
    gpus: int = 0

    def fits(self, cpus: int, memory_mb: int, gpus: int) -> bool:
        return self.cpus <= cpus and self.memory_mb <= memory_mb and self.gpus <= gpus


@dataclass(frozen=True, slots=True)
class Bucket:
    """Pending jobs of one shape: how many, and how long the oldest has waited."""

    shape: Shape
    count: int
    oldest_wait_s: float = 0.0

    @property
    def cores(self) -> int:
        return self.shape.cpus * self.count


@dataclass(frozen=True, slots=True)
class Demand:
    """What the on-prem site needs, as a backlog source saw it at ``at``.

    ``stale`` is set when a source could not be read: policies must then hold capacity, never
    shrink it, because a blind tick is not an empty queue.
    """

    at: datetime
    pending: tuple[Bucket, ...] = ()
    running_cores: int = 0
    onprem_cores: int = 0
    onprem_free_cores: int = 0
    stale: bool = False
    note: str = ""

    @property
    def pending_cores(self) -> int:
        return sum(b.cores for b in self.pending)

    @property
    def pending_jobs(self) -> int:
        return sum(b.count for b in self.pending)

    @property
    def oldest_wait_s(self) -> float:
        return max((b.oldest_wait_s for b in self.pending), default=0.0)


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """Provisioning latency (request → cluster usable) as a function of node count, with a spread.

    The median grows linearly with the node count (Magnum at CERN: 2 nodes 2.5 min, 128 nodes
    5.5 min, 1 000 nodes 23 min); the spread is log-normal with shape ``sigma``.
    """

    base_s: float
    per_node_s: float = 0.0
    sigma: float = 0.2

    def median_s(self, nodes: int) -> float:
        return self.base_s + self.per_node_s * max(0, nodes)

    def quantile_s(self, nodes: int, q: float) -> float:
        z = _normal_quantile(q)
        return self.median_s(nodes) * math.exp(self.sigma * z)

    def p90_s(self, nodes: int) -> float:
        return self.quantile_s(nodes, 0.9)

    def sample_s(self, rng: random.Random, nodes: int) -> float:
        return self.median_s(nodes) * math.exp(rng.gauss(0.0, self.sigma))


def _normal_quantile(q: float) -> float:
    """Inverse of the standard normal CDF (Acklam's rational approximation is overkill here)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(min(max(q, 1e-9), 1 - 1e-9))


@dataclass(frozen=True, slots=True)
class Offering:
    """One flavor a provider can run burst nodes on, with its price.

    ``price_per_hour`` is per node; ``control_plane_per_hour`` is per cluster (EKS and GKE charge
    $0.10/h).  ``min_billed_s`` is the shortest time a node is billed once started.
    """

    provider: str
    region: str
    flavor: str
    cpus: int
    memory_mb: int
    price_per_hour: float
    currency: str
    gpus: int = 0
    control_plane_per_hour: float = 0.0
    latency: LatencyModel = LatencyModel(base_s=600.0)
    spot: bool = False
    min_billed_s: float = 60.0
    max_nodes_per_cluster: int = 100

    @property
    def price_per_core_hour(self) -> float:
        return self.price_per_hour / self.cpus if self.cpus else math.inf

    def can_run(self, shape: Shape) -> bool:
        """The shape fits on one node."""
        return shape.fits(self.cpus, self.memory_mb, self.gpus)

    def nodes_for(self, shape: Shape) -> int:
        """Nodes one job of ``shape`` occupies: 1 when it fits a node, else whole nodes of a cluster
        (an MPI-style job spans nodes; GPU jobs never do)."""
        if self.can_run(shape):
            return 1
        if shape.gpus or self.cpus <= 0:
            return 10**9
        return max(math.ceil(shape.cpus / self.cpus), math.ceil(shape.memory_mb / max(self.memory_mb, 1)))

    def can_host(self, shape: Shape, nodes_per_cluster: int) -> bool:
        """The shape fits in one cluster of ``nodes_per_cluster`` nodes."""
        return self.nodes_for(shape) <= nodes_per_cluster


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """What to create: one cluster of ``nodes`` nodes of ``flavor`` on one provider.

    ``cluster_id`` is burst's own id; it is the cloud-side name and the idempotency key.
    """

    cluster_id: str
    provider: str
    region: str
    flavor: str
    nodes: int
    owner: str
    campaign: str = ""
    policy: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        """The ownership tags every cloud resource of this cluster carries."""
        tags = {OWNER_TAG: self.owner, CLUSTER_TAG: self.cluster_id}
        if self.campaign:
            tags[CAMPAIGN_TAG] = self.campaign
        tags.update(self.labels)
        return tags


class CloudStatus(StrEnum):
    """A cloud's view of a cluster, normalised across providers."""

    CREATING = "CREATING"
    READY = "READY"
    RESIZING = "RESIZING"
    DELETING = "DELETING"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class CloudCluster:
    """What a provider reports about one cluster it holds."""

    cluster_id: str
    status: CloudStatus
    nodes: int = 0
    desired_nodes: int = 0
    tags: Mapping[str, str] = field(default_factory=dict)
    message: str = ""
    flavor: str = ""
    region: str = ""
    #: when the cloud created it, if the cloud says (billing starts then; orphan checks use it)
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Quota:
    """What is left of an account's limits.  ``None`` means no limit applies."""

    max_clusters: int | None = None
    used_clusters: int = 0
    max_cores: int | None = None
    used_cores: int = 0

    def clusters_left(self) -> int | None:
        return None if self.max_clusters is None else max(0, self.max_clusters - self.used_clusters)

    def cores_left(self) -> int | None:
        return None if self.max_cores is None else max(0, self.max_cores - self.used_cores)


@dataclass(frozen=True, slots=True)
class Job:
    """One job of a trace: submit offset (s from the trace start), run time and shape."""

    job_id: int
    submit_s: float
    runtime_s: float
    shape: Shape
    user: str = ""


@dataclass(frozen=True, slots=True)
class Trace:
    """A parsed job trace; ``start`` anchors submit offsets to a date (SWF ``UnixStartTime``)."""

    name: str
    start: datetime
    jobs: Sequence[Job]
    citation: str = ""
