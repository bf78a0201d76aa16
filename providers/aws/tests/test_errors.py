"""Every AWS failure reaches burst as one of its typed errors, sent once (no hidden SDK retries).

The error bodies are the ones EKS sends: status code, ``x-amzn-ErrorType`` header and a JSON body
with ``message`` (plus ``clusterName`` / ``validZones`` where EKS adds them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError
from burst_aws import NODEGROUP, AwsProvider

from burst.api import (
    AuthFailed,
    CapacityUnavailable,
    NotFound,
    ProviderError,
    ProvisioningFailed,
    QuotaExceeded,
    Throttled,
    is_fallback,
)

from .fake_aws import FakeAws
from .support import ACCOUNT, ProviderFactory, spec

CID = "burst-7f3a"


@dataclass(frozen=True)
class Case:
    operation: str
    code: str
    status: int
    message: str
    expected: type[ProviderError]
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


CASES = {
    "cluster quota": Case(
        "CreateCluster",
        "ResourceLimitExceededException",
        400,
        "Cannot create cluster 'burst-7f3a' because you've reached the limit of 100 clusters in region eu-central-1.",
        QuotaExceeded,
        {"clusterName": CID},
    ),
    "node group quota": Case(
        "CreateNodegroup",
        "ResourceLimitExceededException",
        400,
        "Nodegroups exceed the limit of 30 per cluster",
        QuotaExceeded,
        {"clusterName": CID},
    ),
    "zone without capacity": Case(
        "CreateCluster",
        "UnsupportedAvailabilityZoneException",
        400,
        "Cannot create cluster 'burst-7f3a' because eu-central-1c, the targeted availability zone, does not "
        "currently have sufficient capacity to support the cluster. Retry and choose from these availability "
        "zones: eu-central-1a, eu-central-1b",
        CapacityUnavailable,
        {"clusterName": CID, "validZones": ["eu-central-1a", "eu-central-1b"]},
    ),
    "throttled": Case("DescribeCluster", "ThrottlingException", 400, "Rate exceeded", Throttled),
    "too many requests": Case(
        "DescribeCluster", "TooManyRequestsException", 429, "Too Many Requests", Throttled, headers={"Retry-After": "7"}
    ),
    "not found": Case(
        "DescribeCluster", "ResourceNotFoundException", 404, "No cluster found for name: burst-7f3a.", NotFound
    ),
    "bad key": Case(
        "DescribeCluster",
        "UnrecognizedClientException",
        403,
        "The security token included in the request is invalid.",
        AuthFailed,
    ),
    "denied": Case(
        "CreateCluster",
        "AccessDeniedException",
        403,
        f"User: arn:aws:iam::{ACCOUNT}:user/burst is not authorized to perform: eks:CreateCluster on resource: "
        f"arn:aws:eks:eu-central-1:{ACCOUNT}:cluster/burst-7f3a",
        AuthFailed,
    ),
    "expired": Case(
        "ListClusters",
        "ExpiredTokenException",
        403,
        "The security token included in the request is expired",
        AuthFailed,
    ),
    "server error": Case("DescribeCluster", "ServerException", 500, "An internal server error occurred", ProviderError),
    "unavailable": Case("ListClusters", "ServiceUnavailableException", 503, "Service Unavailable", ProviderError),
    "bad parameter": Case(
        "CreateCluster",
        "InvalidParameterException",
        400,
        "Subnets specified must be in at least two different AZs",
        ProviderError,
        {"clusterName": CID},
    ),
    "resize throttled": Case("UpdateNodegroupConfig", "ThrottlingException", 400, "Rate exceeded", Throttled),
    "delete denied": Case(
        "DeleteNodegroup",
        "AccessDeniedException",
        403,
        f"User: arn:aws:iam::{ACCOUNT}:user/burst is not authorized to perform: eks:DeleteNodegroup",
        AuthFailed,
    ),
}


def _call(case: Case, provider: AwsProvider) -> Callable[[], object]:
    """Bring the cluster to where ``case.operation`` is the next call, and return that call.
    (Reads need no cluster: the proxy answers the injected error before moto is asked.)"""
    s = spec()
    reads: dict[str, Callable[[], object]] = {
        "DescribeCluster": lambda: provider.get_cluster(CID),
        "ListClusters": lambda: provider.list_clusters("inst-a"),
    }
    if case.operation in reads:
        return reads[case.operation]
    if case.operation == "CreateCluster":
        return lambda: provider.create_cluster(s)
    provider.create_cluster(s)
    if case.operation == "CreateNodegroup":
        return lambda: provider.create_cluster(s)
    provider.create_cluster(s)
    return {
        "UpdateNodegroupConfig": lambda: provider.resize(CID, 9),
        "DeleteNodegroup": lambda: provider.delete_cluster(CID),
    }[case.operation]


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_error_mapping(case: Case, provider: AwsProvider, fake: FakeAws) -> None:
    call = _call(case, provider)
    before = len(fake.seen(case.operation))
    fake.fail(case.operation, case.code, case.message, status=case.status, extra=case.extra, headers=case.headers)

    with pytest.raises(ProviderError) as caught:
        call()

    err = caught.value
    assert type(err) is case.expected
    assert case.message in str(err) and case.code in str(err)
    assert CID in str(err) or case.operation == "ListClusters"  # the action names the cluster
    assert isinstance(err.__cause__, ClientError)  # converted at the boundary, SDK type not leaked
    sent = fake.seen(case.operation)[before:]
    assert [r.status for r in sent] == [case.status]  # sent once: botocore did not retry
    assert is_fallback(err) == (case.expected in (QuotaExceeded, CapacityUnavailable))


def test_throttle_carries_retry_after(provider: AwsProvider, fake: FakeAws) -> None:
    fake.fail("ListClusters", "TooManyRequestsException", "Too Many Requests", status=429, headers={"Retry-After": "7"})
    with pytest.raises(Throttled) as caught:
        provider.list_clusters("inst-a")
    assert caught.value.retry_after == 7.0
    fake.fail("ListClusters", "ThrottlingException", "Rate exceeded", status=400)
    with pytest.raises(Throttled) as default:
        provider.list_clusters("inst-a")
    assert default.value.retry_after == 30.0


def test_retries_are_configurable(make_provider: ProviderFactory, fake: FakeAws) -> None:
    provider = make_provider(max_attempts=2)
    fake.fail("ListClusters", "ThrottlingException", "Rate exceeded", status=400)
    assert provider.list_clusters("inst-a") == []
    assert [r.status for r in fake.seen("ListClusters")] == [400, 200]


NODEGROUP_FAILURES = {
    "spot capacity": (
        {
            "code": "AsgInstanceLaunchFailures",
            "message": "Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot capacity "
            "available that matches your request. Launching EC2 instance failed.",
        },
        CapacityUnavailable,
    ),
    "subnet full": (
        {
            "code": "InsufficientFreeAddresses",
            "message": "One or more of the subnets associated with your node group does not have enough available "
            "IP addresses for new nodes.",
        },
        CapacityUnavailable,
    ),
    "vcpu limit": (
        {
            "code": "AsgInstanceLaunchFailures",
            "message": "Could not launch On-Demand Instances. VcpuLimitExceeded - You have requested more vCPU "
            "capacity than your current vCPU limit of 32 allows for the instance bucket that the specified "
            "instance type belongs to.",
        },
        QuotaExceeded,
    ),
    "instance limit": ({"code": "InstanceLimitExceeded", "message": "Instance limit exceeded"}, QuotaExceeded),
    "nodes never joined": (
        {"code": "NodeCreationFailure", "message": "Instances failed to join the kubernetes cluster"},
        ProvisioningFailed,
    ),
}


@pytest.mark.parametrize(("issue", "expected"), list(NODEGROUP_FAILURES.values()), ids=list(NODEGROUP_FAILURES))
def test_failed_node_group_maps_its_health_issue(
    issue: dict[str, Any], expected: type[ProviderError], provider: AwsProvider, fake: FakeAws
) -> None:
    s = spec()
    provider.create_cluster(s)
    provider.create_cluster(s)
    fake.override_nodegroup(CID, NODEGROUP, "CREATE_FAILED", [{**issue, "resourceIds": ["eks-burst-asg"]}])
    with pytest.raises(ProviderError) as caught:
        provider.create_cluster(s)
    assert type(caught.value) is expected
    assert issue["code"] in str(caught.value)
    assert provider.get_cluster(CID).status.value == "FAILED"


def test_failed_control_plane_is_provisioning_failed(provider: AwsProvider, fake: FakeAws) -> None:
    provider.create_cluster(spec())
    fake.override_cluster(CID, "FAILED")
    with pytest.raises(ProvisioningFailed, match="FAILED"):
        provider.create_cluster(spec())
    assert provider.get_cluster(CID).status.value == "FAILED"
    assert fake.seen("CreateNodegroup") == []


def test_no_credentials_is_auth_failed(make_built: ProviderFactory, fake: FakeAws, monkeypatch: Any) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    provider = make_built()
    with pytest.raises(AuthFailed, match="no usable AWS credentials") as caught:
        provider.get_cluster(CID)
    assert isinstance(caught.value.__cause__, BotoCoreError)
    with pytest.raises(AuthFailed):
        provider.credentials(CID)
    assert fake.requests == []  # nothing unsigned ever left the process


def test_unknown_profile_is_auth_failed(make_offline: ProviderFactory) -> None:
    with pytest.raises(AuthFailed, match="ProfileNotFound"):
        make_offline(profile="no-such-profile")


def test_unreachable_endpoint_is_a_retryable_provider_error(make_offline: ProviderFactory) -> None:
    provider = make_offline(endpoint_url="http://127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(ProviderError) as caught:
        provider.get_cluster(CID)
    assert type(caught.value) is ProviderError
    assert caught.value.retryable
    assert "EndpointConnectionError" in str(caught.value)


def test_request_outside_the_node_group_limit_is_quota(provider: AwsProvider, fake: FakeAws) -> None:
    with pytest.raises(QuotaExceeded, match="at most 450"):
        provider.create_cluster(spec(nodes=451))
    assert fake.requests == []


def test_flavor_not_offered_is_refused(provider: AwsProvider, fake: FakeAws) -> None:
    with pytest.raises(ProviderError, match="not offered"):
        provider.create_cluster(spec(flavor="m5.4xlarge"))
    assert fake.requests == []
