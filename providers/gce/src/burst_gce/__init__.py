"""GCE GKE provider for burst (google-cloud-container, REST transport).

One burst cluster is one GKE Standard cluster with one node pool (``burst``) of ``spec.nodes``
nodes of one machine type, spot or not, with GKE's autoscaling off: burst decides the size.

Nothing a restart needs is kept in memory.  The cluster's name is burst's cluster id, so every call
finds the cluster by name, and the operation driving it by listing the location's operations and
matching ``targetLink``; the small caches below only save calls.  Ownership is carried in GKE
``resourceLabels``, which GKE copies onto the cluster's VMs and disks.  Label keys and values may
only hold lowercase letters, digits, ``_`` and ``-``, so ``burst.owner`` is written ``burst-owner``
(see :func:`label_key`).

Releasing named idle nodes (:meth:`GceProvider.remove_nodes`, burst's optional ``RemovesNodes``)
goes through the Compute Engine API (google-cloud-compute, REST transport), as GKE's own cluster
autoscaler does: ``instanceGroupManagers.deleteInstances`` on the node pool's managed instance group
deletes exactly those VMs (GKE node names are the instance names) and lowers the group's
``targetSize``, which the node pool's size follows.

SDK exceptions become burst's typed errors in one place, :func:`_sdk_errors` / :func:`_translate`;
failures GKE reports asynchronously (an operation DONE with an error, a cluster in ERROR) are
classified by :func:`_classify_failure` next to it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any, Literal

import google.auth
import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.transport.requests import Request as AuthRequest
from google.cloud import compute_v1, container_v1
from google.protobuf import json_format
from pydantic import AliasChoices, Field, model_validator

from burst.api import (
    CAMPAIGN_TAG,
    CLUSTER_TAG,
    OWNER_TAG,
    STORE_TAG,
    AuthFailed,
    CapacityUnavailable,
    CloudCluster,
    CloudStatus,
    ClusterSpec,
    LatencyModel,
    MalformedAnswer,
    NotFound,
    Offering,
    ProviderConfig,
    ProviderContext,
    ProviderError,
    ProvisioningFailed,
    Quota,
    QuotaExceeded,
    Throttled,
    guard_answers,
    render_kubeconfig,
)

__all__ = [
    "NODE_POOL",
    "AlreadyExists",
    "Catalog",
    "ClusterBusy",
    "GceProvider",
    "GceProviderConfig",
    "NotOwned",
    "RequestRejected",
    "label_key",
    "label_value",
    "load_catalog",
]

#: The one node pool of every burst cluster.
NODE_POOL = "burst"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
#: Seconds one API call may take; nothing here waits for a cloud operation.
CALL_TIMEOUT_S = 30.0

_CS = container_v1.Cluster.Status
_NS = container_v1.NodePool.Status
_OS = container_v1.Operation.Status
_ZONE_RE = re.compile(r"^[a-z]+-[a-z]+\d+-[a-z]$")
_REGION_RE = re.compile(r"^[a-z]+-[a-z]+\d+$")
_GKE_NAME_RE = re.compile(r"^[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?$")
#: A node pool's ``instanceGroupUrls`` entry: ``…/projects/P/zones/Z/instanceGroupManagers/M`` (GKE
#: names the managers there; an ``…/instanceGroups/M`` URL names the group its manager shares a name with).
_GROUP_URL_RE = re.compile(
    r"/projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)/instanceGroup(?:Manager)?s/(?P<name>[^/]+)$"
)
#: Managed-instance actions that mean the instance is already on its way out.
_LEAVING = frozenset({"DELETING", "ABANDONING"})


# ---- errors of this provider (all burst ProviderErrors) ----------------------------------------------
class AlreadyExists(ProviderError):
    """GKE answered 409 ALREADY_EXISTS; create_cluster turns it into "find it and check its labels"."""


class ClusterBusy(ProviderError):
    """Another operation runs on the cluster (GKE's 400 FAILED_PRECONDITION); retry on a later tick."""


class NotOwned(ProviderError):
    """A cluster of that name exists but does not carry this installation's labels: never touched."""

    retryable = False


class RequestRejected(ProviderError):
    """GKE rejected the request as invalid (400): retrying the same request cannot help."""

    retryable = False


# ---- labels ------------------------------------------------------------------------------------------
_KNOWN_TAGS = {
    OWNER_TAG: "burst-owner",
    CLUSTER_TAG: "burst-cluster",
    CAMPAIGN_TAG: "burst-campaign",
    STORE_TAG: "burst-store",
}
_TAG_OF_LABEL = {v: k for k, v in _KNOWN_TAGS.items()}


def _label_chars(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def label_key(tag: str) -> str:
    """The GKE label key for a burst tag: ``burst.owner`` → ``burst-owner``; other keys are lowercased
    and every character GCP labels forbid becomes ``-`` (keys must start with a letter)."""
    if tag in _KNOWN_TAGS:
        return _KNOWN_TAGS[tag]
    key = _label_chars(tag)
    return key if key[:1].isalpha() else ("l-" + key)[:63]


def label_value(value: str) -> str:
    """The GKE label value for a tag value: lowercased, forbidden characters → ``-``, ≤ 63 chars."""
    return _label_chars(value)


def _tags_of(labels: Mapping[str, str]) -> dict[str, str]:
    """burst's tags back from GKE labels (known keys renamed back; values stay as stored)."""
    return {_TAG_OF_LABEL.get(k, k): v for k, v in labels.items()}


# ---- catalog -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Flavor:
    name: str
    machine_type: str
    cpus: int
    memory_mb: int
    gpus: int
    price_per_hour: float
    accelerator_type: str = ""
    accelerator_count: int = 0


@dataclass(frozen=True, slots=True)
class Catalog:
    """The packaged ``catalog.json``: flavors, the GKE fee, the spot assumption and the latency model."""

    currency: str
    control_plane_per_hour: float
    spot_fraction: float
    latency: LatencyModel
    max_nodes_per_cluster: int
    min_billed_s: float
    flavors: Mapping[str, Flavor]

    @classmethod
    def parse(cls, doc: Mapping[str, Any]) -> Catalog:
        lat = doc["latency"]
        flavors = {
            name: Flavor(
                name=name,
                machine_type=f["machine_type"],
                cpus=int(f["cpus"]),
                memory_mb=int(f["memory_mb"]),
                gpus=int(f.get("gpus", 0)),
                price_per_hour=float(f["price_per_hour"]),
                accelerator_type=f.get("accelerator_type", ""),
                accelerator_count=int(f.get("accelerator_count", 0)),
            )
            for name, f in doc["flavors"].items()
        }
        return cls(
            currency=doc["currency"],
            control_plane_per_hour=float(doc["control_plane_per_hour"]["value"]),
            spot_fraction=float(doc["spot"]["price_fraction"]),
            latency=LatencyModel(
                base_s=float(lat["base_s"]), per_node_s=float(lat["per_node_s"]), sigma=float(lat["sigma"])
            ),
            max_nodes_per_cluster=int(doc["max_nodes_per_cluster"]),
            min_billed_s=float(doc["min_billed_s"]),
            flavors=flavors,
        )

    def flavor_of(self, machine_type: str, accelerator_type: str, accelerator_count: int) -> str:
        """The catalog flavor a node pool runs (a bare machine type when the catalog has none)."""
        for f in self.flavors.values():
            if (f.machine_type, f.accelerator_type, f.accelerator_count) == (
                machine_type,
                accelerator_type,
                accelerator_count,
            ):
                return f.name
        return machine_type


def load_catalog() -> Catalog:
    """Read the catalog shipped in this package."""
    text = resources.files(__package__).joinpath("catalog.json").read_text(encoding="utf-8")
    return Catalog.parse(json.loads(text))


# ---- config ------------------------------------------------------------------------------------------
class GceProviderConfig(ProviderConfig):
    """``providers.<name>`` for ``kind: gce``.  See providers/gce/README.md for every key."""

    kind: Literal["gce"] = "gce"
    project: str = Field(min_length=1, description="GCP project id")
    location: str = Field(
        validation_alias=AliasChoices("location", "zone", "region"),
        description="zone (zonal cluster) or region (regional control plane); also accepted as 'zone'/'region'",
    )
    node_zone: str | None = Field(
        default=None,
        description="the one zone the nodes run in; required when location is a region, because GKE node "
        "counts are per zone and burst wants exact sizes",
    )
    network: str = Field(default="default", description="VPC network name")
    subnetwork: str = Field(default="", description="subnetwork name (empty: GKE's choice)")
    machine_types: list[str] = Field(
        default_factory=lambda: ["n2-standard-8"], min_length=1, description="catalog flavors offered"
    )
    spot: bool = Field(default=False, description="spot VMs for the node pool")
    kubernetes_version: str | None = Field(default=None, description="initialClusterVersion; GKE's default if unset")
    service_account: str | None = Field(default=None, description="node service account email; GCE default if unset")
    api_endpoint: str | None = Field(default=None, description="GKE API endpoint (private endpoints, tests)")
    compute_endpoint: str | None = Field(
        default=None, description="Compute Engine API endpoint for node release (private endpoints, tests)"
    )
    credentials: Literal["application-default", "anonymous"] = Field(
        default="application-default",
        description="'anonymous' only for test servers: no token is sent and kubeconfigs carry none",
    )

    @model_validator(mode="before")
    @classmethod
    def _single_machine_type(cls, data: Any) -> Any:
        """Accept ``machine_type: X`` (DESIGN.md's example) as ``machine_types: [X]``."""
        if isinstance(data, dict) and "machine_type" in data:
            data = dict(data)
            if "machine_types" in data:
                raise ValueError("give either machine_type or machine_types, not both")
            data["machine_types"] = [data.pop("machine_type")]
        return data

    @model_validator(mode="after")
    def _check(self) -> GceProviderConfig:
        known = load_catalog().flavors
        unknown = [m for m in self.machine_types if m not in known]
        if unknown:
            raise ValueError(f"machine_types {unknown} are not in the gce catalog; known: {sorted(known)}")
        if _REGION_RE.match(self.location):
            if not self.node_zone or not self.node_zone.startswith(self.location + "-"):
                raise ValueError(f"location {self.location!r} is a region: set node_zone to one of its zones")
        elif _ZONE_RE.match(self.location):
            if self.node_zone not in (None, self.location):
                raise ValueError(f"node_zone {self.node_zone!r} differs from the zonal location {self.location!r}")
        else:
            raise ValueError(f"location {self.location!r} is neither a GCE zone nor a region")
        return self

    def build(self, name: str, ctx: ProviderContext) -> GceProvider:
        return GceProvider(name, self, ctx.owner, timeout=min(CALL_TIMEOUT_S, ctx.call_timeout))


# ---- the provider ------------------------------------------------------------------------------------
@guard_answers
class GceProvider:
    """burst's Provider for one GKE project and location (see burst/provider.py for the contract).

    ``client``, ``groups`` and ``credentials`` are for tests and embedding; by default the GKE client
    and the Compute Engine instance-group-managers client are built on first use from the config
    (REST transport, ``api_endpoint`` / ``compute_endpoint``) and application-default credentials,
    so listing offerings needs no credentials at all.
    """

    def __init__(
        self,
        name: str,
        config: GceProviderConfig,
        owner: str,
        *,
        client: container_v1.ClusterManagerClient | None = None,
        groups: compute_v1.InstanceGroupManagersClient | None = None,
        credentials: Credentials | None = None,
        catalog: Catalog | None = None,
        timeout: float = CALL_TIMEOUT_S,
    ) -> None:
        self.name = name
        self._config = config
        self._timeout = timeout  # per call, below the leader's lease (ProviderContext.call_timeout)
        self._owner = owner
        self._client = client
        self._groups = groups
        self._credentials = credentials
        self._catalog = catalog or load_catalog()
        self._parent = f"projects/{config.project}/locations/{config.location}"
        # Caches only: each is rebuilt from the cloud after a restart.
        self._op_names: dict[str, str] = {}  # cluster → name of the last operation started on it
        self._asked_sizes: dict[str, int] = {}  # cluster → size of a setSize in flight

    # ---- Provider ----------------------------------------------------------------------------------------
    def offerings(self) -> Sequence[Offering]:
        cat = self._catalog
        out = []
        for name in self._config.machine_types:
            f = cat.flavors[name]
            price = f.price_per_hour * (cat.spot_fraction if self._config.spot else 1.0)
            out.append(
                Offering(
                    provider=self.name,
                    region=self._config.location,
                    flavor=name,
                    cpus=f.cpus,
                    memory_mb=f.memory_mb,
                    gpus=f.gpus,
                    price_per_hour=round(price, 6),
                    currency=cat.currency,
                    control_plane_per_hour=cat.control_plane_per_hour,
                    latency=cat.latency,
                    spot=self._config.spot,
                    min_billed_s=cat.min_billed_s,
                    max_nodes_per_cluster=cat.max_nodes_per_cluster,
                )
            )
        return self._config.apply_price_overrides(out)

    def create_cluster(self, spec: ClusterSpec) -> CloudCluster:
        name = _gke_name(spec.cluster_id)
        if spec.flavor not in self._config.machine_types:
            raise RequestRejected(f"creating cluster {name}: flavor {spec.flavor!r} is not offered by {self.name}")
        cluster = self._find(name)
        if cluster is None:
            try:
                with _sdk_errors(f"creating cluster {name}"):
                    op = self._api().create_cluster(
                        parent=self._parent, cluster=self._cluster_body(spec), retry=None, timeout=self._timeout
                    )
            except AlreadyExists:
                # Created between our look and our create (another replica, or a request that got
                # through before a crash): adopt it if its labels say it is this spec's cluster.
                cluster = self._find(name)
                if cluster is None:
                    raise ProviderError(f"creating cluster {name}: GKE says it exists but it cannot be read") from None
            else:
                self._op_names[name] = op.name
                return CloudCluster(
                    cluster_id=name,
                    status=CloudStatus.CREATING,
                    nodes=0,
                    desired_nodes=spec.nodes,
                    tags=spec.tags(),
                    message=f"operation {op.name} {_OS(op.status).name}",
                    flavor=spec.flavor,
                    region=self._config.location,
                )
        self._check_owned(cluster, spec.cluster_id)
        view = self._view(cluster)
        if view.status is CloudStatus.FAILED:
            failed = self._operation(name)
            raise _classify_failure(f"creating cluster {name}", _failure_text(cluster, failed), name)
        if view.status is CloudStatus.CREATING:
            running = self._operation(name)
            if running is not None:
                view = _with_message(view, f"operation {running.name} {_OS(running.status).name}{_progress(running)}")
        return view

    def get_cluster(self, cluster_id: str) -> CloudCluster:
        return self._view(self._get(_gke_name(cluster_id)))

    def resize(self, cluster_id: str, nodes: int) -> CloudCluster:
        name = _gke_name(cluster_id)
        if nodes < 0:
            raise RequestRejected(f"resizing cluster {name}: node count {nodes} < 0")
        cluster = self._get(name)
        self._check_owned(cluster, cluster_id)
        view = self._view(cluster)
        if view.status is CloudStatus.READY and view.nodes == nodes:
            self._asked_sizes.pop(name, None)
            return view  # already that size: a no-op
        if view.status is CloudStatus.RESIZING and self._asked_sizes.get(name) == nodes:
            return view  # our own setSize to this size is still running
        if view.status is CloudStatus.FAILED:
            raise ProvisioningFailed(f"resizing cluster {name}: the cluster failed ({view.message}); delete it")
        if view.status in (CloudStatus.CREATING, CloudStatus.DELETING):
            raise ClusterBusy(f"resizing cluster {name}: cluster is {view.status} ({view.message})")
        pool = self._pool_path(name, cluster)
        with _sdk_errors(f"resizing cluster {name} to {nodes} nodes"):
            op = self._api().set_node_pool_size(
                request=container_v1.SetNodePoolSizeRequest(name=pool, node_count=nodes),
                retry=None,
                timeout=self._timeout,
            )
        self._op_names[name] = op.name
        self._asked_sizes[name] = nodes
        return _resizing(view, nodes, f"operation {op.name} {_OS(op.status).name}")

    def delete_cluster(self, cluster_id: str) -> CloudCluster:
        name = _gke_name(cluster_id)
        cluster = self._get(name)  # NotFound once GKE has nothing left: done
        self._check_owned(cluster, cluster_id)
        view = self._view(cluster)
        if cluster.status == _CS.STOPPING:
            stopping = self._operation(name)
            text = f"deleting: operation {stopping.name} {_OS(stopping.status).name}" if stopping else "deleting"
            return _with_message(view, text)
        try:
            with _sdk_errors(f"deleting cluster {name}"):
                op = self._api().delete_cluster(
                    name=f"{self._parent}/clusters/{name}", retry=None, timeout=self._timeout
                )
        except ClusterBusy as err:
            # GKE refuses to delete while e.g. the create runs; ask again on the next tick.
            return _with_message(_with_status(view, CloudStatus.DELETING), f"delete waits: {err}")
        self._op_names[name] = op.name
        self._asked_sizes.pop(name, None)
        return _with_message(_with_status(view, CloudStatus.DELETING), f"deleting: operation {op.name}")

    # ---- RemovesNodes ------------------------------------------------------------------------------
    def remove_nodes(self, cluster_id: str, nodes: Sequence[str]) -> CloudCluster:
        """Delete exactly the nodes named (GKE node name = VM instance name) through
        ``instanceGroupManagers.deleteInstances`` on the node pool's managed instance groups, which
        also lowers each group's ``targetSize`` so nothing replaces them.

        Every name is checked against the groups' managed instances first: one that is being deleted
        already, or that is gone but carries a group's ``baseInstanceName`` (so it was a node of this
        pool), is skipped; any other name raises RequestRejected (a ProviderError) before anything is
        deleted.  Nothing
        waits: the deletes run on in Compute Engine, and a repeat call sees them DELETING or gone."""
        name = _gke_name(cluster_id)
        wanted = list(dict.fromkeys(nodes))
        action = f"removing nodes {', '.join(wanted)} from cluster {name}"
        cluster = self._get(name)  # NotFound: the cluster is gone
        self._check_owned(cluster, cluster_id)
        view = self._view(cluster)
        if view.status is CloudStatus.FAILED:
            raise ProvisioningFailed(f"{action}: the cluster failed ({view.message}); delete it")
        if view.status in (CloudStatus.CREATING, CloudStatus.RESIZING, CloudStatus.DELETING):
            raise ClusterBusy(f"{action}: cluster is {view.status} ({view.message})")
        if not wanted:
            return view
        pool = self._pool(cluster)
        if pool is None or not pool.instance_group_urls:
            raise ProviderError(f"{action}: node pool {NODE_POOL!r} has no instance groups")
        groups = [self._read_group(url, action) for url in pool.instance_group_urls]
        plan: dict[int, list[str]] = {}
        unknown = []
        for node in wanted:
            owner = next((i for i, g in enumerate(groups) if g.holds(node)), None)
            if owner is None:
                unknown.append(node)
            elif node in groups[owner].live:
                plan.setdefault(owner, []).append(node)
        if unknown:  # asking again cannot help: RequestRejected is a ProviderError that is not retryable
            raise RequestRejected(
                f"{action}: {', '.join(unknown)} are not nodes of cluster {name} "
                f"(instance groups {', '.join(g.name for g in groups)})"
            )
        started = []
        for index, names in plan.items():
            g = groups[index]
            started.append(self._delete_instances(g, names, action))
        self._asked_sizes.pop(name, None)
        desired = sum(g.target_size - len(plan.get(i, [])) for i, g in enumerate(groups))
        if not started:
            return replace(view, desired_nodes=desired, message=view.message or "named nodes already gone or going")
        count = sum(len(n) for n in plan.values())
        return _resizing(view, desired, f"deleting {count} nodes: operation {', '.join(started)}")

    def list_clusters(self, owner: str) -> Sequence[CloudCluster]:
        want = label_value(owner)
        return [self._view(c) for c in self._list() if c.resource_labels.get(label_key(OWNER_TAG)) == want]

    def quota(self) -> Quota:
        """GKE's API has no quota call (CPU quotas live in the Compute Engine API, which this
        provider uses only to release nodes): report the configured cluster limit and what burst uses; CPU quota
        shortfalls surface as QuotaExceeded when creating or resizing."""
        mine = self.list_clusters(self._owner)
        cores = 0
        for c in mine:
            f = self._catalog.flavors.get(c.flavor)
            cores += c.nodes * (f.cpus if f else 0)
        return Quota(max_clusters=self._config.max_clusters, used_clusters=len(mine), used_cores=cores)

    def credentials(self, cluster_id: str) -> str:
        name = _gke_name(cluster_id)
        cluster = self._get(name)
        self._check_owned(cluster, cluster_id)
        ca = cluster.master_auth.cluster_ca_certificate
        if not cluster.endpoint or not ca:
            raise ProviderError(f"credentials for cluster {name}: no endpoint yet (status {_CS(cluster.status).name})")
        token = self._access_token(f"credentials for cluster {name}")
        entry = f"gke_{self._config.project}_{self._config.location}_{name}"
        return render_kubeconfig(entry, f"https://{cluster.endpoint}", ca, {"token": token} if token else {})

    # ---- GKE calls -------------------------------------------------------------------------------------
    def _api(self) -> container_v1.ClusterManagerClient:
        if self._client is None:
            options = {"api_endpoint": self._config.api_endpoint} if self._config.api_endpoint else None
            self._client = container_v1.ClusterManagerClient(
                transport="rest", credentials=self._creds(), client_options=options
            )
        return self._client

    def _migs(self) -> compute_v1.InstanceGroupManagersClient:
        """The Compute Engine client for the node pool's managed instance groups (node release)."""
        if self._groups is None:
            options = {"api_endpoint": self._config.compute_endpoint} if self._config.compute_endpoint else None
            self._groups = compute_v1.InstanceGroupManagersClient(
                transport="rest", credentials=self._creds(), client_options=options
            )
        return self._groups

    def _read_group(self, url: str, action: str) -> _Group:
        """A node pool's managed instance group: its target size and its instances by action."""
        m = _GROUP_URL_RE.search(url)
        if m is None:
            raise ProviderError(f"{action}: cannot read instance group URL {url!r}")
        project, zone, mig = m["project"], m["zone"], m["name"]
        with _group_errors(f"{action}: reading instance group {zone}/{mig}"):
            manager = self._migs().get(
                project=project, zone=zone, instance_group_manager=mig, retry=None, timeout=self._timeout
            )
            members = list(
                self._migs().list_managed_instances(
                    project=project, zone=zone, instance_group_manager=mig, retry=None, timeout=self._timeout
                )
            )
        live: set[str] = set()
        leaving: set[str] = set()
        for member in members:
            instance = member.name or member.instance.rsplit("/", 1)[-1]
            (leaving if member.current_action in _LEAVING else live).add(instance)
        return _Group(
            project=project,
            zone=zone,
            name=mig,
            base=manager.base_instance_name,
            target_size=int(manager.target_size),
            live=frozenset(live),
            leaving=frozenset(leaving),
        )

    def _delete_instances(self, group: _Group, names: Sequence[str], action: str) -> str:
        """Start deleting ``names`` from ``group`` (targetSize drops by as many); the operation's name."""
        body = compute_v1.InstanceGroupManagersDeleteInstancesRequest(
            instances=[f"zones/{group.zone}/instances/{n}" for n in names],
            # One instance gone meanwhile must not fail the others: Compute skips it.
            skip_instances_on_validation_error=True,
        )
        with _group_errors(f"{action}: deleting instances of group {group.zone}/{group.name}"):
            op = self._migs().delete_instances_unary(
                project=group.project,
                zone=group.zone,
                instance_group_manager=group.name,
                instance_group_managers_delete_instances_request_resource=body,
                retry=None,
                timeout=self._timeout,
            )
        if op.error.errors:
            text = "; ".join(f"{e.code}: {e.message}" for e in op.error.errors)
            raise ProviderError(f"{action}: Compute Engine refused deleting from {group.name}: {text}")
        return op.name

    def _creds(self) -> Credentials:
        if self._credentials is None:
            if self._config.credentials == "anonymous":
                self._credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
            else:
                with _sdk_errors("loading Google application-default credentials"):
                    self._credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        return self._credentials

    def _access_token(self, action: str) -> str | None:
        """An OAuth access token, as gke-gcloud-auth-plugin would hand kubectl; None when anonymous."""
        creds = self._creds()
        if isinstance(creds, AnonymousCredentials):
            return None
        if not creds.valid:
            with _sdk_errors(action):
                creds.refresh(AuthRequest())  # type: ignore[no-untyped-call]
        token = getattr(creds, "token", None)
        if not token:
            raise AuthFailed(f"{action}: the credentials gave no access token")
        return str(token)

    def _find(self, name: str) -> container_v1.Cluster | None:
        try:
            return self._get(name)
        except NotFound:
            return None

    def _get(self, name: str) -> container_v1.Cluster:
        with _sdk_errors(f"reading cluster {name}"):
            return self._api().get_cluster(name=f"{self._parent}/clusters/{name}", retry=None, timeout=self._timeout)

    def _list(self) -> list[container_v1.Cluster]:
        with _sdk_errors(f"listing clusters in {self._parent}"):
            resp = self._api().list_clusters(parent=self._parent, retry=None, timeout=self._timeout)
        if resp.missing_zones:
            # A partial list could make burst think a cluster is gone: better no answer this tick.
            raise ProviderError(
                f"listing clusters in {self._parent}: GKE could not reach zones {list(resp.missing_zones)}"
            )
        return list(resp.clusters)

    def _operation(self, name: str) -> container_v1.Operation | None:
        """The latest operation on cluster ``name``: by its remembered name, else by listing the
        location's operations and matching ``targetLink`` (after a restart)."""
        known = self._op_names.get(name)
        if known:
            try:
                with _sdk_errors(f"reading operation {known}"):
                    return self._api().get_operation(
                        name=f"{self._parent}/operations/{known}", retry=None, timeout=self._timeout
                    )
            except NotFound:
                self._op_names.pop(name, None)
        with _sdk_errors(f"listing operations in {self._parent}"):
            resp = self._api().list_operations(parent=self._parent, retry=None, timeout=self._timeout)
        suffix = f"/clusters/{name}"
        mine = [o for o in resp.operations if o.target_link.endswith(suffix) or f"{suffix}/nodePools/" in o.target_link]
        if not mine:
            return None
        latest = max(mine, key=lambda o: (o.start_time, o.name))
        self._op_names[name] = latest.name
        return latest

    def _cluster_body(self, spec: ClusterSpec) -> container_v1.Cluster:
        f = self._catalog.flavors[spec.flavor]
        node_config = container_v1.NodeConfig(machine_type=f.machine_type, spot=self._config.spot)
        if self._config.service_account:
            node_config.service_account = self._config.service_account
        if f.accelerator_type:
            node_config.accelerators = [
                container_v1.AcceleratorConfig(
                    accelerator_type=f.accelerator_type,
                    accelerator_count=f.accelerator_count,
                    gpu_driver_installation_config=container_v1.GPUDriverInstallationConfig(
                        gpu_driver_version=container_v1.GPUDriverInstallationConfig.GPUDriverVersion.DEFAULT
                    ),
                )
            ]
        pool = container_v1.NodePool(
            name=NODE_POOL,
            initial_node_count=spec.nodes,
            config=node_config,
            autoscaling=container_v1.NodePoolAutoscaling(enabled=False),
        )
        if self._config.node_zone:
            pool.locations = [self._config.node_zone]
        cluster = container_v1.Cluster(
            name=_gke_name(spec.cluster_id),
            description=f"burst cluster {spec.cluster_id} of {spec.owner}",
            network=self._config.network,
            resource_labels={label_key(k): label_value(v) for k, v in spec.tags().items()},
            node_pools=[pool],
        )
        if self._config.subnetwork:
            cluster.subnetwork = self._config.subnetwork
        if self._config.kubernetes_version:
            cluster.initial_cluster_version = self._config.kubernetes_version
        return cluster

    # ---- reading GKE's answers -----------------------------------------------------------------------
    def _check_owned(self, cluster: container_v1.Cluster, cluster_id: str) -> None:
        labels = cluster.resource_labels
        if labels.get(label_key(OWNER_TAG)) != label_value(self._owner) or labels.get(
            label_key(CLUSTER_TAG)
        ) != label_value(cluster_id):
            raise NotOwned(
                f"cluster {cluster.name} exists in {self._parent} but is not labelled "
                f"{label_key(OWNER_TAG)}={label_value(self._owner)}, "
                f"{label_key(CLUSTER_TAG)}={label_value(cluster_id)}: "
                "burst leaves it alone"
            )

    def _pool(self, cluster: container_v1.Cluster) -> container_v1.NodePool | None:
        pools = list(cluster.node_pools)
        return next((p for p in pools if p.name == NODE_POOL), pools[0] if len(pools) == 1 else None)

    def _pool_path(self, name: str, cluster: container_v1.Cluster) -> str:
        pool = self._pool(cluster)
        if pool is None:
            raise ProviderError(f"cluster {name} has no node pool {NODE_POOL!r}")
        return f"{self._parent}/clusters/{name}/nodePools/{pool.name}"

    def _view(self, cluster: container_v1.Cluster) -> CloudCluster:
        """GKE's cluster and node-pool status → burst's CloudCluster.

        Cluster PROVISIONING → CREATING; RUNNING → READY once the pool is RUNNING (CREATING while
        the pool is PROVISIONING, RESIZING while it is RECONCILING); RECONCILING → RESIZING (GKE
        is changing the cluster; it still serves); STOPPING → DELETING; ERROR → FAILED; DEGRADED →
        READY with a message (it serves, and needs an operator, not a teardown).
        """
        name = cluster.name
        pool = self._pool(cluster)
        cs = _CS(cluster.status)
        ps = _NS(pool.status) if pool is not None else None
        message = cluster.status_message
        if cs == _CS.PROVISIONING:
            status = CloudStatus.CREATING
        elif cs == _CS.RUNNING:
            if pool is None:
                status, message = CloudStatus.FAILED, f"node pool {NODE_POOL!r} is missing"
            elif ps == _NS.PROVISIONING:
                status = CloudStatus.CREATING
            elif ps == _NS.RECONCILING:
                status = CloudStatus.RESIZING
            elif ps == _NS.STOPPING:
                status = CloudStatus.DELETING
            elif ps == _NS.ERROR:
                status, message = CloudStatus.FAILED, pool.status_message if pool is not None else message
            else:  # RUNNING, RUNNING_WITH_ERROR
                status = CloudStatus.READY
                if ps == _NS.RUNNING_WITH_ERROR and pool is not None:
                    message = f"node pool running with errors: {pool.status_message}"
        elif cs == _CS.RECONCILING:
            status = CloudStatus.RESIZING
        elif cs == _CS.STOPPING:
            status = CloudStatus.DELETING
        elif cs == _CS.ERROR:
            status = CloudStatus.FAILED
            message = "; ".join(x for x in [message, *(c.message for c in cluster.conditions)] if x)
        elif cs == _CS.DEGRADED:
            status = CloudStatus.READY
            message = f"degraded: {message}"
        else:
            status = CloudStatus.CREATING
        nodes = int(cluster.current_node_count)
        if status is CloudStatus.CREATING and pool is not None:
            desired = int(pool.initial_node_count)
        elif status is CloudStatus.RESIZING:
            desired = self._asked_sizes.get(name, nodes)
        else:
            desired = nodes
        flavor = ""
        if pool is not None:
            acc = pool.config.accelerators[0] if pool.config.accelerators else None
            flavor = self._catalog.flavor_of(
                pool.config.machine_type, acc.accelerator_type if acc else "", int(acc.accelerator_count) if acc else 0
            )
        return CloudCluster(
            cluster_id=name,
            status=status,
            nodes=nodes,
            desired_nodes=desired,
            tags=_tags_of(cluster.resource_labels),
            message=message,
            flavor=flavor,
            region=cluster.location or self._config.location,
        )


# ---- small helpers -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Group:
    """One managed instance group of the node pool, as read for a node release."""

    project: str
    zone: str
    name: str
    base: str  # baseInstanceName: every instance is named ``<base>-<4 chars>``
    target_size: int
    live: frozenset[str]
    leaving: frozenset[str]

    def holds(self, node: str) -> bool:
        """Whether ``node`` is (or was) an instance of this group."""
        return node in self.live or node in self.leaving or bool(self.base and node.startswith(self.base + "-"))


def _gke_name(cluster_id: str) -> str:
    """burst's cluster id is the GKE cluster name; GKE allows ≤ 40 chars of [a-z0-9-], letter first."""
    if not _GKE_NAME_RE.match(cluster_id):
        raise RequestRejected(
            f"cluster id {cluster_id!r} cannot be a GKE cluster name (lowercase letters, digits and '-', "
            "starting with a letter, at most 40 characters)"
        )
    return cluster_id


def _with_status(view: CloudCluster, status: CloudStatus) -> CloudCluster:
    return replace(view, status=status)


def _resizing(view: CloudCluster, desired: int, message: str) -> CloudCluster:
    """``view`` while its size changes towards ``desired`` (nodes still as counted now)."""
    return replace(view, status=CloudStatus.RESIZING, desired_nodes=desired, message=message)


def _with_message(view: CloudCluster, message: str) -> CloudCluster:
    return replace(view, message=message)


def _progress(op: container_v1.Operation) -> str:
    """GKE's own words on how far the operation is (``detail``), when it gives any."""
    return f": {op.detail}" if op.detail else ""


def _failure_text(cluster: container_v1.Cluster, op: container_v1.Operation | None) -> str:
    """Everything GKE says about why a cluster failed: status message, conditions, operation error."""
    parts = [cluster.status_message]
    parts += [f"{container_v1.StatusCondition.Code(c.code).name}: {c.message}" for c in cluster.conditions]
    for pool in cluster.node_pools:
        parts += [pool.status_message]
        parts += [f"{container_v1.StatusCondition.Code(c.code).name}: {c.message}" for c in pool.conditions]
    if op is not None and op.error.message:
        parts.append(f"operation {op.name}: {op.error.message}")
    if op is not None:
        parts += [f"{container_v1.StatusCondition.Code(c.code).name}: {c.message}" for c in op.cluster_conditions]
    seen: list[str] = []
    for p in parts:
        if p and p not in seen:
            seen.append(p)
    return "; ".join(seen) or "GKE gave no reason"


# ---- the one boundary between the SDK and burst's errors ---------------------------------------------
_CAPACITY_RE = re.compile(
    r"GCE_STOCKOUT|ZONE_RESOURCE_POOL_EXHAUSTED|STOCKOUT|does not have enough resources available", re.IGNORECASE
)
_QUOTA_RE = re.compile(r"quota|GCE_QUOTA_EXCEEDED", re.IGNORECASE)
_RATE_RE = re.compile(r"per (?:minute|second|100 seconds|day)|rate limit|RATE_LIMIT_EXCEEDED", re.IGNORECASE)
_BUSY_RE = re.compile(r"is currently .* Please wait|incompatible operation", re.IGNORECASE)


@contextmanager
def _sdk_errors(action: str) -> Iterator[None]:
    """Run SDK calls; any SDK or transport exception leaves as one of burst's typed errors."""
    try:
        yield
    except gexc.GoogleAPICallError as err:
        raise _translate(err, action) from err
    except gexc.RetryError as err:
        raise ProviderError(f"{action}: {err}") from err
    except (auth_exc.DefaultCredentialsError, auth_exc.RefreshError) as err:
        raise AuthFailed(f"{action}: {type(err).__name__}: {err}") from err
    except auth_exc.GoogleAuthError as err:  # TransportError and friends: reaching the token endpoint
        raise ProviderError(f"{action}: {type(err).__name__}: {err}") from err
    except requests.RequestException as err:
        raise ProviderError(f"{action}: cannot reach the GKE API: {type(err).__name__}") from err
    except json_format.ParseError as err:  # a body that is not the JSON the API reference promises
        raise MalformedAnswer(f"{action}: cloud answered malformed data: {' '.join(str(err).split())[:200]}") from err


@contextmanager
def _group_errors(action: str) -> Iterator[None]:
    """:func:`_sdk_errors` for Compute Engine calls on a node pool's instance group.  The cluster was
    just read, so a 404 here means GKE is changing the pool (a retryable ProviderError), never that
    the cluster is gone — which NotFound would tell the reconciler."""
    try:
        with _sdk_errors(action):
            yield
    except NotFound as err:
        raise ProviderError(f"{err} (the cluster exists: GKE may be changing its node pool)") from err


def _rpc_status(err: gexc.GoogleAPICallError) -> str:
    """The google.rpc status name in the error body (e.g. RESOURCE_EXHAUSTED, FAILED_PRECONDITION)."""
    response = getattr(err, "response", None)
    if response is None:
        return ""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, list):
        body = next((b for b in body if isinstance(b, dict)), {})
    status = body.get("error", {}).get("status", "") if isinstance(body, dict) else ""
    return str(status)


def _reasons(err: gexc.GoogleAPICallError) -> set[str]:
    """Compute Engine's error reasons (``error.errors[].reason``: rateLimitExceeded, resourceNotReady…)."""
    return {str(e.get("reason", "")) for e in err.errors if isinstance(e, dict)}


def _retry_after(err: gexc.GoogleAPICallError, default: float = 30.0) -> float:
    response = getattr(err, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(1.0, float(value)) if value else default
    except ValueError:
        return default


def _translate(err: gexc.GoogleAPICallError, action: str) -> ProviderError:
    """Map a GKE API error to burst's error family.

    HTTP status picks the exception class in google-api-core, so the body is read too: GKE reports
    CPU quota shortfalls as 403 ("Insufficient regional quota"), rate limits and resource quotas
    both as 429 RESOURCE_EXHAUSTED (told apart by ErrorInfo reason RATE_LIMIT_EXCEEDED or a
    "per minute" limit), and "another operation runs" as 400 FAILED_PRECONDITION.
    """
    status = _rpc_status(err)
    text = f"{err.message} {err.reason or ''} {status}"
    msg = f"{action}: {err.message}"
    if isinstance(err, gexc.NotFound):
        return NotFound(msg)
    if isinstance(err, gexc.Conflict) and status in ("ALREADY_EXISTS", ""):
        return AlreadyExists(msg)
    if _CAPACITY_RE.search(text):
        return CapacityUnavailable(msg)
    if isinstance(err, gexc.TooManyRequests):
        if _RATE_RE.search(text) or not _QUOTA_RE.search(err.message):
            return Throttled(msg, retry_after=_retry_after(err))
        return QuotaExceeded(msg)
    if isinstance(err, gexc.Unauthorized | gexc.Forbidden):
        return QuotaExceeded(msg) if _QUOTA_RE.search(err.message) else AuthFailed(msg)
    if status == "RESOURCE_EXHAUSTED" or (isinstance(err, gexc.BadRequest) and _QUOTA_RE.search(err.message)):
        return QuotaExceeded(msg)
    if status == "FAILED_PRECONDITION" and _BUSY_RE.search(err.message):
        return ClusterBusy(msg)
    if "resourceNotReady" in _reasons(err):  # Compute: another action runs on the group
        return ClusterBusy(msg)
    if isinstance(err, gexc.BadRequest):
        return RequestRejected(msg)
    return ProviderError(msg)


def _classify_failure(action: str, text: str, name: str) -> ProviderError:
    """A failure GKE reported asynchronously (operation error, cluster ERROR).  The cluster exists
    and must be deleted whichever error this is; stockouts and quota still tell placement to try
    elsewhere."""
    msg = f"{action}: GKE reports the cluster failed: {text} (cluster {name} exists in ERROR and must be deleted)"
    if _CAPACITY_RE.search(text):
        return CapacityUnavailable(msg)
    if _QUOTA_RE.search(text):
        return QuotaExceeded(msg)
    return ProvisioningFailed(msg)
