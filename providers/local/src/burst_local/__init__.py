"""burst's embedded simulated cloud: the default provider, no cloud account needed.

It behaves like a real cloud where it matters to burst: clusters take minutes to provision (a
log-normal spread around a median that grows with node count, as Magnum at CERN measured), cost
money from the create request to the completed delete, live under quotas, and fail the ways real
clouds fail — quota exceeded, capacity unavailable, provisioning that fails or takes far longer,
throttling — as injected by the config.  Prices and latencies come from ``catalog.json``, which
cites its sources.  Time comes from the clock burst passes in, so the same provider runs in a
year-long simulation and under the real-time daemon.

With ``state_file`` set, the simulated account survives restarts (the daemon's crash tests need
a cloud that remembers) and is shared by processes: it is re-read before every call, so an
operator's ``burst remove`` and the running daemon see one account.  With ``audit_file`` set,
every call that changes the account is appended there (JSON lines: when, which process, what,
with what outcome): the cloud's own record of who acted, which the fencing tests and the chaos
harness read.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from burst.api import (
    CLUSTER_TAG,
    OWNER_TAG,
    AuthFailed,
    CapacityUnavailable,
    Clock,
    CloudCluster,
    CloudStatus,
    ClusterSpec,
    ConfigError,
    LatencyModel,
    NotFound,
    Offering,
    ProviderConfig,
    ProviderContext,
    ProviderError,
    Quota,
    QuotaExceeded,
    Seconds,
    Throttled,
)

Cloud = Literal["tsystems", "aws", "gce", "openstack"]
FaultKind = Literal[
    "quota_exceeded",
    "capacity_unavailable",
    "provisioning_fails",
    "slow_provisioning",
    "throttled",
    "auth_failed",
    "slow_call",
]


class Fault(BaseModel):
    """An injected failure: with ``probability`` per create request, between ``start`` and ``end``."""

    model_config = ConfigDict(extra="forbid")
    kind: FaultKind
    probability: float = Field(default=1.0, ge=0, le=1)
    start: datetime | None = None
    end: datetime | None = None
    factor: float = Field(default=5.0, ge=1, description="slow_provisioning: latency multiplier")
    seconds: float = Field(
        default=0.0,
        ge=0,
        description="slow_call: real seconds a changing call takes to answer after the cloud applied it; "
        "past the call timeout the caller gives up (ProviderError), as an SDK read timeout does",
    )

    def active(self, now: datetime) -> bool:
        return (self.start is None or now >= _aware(self.start)) and (self.end is None or now < _aware(self.end))


def _aware(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=UTC)


class LocalProviderConfig(ProviderConfig):
    kind: Literal["local"] = "local"
    cloud: Cloud = Field(default="aws", description="which real cloud's catalog, latencies and fees to model")
    region: str | None = None
    flavors: list[str] | None = Field(default=None, description="offer only these flavors (default: all of the cloud)")
    spot: bool = False
    quota_cores: int | None = Field(default=None, ge=0, description="the account's core quota")
    quota_clusters: int | None = Field(default=None, ge=0)
    delete_latency: Seconds = Field(default=180.0, description="how long a delete takes (180, 3m)")
    resize_latency: Seconds = Field(default=150.0, description="how long new nodes take to join a cluster")
    latency_scale: float = Field(
        default=1.0, gt=0, le=1000, description="multiply every modelled latency (demos and tests in real time)"
    )
    kube_api: bool = Field(
        default=False,
        description="give each ready cluster a real (in-process) Kubernetes API server, so federations "
        "join it for real; its kubeconfig is what credentials() returns",
    )
    members_dir: str | None = Field(
        default=None,
        description="with kube_api: the clusters' API servers are run by another process (a test harness "
        "playing the cloud's control planes, shared by every burst replica); credentials() returns the "
        "kubeconfig it wrote to <members_dir>/<cluster id>.kubeconfig",
    )
    faults: list[Fault] = Field(default_factory=list)
    state_file: str | None = Field(default=None, description="persist the simulated account here (JSON)")
    audit_file: str | None = Field(
        default=None,
        description="append one JSON line per mutating call (time, process id, call, cluster, outcome): "
        "the account's own record of who changed it, as a cloud's audit trail (CloudTrail) is",
    )

    def build(self, name: str, ctx: ProviderContext) -> LocalProvider:
        offerings = self.apply_price_overrides(
            catalog_offerings(name, self.cloud, self.region, self.spot, self.latency_scale)
        )
        if self.flavors is not None:
            known = {o.flavor for o in offerings}
            unknown = sorted(set(self.flavors) - known)
            if unknown:
                raise ConfigError(
                    f"providers.{name}.flavors: unknown flavor(s) {unknown} for {self.cloud} (known: {sorted(known)})"
                )
            offerings = [o for o in offerings if o.flavor in self.flavors]
        state = None
        if self.state_file:
            state = self.state_file if os.path.isabs(self.state_file) else os.path.join(ctx.config_dir, self.state_file)
        members = None
        if self.members_dir:
            members = (
                self.members_dir if os.path.isabs(self.members_dir) else os.path.join(ctx.config_dir, self.members_dir)
            )
        audit = None
        if self.audit_file:
            audit = self.audit_file if os.path.isabs(self.audit_file) else os.path.join(ctx.config_dir, self.audit_file)
        return LocalProvider(
            name, self, offerings, ctx.clock, random.Random(ctx.rng.random()), state, ctx.call_timeout, audit, members
        )


def catalog_offerings(
    provider: str, cloud: str, region: str | None, spot: bool, latency_scale: float = 1.0
) -> list[Offering]:
    data = json.loads(resources.files(__package__).joinpath("catalog.json").read_text(encoding="utf-8"))
    c = data["clouds"][cloud]
    raw = c["latency"]
    lat = LatencyModel(raw["base_s"] * latency_scale, raw["per_node_s"] * latency_scale, raw["sigma"])
    factor = c["spot_factor"] if spot else 1.0
    return [
        Offering(
            provider=provider,
            region=region or c["region"],
            flavor=f["flavor"],
            cpus=f["cpus"],
            memory_mb=f["memory_mb"],
            gpus=f.get("gpus", 0),
            price_per_hour=round(f["price_per_hour"] * factor, 4),
            currency="EUR",
            control_plane_per_hour=c["control_plane_per_hour"],
            latency=lat,
            spot=spot,
            min_billed_s=c["min_billed_s"],
        )
        for f in c["flavors"]
    ]


@dataclass
class _Cluster:
    cluster_id: str
    flavor: str
    cpus: int
    tags: dict[str, str]
    nodes: int
    desired: int
    ready_at: float  # clock.monotonic-independent: epoch seconds of the clock
    fails: bool = False
    deleting_until: float | None = None
    resize_at: float | None = None
    message: str = ""
    #: names of nodes deleted by remove_nodes; a later grow appends nodes with new indices
    removed: list[str] = field(default_factory=list)
    #: epoch seconds of the clock when the create was accepted (None: put there by a test)
    created: float | None = None

    def node_names(self) -> list[str]:
        """``<cluster>-node-<i>``, as the simulated batch system (``burst.executor``) names them too."""
        every = (f"{self.cluster_id}-node-{i}" for i in range(self.nodes + len(self.removed)))
        return [n for n in every if n not in self.removed]


@dataclass
class _Account:
    clusters: dict[str, _Cluster] = field(default_factory=dict)


class LocalProvider:
    def __init__(
        self,
        name: str,
        cfg: LocalProviderConfig,
        offerings: Sequence[Offering],
        clock: Clock,
        rng: random.Random,
        state_file: str | None,
        call_timeout: float = 10.0,
        audit_file: str | None = None,
        members_dir: str | None = None,
    ) -> None:
        self.name = name
        self.call_timeout = call_timeout
        self.cfg = cfg
        self._offerings = list(offerings)
        self._by_flavor = {o.flavor: o for o in offerings}
        self.clock = clock
        self.rng = rng
        self.state_file = state_file
        self.audit_file = audit_file
        self.members_dir = members_dir
        self.calls: list[tuple[str, str]] = []  # (method, cluster id): what burst asked, for tests
        #: create calls for a cluster the account does not hold: each one asks the cloud for a new
        #: cluster (accepted or refused); calls that poll a cluster being created are not counted
        self.create_requests = 0
        self._acct = self._load()
        self._servers: dict[str, Any] = {}  # cluster id → KubeApiServer (kube_api mode)

    # --- persistence -------------------------------------------------------------------------

    def _load(self) -> _Account:
        if not self.state_file or not Path(self.state_file).exists():
            return _Account()
        raw = json.loads(Path(self.state_file).read_text(encoding="utf-8"))
        return _Account({k: _Cluster(**v) for k, v in raw.items()})

    def _save(self) -> None:
        if not self.state_file:
            return
        tmp = self.state_file + ".tmp"
        Path(tmp).write_text(json.dumps({k: asdict(v) for k, v in self._acct.clusters.items()}), encoding="utf-8")
        os.replace(tmp, self.state_file)

    def _sync(self) -> None:
        """Re-read the persisted account before each call: another process (an operator's
        ``burst remove``, a second replica) may have changed it, and writing back a stale copy
        would lose the clusters it created.  API servers of clusters deleted elsewhere stop."""
        if not self.state_file:
            return
        self._acct = self._load()
        for cid in [c for c in self._servers if c not in self._acct.clusters]:
            self._servers.pop(cid).stop()

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def _applied(self, call: str, cluster_id: str, outcome: str) -> None:
        """A changing call reached the cloud: journal it, then answer as slowly as a ``slow_call``
        fault says.  The change is already made, as with a real cloud whose answer is late."""
        self._journal(call, cluster_id, outcome)
        slow = self._fault("slow_call")
        if slow is None or slow.seconds <= 0:
            return
        time.sleep(min(slow.seconds, self.call_timeout))  # the wire, not the cloud's clock
        if slow.seconds > self.call_timeout:
            raise ProviderError(f"{call} {cluster_id}: no answer within {self.call_timeout:g}s (read timeout)")

    def _journal(self, call: str, cluster_id: str, outcome: str) -> None:
        """One line per changing call in ``audit_file``, stamped with wall time and this process:
        what the fencing tests and a chaos run read to tell which replica reached the cloud, and
        when (against the lease history)."""
        if not self.audit_file:
            return
        line = {"t": time.time(), "pid": os.getpid(), "call": call, "cluster": cluster_id, "outcome": outcome}
        with open(self.audit_file, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")

    # --- the provider contract -----------------------------------------------------------------

    def offerings(self) -> Sequence[Offering]:
        return self._offerings

    def _fault(self, kind: str) -> Any:
        now = self.clock.now()
        for f in self.cfg.faults:
            if f.kind == kind and f.active(now) and self.rng.random() < f.probability:
                return f
        return None

    def create_cluster(self, spec: ClusterSpec) -> CloudCluster:
        self._sync()
        self.calls.append(("create_cluster", spec.cluster_id))
        c = self._acct.clusters.get(spec.cluster_id)
        if c is None:
            self.create_requests += 1
            try:
                c = self._start_create(spec)
            except ProviderError as err:
                self._journal("create_cluster", spec.cluster_id, f"refused: {type(err).__name__}")
                raise
            outcome = "accepted"
        else:
            outcome = "exists"
        view = self._view(c)
        self._applied("create_cluster", spec.cluster_id, outcome)
        return view

    def _start_create(self, spec: ClusterSpec) -> _Cluster:
        off = self._by_flavor.get(spec.flavor)
        if off is None:
            raise ProviderError(f"creating {spec.cluster_id}: flavor {spec.flavor!r} is not offered by {self.name}")
        if self._fault("auth_failed"):
            raise AuthFailed(f"creating {spec.cluster_id}: the credentials lack a permission (injected)")
        if self._fault("throttled"):
            raise Throttled(f"creating {spec.cluster_id}: request rate exceeded", retry_after=30)
        q = self.quota()
        if (left := q.cores_left()) is not None and spec.nodes * off.cpus > left:
            raise QuotaExceeded(
                f"creating {spec.cluster_id}: {spec.nodes * off.cpus} cores asked, {left} left in quota"
            )
        if (cl := q.clusters_left()) is not None and cl <= 0:
            raise QuotaExceeded(f"creating {spec.cluster_id}: cluster quota of {q.max_clusters} reached")
        if self._fault("quota_exceeded"):
            raise QuotaExceeded(f"creating {spec.cluster_id}: quota exceeded (injected)")
        if self._fault("capacity_unavailable"):
            raise CapacityUnavailable(f"creating {spec.cluster_id}: no capacity for {spec.flavor} (injected)")
        latency = off.latency.sample_s(self.rng, spec.nodes)
        slow = self._fault("slow_provisioning")
        if slow is not None:
            latency *= slow.factor
        c = _Cluster(
            spec.cluster_id,
            spec.flavor,
            off.cpus,
            spec.tags(),
            0,
            spec.nodes,
            self._now() + latency,
            fails=self._fault("provisioning_fails") is not None,
            created=self._now(),
        )
        self._acct.clusters[spec.cluster_id] = c
        self._save()
        return c

    def _view(self, c: _Cluster) -> CloudCluster:
        now = self._now()
        if c.deleting_until is not None:
            status = CloudStatus.DELETING
        elif now < c.ready_at:
            status = CloudStatus.CREATING
        elif c.fails:
            status, c.message = CloudStatus.FAILED, "provisioning failed: node group creation failed (injected)"
        else:
            if c.nodes == 0:
                c.nodes = c.desired
            if self.cfg.kube_api and self.members_dir is None:
                self._api_server(c)
            if c.resize_at is not None and now >= c.resize_at:
                c.nodes, c.resize_at = c.desired, None
            status = CloudStatus.RESIZING if c.resize_at is not None else CloudStatus.READY
        return CloudCluster(
            c.cluster_id,
            status,
            c.nodes,
            c.desired,
            dict(c.tags),
            c.message,
            c.flavor,
            self._offerings[0].region if self._offerings else "",
            datetime.fromtimestamp(c.created, UTC) if c.created is not None else None,
        )

    def get_cluster(self, cluster_id: str) -> CloudCluster:
        self._sync()
        c = self._acct.clusters.get(cluster_id)
        if c is None or (c.deleting_until is not None and self._now() >= c.deleting_until):
            raise NotFound(f"cluster {cluster_id} not found on {self.name}")
        return self._view(c)

    def resize(self, cluster_id: str, nodes: int) -> CloudCluster:
        self._sync()
        self.calls.append(("resize", cluster_id))
        c = self._acct.clusters.get(cluster_id)
        if c is None:
            raise NotFound(f"resizing {cluster_id}: not found on {self.name}")
        if nodes != c.desired:
            grow = nodes - c.nodes
            if grow > 0:
                q = self.quota()
                if (left := q.cores_left()) is not None and grow * c.cpus > left:
                    raise QuotaExceeded(f"resizing {cluster_id}: {grow * c.cpus} more cores, {left} left in quota")
            c.desired = nodes
            c.resize_at = self._now() + (self.cfg.resize_latency if grow > 0 else 30.0)
            self._save()
            outcome = f"to {nodes}"
        else:
            outcome = "unchanged"
        view = self._view(c)
        self._applied("resize", cluster_id, outcome)
        return view

    def remove_nodes(self, cluster_id: str, nodes: Sequence[str]) -> CloudCluster:
        """Delete the named nodes and shrink the cluster by as many (a cluster autoscaler's
        scale-down of chosen nodes); names already removed are ignored."""
        self._sync()
        self.calls.append(("remove_nodes", cluster_id))
        c = self._acct.clusters.get(cluster_id)
        if c is None or c.deleting_until is not None:
            raise NotFound(f"removing nodes of {cluster_id}: not found on {self.name}")
        if self._fault("throttled"):
            raise Throttled(f"removing nodes of {cluster_id}: request rate exceeded", retry_after=30)
        self._view(c)  # settle a finished resize first
        live = set(c.node_names())
        gone = [n for n in dict.fromkeys(nodes) if n not in c.removed]
        unknown = [n for n in gone if n not in live]
        if unknown:
            raise ProviderError(f"removing nodes of {cluster_id}: {', '.join(unknown)} not node(s) of this cluster")
        c.removed.extend(gone)
        c.nodes -= len(gone)
        c.desired -= len(gone)
        server = self._servers.get(cluster_id)
        if server is not None:
            for n in gone:
                server.delete("v1", "nodes", n)
        self._save()
        view = self._view(c)
        self._applied("remove_nodes", cluster_id, f"{len(gone)} node(s)")
        return view

    def delete_cluster(self, cluster_id: str) -> CloudCluster:
        self._sync()
        self.calls.append(("delete_cluster", cluster_id))
        c = self._acct.clusters.get(cluster_id)
        now = self._now()
        if c is None:
            raise NotFound(f"cluster {cluster_id} not found on {self.name}")
        outcome = "deleting"
        if c.deleting_until is None:
            c.deleting_until = now + self.cfg.delete_latency
            self._save()
            outcome = "accepted"
        if now >= c.deleting_until:
            server = self._servers.pop(cluster_id, None)
            if server is not None:
                server.stop()
            del self._acct.clusters[cluster_id]
            self._save()
            self._applied("delete_cluster", cluster_id, outcome if outcome == "accepted" else "deleted")
            raise NotFound(f"cluster {cluster_id} deleted from {self.name}")
        view = self._view(c)
        self._applied("delete_cluster", cluster_id, outcome)
        return view

    def list_clusters(self, owner: str) -> Sequence[CloudCluster]:
        self._sync()
        return [self._view(c) for c in self._acct.clusters.values() if c.tags.get(OWNER_TAG) == owner]

    def quota(self) -> Quota:
        self._sync()
        live = [c for c in self._acct.clusters.values()]
        cores = sum(max(c.desired, c.nodes) * c.cpus for c in live)
        return Quota(self.cfg.quota_clusters, len(live), self.cfg.quota_cores, cores)

    def _api_server(self, c: _Cluster) -> Any:
        """The cluster's own Kubernetes API server, with one node per cluster node."""
        server = self._servers.get(c.cluster_id)
        if server is None:
            from burst.testing.kube_server import KubeApiServer

            server = KubeApiServer()
            server.start()
            off = self._by_flavor[c.flavor]
            for name in c.node_names():
                server.add_node(name, cpu=str(off.cpus), memory=f"{off.memory_mb}Mi", gpus=off.gpus)
            self._servers[c.cluster_id] = server
        return server

    def credentials(self, cluster_id: str) -> str:
        self._sync()
        c = self._acct.clusters.get(cluster_id)
        if c is None:
            raise NotFound(f"cluster {cluster_id} not found on {self.name}")
        if self.cfg.kube_api and self.members_dir is not None:
            path = Path(self.members_dir) / f"{cluster_id}.kubeconfig"
            try:
                return path.read_text(encoding="utf-8")
            except OSError as err:
                raise ProviderError(f"credentials of {cluster_id}: its API server is not up ({err.strerror})") from None
        if self.cfg.kube_api:
            return str(self._api_server(c).kubeconfig())
        return (
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: {cluster_id}\n  cluster:\n    server: https://{cluster_id}.{self.name}.local.invalid\n"
            f"users:\n- name: burst\n  user:\n    token: local-{c.tags.get(CLUSTER_TAG, '')}\n"
            f"contexts:\n- name: {cluster_id}\n  context:\n    cluster: {cluster_id}\n    user: burst\n"
            f"current-context: {cluster_id}\n"
        )

    def adopt_foreign_for_tests(self, cluster_id: str, tags: dict[str, str], created: datetime | None = None) -> None:
        """Put a cluster into the account that burst did not create (tests of the ownership rule);
        ``created`` is the creation time the cloud then reports for it."""
        self._acct.clusters[cluster_id] = _Cluster(
            cluster_id,
            self._offerings[0].flavor,
            self._offerings[0].cpus,
            dict(tags),
            1,
            1,
            self._now(),
            created=created.timestamp() if created is not None else None,
        )
        self._save()
