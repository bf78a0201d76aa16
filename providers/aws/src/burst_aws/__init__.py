"""AWS EKS provider for burst, through ``boto3`` only.

One burst cluster is one EKS cluster plus one managed node group, both named after burst's cluster
id and both tagged with ``spec.tags()``.  The EKS name is the idempotency key: a call that finds the
name already taken adopts the cluster when its ``burst.owner``/``burst.cluster`` tags are ours and
refuses it otherwise, so a retry after a crash never makes a second cluster and burst never touches
a cluster it did not create.

No call waits for AWS.  ``create_cluster`` and ``delete_cluster`` take at most one mutating step per
call (create control plane → create node group; delete node groups → delete cluster) and report
where the cluster is; the reconciler calls again on a later tick.  botocore's own retries are cut
to ``max_attempts`` (1 by default) so a throttle reaches the reconciler as :class:`Throttled`, which
backs off across ticks instead of sleeping inside one.

``remove_nodes`` (the optional ``RemovesNodes`` capability) terminates named idle nodes in the node
group's Auto Scaling group with a decrement, as cluster-autoscaler does; EKS follows the group's size.

SDK exceptions become burst's typed errors in exactly one place, :func:`_aws`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, Literal, NamedTuple, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError, ProfileNotFound
from pydantic import Field, field_validator

from burst.api import (
    CLUSTER_TAG,
    OWNER_TAG,
    AuthFailed,
    CapacityUnavailable,
    CloudCluster,
    CloudStatus,
    ClusterSpec,
    LatencyModel,
    MalformedAnswer,
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
    Seconds,
    Throttled,
    guard_answers,
    render_kubeconfig,
)

__all__ = ["NODEGROUP", "AwsClients", "AwsProvider", "AwsProviderConfig", "Catalog", "InstanceType", "load_catalog"]

#: The managed node group of every burst cluster.  One fixed name per cluster keeps creating it
#: idempotent: a second create answers ResourceInUseException instead of adding a second group.
NODEGROUP = "burst-workers"

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")

# ---------------------------------------------------------------------------------------------
# Catalog


@dataclass(frozen=True, slots=True)
class InstanceType:
    """One EC2 instance type of the catalog, with on-demand prices per region."""

    name: str
    vcpus: int
    memory_mib: int
    gpus: int
    prices: Mapping[str, float]
    source: str


@dataclass(frozen=True, slots=True)
class Catalog:
    """The packaged ``catalog.json``: prices with their sources and the EKS latency model."""

    retrieved: str
    currency: str
    default_region: str
    control_plane_per_hour: float
    spot_factor: float
    min_billed_s: float
    max_nodes_per_nodegroup: int
    latency: LatencyModel
    types: Mapping[str, InstanceType]

    def on_demand_price(self, flavor: str, region: str) -> float:
        """The region's price, or the default region's when the catalog has none for ``region``
        (operators then set ``prices:`` in their config; the README says so)."""
        prices = self.types[flavor].prices
        return prices.get(region, prices[self.default_region])


@cache
def load_catalog() -> Catalog:
    """Read the catalog shipped in this package (once per process: it never changes at run time)."""
    raw = json.loads(resources.files(__package__).joinpath("catalog.json").read_text(encoding="utf-8"))
    lat = raw["latency"]
    types = {
        name: InstanceType(
            name=name,
            vcpus=int(t["vcpus"]),
            memory_mib=int(t["memory_mib"]),
            gpus=int(t["gpus"]),
            prices={r: float(p) for r, p in t["prices"].items()},
            source=str(t["source"]),
        )
        for name, t in raw["instance_types"].items()
    }
    return Catalog(
        retrieved=str(raw["retrieved"]),
        currency=str(raw["currency"]),
        default_region=str(raw["default_region"]),
        control_plane_per_hour=float(raw["control_plane_per_hour"]),
        spot_factor=float(raw["spot_factor"]),
        min_billed_s=float(raw["min_billed_s"]),
        max_nodes_per_nodegroup=int(raw["max_nodes_per_nodegroup"]),
        latency=LatencyModel(
            base_s=float(lat["base_s"]), per_node_s=float(lat["per_node_s"]), sigma=float(lat["sigma"])
        ),
        types=types,
    )


# ---------------------------------------------------------------------------------------------
# Config


class AwsProviderConfig(ProviderConfig):
    """The ``aws`` provider section.  AWS credentials are never here: they come from the standard
    boto3 chain (environment, shared config ``profile``, SSO, instance or pod role)."""

    kind: Literal["aws"] = "aws"
    region: str = Field(description="AWS region, e.g. eu-central-1")
    cluster_role_arn: str = Field(description="IAM role the EKS control plane assumes")
    node_role_arn: str = Field(description="IAM role of the worker nodes (node group)")
    subnets: list[str] = Field(min_length=2, description="subnet ids in at least two availability zones")
    security_groups: list[str] = Field(default_factory=list, description="extra control-plane security groups")
    kubernetes_version: str | None = Field(default=None, description="EKS Kubernetes version; None = EKS default")
    instance_types: list[str] = Field(
        default_factory=lambda: ["m5.2xlarge", "c5.4xlarge"], min_length=1, description="flavors to offer"
    )
    spot: bool = Field(default=False, description="SPOT capacity instead of ON_DEMAND")
    profile: str | None = Field(default=None, description="named profile of the shared AWS config (not a secret)")
    endpoint_url: str | None = Field(default=None, description="EKS endpoint override (private endpoints, tests)")
    ec2_endpoint_url: str | None = Field(default=None, description="EC2 endpoint override (private endpoints, tests)")
    autoscaling_endpoint_url: str | None = Field(
        default=None, description="EC2 Auto Scaling endpoint override (private endpoints, tests)"
    )
    sts_endpoint_url: str | None = Field(
        default=None, description="STS endpoint the kubeconfig token is signed for; default the regional one"
    )
    max_attempts: int = Field(default=1, ge=1, le=5, description="botocore attempts per call (1 = no retries)")
    connect_timeout_s: Seconds = Field(default=10.0, gt=0)
    read_timeout_s: Seconds = Field(default=30.0, gt=0)
    max_vcpus: int | None = Field(
        default=None, ge=0, description="the account's EC2 vCPU quota for these instances, if burst should respect it"
    )

    @field_validator("cluster_role_arn", "node_role_arn")
    @classmethod
    def _role_arn(cls, value: str) -> str:
        if not _ROLE_ARN.match(value):
            raise ValueError(f"not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>): {value!r}")
        return value

    @field_validator("instance_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        known = load_catalog().types
        unknown = [t for t in value if t not in known]
        if unknown:
            raise ValueError(f"instance types not in the aws catalog: {unknown}; known: {sorted(known)}")
        return value

    def build(self, name: str, ctx: ProviderContext) -> AwsProvider:
        with _aws(f"connecting provider {name} to AWS"):
            session = boto3.session.Session(profile_name=self.profile, region_name=self.region)
        clients = self.make_clients(session, name, ctx.call_timeout)
        return AwsProvider(name=name, config=self, owner=ctx.owner, clients=clients)

    def make_clients(self, session: Any, name: str = "aws", call_timeout: float | None = None) -> AwsClients:
        """The EKS, STS, EC2 and Auto Scaling clients for ``session`` (a ``boto3.session.Session``):
        the one place that sets endpoints, timeouts and the retry budget."""
        config = Config(
            retries={"total_max_attempts": self.max_attempts, "mode": "standard"},
            # never longer than one call may take under the leader's lease
            connect_timeout=min(self.connect_timeout_s, call_timeout or self.connect_timeout_s),
            read_timeout=min(self.read_timeout_s, call_timeout or self.read_timeout_s),
            user_agent_extra="burst",
        )
        with _aws(f"connecting provider {name} to AWS"):
            eks = session.client("eks", region_name=self.region, endpoint_url=self.endpoint_url, config=config)
            sts = session.client(
                "sts",
                region_name=self.region,
                endpoint_url=self.sts_endpoint_url or f"https://sts.{self.region}.amazonaws.com",
                config=config,
            )
            ec2 = session.client("ec2", region_name=self.region, endpoint_url=self.ec2_endpoint_url, config=config)
            autoscaling = session.client(
                "autoscaling", region_name=self.region, endpoint_url=self.autoscaling_endpoint_url, config=config
            )
        return AwsClients(eks=eks, sts=sts, ec2=ec2, autoscaling=autoscaling)


class AwsClients(NamedTuple):
    """The boto3 clients one provider uses.  EC2 and Auto Scaling serve only ``remove_nodes``: the
    instances behind node names and the node group's Auto Scaling group."""

    eks: Any
    sts: Any
    ec2: Any
    autoscaling: Any


# ---------------------------------------------------------------------------------------------
# The one SDK boundary

_QUOTA = frozenset(
    {
        "ResourceLimitExceededException",
        "ServiceQuotaExceededException",
        "LimitExceededException",
        "InstanceLimitExceeded",
    }
)
_CAPACITY = frozenset(
    {
        "UnsupportedAvailabilityZoneException",
        "InsufficientInstanceCapacity",
        "InsufficientCapacityException",
        "InsufficientFreeAddresses",
    }
)
_THROTTLE = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown"}
)
_NOT_FOUND = frozenset({"ResourceNotFoundException", "NotFoundException"})
_AUTH = frozenset(
    {
        "UnrecognizedClientException",
        "AccessDeniedException",
        "AccessDenied",
        "ExpiredTokenException",
        "ExpiredToken",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationTokenException",
        "UnauthorizedOperation",
        "AuthFailure",
    }
)
_DEFAULT_RETRY_AFTER_S = 30.0


class _InUseError(ProviderError):
    """EKS ``ResourceInUseException``: the name is taken or the resource is busy.  Raised only by
    :func:`_aws`; the calls that expect it (create, delete, update) catch it and look again."""


def _translate(action: str, err: ClientError) -> ProviderError:
    """The AWS error code decides the burst error; the message keeps the action and AWS's words."""
    error = err.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")) or str(err)
    meta = err.response.get("ResponseMetadata", {})
    status = int(meta.get("HTTPStatusCode", 0) or 0)
    text = f"{action}: {message} ({code or status})"
    if code in _QUOTA:
        return QuotaExceeded(text)
    if code in _CAPACITY:
        return CapacityUnavailable(text)
    if code in _THROTTLE or status == 429:
        headers = meta.get("HTTPHeaders", {})
        try:
            retry_after = float(headers.get("retry-after", _DEFAULT_RETRY_AFTER_S))
        except ValueError:
            retry_after = _DEFAULT_RETRY_AFTER_S
        return Throttled(text, retry_after=retry_after)
    if code in _NOT_FOUND:
        return NotFound(text)
    if code in _AUTH or status in (401, 403):
        return AuthFailed(text)
    if code == "ResourceInUseException":
        return _InUseError(text)
    return ProviderError(text)


@contextmanager
def _aws(action: str) -> Iterator[None]:
    """Convert every botocore failure inside the block into burst's error family."""
    try:
        yield
    except ClientError as err:
        raise _translate(action, err) from err
    except (NoCredentialsError, PartialCredentialsError, ProfileNotFound) as err:
        raise AuthFailed(f"{action}: no usable AWS credentials in the boto3 chain ({type(err).__name__})") from err
    except BotoCoreError as err:
        raise ProviderError(f"{action}: {type(err).__name__}: {err}") from err
    except RuntimeError as err:  # botocore's parser on an out-of-range timestamp in the answer
        raise MalformedAnswer(f"{action}: cloud answered malformed data: {err}") from err


# ---------------------------------------------------------------------------------------------
# The provider

_Json = Mapping[str, Any]

#: EC2 instance states of an instance that is gone or going.
_GONE = frozenset({"shutting-down", "terminated"})
#: Values per DescribeInstances filter (EC2 allows 200; fewer keeps each request small).
_FILTER_VALUES = 100

#: Node group health issues that mean "AWS has no room for this now": fall back, retry later.
_ISSUE_CAPACITY = ("InsufficientInstanceCapacity", "InsufficientFreeAddresses", "Insufficient capacity")
_ISSUE_QUOTA = ("InstanceLimitExceeded", "LimitExceeded", "VcpuLimitExceeded", "MaxSpotInstanceCountExceeded")


def _issues(nodegroup: _Json) -> list[_Json]:
    return list(nodegroup.get("health", {}).get("issues", []) or [])


def _issue_text(nodegroup: _Json) -> str:
    return "; ".join(f"{i.get('code', '?')}: {i.get('message', '')}" for i in _issues(nodegroup))


def _nodegroup_failure(action: str, nodegroup: _Json) -> ProviderError:
    """A failed node group's health issues decide between fallback (capacity, quota) and giving up.
    EKS reports EC2 launch failures as ``AsgInstanceLaunchFailures`` with the EC2 code in the message."""
    text = f"{action}: node group {nodegroup.get('status')}: {_issue_text(nodegroup) or 'no health issue reported'}"
    for issue in _issues(nodegroup):
        words = f"{issue.get('code', '')} {issue.get('message', '')}"
        if any(k in words for k in _ISSUE_CAPACITY):
            return CapacityUnavailable(text)
        if any(k in words for k in _ISSUE_QUOTA):
            return QuotaExceeded(text)
    return ProvisioningFailed(text)


@guard_answers
class AwsProvider:
    """One AWS account in one region: EKS clusters with one managed node group each.

    Clients are passed in (``AwsProviderConfig.build`` makes them from the boto3 chain)."""

    def __init__(self, name: str, config: AwsProviderConfig, owner: str, clients: AwsClients) -> None:
        self.name = name
        self._config = config
        self._owner = owner
        self._eks = clients.eks
        self._sts = clients.sts
        self._ec2 = clients.ec2
        self._autoscaling = clients.autoscaling
        self._catalog = load_catalog()

    # -- offerings --------------------------------------------------------------------------

    def offerings(self) -> Sequence[Offering]:
        cat, cfg = self._catalog, self._config
        out = []
        for flavor in cfg.instance_types:
            t = cat.types[flavor]
            price = cat.on_demand_price(flavor, cfg.region) * (cat.spot_factor if cfg.spot else 1.0)
            out.append(
                Offering(
                    provider=self.name,
                    region=cfg.region,
                    flavor=flavor,
                    cpus=t.vcpus,
                    memory_mb=t.memory_mib,
                    gpus=t.gpus,
                    price_per_hour=round(price, 6),
                    currency=cat.currency,
                    control_plane_per_hour=cat.control_plane_per_hour,
                    latency=cat.latency,
                    spot=cfg.spot,
                    min_billed_s=cat.min_billed_s,
                    max_nodes_per_cluster=min(cfg.nodes_per_cluster, cat.max_nodes_per_nodegroup),
                )
            )
        return cfg.apply_price_overrides(out)

    # -- create -----------------------------------------------------------------------------

    def create_cluster(self, spec: ClusterSpec) -> CloudCluster:
        cid = spec.cluster_id
        action = f"creating cluster {cid}"
        self._check_spec(spec, action)
        cluster = self._find_cluster(cid, action)
        if cluster is None:
            try:
                with _aws(action):
                    self._eks.create_cluster(**self._cluster_request(spec))
            except _InUseError:
                # An earlier attempt created it and its answer was lost (crash, timeout), or a
                # describe lagged behind: adopt it below if it is ours.
                cluster = self._describe_cluster(cid, action)
            else:
                return CloudCluster(
                    cid,
                    CloudStatus.CREATING,
                    desired_nodes=spec.nodes,
                    tags=spec.tags(),
                    message="EKS control plane requested",
                    flavor=spec.flavor,
                    region=self._config.region,
                )
        self._require_owned(cluster, cid, action, foreign=ProviderError)
        status = cluster.get("status")
        if status in ("CREATING", "PENDING"):
            return self._view(cluster, None, CloudStatus.CREATING, "EKS control plane creating")
        if status == "FAILED":
            raise ProvisioningFailed(f"{action}: EKS reports the control plane FAILED")
        if status == "DELETING":
            raise ProviderError(f"{action}: an earlier cluster of this name is still being deleted")
        # ACTIVE (or UPDATING, which serves requests): the node group is the next step.
        nodegroup = self._find_nodegroup(cid, action)
        if nodegroup is None:
            try:
                with _aws(f"{action}: node group"):
                    self._eks.create_nodegroup(**self._nodegroup_request(spec))
            except _InUseError:
                nodegroup = self._describe_nodegroup(cid, action)
            else:
                return self._view(cluster, None, CloudStatus.CREATING, "node group requested", spec.nodes)
        ng_status = nodegroup.get("status")
        if ng_status == "CREATE_FAILED":
            raise _nodegroup_failure(action, nodegroup)
        if ng_status in ("DELETING", "DELETE_FAILED"):
            raise ProviderError(f"{action}: its node group is {ng_status}")
        if ng_status == "CREATING":
            return self._view(cluster, nodegroup, CloudStatus.CREATING, "node group creating")
        return self._view(cluster, nodegroup, CloudStatus.READY, _issue_text(nodegroup))

    def _check_spec(self, spec: ClusterSpec, action: str) -> None:
        if spec.region and spec.region != self._config.region:
            raise ProviderError(f"{action}: region {spec.region} is not this provider's ({self._config.region})")
        if spec.flavor not in self._config.instance_types:
            raise ProviderError(f"{action}: instance type {spec.flavor} is not offered by provider {self.name}")
        self._check_size(spec.nodes, action)

    def _check_size(self, nodes: int, action: str) -> None:
        if nodes < 0:
            raise ProviderError(f"{action}: negative node count {nodes}")
        if nodes > self._catalog.max_nodes_per_nodegroup:
            raise QuotaExceeded(
                f"{action}: {nodes} nodes; an EKS managed node group holds at most "
                f"{self._catalog.max_nodes_per_nodegroup}"
            )

    def _cluster_request(self, spec: ClusterSpec) -> dict[str, Any]:
        cfg = self._config
        vpc: dict[str, Any] = {"subnetIds": list(cfg.subnets)}
        if cfg.security_groups:
            vpc["securityGroupIds"] = list(cfg.security_groups)
        request: dict[str, Any] = {
            "name": spec.cluster_id,
            "roleArn": cfg.cluster_role_arn,
            "resourcesVpcConfig": vpc,
            "tags": spec.tags(),
        }
        if cfg.kubernetes_version:
            request["version"] = cfg.kubernetes_version
        return request

    def _nodegroup_request(self, spec: ClusterSpec) -> dict[str, Any]:
        cfg = self._config
        request: dict[str, Any] = {
            "clusterName": spec.cluster_id,
            "nodegroupName": NODEGROUP,
            "scalingConfig": _scaling(spec.nodes),
            "subnets": list(cfg.subnets),
            "instanceTypes": [spec.flavor],
            "nodeRole": cfg.node_role_arn,
            "capacityType": "SPOT" if cfg.spot else "ON_DEMAND",
            "tags": spec.tags(),
            "labels": {CLUSTER_TAG: spec.cluster_id},
        }
        if self._catalog.types[spec.flavor].gpus:
            request["amiType"] = "AL2023_x86_64_NVIDIA"
        return request

    # -- read -------------------------------------------------------------------------------

    def get_cluster(self, cluster_id: str) -> CloudCluster:
        action = f"reading cluster {cluster_id}"
        cluster = self._describe_cluster(cluster_id, action)
        self._require_owned(cluster, cluster_id, action, foreign=NotFound)
        return self._status(cluster, action)

    def list_clusters(self, owner: str) -> Sequence[CloudCluster]:
        action = "listing clusters"
        names: list[str] = []
        with _aws(action):
            for page in self._eks.get_paginator("list_clusters").paginate():
                names.extend(page.get("clusters", []))
        out = []
        for name in names:
            cluster = self._find_cluster(name, action)  # None: deleted since the list
            if cluster is None or cluster.get("tags", {}).get(OWNER_TAG) != owner:
                continue
            out.append(self._status(cluster, action))
        return out

    def quota(self) -> Quota:
        live = self.list_clusters(self._owner)
        cores = sum(
            c.desired_nodes * self._catalog.types[c.flavor].vcpus for c in live if c.flavor in self._catalog.types
        )
        return Quota(
            max_clusters=self._config.max_clusters,
            used_clusters=len(live),
            max_cores=self._config.max_vcpus,
            used_cores=cores,
        )

    def _status(self, cluster: _Json, action: str) -> CloudCluster:
        """EKS cluster + node group status → burst's normalised status."""
        status = cluster.get("status")
        if status in ("CREATING", "PENDING"):
            return self._view(cluster, None, CloudStatus.CREATING, "EKS control plane creating")
        if status == "DELETING":
            return self._view(cluster, None, CloudStatus.DELETING, "EKS control plane deleting")
        if status == "FAILED":
            return self._view(cluster, None, CloudStatus.FAILED, "EKS control plane FAILED")
        nodegroup = self._find_nodegroup(str(cluster["name"]), action)
        if nodegroup is None:
            return self._view(cluster, None, CloudStatus.CREATING, "control plane up, no node group")
        ng_status = nodegroup.get("status")
        mapped = {
            "CREATING": CloudStatus.CREATING,
            "ACTIVE": CloudStatus.READY,
            "DEGRADED": CloudStatus.READY,  # nodes run; the message carries the health issues
            "UPDATING": CloudStatus.RESIZING,
            "DELETING": CloudStatus.DELETING,
        }.get(str(ng_status), CloudStatus.FAILED)
        return self._view(cluster, nodegroup, mapped, _issue_text(nodegroup) or f"node group {ng_status}")

    def _view(
        self, cluster: _Json, nodegroup: _Json | None, status: CloudStatus, message: str, desired: int | None = None
    ) -> CloudCluster:
        scaling = nodegroup.get("scalingConfig", {}) if nodegroup else {}
        want = int(scaling.get("desiredSize", 0)) if desired is None else desired
        running = want if status in (CloudStatus.READY, CloudStatus.RESIZING) else 0
        types = nodegroup.get("instanceTypes") if nodegroup else None
        return CloudCluster(
            cluster_id=str(cluster["name"]),
            status=status,
            nodes=running,
            desired_nodes=want,
            tags=dict(cluster.get("tags", {})),
            message=message,
            flavor=str(types[0]) if types else "",
            region=self._config.region,
            created_at=_created(cluster.get("createdAt")),
        )

    # -- resize -----------------------------------------------------------------------------

    def resize(self, cluster_id: str, nodes: int) -> CloudCluster:
        action = f"resizing cluster {cluster_id} to {nodes} nodes"
        self._check_size(nodes, action)
        cluster = self._describe_cluster(cluster_id, action)
        self._require_owned(cluster, cluster_id, action, foreign=NotFound)
        nodegroup = self._find_nodegroup(cluster_id, action)
        if nodegroup is None:
            raise ProviderError(f"{action}: it has no node group yet")
        current = int(nodegroup.get("scalingConfig", {}).get("desiredSize", 0))
        if nodegroup.get("status") == "UPDATING":
            # EKS runs one update at a time; the reconciler asks again on a later tick.
            return self._view(cluster, nodegroup, CloudStatus.RESIZING, "an update is in progress")
        if current == nodes:
            return self._status(cluster, action)
        try:
            with _aws(action):
                self._eks.update_nodegroup_config(
                    clusterName=cluster_id, nodegroupName=NODEGROUP, scalingConfig=_scaling(nodes)
                )
        except _InUseError:
            return self._view(cluster, nodegroup, CloudStatus.RESIZING, "an update is in progress")
        return self._view(cluster, nodegroup, CloudStatus.RESIZING, f"resizing {current} → {nodes}", nodes)

    # -- remove named nodes -----------------------------------------------------------------

    def remove_nodes(self, cluster_id: str, nodes: Sequence[str]) -> CloudCluster:
        """Terminate exactly the EC2 instances behind the Kubernetes node names ``nodes`` and shrink
        the node group by as many, the way cluster-autoscaler does on AWS.

        EKS names a node after its instance's private DNS name, so ``DescribeInstances`` with the
        ``private-dns-name`` filter finds the instances; only instances of this cluster's node group
        (its Auto Scaling group, read from ``DescribeNodegroup``) are ever touched.  Each goes with
        ``TerminateInstanceInAutoScalingGroup(ShouldDecrementDesiredCapacity=True)``, so the group
        does not replace it; EKS then reports the group's lowered size as the node group's
        ``desiredSize``.  burst pins ``minSize`` to the size, so the minimum is first lowered
        through EKS (``UpdateNodegroupConfig``), which keeps EKS's own record of the scaling config
        in step with the group.  Names already gone or shutting down are skipped, which makes a
        retry harmless."""
        action = f"removing {len(nodes)} named nodes from cluster {cluster_id}"
        cluster = self._describe_cluster(cluster_id, action)
        self._require_owned(cluster, cluster_id, action, foreign=NotFound)
        if cluster.get("status") == "DELETING":
            return self._view(cluster, None, CloudStatus.DELETING, "EKS control plane deleting")
        nodegroup = self._find_nodegroup(cluster_id, action)
        if nodegroup is None:
            if not nodes:
                return self._status(cluster, action)
            raise ProviderError(f"{action}: the cluster has no node group, so these are not its nodes")
        if nodegroup.get("status") == "DELETING":
            return self._view(cluster, nodegroup, CloudStatus.DELETING, "node group deleting")
        if not nodes:
            return self._status(cluster, action)
        group = self._auto_scaling_group(nodegroup, action)
        doomed = self._instances_to_terminate(group, list(dict.fromkeys(nodes)), action)
        desired = int(group.get("DesiredCapacity", 0))
        target = desired - len(doomed)
        if doomed:
            self._lower_min_size(cluster_id, nodegroup, target, action)
            for instance_id in doomed:
                self._terminate(instance_id, action)
        message = f"removed {len(doomed)} of {len(nodes)} named nodes" if doomed else "named nodes already gone"
        status = CloudStatus.RESIZING if nodegroup.get("status") == "UPDATING" else CloudStatus.READY
        return self._view(cluster, nodegroup, status, message, target)

    def _auto_scaling_group(self, nodegroup: _Json, action: str) -> _Json:
        """The node group's Auto Scaling group (EKS makes exactly one per managed node group)."""
        names = [str(g["name"]) for g in (nodegroup.get("resources") or {}).get("autoScalingGroups") or []]
        if not names:
            raise ProviderError(f"{action}: the node group has no Auto Scaling group yet")
        with _aws(action):
            groups = self._autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=names[:1])
        found = groups.get("AutoScalingGroups") or []
        if not found:
            raise ProviderError(f"{action}: the node group's Auto Scaling group {names[0]} does not exist")
        return cast(_Json, found[0])

    def _instances_to_terminate(self, group: _Json, names: list[str], action: str) -> list[str]:
        """Instance ids of the named nodes that are still in service in ``group``.  A name whose
        instance is gone or shutting down is skipped; a live instance outside the group, or a name
        that cannot be an instance of this region, is refused with ``ProviderError``."""
        members = {str(i["InstanceId"]): str(i.get("LifecycleState", "")) for i in group.get("Instances") or []}
        found: dict[str, tuple[str, str]] = {}  # name → (instance id, EC2 state)
        for start in range(0, len(names), _FILTER_VALUES):
            chunk = names[start : start + _FILTER_VALUES]
            with _aws(action):
                pages = self._ec2.get_paginator("describe_instances").paginate(
                    Filters=[{"Name": "private-dns-name", "Values": chunk}]
                )
                for page in pages:
                    for reservation in page.get("Reservations", []):
                        for inst in reservation.get("Instances", []):
                            name = str(inst.get("PrivateDnsName") or "")
                            state = str(inst.get("State", {}).get("Name", ""))
                            # A name is reused once its old instance is terminated: the live one wins.
                            if name and (name not in found or found[name][1] in _GONE):
                                found[name] = (str(inst["InstanceId"]), state)
        doomed: list[str] = []
        strangers: list[str] = []
        for name in names:
            if name not in found:
                if not self._ec2_node_name(name):
                    strangers.append(name)
                continue  # terminated long enough ago that EC2 forgot its address: already gone
            instance_id, state = found[name]
            if state in _GONE:
                continue
            lifecycle = members.get(instance_id)
            if lifecycle is None:
                strangers.append(f"{name} ({instance_id})")
            elif not lifecycle.startswith("Terminat"):
                doomed.append(instance_id)
        if strangers:
            raise ProviderError(
                f"{action}: not nodes of this cluster's node group {group.get('AutoScalingGroupName')}: "
                f"{', '.join(strangers)}"
            )
        return doomed

    def _ec2_node_name(self, name: str) -> bool:
        """Whether ``name`` has the shape of an EC2 private DNS name in this region (IP or resource
        based), i.e. could be a node of ours whose instance is gone."""
        region = self._config.region
        domain = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
        return (
            re.fullmatch(r"(ip-\d{1,3}-\d{1,3}-\d{1,3}-\d{1,3}|i-[0-9a-f]{8,17})\." + re.escape(domain), name)
            is not None
        )

    def _lower_min_size(self, cluster_id: str, nodegroup: _Json, target: int, action: str) -> None:
        """Lower the node group's ``minSize`` to ``target`` when it would block the decrement.  Through
        EKS, which applies it to the Auto Scaling group: a group changed behind EKS's back is reset
        by EKS's next update of the node group."""
        if int(nodegroup.get("scalingConfig", {}).get("minSize", 0)) <= target:
            return
        try:
            with _aws(action):
                self._eks.update_nodegroup_config(
                    clusterName=cluster_id, nodegroupName=NODEGROUP, scalingConfig={"minSize": target}
                )
        except _InUseError:
            pass  # an update is running; the terminate tells whether the group allows it yet

    def _terminate(self, instance_id: str, action: str) -> None:
        try:
            with _aws(f"{action}: terminating {instance_id}"):
                self._autoscaling.terminate_instance_in_auto_scaling_group(
                    InstanceId=instance_id, ShouldDecrementDesiredCapacity=True
                )
        except ProviderError as err:
            if "min size" in str(err) and "ValidationError" in str(err):
                # EKS has not yet applied the lowered minSize to the group: nothing was terminated
                # for this instance; the caller retries (the federation hands back the same nodes).
                raise ProviderError(f"{action}: the node group's minSize is still being lowered; retry: {err}") from err
            raise

    # -- delete -----------------------------------------------------------------------------

    def delete_cluster(self, cluster_id: str) -> CloudCluster:
        """Node groups first (EKS refuses to delete a cluster that has any), then the control plane;
        one step per call.  NotFound once EKS no longer knows the cluster."""
        action = f"deleting cluster {cluster_id}"
        cluster = self._describe_cluster(cluster_id, action)
        self._require_owned(cluster, cluster_id, action, foreign=NotFound)
        if cluster.get("status") == "DELETING":
            return self._view(cluster, None, CloudStatus.DELETING, "EKS control plane deleting")
        with _aws(action):
            names = [
                n
                for page in self._eks.get_paginator("list_nodegroups").paginate(clusterName=cluster_id)
                for n in page.get("nodegroups", [])
            ]
        if names:
            for name in names:
                self._delete_nodegroup(cluster_id, name, action)
            return self._view(cluster, None, CloudStatus.DELETING, f"deleting node groups {', '.join(names)}")
        try:
            with _aws(action):
                self._eks.delete_cluster(name=cluster_id)
        except _InUseError as busy:
            # Still creating, updating, or node groups not yet gone: EKS takes the delete later.
            return self._view(cluster, None, CloudStatus.DELETING, f"EKS refused the delete for now: {busy}")
        return self._view(cluster, None, CloudStatus.DELETING, "EKS control plane deleting")

    def _delete_nodegroup(self, cluster_id: str, name: str, action: str) -> None:
        try:
            with _aws(f"{action}: node group {name}"):
                nodegroup = self._eks.describe_nodegroup(clusterName=cluster_id, nodegroupName=name)["nodegroup"]
                if nodegroup.get("status") != "DELETING":
                    self._eks.delete_nodegroup(clusterName=cluster_id, nodegroupName=name)
        except NotFound:
            pass  # gone since the list: that is what we wanted
        except _InUseError:
            pass  # busy (creating, updating): try again next tick

    # -- credentials ------------------------------------------------------------------------

    def credentials(self, cluster_id: str) -> str:
        """A kubeconfig with a bearer token made like ``aws eks get-token``: a presigned STS
        GetCallerIdentity URL that names the cluster in the signed ``x-k8s-aws-id`` header.  The
        token is valid 15 minutes; callers fetch a fresh kubeconfig rather than caching it."""
        action = f"getting credentials of cluster {cluster_id}"
        cluster = self._describe_cluster(cluster_id, action)
        self._require_owned(cluster, cluster_id, action, foreign=NotFound)
        endpoint = cluster.get("endpoint")
        ca = cluster.get("certificateAuthority", {}).get("data")
        if cluster.get("status") not in ("ACTIVE", "UPDATING") or not endpoint or not ca:
            raise ProviderError(f"{action}: the control plane is {cluster.get('status')}, no endpoint yet")
        token = self._token(cluster_id, action)
        return render_kubeconfig(cluster_id, endpoint, ca, {"token": token}, user_name=f"burst-{cluster_id}")

    def _token(self, cluster_id: str, action: str) -> str:
        def add_cluster_header(request: Any, **_: Any) -> None:
            request.headers["x-k8s-aws-id"] = cluster_id

        event = "before-sign.sts.GetCallerIdentity"
        self._sts.meta.events.register(event, add_cluster_header)
        try:
            with _aws(action):
                url = self._sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET")
        finally:
            self._sts.meta.events.unregister(event, add_cluster_header)
        return "k8s-aws-v1." + base64.urlsafe_b64encode(str(url).encode()).decode().rstrip("=")

    # -- helpers ----------------------------------------------------------------------------

    def _describe_cluster(self, cluster_id: str, action: str) -> _Json:
        with _aws(action):
            return cast(_Json, self._eks.describe_cluster(name=cluster_id)["cluster"])

    def _find_cluster(self, cluster_id: str, action: str) -> _Json | None:
        try:
            return self._describe_cluster(cluster_id, action)
        except NotFound:
            return None

    def _describe_nodegroup(self, cluster_id: str, action: str) -> _Json:
        with _aws(action):
            return cast(
                _Json, self._eks.describe_nodegroup(clusterName=cluster_id, nodegroupName=NODEGROUP)["nodegroup"]
            )

    def _find_nodegroup(self, cluster_id: str, action: str) -> _Json | None:
        try:
            return self._describe_nodegroup(cluster_id, action)
        except NotFound:
            return None

    def _require_owned(self, cluster: _Json, cluster_id: str, action: str, foreign: type[ProviderError]) -> None:
        """burst touches only clusters tagged with this installation's owner and the same id."""
        tags = cluster.get("tags", {}) or {}
        if tags.get(OWNER_TAG) != self._owner or tags.get(CLUSTER_TAG) != cluster_id:
            raise foreign(f"{action}: an EKS cluster of this name exists but is not owned by {self._owner}")


def _scaling(nodes: int) -> dict[str, int]:
    """burst decides the size, so the group is pinned (min = desired); EKS wants maxSize ≥ 1."""
    return {"minSize": nodes, "maxSize": max(nodes, 1), "desiredSize": nodes}


def _implements(provider: AwsProvider) -> Provider:
    """Never called: mypy checks here that AwsProvider satisfies the Provider protocol."""
    return provider


def _removes_nodes(provider: AwsProvider) -> RemovesNodes:
    """Never called: mypy checks here that AwsProvider has the optional RemovesNodes capability."""
    return provider


def _created(value: object) -> datetime | None:
    """EKS ``createdAt`` (boto3 parses it to an aware datetime), in UTC; None when absent."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return None
