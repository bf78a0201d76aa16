"""Create, resize, delete, list and adopt EKS clusters over several ticks, against moto + the proxy."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from burst_aws import NODEGROUP, AwsProvider

from burst.api import CAMPAIGN_TAG, CLUSTER_TAG, OWNER_TAG, CloudStatus, NotFound, Provider, ProviderError

from .fake_aws import FakeAws
from .support import ACCOUNT, OWNER, REGION, ProviderFactory, spec

MUTATIONS = {"CreateCluster", "CreateNodegroup", "UpdateNodegroupConfig", "DeleteNodegroup", "DeleteCluster"}


def mutations(fake: FakeAws) -> list[str]:
    return [op for op in fake.operations() if op in MUTATIONS]


def eks(fake: FakeAws) -> Any:
    """A plain boto3 client for arranging the account the way a test needs it (not the provider)."""
    return boto3.client("eks", region_name=REGION, endpoint_url=fake.url)


def test_provider_satisfies_the_protocol(provider: AwsProvider) -> None:
    assert isinstance(provider, Provider)
    assert provider.name == "aws"


def test_full_lifecycle_over_ticks(provider: AwsProvider, fake: FakeAws) -> None:
    fake.lag(creating=2, deleting=2)
    s = spec(nodes=3, campaign="moriond-2027")

    # Tick 1: the control plane is asked for, with the ownership tags and the configured network.
    first = provider.create_cluster(s)
    assert first.status is CloudStatus.CREATING
    (create,) = fake.seen("CreateCluster")
    assert create.body["name"] == "burst-7f3a"
    assert create.body["roleArn"] == f"arn:aws:iam::{ACCOUNT}:role/burst-eks-cluster"
    assert create.body["resourcesVpcConfig"] == {
        "subnetIds": ["subnet-0aaa1111", "subnet-0bbb2222"],
        "securityGroupIds": ["sg-0ccc3333"],
    }
    assert create.body["version"] == "1.31"
    assert create.body["tags"] == {OWNER_TAG: OWNER, CLUSTER_TAG: "burst-7f3a", CAMPAIGN_TAG: "moriond-2027"}

    # Ticks 2-3: EKS still creating the control plane; nothing else is asked.
    for _ in range(2):
        assert provider.create_cluster(s).status is CloudStatus.CREATING
    assert mutations(fake) == ["CreateCluster"]

    # Tick 4: control plane ACTIVE → the managed node group, same tags.
    assert provider.create_cluster(s).status is CloudStatus.CREATING
    (ng,) = fake.seen("CreateNodegroup")
    assert ng.cluster == "burst-7f3a"
    assert ng.body["nodegroupName"] == NODEGROUP
    assert ng.body["instanceTypes"] == ["m5.2xlarge"]
    assert ng.body["capacityType"] == "ON_DEMAND"
    assert ng.body["scalingConfig"] == {"minSize": 3, "maxSize": 3, "desiredSize": 3}
    assert ng.body["nodeRole"] == f"arn:aws:iam::{ACCOUNT}:role/burst-eks-node"
    assert ng.body["subnets"] == ["subnet-0aaa1111", "subnet-0bbb2222"]
    assert ng.body["tags"] == create.body["tags"]
    assert "amiType" not in ng.body  # EKS picks the default AMI for CPU types

    # Ticks 5-6: node group creating; tick 7: READY.
    for _ in range(2):
        assert provider.create_cluster(s).status is CloudStatus.CREATING
    ready = provider.create_cluster(s)
    assert ready.status is CloudStatus.READY
    assert (ready.nodes, ready.desired_nodes, ready.flavor, ready.region) == (3, 3, "m5.2xlarge", REGION)
    assert ready.tags[OWNER_TAG] == OWNER
    assert mutations(fake) == ["CreateCluster", "CreateNodegroup"]
    assert provider.get_cluster("burst-7f3a").status is CloudStatus.READY

    # Resize through update_nodegroup_config; asking for the current size again sends nothing.
    grown = provider.resize("burst-7f3a", 5)
    assert (grown.status, grown.desired_nodes) == (CloudStatus.RESIZING, 5)
    (update,) = fake.seen("UpdateNodegroupConfig")
    assert (update.cluster, update.nodegroup) == ("burst-7f3a", NODEGROUP)
    assert update.body["scalingConfig"] == {"minSize": 5, "maxSize": 5, "desiredSize": 5}
    after = provider.resize("burst-7f3a", 5)
    assert (after.status, after.nodes) == (CloudStatus.READY, 5)
    assert len(fake.seen("UpdateNodegroupConfig")) == 1

    # Delete: node group first, waiting while it deletes, then the cluster, then NotFound.
    fake.clear()
    assert provider.delete_cluster("burst-7f3a").status is CloudStatus.DELETING
    assert mutations(fake) == ["DeleteNodegroup"]
    for _ in range(2):  # node group DELETING for two describes: no DeleteCluster yet
        assert provider.delete_cluster("burst-7f3a").status is CloudStatus.DELETING
    assert mutations(fake) == ["DeleteNodegroup"]
    assert provider.delete_cluster("burst-7f3a").status is CloudStatus.DELETING
    assert mutations(fake) == ["DeleteNodegroup", "DeleteCluster"]
    # Control plane DELETING for two describes.
    assert provider.delete_cluster("burst-7f3a").status is CloudStatus.DELETING
    assert provider.get_cluster("burst-7f3a").status is CloudStatus.DELETING
    with pytest.raises(NotFound):
        provider.delete_cluster("burst-7f3a")
    with pytest.raises(NotFound):
        provider.get_cluster("burst-7f3a")
    assert mutations(fake) == ["DeleteNodegroup", "DeleteCluster"]
    assert eks(fake).list_clusters()["clusters"] == []


def test_get_cluster_maps_every_stage(provider: AwsProvider, fake: FakeAws) -> None:
    fake.lag(creating=1)
    s = spec()
    provider.create_cluster(s)
    assert provider.get_cluster(s.cluster_id).status is CloudStatus.CREATING  # control plane creating
    assert provider.get_cluster(s.cluster_id).status is CloudStatus.CREATING  # up, no node group
    provider.create_cluster(s)
    assert provider.get_cluster(s.cluster_id).status is CloudStatus.CREATING  # node group creating
    assert provider.get_cluster(s.cluster_id).status is CloudStatus.READY
    fake.override_nodegroup(s.cluster_id, NODEGROUP, "UPDATING", times=1)
    assert provider.get_cluster(s.cluster_id).status is CloudStatus.RESIZING
    issue = {"code": "AsgInstanceLaunchFailures", "message": "one instance failed", "resourceIds": ["eks-x"]}
    fake.override_nodegroup(s.cluster_id, NODEGROUP, "DEGRADED", [issue], times=1)
    degraded = provider.get_cluster(s.cluster_id)
    assert degraded.status is CloudStatus.READY
    assert "AsgInstanceLaunchFailures" in degraded.message
    fake.override_nodegroup(s.cluster_id, NODEGROUP, "DELETE_FAILED", [issue], times=1)
    assert provider.get_cluster(s.cluster_id).status is CloudStatus.FAILED
    # Reads never change anything.
    assert mutations(fake) == ["CreateCluster", "CreateNodegroup"]


def test_spot_gpu_node_group(make_provider: ProviderFactory, fake: FakeAws) -> None:
    provider = make_provider(spot=True)
    s = spec(flavor="g4dn.xlarge", nodes=2)
    provider.create_cluster(s)
    provider.create_cluster(s)
    (ng,) = fake.seen("CreateNodegroup")
    assert ng.body["capacityType"] == "SPOT"
    assert ng.body["instanceTypes"] == ["g4dn.xlarge"]
    assert ng.body["amiType"] == "AL2023_x86_64_NVIDIA"


def test_resize_while_updating_waits(provider: AwsProvider, fake: FakeAws) -> None:
    s = spec()
    for _ in range(3):
        provider.create_cluster(s)
    fake.override_nodegroup(s.cluster_id, NODEGROUP, "UPDATING", times=1)
    assert provider.resize(s.cluster_id, 6).status is CloudStatus.RESIZING
    assert fake.seen("UpdateNodegroupConfig") == []
    # EKS refuses a second concurrent update with ResourceInUseException: still RESIZING, no error.
    fake.fail("UpdateNodegroupConfig", "ResourceInUseException", "Nodegroup is currently updating", status=409)
    assert provider.resize(s.cluster_id, 6).status is CloudStatus.RESIZING
    assert provider.resize(s.cluster_id, 6).desired_nodes == 6
    assert [r.status for r in fake.seen("UpdateNodegroupConfig")] == [409, 200]


def test_resize_to_zero_keeps_a_valid_scaling_config(provider: AwsProvider, fake: FakeAws) -> None:
    s = spec(nodes=2)
    for _ in range(3):
        provider.create_cluster(s)
    provider.resize(s.cluster_id, 0)
    assert fake.seen("UpdateNodegroupConfig")[0].body["scalingConfig"] == {
        "minSize": 0,
        "maxSize": 1,
        "desiredSize": 0,
    }


def test_list_filters_foreign_and_untagged_clusters(provider: AwsProvider, fake: FakeAws) -> None:
    client = eks(fake)
    vpc = {"subnetIds": ["subnet-0aaa1111", "subnet-0bbb2222"]}
    role = f"arn:aws:iam::{ACCOUNT}:role/other"
    client.create_cluster(name="hand-made", roleArn=role, resourcesVpcConfig=vpc)
    client.create_cluster(
        name="other-burst", roleArn=role, resourcesVpcConfig=vpc, tags={OWNER_TAG: "inst-b", CLUSTER_TAG: "other-burst"}
    )
    provider.create_cluster(spec("burst-1"))
    provider.create_cluster(spec("burst-2"))
    provider.create_cluster(spec("burst-2"))

    listed = {c.cluster_id: c for c in provider.list_clusters(OWNER)}
    assert set(listed) == {"burst-1", "burst-2"}
    assert listed["burst-1"].status is CloudStatus.CREATING  # control plane up, no node group yet
    assert listed["burst-2"].status is CloudStatus.READY
    assert {c.cluster_id for c in provider.list_clusters("inst-b")} == {"other-burst"}

    quota = provider.quota()
    assert (quota.max_clusters, quota.used_clusters) == (20, 2)
    assert quota.used_cores == 3 * 8  # burst-2's node group: 3 x m5.2xlarge
    assert quota.max_cores is None


def test_foreign_cluster_is_never_touched(provider: AwsProvider, fake: FakeAws) -> None:
    client = eks(fake)
    vpc = {"subnetIds": ["subnet-0aaa1111", "subnet-0bbb2222"]}
    client.create_cluster(
        name="burst-7f3a",
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/other",
        resourcesVpcConfig=vpc,
        tags={OWNER_TAG: "inst-b", CLUSTER_TAG: "burst-7f3a"},
    )
    fake.clear()
    with pytest.raises(NotFound):
        provider.get_cluster("burst-7f3a")
    with pytest.raises(NotFound):
        provider.delete_cluster("burst-7f3a")
    with pytest.raises(NotFound):
        provider.resize("burst-7f3a", 4)
    with pytest.raises(NotFound):
        provider.credentials("burst-7f3a")
    with pytest.raises(ProviderError, match="not owned by inst-a"):
        provider.create_cluster(spec())
    assert mutations(fake) == []
    assert client.describe_cluster(name="burst-7f3a")["cluster"]["status"] == "ACTIVE"


def test_create_twice_makes_one_cluster(make_built: ProviderFactory, fake: FakeAws) -> None:
    s = spec()
    make_built().create_cluster(s)
    make_built().create_cluster(s)  # a second daemon replica, or a retry after a lost answer
    assert make_built().create_cluster(s).status is CloudStatus.READY
    assert mutations(fake) == ["CreateCluster", "CreateNodegroup"]
    assert eks(fake).list_clusters()["clusters"] == ["burst-7f3a"]


def test_resume_after_crash_with_control_plane_but_no_node_group(provider: AwsProvider, fake: FakeAws) -> None:
    """A previous process created the control plane and died before the node group."""
    s = spec(nodes=4)
    eks(fake).create_cluster(
        name=s.cluster_id,
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/burst-eks-cluster",
        resourcesVpcConfig={"subnetIds": ["subnet-0aaa1111", "subnet-0bbb2222"]},
        tags=s.tags(),
    )
    fake.clear()
    assert provider.create_cluster(s).status is CloudStatus.CREATING
    assert mutations(fake) == ["CreateNodegroup"]
    assert provider.create_cluster(s).nodes == 4
    assert mutations(fake) == ["CreateNodegroup"]


def test_name_taken_after_a_stale_read_is_adopted(provider: AwsProvider, fake: FakeAws) -> None:
    """EKS reads can lag writes: describe says 404, create says 409 → adopt what exists."""
    s = spec()
    provider.create_cluster(s)
    fake.fail("DescribeCluster", "ResourceNotFoundException", "No cluster found for name: burst-7f3a.", status=404)
    assert provider.create_cluster(s).status is CloudStatus.CREATING
    assert [r.status for r in fake.seen("CreateCluster")] == [200, 409]
    assert [r.status for r in fake.seen("CreateNodegroup")] == [200]
    fake.fail("DescribeNodegroup", "ResourceNotFoundException", "No node group found", status=404)
    assert provider.create_cluster(s).status is CloudStatus.READY
    assert [r.status for r in fake.seen("CreateNodegroup")] == [200, 409]
    assert eks(fake).list_clusters()["clusters"] == ["burst-7f3a"]


def test_delete_of_a_cluster_that_never_existed_is_not_found(provider: AwsProvider, fake: FakeAws) -> None:
    with pytest.raises(NotFound, match="deleting cluster nope"):
        provider.delete_cluster("nope")
    assert mutations(fake) == []


def test_delete_of_a_half_created_cluster(provider: AwsProvider, fake: FakeAws) -> None:
    """Cancelled provisioning: only the control plane exists; the delete goes straight to it."""
    s = spec()
    provider.create_cluster(s)
    assert provider.delete_cluster(s.cluster_id).status is CloudStatus.DELETING
    assert mutations(fake) == ["CreateCluster", "DeleteCluster"]
    with pytest.raises(NotFound):
        provider.delete_cluster(s.cluster_id)


def test_delete_refused_while_creating_is_retried_next_tick(provider: AwsProvider, fake: FakeAws) -> None:
    """EKS answers ResourceInUseException to deleting a cluster it is still creating."""
    s = spec()
    provider.create_cluster(s)
    fake.fail("DeleteCluster", "ResourceInUseException", "Cluster is still being created", status=409)
    refused = provider.delete_cluster(s.cluster_id)
    assert refused.status is CloudStatus.DELETING
    assert "still being created" in refused.message
    assert provider.delete_cluster(s.cluster_id).status is CloudStatus.DELETING
    assert [r.status for r in fake.seen("DeleteCluster")] == [409, 200]
    with pytest.raises(NotFound):
        provider.delete_cluster(s.cluster_id)
