"""``remove_nodes``: the named nodes' instances go, the node group shrinks by as many, nothing else.

The node groups here have a real Auto Scaling group in moto with running instances (the proxy
makes it when EKS creates the node group), so the provider's EC2 and Auto Scaling calls run against
moto's own backends; the node names are the instances' private DNS names, as on EKS.
"""

from __future__ import annotations

import re
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from burst_aws import NODEGROUP, AwsProvider

from burst.api import AuthFailed, CloudStatus, NotFound, ProviderError, RemovesNodes, Throttled

from .fake_aws import FakeAws
from .support import REGION, ProviderFactory, spec

CID = "burst-7f3a"
MUTATIONS = {"UpdateNodegroupConfig", "TerminateInstanceInAutoScalingGroup", "DeleteNodegroup", "DeleteCluster"}


class Moto:
    """Reads moto directly (not through the proxy, so nothing is recorded): what AWS holds."""

    def __init__(self, url: str) -> None:
        self._eks = boto3.client("eks", region_name=REGION, endpoint_url=url)
        self._asg = boto3.client("autoscaling", region_name=REGION, endpoint_url=url)
        self._ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=url)

    def group(self, cluster_id: str = CID) -> dict[str, Any]:
        """The node group's Auto Scaling group."""
        ng = self._eks.describe_nodegroup(clusterName=cluster_id, nodegroupName=NODEGROUP)["nodegroup"]
        name = ng["resources"]["autoScalingGroups"][0]["name"]
        return dict(self._asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0])

    def node_names(self, cluster_id: str = CID) -> list[str]:
        """Private DNS names (= EKS node names) of the group's instances, sorted."""
        ids = [i["InstanceId"] for i in self.group(cluster_id)["Instances"]]
        found = self._ec2.describe_instances(InstanceIds=ids)["Reservations"] if ids else []
        return sorted(i["PrivateDnsName"] for r in found for i in r["Instances"])


@pytest.fixture
def moto(moto_url: str, fake: FakeAws) -> Moto:
    return Moto(moto_url)


def ready(provider: AwsProvider, moto: Moto, cluster_id: str = CID, nodes: int = 4) -> list[str]:
    """A READY cluster of ``nodes`` nodes; its node names, sorted."""
    s = spec(cluster_id=cluster_id, nodes=nodes)
    for _ in range(3):
        if provider.create_cluster(s).status is CloudStatus.READY:
            break
    assert provider.get_cluster(cluster_id).status is CloudStatus.READY
    names = moto.node_names(cluster_id)
    assert len(names) == nodes
    return names


def mutations(fake: FakeAws) -> list[str]:
    return [op for op in fake.operations() if op in MUTATIONS]


def test_provider_has_the_capability(provider: AwsProvider) -> None:
    assert isinstance(provider, RemovesNodes)


def test_removes_exactly_the_named_nodes_and_shrinks_the_group(
    provider: AwsProvider, fake: FakeAws, moto: Moto
) -> None:
    names = ready(provider, moto, nodes=4)
    idle = names[1:3]
    fake.clear()

    out = provider.remove_nodes(CID, idle)

    assert out.desired_nodes == 2
    assert out.status is CloudStatus.READY
    states = fake.instances()
    assert {n: states[n] for n in idle} == {n: "terminated" for n in idle}
    assert {n: states[n] for n in names if n not in idle} == {n: "running" for n in names if n not in idle}
    after = moto.group()
    assert after["DesiredCapacity"] == 2 and after["MinSize"] == 2
    assert moto.node_names() == sorted(set(names) - set(idle)), "the group must not replace them"

    # What boto3 sent: one lookup by private DNS name, the minimum lowered through EKS first, then
    # one terminate with decrement per node.
    (lookup,) = fake.seen("DescribeInstances")
    assert lookup.body["Filter.1.Name"] == "private-dns-name"
    assert sorted(v for k, v in lookup.body.items() if k.startswith("Filter.1.Value.")) == idle
    assert mutations(fake) == ["UpdateNodegroupConfig", *["TerminateInstanceInAutoScalingGroup"] * 2]
    assert fake.seen("UpdateNodegroupConfig")[0].body["scalingConfig"] == {"minSize": 2}
    for call in fake.seen("TerminateInstanceInAutoScalingGroup"):
        assert call.body["ShouldDecrementDesiredCapacity"] == "true"

    # Later reads and resizes see the smaller group and do not bring the nodes back.
    assert provider.get_cluster(CID).desired_nodes == 2
    fake.clear()
    assert provider.resize(CID, 2).desired_nodes == 2
    assert mutations(fake) == []
    assert provider.list_clusters("inst-a")[0].desired_nodes == 2
    assert provider.create_cluster(spec(nodes=4)).desired_nodes == 2
    assert moto.group()["DesiredCapacity"] == 2

    # Growing again is an ordinary resize, pinned again.
    provider.resize(CID, 3)
    assert fake.seen("UpdateNodegroupConfig")[-1].body["scalingConfig"] == {
        "minSize": 3,
        "maxSize": 3,
        "desiredSize": 3,
    }
    assert moto.group()["DesiredCapacity"] == 3 and len(moto.node_names()) == 3


def test_repeat_is_a_no_op(provider: AwsProvider, fake: FakeAws, moto: Moto) -> None:
    names = ready(provider, moto, nodes=3)
    provider.remove_nodes(CID, names[:1])
    fake.clear()

    again = provider.remove_nodes(CID, names[:1])
    assert again.desired_nodes == 2
    assert mutations(fake) == []

    # A retry naming a gone node and a live one removes only the live one.
    mixed = provider.remove_nodes(CID, [names[0], names[1], names[1]])
    assert mixed.desired_nodes == 1
    assert mutations(fake) == ["UpdateNodegroupConfig", "TerminateInstanceInAutoScalingGroup"]
    assert fake.instances()[names[2]] == "running"


def test_all_nodes_can_go(provider: AwsProvider, fake: FakeAws, moto: Moto) -> None:
    names = ready(provider, moto, nodes=2)
    assert provider.remove_nodes(CID, names).desired_nodes == 0
    assert moto.group()["DesiredCapacity"] == 0 and moto.group()["MinSize"] == 0
    assert provider.get_cluster(CID).desired_nodes == 0


def test_no_names_changes_nothing(provider: AwsProvider, fake: FakeAws, moto: Moto) -> None:
    ready(provider, moto, nodes=2)
    fake.clear()
    assert provider.remove_nodes(CID, []).desired_nodes == 2
    assert mutations(fake) == []


def test_a_name_that_is_no_node_of_this_cluster_is_refused(provider: AwsProvider, fake: FakeAws, moto: Moto) -> None:
    names = ready(provider, moto, nodes=2)
    other = ready(provider, moto, cluster_id="burst-other", nodes=2)
    fake.clear()

    with pytest.raises(ProviderError, match="worker-17") as err:
        provider.remove_nodes(CID, [names[0], "worker-17"])
    assert type(err.value) is ProviderError
    with pytest.raises(ProviderError, match=re.escape(other[0])):
        provider.remove_nodes(CID, [names[0], other[0]])
    with pytest.raises(ProviderError, match=re.escape("ip-10-0-0-1.us-west-2.compute.internal")):
        provider.remove_nodes(CID, ["ip-10-0-0-1.us-west-2.compute.internal"])

    # Refused before anything was terminated, in either cluster.
    assert mutations(fake) == []
    assert set(fake.instances().values()) == {"running"}


def test_an_ec2_name_no_instance_has_any_more_counts_as_gone(provider: AwsProvider, fake: FakeAws, moto: Moto) -> None:
    """EC2 forgets a terminated instance's address; a node name of this region's shape that matches
    no instance is taken as already gone, so a late retry is still a no-op."""
    ready(provider, moto, nodes=2)
    fake.clear()
    out = provider.remove_nodes(CID, [f"ip-10-9-9-9.{REGION}.compute.internal"])
    assert out.desired_nodes == 2
    assert mutations(fake) == []


def test_gone_or_foreign_cluster_is_not_found(
    provider: AwsProvider, make_provider: ProviderFactory, moto: Moto
) -> None:
    with pytest.raises(NotFound):
        provider.remove_nodes("burst-nope", ["ip-10-0-0-1.eu-central-1.compute.internal"])
    names = ready(provider, moto, nodes=1)
    with pytest.raises(NotFound):
        make_provider(owner="inst-b").remove_nodes(CID, names)


def test_deleting_cluster_is_left_alone(provider: AwsProvider, fake: FakeAws, moto: Moto) -> None:
    names = ready(provider, moto, nodes=2)
    fake.override_cluster(CID, "DELETING", times=1)
    fake.clear()
    assert provider.remove_nodes(CID, names).status is CloudStatus.DELETING
    assert mutations(fake) == []


def test_min_size_not_yet_lowered_by_eks_is_a_retryable_error(provider: AwsProvider, fake: FakeAws, moto: Moto) -> None:
    """Real EKS applies the lowered minSize to the group a little later; until then AWS refuses the
    decrement.  Nothing is lost: the retry finds the minimum already lowered and terminates."""
    names = ready(provider, moto, nodes=3)
    fake.fail(
        "TerminateInstanceInAutoScalingGroup",
        "ValidationError",
        "Currently, desiredSize equals minSize (3). Terminating instance without replacement will violate "
        "group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower "
        "group's min size.",
    )
    with pytest.raises(ProviderError, match="minSize is still being lowered"):
        provider.remove_nodes(CID, names[:1])
    assert fake.instances()[names[0]] == "running"
    fake.clear()

    assert provider.remove_nodes(CID, names[:1]).desired_nodes == 2
    assert mutations(fake) == ["TerminateInstanceInAutoScalingGroup"], "minSize already lowered: no second update"
    assert fake.instances()[names[0]] == "terminated"


def test_node_group_busy_with_an_update_still_removes(provider: AwsProvider, fake: FakeAws, moto: Moto) -> None:
    names = ready(provider, moto, nodes=3)
    fake.fail("UpdateNodegroupConfig", "ResourceInUseException", "Nodegroup is currently UPDATING", status=409)
    with pytest.raises(ProviderError, match="min size"):
        provider.remove_nodes(CID, names[:1])  # the update never happened: AWS refuses the decrement
    assert provider.remove_nodes(CID, names[:1]).desired_nodes == 2


@pytest.mark.parametrize(
    ("operation", "code", "status", "expected"),
    [
        ("TerminateInstanceInAutoScalingGroup", "Throttling", 400, Throttled),
        ("DescribeAutoScalingGroups", "Throttling", 400, Throttled),
        ("DescribeInstances", "RequestLimitExceeded", 503, Throttled),
        ("DescribeInstances", "UnauthorizedOperation", 403, AuthFailed),
        ("TerminateInstanceInAutoScalingGroup", "AccessDenied", 403, AuthFailed),
        ("DescribeNodegroup", "ThrottlingException", 429, Throttled),
    ],
)
def test_aws_errors_are_typed_and_sent_once(
    provider: AwsProvider,
    fake: FakeAws,
    operation: str,
    code: str,
    status: int,
    expected: type[ProviderError],
    moto: Moto,
) -> None:
    names = ready(provider, moto, nodes=2)
    fake.clear()
    fake.fail(operation, code, "Rate exceeded" if expected is Throttled else "not allowed", status=status)
    with pytest.raises(expected) as err:
        provider.remove_nodes(CID, names[:1])
    assert CID in str(err.value) and code in str(err.value)
    assert len(fake.seen(operation)) == 1, "no hidden SDK retries"
    assert isinstance(err.value.__cause__, ClientError)


def test_the_fake_refuses_what_aws_refuses(fake: FakeAws, provider: AwsProvider, moto: Moto) -> None:
    """The proxy's additions to moto behave like AWS: no decrement below the minimum, and deleting
    the node group takes its instances with it."""
    names = ready(provider, moto, nodes=2)
    asg = boto3.client("autoscaling", region_name=REGION, endpoint_url=fake.url)
    instance = moto.group()["Instances"][0]["InstanceId"]
    with pytest.raises(ClientError, match="min size constraint") as err:
        asg.terminate_instance_in_auto_scaling_group(InstanceId=instance, ShouldDecrementDesiredCapacity=True)
    assert err.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(ClientError, match="No managed instance found"):
        asg.terminate_instance_in_auto_scaling_group(
            InstanceId="i-0123456789abcdef0", ShouldDecrementDesiredCapacity=True
        )

    provider.delete_cluster(CID)  # first step: the node group, and with it the group and its instances
    assert fake.seen("DeleteNodegroup")
    assert {fake.instances()[n] for n in names} == {"terminated"}
