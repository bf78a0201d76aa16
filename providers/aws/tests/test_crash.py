"""Kill a burst process (SIGKILL) in the worst window, then retry from a fresh one.

The proxy forwards the held call to moto (AWS did the work) and keeps the answer, so the child dies
without knowing: the state a crash after "request sent" leaves.  A fresh provider instance must then
finish the job with exactly one cluster and one node group, or finish deleting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import boto3
import pytest
from burst_aws import NODEGROUP

from burst.api import CloudStatus, NotFound

from .fake_aws import FakeAws
from .support import REGION, ProviderFactory, config, spec

CID = "burst-7f3a"

CHILD = """
import sys
from datetime import UTC, datetime
from burst.api import ClusterSpec, NotFound, ProviderContext, SimClock
from burst_aws import AwsProviderConfig

config = AwsProviderConfig.model_validate_json(sys.argv[1])
ctx = ProviderContext(clock=SimClock(datetime(2026, 11, 25, tzinfo=UTC)), owner="inst-a")
provider = config.build("aws", ctx)
spec = ClusterSpec(cluster_id=sys.argv[3], provider="aws", region=config.region, flavor="m5.2xlarge",
                   nodes=3, owner="inst-a")
for tick in range(10):
    try:
        status = provider.create_cluster(spec) if sys.argv[2] == "create" else provider.delete_cluster(spec.cluster_id)
    except NotFound:
        break
    print(tick, status.status, flush=True)
    if status.status == "READY":
        break
print("finished", flush=True)
"""


def run_child_until_held(fake: FakeAws, mode: str) -> str:
    """Start a burst process, wait until its held call reached AWS, SIGKILL it; its stdout."""
    cfg = config(fake.url).model_dump_json()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, cfg, mode, CID],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),  # the conftest's AWS_* variables: the standard chain
    )
    try:
        if not fake.held.wait(timeout=30):
            _out, err = child.communicate(timeout=5) if child.poll() is not None else (b"", b"")
            pytest.fail(f"the child never reached the held call: {err.decode()[-2000:]}")
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        fake.release()
    assert child.returncode == -signal.SIGKILL
    assert b"finished" not in out
    return out.decode()


def clusters(fake: FakeAws) -> Any:
    client = boto3.client("eks", region_name=REGION, endpoint_url=fake.url)
    return client.list_clusters()["clusters"], client


@pytest.mark.parametrize("held", ["CreateCluster", "CreateNodegroup"])
def test_killed_mid_create_then_a_fresh_process_finishes_with_one_cluster(
    held: str, make_provider: ProviderFactory, fake: FakeAws
) -> None:
    fake.hold(held)
    run_child_until_held(fake, "create")
    assert len(fake.seen(held)) == 1  # the child's call reached AWS

    provider = make_provider()  # "restart": a new process would build exactly this
    statuses = [provider.create_cluster(spec(nodes=3)).status for _ in range(3)]
    assert statuses[-1] is CloudStatus.READY

    names, client = clusters(fake)
    assert names == [CID]
    assert client.list_nodegroups(clusterName=CID)["nodegroups"] == [NODEGROUP]
    # No second create of what the killed process had already asked for.
    assert len(fake.seen("CreateCluster")) == 1
    assert len(fake.seen("CreateNodegroup")) == 1


def test_killed_mid_delete_then_a_fresh_process_finishes_deleting(
    make_provider: ProviderFactory, fake: FakeAws
) -> None:
    provider = make_provider()
    for _ in range(3):
        provider.create_cluster(spec(nodes=3))
    fake.lag(deleting=1)
    fake.hold("DeleteNodegroup")
    run_child_until_held(fake, "delete")

    fresh = make_provider()
    with pytest.raises(NotFound):
        for _ in range(6):
            fresh.delete_cluster(CID)
    names, _ = clusters(fake)
    assert names == []
    assert len(fake.seen("DeleteNodegroup")) == 1
    assert len(fake.seen("DeleteCluster")) == 1
