"""OpenStack Magnum provider for burst (openstacksdk) — CERN's private cloud and its kin.

One burst cluster is one Magnum COE cluster made from an operator-chosen cluster template.
Nothing here waits for the cloud: ``create_cluster`` finds the cluster by name (burst's cluster
id) and only asks Magnum for it when there is none, then reports the Heat stack's progress on
later calls.  Magnum does not enforce unique names, so the find-before-create is what makes
creation idempotent; a same-named cluster without burst's labels is never adopted.

Ownership lives in the cluster's labels (``burst.owner`` / ``burst.cluster`` / ``burst.campaign``),
merged over the template's own labels: Magnum *replaces* the template's labels with a cluster's,
and losing e.g. ``kube_tag`` would build a different Kubernetes.

Idle nodes are released one by one (:meth:`OpenStackProvider.remove_nodes`, burst's optional
``RemovesNodes``): on Magnum a Kubernetes node's name is its Nova server's name, so the names are
looked up in Nova, checked against the cluster's ``node_addresses``, and handed to the resize action
as ``nodes_to_remove`` with the worker nodegroup's count lowered by as many — Heat then deletes
exactly those servers instead of the highest-numbered ones.

Credentials come from ``clouds.yaml`` / ``OS_*`` environment variables (cloud name
:attr:`OpenStackProviderConfig.cloud`), never from burst's YAML, and are never logged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import cached_property
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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
    b64,
    guard_answers,
    render_kubeconfig,
)

__all__ = [
    "FlavorSize",
    "OpenStackProvider",
    "OpenStackProviderConfig",
    "cloud_status",
    "load_catalog",
    "make_kubeconfig",
    "translate_error",
]

_READY = frozenset({
    "CREATE_COMPLETE", "UPDATE_COMPLETE", "RESUME_COMPLETE", "RESTORE_COMPLETE", "ROLLBACK_COMPLETE",
    "SNAPSHOT_COMPLETE", "CHECK_COMPLETE", "ADOPT_COMPLETE",
})  # fmt: skip

_CAPACITY_WORDS = ("no valid host", "sold out", "insufficient capacity", "insufficient resources",
                   "not enough resources", "exceeds available capacity")  # fmt: skip
_QUOTA_WORDS = ("quota", "limit exceeded", "maximum clusters per project", "overlimit", "over limit")

#: Magnum API microversions: the resize action with ``nodes_to_remove`` exists from 1.7 and nodegroups
#: from 1.9 (Train); resizing a nodegroup to 0 nodes needs 1.10 (Wallaby).
NODEGROUPS_VERSION = "1.9"
RESIZE_TO_ZERO_VERSION = "1.10"

#: Size of the client key burst generates for a kubeconfig.  ``openstack coe cluster config``
#: (python-magnumclient) makes an RSA key and a CSR for CN=admin, O=system:masters; 2048 bits is
#: what Kubernetes' own tooling uses and keeps this call fast.
KEY_BITS = 2048


def cloud_status(magnum_status: str) -> CloudStatus:
    """Magnum's (Heat's) cluster status → burst's view."""
    if magnum_status == "CREATE_IN_PROGRESS":
        return CloudStatus.CREATING
    if magnum_status in _READY:
        return CloudStatus.READY
    if magnum_status in ("DELETE_IN_PROGRESS", "DELETE_COMPLETE"):
        return CloudStatus.DELETING
    if magnum_status.endswith("_FAILED"):
        return CloudStatus.FAILED
    if magnum_status.endswith("_IN_PROGRESS"):
        return CloudStatus.RESIZING
    return CloudStatus.FAILED  # an unknown status is shown to an operator, never taken for progress


class FlavorSize(BaseModel):
    """A site flavor the packaged catalog does not know (``openstack flavor show`` has the sizes)."""

    model_config = ConfigDict(extra="forbid")
    vcpus: int = Field(ge=1)
    memory_mib: int = Field(ge=1)
    gpus: int = Field(default=0, ge=0)
    price_per_hour: float = Field(default=0.0, ge=0, description="internal cost; 0 for a private cloud")


class OpenStackProviderConfig(ProviderConfig):
    """``providers.<name>`` for an OpenStack cloud with Magnum.  Secrets are not here: ``cloud``
    names an entry of clouds.yaml (or the ``OS_*`` environment), as for the ``openstack`` CLI."""

    kind: Literal["openstack"] = "openstack"
    cloud: str = Field(default="openstack", description="cloud name in clouds.yaml")
    region: str = Field(default="RegionOne")
    cluster_template: str = Field(description="Magnum cluster template (name or uuid) burst clusters are made from")
    keypair: str = Field(default="", description="Nova key pair for the nodes; empty = the template's")
    master_count: int = Field(default=1, ge=1)
    master_flavor: str | None = Field(default=None, description="flavor of the masters; unset = the template's")
    flavors: list[str] = Field(default_factory=list, description="flavors burst may use; empty = all known")
    flavor: str | None = Field(default=None, description="shorthand for a single flavor")
    flavor_sizes: dict[str, FlavorSize] = Field(default_factory=dict, description="site flavors beyond the catalog")
    fixed_network: str | None = None
    fixed_subnet: str | None = None
    floating_ip_enabled: bool | None = None
    labels: dict[str, str] = Field(default_factory=dict, description="extra labels over the template's")
    create_timeout_min: int = Field(default=60, ge=1, description="Heat stack timeout Magnum passes on")

    def allowed_flavors(self) -> list[str]:
        return self.flavors or ([self.flavor] if self.flavor else [])

    def build(self, name: str, ctx: ProviderContext) -> OpenStackProvider:
        """The provider; it connects on first use, so building it does no I/O."""
        return OpenStackProvider(name, self, ctx, connect=lambda: _connect(self.cloud, self.region, ctx.call_timeout))


def _connect(cloud: str, region: str, timeout: float | None = None) -> Any:
    import openstack

    return openstack.connect(cloud=cloud, region_name=region, api_timeout=timeout)


def load_catalog() -> dict[str, Any]:
    """The packaged catalog (flavors, price 0, Magnum latency) with its sources."""
    text = resources.files(__name__).joinpath("catalog.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


# ---- the one place openstacksdk / keystoneauth errors become burst's --------------------------------


def _error_detail(err: BaseException) -> tuple[int | None, str, Mapping[str, str]]:
    """Status, message and headers of an SDK/keystoneauth error.  Magnum puts the useful text in
    ``errors[0].detail``, not in the exception's message."""
    response = getattr(err, "response", None)
    status = getattr(err, "status_code", None) or getattr(err, "http_status", None)
    headers: Mapping[str, str] = {}
    text = str(err)
    if response is not None:
        status = status or getattr(response, "status_code", None)
        headers = getattr(response, "headers", None) or {}
        try:
            body = response.json()
        except Exception:  # a non-JSON error body is read as the message above
            body = None
        if isinstance(body, dict):
            errors = body.get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                text = str(errors[0].get("detail") or errors[0].get("title") or text)
            elif isinstance(body.get("error"), dict):
                text = str(body["error"].get("message") or text)
            elif body.get("message"):
                text = str(body["message"])
    if status is None:
        cause = err.__cause__ or err.__context__
        status = getattr(cause, "http_status", None)
        if status is None and "(HTTP 401)" in text:
            status = 401
    return (int(status) if status is not None else None), text, headers


def translate_error(err: BaseException, action: str) -> ProviderError:
    """Map an openstacksdk/keystoneauth exception to burst's typed error for ``action``."""
    status, text, headers = _error_detail(err)
    low = text.lower()
    message = f"{action}: {text}"
    if status == 429 or (status == 413 and "retry" in low):
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


def _http_status(err: BaseException) -> int | None:
    """The HTTP status of an SDK error.  Match on this, not on exception subclasses:
    otcextensions installs its own ``raise_from_response``, which raises a plain HttpException
    for a 403 where openstacksdk's raises ForbiddenException."""
    status = getattr(err, "status_code", None)
    return int(status) if status is not None else None


def _is_sdk_error(err: BaseException) -> bool:
    return type(err).__module__.startswith(("openstack", "keystoneauth1", "requests"))


@contextmanager
def _boundary(action: str) -> Iterator[None]:
    try:
        yield
    except ProviderError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        # a Magnum answer without a field its API reference promises
        raise ProviderError(f"{action}: unexpected answer from Magnum ({type(err).__name__}: {err})") from err
    except Exception as err:
        if _is_sdk_error(err):
            raise translate_error(err, action) from err
        raise


# ---- kubeconfig, as `openstack coe cluster config` writes it -----------------------------------------


def make_csr() -> tuple[bytes, str]:
    """A new private key (PEM) and a CSR for Kubernetes' admin group, like python-magnumclient."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
    ])  # fmt: skip
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode()


def make_kubeconfig(name: str, server: str, ca_pem: str, cert_pem: str, key_pem: bytes) -> str:
    """A self-contained kubeconfig (certificates embedded, not files next to it)."""

    user = {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}
    return render_kubeconfig(name, server, b64(ca_pem), user, user_name="admin", context="default")


# ---- the provider ------------------------------------------------------------------------------------------


@guard_answers
class OpenStackProvider:
    """One OpenStack project in one region.  See :class:`burst.api.Provider` for the contract."""

    def __init__(
        self,
        name: str,
        config: OpenStackProviderConfig,
        ctx: ProviderContext,
        connect: Callable[[], Any],
    ) -> None:
        self.name = name
        self.config = config
        self.ctx = ctx
        self._connect = connect
        self._conn: Any = None

    @property
    def conn(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    @property
    def coe(self) -> Any:
        return self.conn.container_infrastructure_management

    def _get_json(self, path: str, microversion: str | None = None) -> Any:
        """A raw GET through the SDK's authenticated Magnum adapter.  Used where openstacksdk's
        resource drops a field: its ``Cluster.status_reason`` reads body key ``reason``, but
        Magnum sends ``status_reason``."""
        return self._request("GET", path, microversion=microversion).json()

    def _request(self, method: str, path: str, *, body: Any = None, microversion: str | None = None) -> Any:
        """A raw Magnum request, errors raised as SDK errors.  openstacksdk has no nodegroups and
        its ``Cluster.resize()`` is broken (and sends no microversion), so those go through here."""
        from openstack import exceptions

        headers = {"Accept": "application/json"}
        if microversion:
            headers["OpenStack-API-Version"] = f"container-infra {microversion}"
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["json"] = body
        response = self.coe.request(path, method, **kwargs)
        exceptions.raise_from_response(response)
        return response

    # -- offerings
    @cached_property
    def _catalog(self) -> dict[str, Any]:
        return load_catalog()

    def offerings(self) -> Sequence[Offering]:
        cat = self._catalog
        lat = cat["latency"]
        latency = LatencyModel(base_s=lat["base_s"], per_node_s=lat["per_node_s"], sigma=lat["sigma"])
        sizes: dict[str, dict[str, Any]] = dict(cat["flavors"])
        for fname, size in self.config.flavor_sizes.items():
            sizes[fname] = size.model_dump()
        allowed = set(self.config.allowed_flavors())
        out = []
        for fname, f in sizes.items():
            if allowed and fname not in allowed:
                continue
            out.append(
                Offering(
                    provider=self.name,
                    region=self.config.region,
                    flavor=fname,
                    cpus=int(f["vcpus"]),
                    memory_mb=int(f["memory_mib"]),
                    gpus=int(f.get("gpus", 0)),
                    price_per_hour=float(f.get("price_per_hour", 0.0)),
                    currency=cat["currency"],
                    control_plane_per_hour=0.0,
                    latency=latency,
                    min_billed_s=0.0,
                    max_nodes_per_cluster=int(cat["max_nodes_per_cluster"]),
                )
            )
        return self.config.apply_price_overrides(out)

    # -- reads
    def _detail(self, ident: str) -> dict[str, Any] | None:
        """The cluster (by uuid or name) burst owns, or None.  A same-named cluster without
        burst's labels, or several clusters of that name, is an error, never adopted."""
        from openstack import exceptions

        try:
            c = self._get_json(f"/clusters/{ident}")
        except exceptions.HttpException as err:
            if _http_status(err) == 404:
                return None
            raise
        labels = c.get("labels") or {}
        if labels.get(CLUSTER_TAG) != c.get("name") or labels.get(OWNER_TAG) != self.ctx.owner:
            raise ProviderError(f"cluster {ident}: exists in Magnum without burst's labels; not touching it")
        return dict(c)

    def _must(self, cluster_id: str, action: str) -> dict[str, Any]:
        c = self._detail(cluster_id)
        if c is None:
            raise NotFound(f"{action} {cluster_id}: no such Magnum cluster")
        return c

    def _view(self, c: Mapping[str, Any]) -> CloudCluster:
        status = str(c.get("status") or "")
        node_count = int(c.get("node_count") or 0)
        addresses = c.get("node_addresses")
        if addresses:
            nodes = len(addresses)
        else:
            nodes = node_count if status in _READY else 0
        message = status + (f": {c['status_reason']}" if c.get("status_reason") else "")
        return CloudCluster(
            cluster_id=str(c.get("name") or ""),
            status=cloud_status(status),
            nodes=nodes,
            desired_nodes=node_count,
            tags=dict(c.get("labels") or {}),
            message=message,
            flavor=str(c.get("flavor_id") or ""),
            region=self.config.region,
        )

    # -- Provider methods
    def get_cluster(self, cluster_id: str) -> CloudCluster:
        with _boundary(f"reading Magnum cluster {cluster_id}"):
            return self._view(self._must(cluster_id, "reading"))

    def list_clusters(self, owner: str) -> Sequence[CloudCluster]:
        with _boundary("listing Magnum clusters"):
            out = []
            for summary in self.coe.clusters():
                labels = summary.labels
                if labels is None:  # Magnum before labels were listed in summaries
                    labels = self._get_json(f"/clusters/{summary.id}").get("labels") or {}
                if labels.get(OWNER_TAG) != owner:
                    continue
                out.append(self._view(self._get_json(f"/clusters/{summary.id}")))
            return out

    def create_cluster(self, spec: ClusterSpec) -> CloudCluster:
        action = f"creating Magnum cluster {spec.cluster_id}"
        with _boundary(action):
            c = self._detail(spec.cluster_id)
            if c is not None:
                view = self._view(c)
                if view.status is CloudStatus.FAILED:
                    raise ProvisioningFailed(f"{action}: {view.message}")
                return view
            attrs = self._create_attrs(spec)
            from openstack import exceptions

            try:
                self.coe.create_cluster(**attrs)
            except exceptions.HttpException as err:
                if _http_status(err) != 404:
                    raise
                # a missing template, flavor or key pair: configuration, not "already gone"
                raise ProviderError(translate_error(err, action).args[0]) from err
            return CloudCluster(
                spec.cluster_id, CloudStatus.CREATING, 0, spec.nodes, attrs["labels"], "Magnum cluster requested",
                spec.flavor, self.config.region,
            )  # fmt: skip

    def _create_attrs(self, spec: ClusterSpec) -> dict[str, Any]:
        cfg = self.config
        template = self.coe.find_cluster_template(cfg.cluster_template, ignore_missing=False)
        labels = {str(k): str(v) for k, v in (template.labels or {}).items()}
        labels.update(cfg.labels)
        labels.update(spec.tags())
        attrs: dict[str, Any] = {
            "name": spec.cluster_id,
            "cluster_template_id": template.uuid or template.id,  # .id stays the name it was found by
            "node_count": spec.nodes,
            "master_count": cfg.master_count,
            "flavor_id": spec.flavor,
            "labels": labels,
            "create_timeout": cfg.create_timeout_min,
        }
        optional = {
            "keypair": cfg.keypair or None,
            "master_flavor_id": cfg.master_flavor,
            "fixed_network": cfg.fixed_network,
            "fixed_subnet": cfg.fixed_subnet,
            "is_floating_ip_enabled": cfg.floating_ip_enabled,
        }
        attrs.update({k: v for k, v in optional.items() if v is not None})
        return attrs

    def resize(self, cluster_id: str, nodes: int) -> CloudCluster:
        with _boundary(f"resizing Magnum cluster {cluster_id} to {nodes} nodes"):
            c = self._must(cluster_id, "resizing")
            view = self._view(c)
            if int(c.get("node_count") or 0) == nodes:
                return view
            if str(c.get("status", "")).endswith("_IN_PROGRESS"):
                # Magnum refuses updates mid-stack-operation; the caller asks again next tick
                return replace(view, message=f"{view.message}; resize to {nodes} waits for it")
            # Cluster.resize() is broken in openstacksdk 4.21; a JSON-patch update of the fetched
            # cluster is the classic way and works on every Magnum.
            fetched = self.coe.get_cluster(c["uuid"])
            self.coe.update_cluster(fetched, node_count=nodes)
            return replace(view, status=CloudStatus.RESIZING, desired_nodes=nodes, message="resize requested")

    def remove_nodes(self, cluster_id: str, nodes: Sequence[str]) -> CloudCluster:
        """Delete exactly the worker nodes named ``nodes`` and lower the worker count by as many.

        A Magnum node's Kubernetes name is its Nova server's name.  Each name is looked up in Nova
        (``GET /servers/detail?name=^<name>$``, exact match checked here too); a server whose fixed
        or floating address is not among the cluster's ``node_addresses`` (a master, another
        cluster's node) makes this a ProviderError, and a name with no server, or only servers Nova
        is deleting, counts as already gone.  The rest go in one
        ``POST /v1/clusters/{uuid}/actions/resize`` (microversion 1.9; 1.10 to reach 0 nodes) with
        ``nodes_to_remove`` = their server ids, ``nodegroup`` = the default worker nodegroup and
        ``node_count`` = its count minus as many, so Heat deletes those servers and no others.
        Magnum refuses updates while a stack operation runs: then this raises ProviderError and the
        caller asks again (nodes it already asked for are being deleted by then, so are skipped)."""
        action = f"removing nodes {', '.join(nodes)} of Magnum cluster {cluster_id}"
        with _boundary(action):
            c = self._must(cluster_id, "removing nodes of")
            view = self._view(c)
            victims = self._servers_of(c, nodes, action)
            if not victims:
                return view
            status = str(c.get("status", ""))
            if status.endswith("_IN_PROGRESS"):
                raise ProviderError(f"{action}: Magnum is busy ({status}); ask again when it is done")
            group = self._worker_group(c["uuid"], action)
            count = int(group["node_count"]) - len(victims)
            body = {"node_count": count, "nodes_to_remove": victims, "nodegroup": group["name"]}
            version = RESIZE_TO_ZERO_VERSION if count == 0 else NODEGROUPS_VERSION
            self._request("POST", f"/clusters/{c['uuid']}/actions/resize", body=body, microversion=version)
            desired = int(c.get("node_count") or 0) - len(victims)
            return replace(view, status=CloudStatus.RESIZING, desired_nodes=desired,
                           message=f"deleting {len(victims)} nodes")  # fmt: skip

    def _servers_of(self, c: Mapping[str, Any], names: Sequence[str], action: str) -> list[str]:
        """Server ids of the named worker nodes of cluster ``c`` that still exist."""
        addresses = set(c.get("node_addresses") or [])
        ids: list[str] = []
        for name in dict.fromkeys(names):
            pattern = "^" + re.escape(name).replace("\\-", "-") + "$"  # Nova's name filter is a regex
            found = [s for s in self.conn.compute.servers(details=True, name=pattern) if s.name == name]
            live = [s for s in found if s.status not in ("DELETED", "SOFT_DELETED") and s.task_state != "deleting"]
            if not live:
                continue  # already gone, or being deleted
            mine = [s.id for s in live if _server_ips(s) & addresses]
            if len(mine) != 1:
                what = "not a worker node of this cluster" if not mine else "the name of several of its servers"
                raise ProviderError(f"{action}: {name} is {what}")
            ids.append(str(mine[0]))
        return ids

    def _worker_group(self, uuid: str, action: str) -> Mapping[str, Any]:
        """The cluster's default worker nodegroup (burst's clusters have no other)."""
        from openstack import exceptions

        try:
            groups = self._get_json(f"/clusters/{uuid}/nodegroups", NODEGROUPS_VERSION)["nodegroups"]
        except exceptions.HttpException as err:
            if _http_status(err) not in (404, 406):
                raise
            raise ProviderError(f"{action}: this Magnum has no nodegroups API (microversion 1.9)") from err
        workers = [g for g in groups if g.get("role") != "master"]
        for g in workers:
            if g.get("is_default") or len(workers) == 1:
                return dict(g)
        raise ProviderError(f"{action}: no default worker nodegroup")

    def delete_cluster(self, cluster_id: str) -> CloudCluster:
        """Magnum deletes the Heat stack: servers, their volumes, ports, floating IPs and load
        balancers the stack made.  One request; later calls report progress, NotFound when gone."""
        with _boundary(f"deleting Magnum cluster {cluster_id}"):
            c = self._must(cluster_id, "deleting")
            view = self._view(c)
            if c.get("status") == "DELETE_IN_PROGRESS":
                return view
            self.coe.delete_cluster(c["uuid"], ignore_missing=False)
            return replace(view, status=CloudStatus.DELETING, message="deletion requested")

    def quota(self) -> Quota:
        with _boundary("reading Magnum and Nova quotas"):
            from openstack import exceptions

            max_clusters: int | None
            try:
                q = self._get_json(f"/quotas/{self.conn.current_project_id}/Cluster")
                max_clusters = int(q["hard_limit"])
                if max_clusters < 0:
                    max_clusters = None
            except exceptions.HttpException as err:
                if _http_status(err) not in (403, 404):
                    raise
                max_clusters = None  # the quota API is admin-only on some clouds
            used = sum(1 for _ in self.coe.clusters())
            limits = self.conn.compute.get_limits().absolute
            max_cores = getattr(limits, "total_cores", None)
            return Quota(
                max_clusters=max_clusters,
                used_clusters=used,
                max_cores=None if max_cores is None or int(max_cores) < 0 else int(max_cores),
                used_cores=int(getattr(limits, "total_cores_used", 0) or 0),
            )

    def credentials(self, cluster_id: str) -> str:
        """What ``openstack coe cluster config`` does: a new key and CSR, signed through Magnum's
        certificates API, with the cluster CA, written as one kubeconfig."""
        with _boundary(f"fetching kubeconfig of Magnum cluster {cluster_id}"):
            c = self._must(cluster_id, "fetching kubeconfig of")
            if not c.get("api_address"):
                raise ProviderError(f"kubeconfig of {cluster_id}: no API address yet (status {c.get('status')})")
            key_pem, csr_pem = make_csr()
            signed = self.coe.create_cluster_certificate(cluster_uuid=c["uuid"], csr=csr_pem)
            ca = self.coe.get_cluster_certificate(c["uuid"])
            return make_kubeconfig(cluster_id, str(c["api_address"]), str(ca.pem), str(signed.pem), key_pem)


def _server_ips(server: Any) -> set[str]:
    """Every address (fixed and floating) of a Nova server."""
    return {str(a.get("addr")) for net in (server.addresses or {}).values() for a in net}


def _check(p: OpenStackProvider) -> Provider:
    """mypy checks here that the class implements burst's Provider protocol."""
    return p


def _check_removes(p: OpenStackProvider) -> RemovesNodes:
    """... and the optional RemovesNodes one."""
    return p
