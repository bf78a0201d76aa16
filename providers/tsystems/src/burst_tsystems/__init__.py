"""T-Systems Open Telekom Cloud CCE provider for burst (openstacksdk + otcextensions).

One burst cluster is one CCE cluster (control plane) plus one node pool named
:data:`POOL_NAME`.  Nothing here waits for the cloud: ``create_cluster`` looks at where the
cluster is and takes the next step (create the cluster → wait for ``Available`` → create the pool
→ wait for its nodes), so a crash between ticks loses nothing and never makes a second cluster:
the cluster's name is burst's cluster id, and it is found by name before anything is created.

Ownership lives in the cluster's resource tags (``spec.clusterTags``), the nodes' ECS tags
(``userTags``) and their Kubernetes labels (``k8sTags``).  otcextensions' resource classes drop
fields they do not model (``clusterTags``, the list of ``endpoints``, ``status.reason``), so reads
go through the SDK's authenticated CCE adapter as raw JSON; creates use the SDK's resources.

Idle nodes are released one by one (:meth:`TSystemsProvider.remove_nodes`, burst's optional
``RemovesNodes``): CCE names a node in Kubernetes by its private IP, so names are matched against
``status.privateIP`` of the cluster's nodes, those nodes are deleted, and the pool's
``initialNodeCount`` ends lowered by as many so CCE does not boot replacements.

Credentials come from ``clouds.yaml`` / ``OS_*`` environment variables (cloud name
:attr:`TSystemsProviderConfig.cloud`), never from burst's YAML, and are never logged.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import cached_property
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import Field

from burst.api import (
    CLUSTER_TAG,
    OWNER_TAG,
    AuthFailed,
    CapacityUnavailable,
    CloudCluster,
    CloudStatus,
    ClusterSpec,
    LatencyModel,
    NotFound,
    Offering,
    Provider,
    ProviderConfig,
    ProviderContext,
    ProviderError,
    ProvisioningFailed,
    Quota,
    QuotaExceeded,
    RemovesNodes,
    Throttled,
    guard_answers,
)

__all__ = ["POOL_NAME", "TSystemsProvider", "TSystemsProviderConfig", "load_catalog", "translate_error"]

#: The one node pool burst puts in each of its CCE clusters.
POOL_NAME = "burst-workers"

#: Annotation CCE puts on a node with the uid of the node pool it belongs to.
POOL_ANNOTATION = "kubernetes.io/node-pool.id"

#: Query flags for ``DELETE .../clusters/{id}``: take the cluster's volumes (EVS, SFS, SFS Turbo,
#: OBS), ENI ports and load balancers with it, so nothing keeps billing after the cluster is gone.
DELETE_FLAGS: dict[str, str] = {
    "delete_efs": "true",
    "delete_eni": "true",
    "delete_evs": "true",
    "delete_net": "true",
    "delete_obs": "true",
    "delete_sfs": "true",
}

#: CCE cluster phases → burst's view.  Unknown phases are reported FAILED with the phase named,
#: so a new CCE state is seen by an operator instead of being taken for progress.
CLUSTER_PHASES: dict[str, CloudStatus] = {
    "Creating": CloudStatus.CREATING,
    "Available": CloudStatus.READY,
    "Upgrading": CloudStatus.READY,
    "Resizing": CloudStatus.RESIZING,
    "Deleting": CloudStatus.DELETING,
    "Unavailable": CloudStatus.FAILED,
    "Error": CloudStatus.FAILED,
    "Empty": CloudStatus.FAILED,
    "Frozen": CloudStatus.FAILED,
    "Hibernating": CloudStatus.FAILED,
    "Hibernation": CloudStatus.FAILED,
    "Awaking": CloudStatus.CREATING,
    "RollingBack": CloudStatus.RESIZING,
    "RollbackFailed": CloudStatus.FAILED,
}

_CAPACITY_WORDS = (
    "sold out",
    "soldout",
    "no valid host",
    "insufficient capacity",
    "insufficient resource",
    "resources are insufficient",
    "not enough resource",
    "flavor is not available",
)
_QUOTA_WORDS = ("quota", "limit exceeded", "exceeds the limit", "exceeded the limit")


class TSystemsProviderConfig(ProviderConfig):
    """``providers.<name>`` for Open Telekom Cloud CCE.  Secrets are not here: ``cloud`` names an
    entry of clouds.yaml (or the ``OS_*`` environment), as for the ``openstack`` CLI."""

    kind: Literal["tsystems"] = "tsystems"
    cloud: str = Field(default="otc", description="cloud name in clouds.yaml holding the OTC credentials")
    region: str = Field(default="eu-de", description="OTC region (eu-de, eu-nl, …)")
    availability_zone: str = Field(default="eu-de-01", description="AZ of the control plane and nodes")
    flavors: list[str] = Field(default_factory=list, description="ECS flavors burst may use; empty = the whole catalog")
    flavor: str | None = Field(default=None, description="shorthand for a single flavor")
    vpc_id: str = Field(description="VPC (router) id the clusters live in")
    subnet_id: str = Field(description="subnet (network) id of the control plane and nodes")
    cluster_flavor: str = Field(
        default="cce.s1.small", description="CCE control-plane size (cce.s1.small: 50 nodes, 1 master)"
    )
    kubernetes_version: str = Field(default="v1.29")
    container_network_mode: str = Field(default="vpc-router")
    container_cidr: str = Field(default="172.16.0.0/16")
    keypair: str = Field(description="ECS SSH key pair of the nodes (CCE needs a login method for every node)")
    node_os: str = Field(default="EulerOS 2.9")
    root_volume_gb: int = Field(default=50, ge=40)
    data_volume_gb: int = Field(default=100, ge=20)
    volume_type: str = Field(default="SSD")
    cert_days: int = Field(default=30, ge=1, le=1827, description="validity of the client certificate in kubeconfigs")
    cluster_fee_per_hour: float | None = Field(
        default=None, ge=0, description="override of the catalog's CCE cluster fee assumption"
    )

    def allowed_flavors(self) -> list[str]:
        return self.flavors or ([self.flavor] if self.flavor else [])

    def build(self, name: str, ctx: ProviderContext) -> TSystemsProvider:
        """The provider; it connects on first use, so building it does no I/O."""
        return TSystemsProvider(name, self, ctx, connect=lambda: _connect(self.cloud, self.region, ctx.call_timeout))


def _connect(cloud: str, region: str, timeout: float | None = None) -> Any:
    """An openstacksdk connection with the OTC extensions (CCE) registered.  Registration
    authenticates, so this runs inside the error boundary, not at build time."""
    import openstack
    from otcextensions import sdk as otc_sdk

    conn = openstack.connect(cloud=cloud, region_name=region, api_timeout=timeout)
    otc_sdk.register_otc_extensions(conn)
    return conn


def load_catalog() -> dict[str, Any]:
    """The packaged catalog (flavors, assumed prices, latency) with its sources."""
    text = resources.files(__name__).joinpath("catalog.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


# ---- the one place openstacksdk / keystoneauth errors become burst's --------------------------------


def _error_detail(err: BaseException) -> tuple[int | None, str, Mapping[str, str]]:
    """Status, message and headers of an SDK/keystoneauth error.  CCE (and OTC's API gateway)
    answer ``{"error_code", "error_msg"}``; the SDK's own message often lacks the text."""
    response = getattr(err, "response", None)
    status = getattr(err, "status_code", None) or getattr(err, "http_status", None)
    headers: Mapping[str, str] = {}
    text = str(err)
    if response is not None:
        status = status or getattr(response, "status_code", None)
        headers = getattr(response, "headers", None) or {}
        try:
            body = response.json()
        except Exception:  # a non-JSON error body is read as text below
            body = None
        if isinstance(body, dict):
            code = body.get("error_code") or body.get("code") or ""
            msg = body.get("error_msg") or body.get("message") or ""
            if isinstance(body.get("error"), dict):
                msg = msg or body["error"].get("message", "")
            if code or msg:
                text = f"{code}: {msg}" if code else str(msg)
    if status is None:
        # keystoneauth errors wrapped by openstack.connection.authorize() keep "(HTTP 401)".
        ctx = err.__cause__ or err.__context__
        status = getattr(ctx, "http_status", None)
        if status is None and "(HTTP 401)" in text:
            status = 401
    return (int(status) if status is not None else None), text, headers


def translate_error(err: BaseException, action: str) -> ProviderError:
    """Map an openstacksdk/keystoneauth exception to burst's typed error for ``action``."""
    status, text, headers = _error_detail(err)
    low = text.lower()
    message = f"{action}: {text}"
    if status == 429 or "throttl" in low or "apigw.0308" in low:
        try:
            retry = float(headers.get("Retry-After", 30))
        except ValueError:
            retry = 30.0
        return Throttled(message, retry_after=retry)
    if status == 403 and ("policy" in low or "not authorized" in low or "no permission" in low):
        return AuthFailed(message)  # "Policy doesn't allow quota:get": a permission, not a quota
    if any(w in low for w in _QUOTA_WORDS):
        return QuotaExceeded(message)
    if any(w in low for w in _CAPACITY_WORDS):
        return CapacityUnavailable(message)
    if status == 404:
        return NotFound(message)
    if status in (401, 403) or type(err).__name__ == "ConfigException":
        return AuthFailed(message)
    return ProviderError(message)


@contextmanager
def _boundary(action: str) -> Iterator[None]:
    try:
        yield
    except ProviderError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        # a CCE answer without a field its API reference promises
        raise ProviderError(f"{action}: unexpected answer from CCE ({type(err).__name__}: {err})") from err
    except Exception as err:
        if _is_sdk_error(err):
            raise translate_error(err, action) from err
        raise


def _http_status(err: BaseException) -> int | None:
    """The HTTP status of an SDK error.  Match on this, not on exception subclasses:
    otcextensions installs its own ``raise_from_response``, which raises a plain HttpException
    for a 403 where openstacksdk's raises ForbiddenException."""
    status = getattr(err, "status_code", None)
    return int(status) if status is not None else None


def _is_sdk_error(err: BaseException) -> bool:
    mod = type(err).__module__
    return mod.startswith(("openstack", "keystoneauth1", "otcextensions", "requests"))


# ---- the provider ------------------------------------------------------------------------------------------


@guard_answers
class TSystemsProvider:
    """One OTC project in one region.  See :class:`burst.api.Provider` for the contract."""

    def __init__(
        self,
        name: str,
        config: TSystemsProviderConfig,
        ctx: ProviderContext,
        connect: Callable[[], Any],
    ) -> None:
        self.name = name
        self.config = config
        self.ctx = ctx
        self._connect = connect
        self._conn: Any = None

    # -- plumbing
    @property
    def conn(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        secret: bool = False,
    ) -> Any:
        """A raw CCE request through the SDK's authenticated adapter, errors raised as SDK errors.
        ``secret`` turns off keystoneauth's DEBUG logging of the exchange (it logs whole bodies)."""
        from otcextensions.common import exc

        kwargs: dict[str, Any] = {"headers": {"Content-Type": "application/json", "Accept": "application/json"}}
        if json_body is not None:
            kwargs["json"] = json_body
        if params:
            kwargs["params"] = dict(params)
        if secret:
            kwargs["log"] = False
        response = self.conn.cce.request(path, method, **kwargs)
        exc.raise_from_response(response)
        return response.json() if response.content else {}

    # -- offerings
    @cached_property
    def _catalog(self) -> dict[str, Any]:
        return load_catalog()

    def offerings(self) -> Sequence[Offering]:
        cat = self._catalog
        lat = cat["latency"]
        latency = LatencyModel(base_s=lat["base_s"], per_node_s=lat["per_node_s"], sigma=lat["sigma"])
        fee = self.config.cluster_fee_per_hour
        if fee is None:
            fee = float(cat["cluster_fee"]["per_hour"])
        allowed = set(self.config.allowed_flavors())
        out = []
        for flavor, f in cat["flavors"].items():
            if allowed and flavor not in allowed:
                continue
            out.append(
                Offering(
                    provider=self.name,
                    region=self.config.region,
                    flavor=flavor,
                    cpus=int(f["vcpus"]),
                    memory_mb=int(f["memory_mib"]),
                    gpus=int(f.get("gpus", 0)),
                    price_per_hour=float(f["price_per_hour"]),
                    currency=cat["currency"],
                    control_plane_per_hour=fee,
                    latency=latency,
                    min_billed_s=float(cat["min_billed_s"]),
                    max_nodes_per_cluster=int(cat["max_nodes_per_cluster"].get(self.config.cluster_flavor, 50)),
                )
            )
        return self.config.apply_price_overrides(out)

    # -- reads
    def _clusters(self) -> list[dict[str, Any]]:
        data = self._call("GET", "/clusters")
        return list(data.get("items") or [])

    def _find(self, cluster_id: str) -> dict[str, Any] | None:
        """The CCE cluster named ``cluster_id`` that burst owns; a same-named cluster without
        burst's tags is an error, never adopted."""
        for c in self._clusters():
            if c.get("metadata", {}).get("name") == cluster_id:
                tags = _tags(c)
                if tags.get(CLUSTER_TAG) != cluster_id or tags.get(OWNER_TAG) != self.ctx.owner:
                    raise ProviderError(f"cluster {cluster_id}: exists in CCE without burst's tags; not touching it")
                return c
        return None

    def _must_find(self, cluster_id: str, action: str) -> dict[str, Any]:
        c = self._find(cluster_id)
        if c is None:
            raise NotFound(f"{action} {cluster_id}: no such CCE cluster")
        return c

    def _pool(self, uid: str) -> dict[str, Any] | None:
        data = self._call("GET", f"/clusters/{uid}/nodepools")
        for p in data.get("items") or []:
            if p.get("metadata", {}).get("name") == POOL_NAME:
                return dict(p)
        return None

    def _pool_if_up(self, c: dict[str, Any]) -> dict[str, Any] | None:
        """The node pool, read only when the control plane is up (before that there is none)."""
        phase = c.get("status", {}).get("phase", "")
        return self._pool(c["metadata"]["uid"]) if CLUSTER_PHASES.get(phase) is CloudStatus.READY else None

    def _view(self, c: dict[str, Any], pool: dict[str, Any] | None) -> CloudCluster:
        """burst's view of a CCE cluster and its node pool."""
        meta, status = c.get("metadata", {}), c.get("status", {})
        phase = status.get("phase", "")
        cstatus = CLUSTER_PHASES.get(phase, CloudStatus.FAILED)
        message = f"CCE phase {phase}"
        if status.get("reason"):
            message += f": {status['reason']}"
        nodes = desired = 0
        flavor = ""
        if pool is not None:
            spec, pstatus = pool.get("spec", {}), pool.get("status", {})
            desired = int(spec.get("initialNodeCount") or 0)
            nodes = int(pstatus.get("currentNode") or 0)
            flavor = spec.get("nodeTemplate", {}).get("flavor", "")
            pphase = pstatus.get("phase") or ""
            if cstatus is CloudStatus.READY:
                if pphase in ("SoldOut", "Error"):
                    cstatus, message = CloudStatus.FAILED, f"node pool {pphase}"
                elif pphase == "Deleting":
                    cstatus, message = CloudStatus.DELETING, "node pool Deleting"
                elif pphase == "Synchronizing" or nodes != desired:
                    cstatus = CloudStatus.CREATING if nodes == 0 else CloudStatus.RESIZING
                    message = f"node pool {pphase or 'scaling'}: {nodes}/{desired} nodes"
                else:
                    message = f"{nodes} nodes ready"
        elif cstatus is CloudStatus.READY:
            cstatus, message = CloudStatus.CREATING, "control plane Available; node pool not created yet"
        return CloudCluster(
            cluster_id=meta.get("name", ""),
            status=cstatus,
            nodes=nodes,
            desired_nodes=desired,
            tags=_tags(c),
            message=message,
            flavor=flavor,
            region=self.config.region,
        )

    def _failure_reason(self, c: dict[str, Any]) -> str:
        """Why CCE gave up: the cluster's own reason, else its job's."""
        status = c.get("status", {})
        if status.get("reason"):
            return str(status["reason"])
        job_id = status.get("jobID")
        if job_id:
            job = self._call("GET", f"/jobs/{job_id}")
            reason = job.get("status", {}).get("reason") if isinstance(job, dict) else None
            if reason:
                return str(reason)
        return f"phase {status.get('phase')}"

    # -- Provider methods
    def get_cluster(self, cluster_id: str) -> CloudCluster:
        with _boundary(f"reading CCE cluster {cluster_id}"):
            c = self._must_find(cluster_id, "reading")
            return self._view(c, self._pool_if_up(c))

    def list_clusters(self, owner: str) -> Sequence[CloudCluster]:
        with _boundary("listing CCE clusters"):
            out = []
            for c in self._clusters():
                if _tags(c).get(OWNER_TAG) != owner:
                    continue
                out.append(self._view(c, self._pool_if_up(c)))
            return out

    def create_cluster(self, spec: ClusterSpec) -> CloudCluster:
        action = f"creating CCE cluster {spec.cluster_id}"
        with _boundary(action):
            c = self._find(spec.cluster_id)
            if c is None:
                self._request_create(action, lambda: self.conn.cce.create_cluster(**self._cluster_body(spec)))
                return CloudCluster(
                    spec.cluster_id,
                    CloudStatus.CREATING,
                    0,
                    spec.nodes,
                    spec.tags(),
                    "CCE cluster requested",
                    spec.flavor,
                    self.config.region,
                )
            phase = c["status"].get("phase")
            if phase == "Creating":
                return self._view(c, None)
            if phase != "Available":
                view = self._view(c, None)
                if view.status is CloudStatus.FAILED:
                    raise ProvisioningFailed(f"{action}: {self._failure_reason(c)}")
                return view
            uid = c["metadata"]["uid"]
            pool = self._pool(uid)
            if pool is None:
                self._request_create(action, lambda: self.conn.cce.create_node_pool(uid, **self._pool_body(spec)))
                return replace(self._view(c, None), desired_nodes=spec.nodes, message="node pool requested")
            view = self._view(c, pool)
            if view.status is CloudStatus.FAILED:
                raise ProvisioningFailed(f"{action}: {view.message}")
            return view

    @staticmethod
    def _request_create(action: str, send: Callable[[], Any]) -> None:
        """Send a create request.  A 404 here means a missing project, VPC, subnet or flavor —
        configuration — never the "already gone" that NotFound means to the reconciler."""
        from openstack import exceptions

        try:
            send()
        except exceptions.HttpException as err:
            if _http_status(err) != 404:
                raise
            raise ProviderError(translate_error(err, action).args[0]) from err

    def resize(self, cluster_id: str, nodes: int) -> CloudCluster:
        with _boundary(f"resizing CCE cluster {cluster_id} to {nodes} nodes"):
            c = self._must_find(cluster_id, "resizing")
            uid = c["metadata"]["uid"]
            pool = self._pool(uid)
            if pool is None:
                raise NotFound(f"resizing {cluster_id}: node pool {POOL_NAME} does not exist")
            if int(pool["spec"].get("initialNodeCount") or 0) == nodes:
                return self._view(c, pool)
            view = self._view(c, self._set_pool_count(uid, pool, nodes))
            return replace(view, status=CloudStatus.RESIZING, desired_nodes=nodes)

    def _set_pool_count(self, uid: str, pool: dict[str, Any], nodes: int) -> dict[str, Any]:
        """PUT the pool with ``initialNodeCount = nodes``; the pool as CCE answers it."""
        body = {
            "metadata": {"name": POOL_NAME},
            "spec": {
                "initialNodeCount": nodes,
                "autoscaling": pool["spec"].get("autoscaling", {"enable": False}),
                "nodeTemplate": pool["spec"].get("nodeTemplate", {}),
            },
        }
        updated = self._call("PUT", f"/clusters/{uid}/nodepools/{pool['metadata']['uid']}", json_body=body)
        return updated if isinstance(updated, dict) and updated.get("spec") else pool

    def remove_nodes(self, cluster_id: str, nodes: Sequence[str]) -> CloudCluster:
        """Delete exactly the nodes named ``nodes`` and leave the pool's count lowered by as many.

        CCE's Kubernetes node name is the node's private IP: each name is matched against
        ``status.privateIP`` in ``GET …/clusters/{id}/nodes``.  A matching node outside burst's
        pool (its ``kubernetes.io/node-pool.id`` annotation is another pool's uid), or a name that
        is no IP address at all, makes this a ProviderError; an IP that is no node (any more) or a
        node already ``Deleting`` counts as gone.  The rest are deleted one by one
        (``DELETE …/nodes/{node_id}``, no query flags).  Huawei's CCE API reference says such a
        delete lowers the node pool's count itself unless ``nodepoolScaleDown=NoScaleDown`` is
        sent; OTC's reference is silent.  So the pool is read again afterwards and, if its
        ``initialNodeCount`` is still above the old count minus the deleted nodes, PUT down to
        that — after the deletes, never before, since lowering the count first lets CCE pick
        which nodes go.  A crash between the deletes and that PUT can leave the count high; the
        pool then replaces the deleted nodes, which ``resize`` corrects."""
        action = f"removing nodes {', '.join(nodes)} of CCE cluster {cluster_id}"
        with _boundary(action):
            c = self._must_find(cluster_id, "removing nodes of")
            uid = c["metadata"]["uid"]
            pool = self._pool(uid)
            if pool is None:
                raise NotFound(f"{action}: node pool {POOL_NAME} does not exist")
            victims = self._pool_nodes_named(uid, pool, nodes, action)
            if not victims:
                return self._view(c, pool)
            target = max(int(pool["spec"].get("initialNodeCount") or 0) - len(victims), 0)
            for node_id in victims:
                self.conn.cce.delete_cluster_node(uid, node_id, ignore_missing=True)
            pool = self._pool(uid) or pool
            if int(pool["spec"].get("initialNodeCount") or 0) > target:
                pool = self._set_pool_count(uid, pool, target)
            view = self._view(c, pool)
            return replace(view, status=CloudStatus.RESIZING, desired_nodes=target,
                           message=f"deleting {len(victims)} nodes")  # fmt: skip

    def _pool_nodes_named(self, uid: str, pool: Mapping[str, Any], names: Sequence[str], action: str) -> list[str]:
        """Ids of the named nodes of burst's pool that are neither gone nor being deleted."""
        by_ip = {n.get("status", {}).get("privateIP"): n for n in self._call("GET", f"/clusters/{uid}/nodes")["items"]}
        ids: list[str] = []
        for name in dict.fromkeys(names):
            node = by_ip.get(name)
            if node is None:
                if not _is_ip(name):
                    raise ProviderError(f"{action}: {name} is not a CCE node name (CCE names nodes by private IP)")
                continue  # already gone
            if node.get("status", {}).get("phase") == "Deleting":
                continue
            if node.get("metadata", {}).get("annotations", {}).get(POOL_ANNOTATION) != pool["metadata"]["uid"]:
                raise ProviderError(f"{action}: {name} is not a node of node pool {POOL_NAME}")
            ids.append(str(node["metadata"]["uid"]))
        return ids

    def delete_cluster(self, cluster_id: str) -> CloudCluster:
        """Node pool first (its nodes and their disks go with it), then the cluster with every
        delete flag set; one step per call."""
        with _boundary(f"deleting CCE cluster {cluster_id}"):
            c = self._must_find(cluster_id, "deleting")
            uid = c["metadata"]["uid"]
            view = self._view(c, None)
            if c["status"].get("phase") == "Deleting":
                return replace(view, status=CloudStatus.DELETING, message="CCE is deleting the cluster")
            pools = self._call("GET", f"/clusters/{uid}/nodepools").get("items") or []
            if pools:
                for p in pools:
                    if p.get("status", {}).get("phase") != "Deleting":
                        self.conn.cce.delete_node_pool(uid, p["metadata"]["uid"], ignore_missing=True)
                return replace(view, status=CloudStatus.DELETING, message="deleting node pool")
            self._call("DELETE", f"/clusters/{uid}", params=DELETE_FLAGS)
            return replace(view, status=CloudStatus.DELETING, message="cluster deletion requested")

    def quota(self) -> Quota:
        with _boundary("reading CCE quotas"):
            data = self._call("GET", "/quotas")
            max_clusters: int | None = None
            used = 0
            for q in data.get("quotas") or []:
                if q.get("quotaKey") == "cluster":
                    max_clusters, used = int(q.get("quotaLimit")), int(q.get("used") or 0)
            limits = self.conn.compute.get_limits().absolute
            return Quota(
                max_clusters=max_clusters,
                used_clusters=used,
                max_cores=_int_or_none(getattr(limits, "total_cores", None)),
                used_cores=int(getattr(limits, "total_cores_used", 0) or 0),
            )

    def credentials(self, cluster_id: str) -> str:
        """CCE's cluster-cert API answers a whole kubeconfig.  Keep only contexts that verify the
        API server's certificate, preferring the external (EIP) address when the cluster has one."""
        with _boundary(f"fetching kubeconfig of CCE cluster {cluster_id}"):
            c = self._must_find(cluster_id, "fetching kubeconfig of")
            path = f"/clusters/{c['metadata']['uid']}/clustercert"
            doc = self._call("POST", path, json_body={"duration": self.config.cert_days}, secret=True)
            return _verified_kubeconfig(doc, cluster_id)

    # -- request bodies
    def _cluster_body(self, spec: ClusterSpec) -> dict[str, Any]:
        cfg = self.config
        return {
            "kind": "Cluster",
            "apiVersion": "v3",
            "metadata": {"name": spec.cluster_id},
            "spec": {
                "type": "VirtualMachine",
                "flavor": cfg.cluster_flavor,
                "version": cfg.kubernetes_version,
                "description": f"burst cluster {spec.cluster_id} (owner {spec.owner})",
                "hostNetwork": {"vpc": cfg.vpc_id, "subnet": cfg.subnet_id},
                "containerNetwork": {"mode": cfg.container_network_mode, "cidr": cfg.container_cidr},
                "authentication": {"mode": "rbac"},
                "billingMode": 0,
                "extendParam": {"clusterAZ": cfg.availability_zone},
                "clusterTags": [{"key": k, "value": v} for k, v in spec.tags().items()],
            },
        }

    def _pool_body(self, spec: ClusterSpec) -> dict[str, Any]:
        cfg = self.config
        tags = spec.tags()
        template: dict[str, Any] = {
            "flavor": spec.flavor,
            "az": cfg.availability_zone,
            "os": cfg.node_os,
            "login": {"sshKey": cfg.keypair},
            "rootVolume": {"size": cfg.root_volume_gb, "volumetype": cfg.volume_type},
            "dataVolumes": [{"size": cfg.data_volume_gb, "volumetype": cfg.volume_type}],
            "billingMode": 0,
            "userTags": [{"key": k, "value": v} for k, v in tags.items()],
            "k8sTags": dict(tags),
        }
        return {
            "kind": "NodePool",
            "apiVersion": "v3",
            "metadata": {"name": POOL_NAME},
            "spec": {
                "type": "vm",
                "initialNodeCount": spec.nodes,
                "autoscaling": {"enable": False},
                "nodeTemplate": template,
            },
        }


def _tags(c: Mapping[str, Any]) -> dict[str, str]:
    tags = c.get("spec", {}).get("clusterTags") or []
    return {str(t.get("key")): str(t.get("value", "")) for t in tags if isinstance(t, Mapping)}


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _int_or_none(v: object) -> int | None:
    if v is None:
        return None
    n = int(v)  # type: ignore[call-overload]
    return None if n < 0 else n  # Nova says -1 for "unlimited"


def _verified_kubeconfig(doc: Mapping[str, Any], cluster_id: str) -> str:
    clusters = [c for c in doc.get("clusters") or [] if not c.get("cluster", {}).get("insecure-skip-tls-verify")]
    names = {c["name"] for c in clusters}
    contexts = [x for x in doc.get("contexts") or [] if x.get("context", {}).get("cluster") in names]
    if not clusters or not contexts or not doc.get("users"):
        raise ProviderError(f"kubeconfig of {cluster_id}: CCE answered no verifiable cluster endpoint")
    by_name = {x["name"]: x for x in contexts}
    current = next((n for n in ("externalTLSVerify", "internal") if n in by_name), contexts[0]["name"])
    out = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": clusters,
        "users": doc["users"],
        "contexts": contexts,
        "current-context": current,
    }
    return yaml.safe_dump(out, sort_keys=False)


def _check(p: TSystemsProvider) -> Provider:
    """mypy checks here that the class implements burst's Provider protocol."""
    return p


def _check_removes(p: TSystemsProvider) -> RemovesNodes:
    """... and the optional RemovesNodes one."""
    return p
