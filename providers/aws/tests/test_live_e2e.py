"""burst end to end against EKS as moto serves it: the real engine and reconciler on a RealClock.

What the unit tests of the provider cannot show: that the core drives it through a whole life (a
backlog appears → an EKS cluster and node group are created with burst's tags → the member joins →
it grows with the backlog → backlog gone → drained, node group and cluster deleted, ledger closed),
that a burst *process* killed mid-create is finished by the next one without a second cluster, that
``adopt()`` removes a tagged cluster the store does not know, and that a quota answer from EKS sends
placement to the next provider within the same tick.  Time passes for real: the fault proxy keeps
new resources CREATING for a few describes, and the tests tick with short sleeps under a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from burst_aws import NODEGROUP

from burst.lifecycle import ClusterState
from burst.model import CloudStatus, ClusterSpec
from burst.testing.live import Live, child_command, start, write_config

from .fake_aws import FakeAws
from .support import ACCOUNT, REGION

S = ClusterState
OWNER = "burst"
FLAVOR = "m5.2xlarge"  # 8 vCPUs: one node per 8-core job
OWNER_TAG, CLUSTER_TAG = "burst.owner", "burst.cluster"


def aws_section(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "aws",
        "region": REGION,
        "cluster_role_arn": f"arn:aws:iam::{ACCOUNT}:role/burst-eks-cluster",
        "node_role_arn": f"arn:aws:iam::{ACCOUNT}:role/burst-eks-node",
        "subnets": ["subnet-0aaa1111", "subnet-0bbb2222"],
        "security_groups": ["sg-0ccc3333"],
        "kubernetes_version": "1.31",
        "instance_types": [FLAVOR],
        "endpoint_url": endpoint,
        "max_nodes": 4,
        "nodes_per_cluster": 4,
        **extra,
    }


def eks(moto_url: str) -> Any:
    """A client straight to moto (not through the proxy), to read what exists without being recorded."""
    return boto3.client("eks", region_name=REGION, endpoint_url=moto_url)


def cloud_clusters(moto_url: str) -> list[str]:
    names: list[str] = eks(moto_url).list_clusters()["clusters"]
    return sorted(names)


def assert_nothing_left(live: Live, moto_url: str) -> None:
    assert cloud_clusters(moto_url) == []
    assert live.engine.store.fleet() == []
    segments = live.engine.store.ledger()
    assert segments and all(s.end is not None for s in segments), "every billed segment is closed"


@pytest.fixture
def lagging(fake: FakeAws) -> Iterator[FakeAws]:
    """EKS as it behaves: new control planes and node groups read CREATING for one more describe."""
    fake.lag(creating=1)
    yield fake


# ---- a whole life ------------------------------------------------------------------------------


def test_backlog_creates_grows_and_removes_an_eks_cluster(lagging: FakeAws, moto_url: str, tmp_path: Path) -> None:
    fake = lagging
    live = start(write_config(tmp_path, {"aws": aws_section(fake.url)}, currency="USD"))
    live.backlog.set_pending(16)  # two 8-core jobs waiting: two nodes

    live.tick_until(lambda: bool(fake.seen("CreateCluster")), "create sent")
    [rec] = live.engine.store.all_clusters()
    cid = rec.cluster_id
    assert rec.provider == "aws" and rec.desired_nodes == 2
    [create] = fake.seen("CreateCluster")
    assert create.body["name"] == cid
    assert create.body["tags"][OWNER_TAG] == OWNER and create.body["tags"][CLUSTER_TAG] == cid
    assert create.body["roleArn"].endswith(":role/burst-eks-cluster")

    live.tick_until(lambda: live.state(cid) is S.ACTIVE, "cluster active")
    [ng] = fake.seen("CreateNodegroup")
    assert ng.body["instanceTypes"] == [FLAVOR] and ng.body["scalingConfig"]["desiredSize"] == 2
    assert ng.body["tags"][OWNER_TAG] == OWNER and ng.body["tags"][CLUSTER_TAG] == cid
    trail = [t["to_state"] for t in live.engine.store.transitions(cid)]
    assert trail == ["PLANNED", "PROVISIONING", "JOINING", "ACTIVE"]

    live.backlog.set_pending(32)  # more work: the same cluster grows to four nodes
    live.tick_until(lambda: bool(fake.seen("UpdateNodegroupConfig")), "resize sent")
    [update] = fake.seen("UpdateNodegroupConfig")
    assert update.cluster == cid and update.nodegroup == NODEGROUP
    assert update.body["scalingConfig"]["desiredSize"] == 4
    got = live.engine.store.get(cid)
    assert got is not None and got.desired_nodes == 4
    assert len(fake.seen("CreateCluster")) == 1, "growing never makes a second cluster"

    live.backlog.set_pending(0)  # the backlog is gone: drain, delete node group, then the cluster
    live.tick_until(lambda: live.state(cid) is S.REMOVED, "cluster removed")
    trail = [t["to_state"] for t in live.engine.store.transitions(cid)]
    assert trail[-3:] == ["DRAINING", "REMOVING", "REMOVED"]
    ops = fake.operations()
    assert ops.index("DeleteNodegroup") < ops.index("DeleteCluster")
    assert_nothing_left(live, moto_url)


# ---- crash mid-create, restart, adopt --------------------------------------------------------


def test_killed_mid_create_the_next_process_adopts_and_never_duplicates(
    lagging: FakeAws, moto_url: str, tmp_path: Path
) -> None:
    fake = lagging
    cfg = write_config(tmp_path, {"aws": aws_section(fake.url)}, currency="USD")
    fake.hold("CreateCluster")  # EKS acts on the create; its answer never reaches the process
    child = subprocess.Popen(
        child_command(cfg.path, 16),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),  # the conftest's AWS_* variables: the standard credential chain
    )
    try:
        if not fake.held.wait(timeout=30):
            _out, err = child.communicate(timeout=5) if child.poll() is not None else (b"", b"")
            pytest.fail(f"the burst process never sent CreateCluster: {err.decode()[-2000:]}")
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        fake.release()
    assert child.returncode == -signal.SIGKILL
    assert b"tick" not in out, "killed inside its first tick, mid-create"
    [cid] = cloud_clusters(moto_url)

    # An orphan: tagged with our owner, unknown to the store (as if from a lost store).
    live = start(cfg)
    orphan = f"{OWNER}-aws-09999"
    provider = live.engine.providers["aws"]
    spec = ClusterSpec(orphan, "aws", REGION, FLAVOR, 1, OWNER)
    for _ in range(8):
        if provider.create_cluster(spec).status is CloudStatus.READY:
            break
    assert cloud_clusters(moto_url) == sorted([cid, orphan])
    creates_before = len(fake.seen("CreateCluster"))

    # The next process: same store file, same account.
    live.backlog.set_pending(16)
    report = live.engine.reconciler.adopt()
    assert report.orphans_removed == [orphan] and report.errors == []
    assert live.state(cid) is S.PROVISIONING
    live.tick_until(
        lambda: live.state(cid) is S.ACTIVE and live.state(orphan) is S.REMOVED, "adopted cluster active, orphan gone"
    )
    assert len(fake.seen("CreateCluster")) == creates_before, "the cluster was adopted, not created again"
    # issue 12: the orphan became a record, was drained through the federation, then removed
    assert {c.cluster_id: c.state for c in live.engine.store.all_clusters()} == {cid: S.ACTIVE, orphan: S.REMOVED}
    assert [c.cluster_id for c in provider.list_clusters(OWNER)] == [cid], "the orphan is gone"
    assert [r.nodegroup for r in fake.seen("CreateNodegroup") if r.cluster == cid] == [NODEGROUP]

    live.backlog.set_pending(0)
    live.tick_until(lambda: live.state(cid) is S.REMOVED, "cluster removed")
    assert_nothing_left(live, moto_url)


# ---- quota on create: the next provider in the same tick ---------------------------------------


def test_quota_exceeded_on_create_falls_back_to_the_next_provider_in_the_same_tick(
    lagging: FakeAws, moto_url: str, tmp_path: Path
) -> None:
    fake = lagging
    providers = {
        "aws": aws_section(fake.url, priority=10),
        "spare": {
            "kind": "local",
            "cloud": "aws",
            "flavors": [FLAVOR],
            "max_nodes": 4,
            "nodes_per_cluster": 4,
            "prices": {FLAVOR: {"price_per_hour": 9.0, "currency": "USD"}},
        },
    }
    live = start(write_config(tmp_path, providers, [{"kind": "placement", "strategy": "priority"}], currency="USD"))
    fake.fail(
        "CreateCluster",
        "ResourceLimitExceededException",
        "Cluster limit exceeded for account. Maximum number of clusters per region is 100.",
        status=400,
    )
    live.backlog.set_pending(16)
    res = live.engine.tick()
    assert res.replans == 1
    by_provider = {c.provider: c for c in live.engine.store.all_clusters()}
    assert by_provider["aws"].state is S.FAILED and "QuotaExceeded" in (by_provider["aws"].last_error or "")
    assert by_provider["spare"].state is S.PROVISIONING  # asked in the same tick
    assert live.engine.store.backoffs()["aws"] > live.engine.clock.now()
    assert len(fake.seen("CreateCluster")) == 1

    failed = by_provider["aws"].cluster_id
    live.tick_until(lambda: live.state(failed) is S.REMOVED, "failed cluster cleaned up")
    assert len(fake.seen("CreateCluster")) == 1, "aws is backed off: not asked again"
    assert cloud_clusters(moto_url) == []
    assert {c.provider for c in live.engine.store.fleet()} == {"spare"}
