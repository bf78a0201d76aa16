"""Shared test values: the account, the owner and how a test config and spec look."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from burst_aws import AwsProvider, AwsProviderConfig

from burst.api import ClusterSpec

REGION = "eu-central-1"
ACCOUNT = "123456789012"
OWNER = "inst-a"

#: make_provider(owner=..., **config overrides) → a provider built from the test config.
ProviderFactory = Callable[..., AwsProvider]


def config(endpoint: str, **overrides: Any) -> AwsProviderConfig:
    values: dict[str, Any] = {
        "kind": "aws",
        "region": REGION,
        "cluster_role_arn": f"arn:aws:iam::{ACCOUNT}:role/burst-eks-cluster",
        "node_role_arn": f"arn:aws:iam::{ACCOUNT}:role/burst-eks-node",
        "subnets": ["subnet-0aaa1111", "subnet-0bbb2222"],
        "security_groups": ["sg-0ccc3333"],
        "kubernetes_version": "1.31",
        "instance_types": ["m5.2xlarge", "c5.4xlarge", "g4dn.xlarge"],
        "endpoint_url": endpoint,
        "ec2_endpoint_url": endpoint,
        "autoscaling_endpoint_url": endpoint,
    }
    values.update(overrides)
    return AwsProviderConfig.model_validate(values)


def spec(cluster_id: str = "burst-7f3a", nodes: int = 3, flavor: str = "m5.2xlarge", **kw: Any) -> ClusterSpec:
    return ClusterSpec(
        cluster_id=cluster_id, provider="aws", region=REGION, flavor=flavor, nodes=nodes, owner=OWNER, **kw
    )
