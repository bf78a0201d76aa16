"""The CCE provider driven through the real openstacksdk + otcextensions against a local Keystone
+ CCE v3 server (see conftest.py).  Assertions are on the requests the SDK actually sent."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
import yaml
from burst_tsystems import DELETE_FLAGS, POOL_NAME, TSystemsProvider, TSystemsProviderConfig

from burst.api import (
    AuthFailed,
    CapacityUnavailable,
    CloudStatus,
    ClusterSpec,
    NotFound,
    Provider,
    ProviderError,
    ProvisioningFailed,
    QuotaExceeded,
    Throttled,
)
from burst.registry import config_class

BASE = {
    "kind": "tsystems",
    "cloud": "burst-test",
    "region": "eu-de",
    "vpc_id": "vpc-1",
    "subnet_id": "net-1",
    "keypair": "burst-key",
}


def make(ctx: Any, **extra: Any) -> TSystemsProvider:
    return TSystemsProviderConfig.model_validate({**BASE, **extra}).build("otc", ctx)


def spec(cid: str = "burst-c1", nodes: int = 3, owner: str = "cern-burst") -> ClusterSpec:
    return ClusterSpec(
        cluster_id=cid,
        provider="otc",
        region="eu-de",
        flavor="s3.2xlarge.4",
        nodes=nodes,
        owner=owner,
        campaign="moriond",
    )


def create_until_ready(p: TSystemsProvider, s: ClusterSpec, limit: int = 20) -> list[CloudStatus]:
    seen = []
    for _ in range(limit):
        cc = p.create_cluster(s)
        seen.append(cc.status)
        if cc.status is CloudStatus.READY:
            return seen
    raise AssertionError(f"not READY after {limit} calls: {seen}")


def test_entry_point_and_protocol(ctx: Any) -> None:
    assert config_class("burst.providers", "tsystems") is TSystemsProviderConfig
    p = make(ctx)
    assert isinstance(p, Provider)


def test_build_does_no_io(cce: Any, ctx: Any) -> None:
    make(ctx)
    assert cce.requests == []


def test_lifecycle_across_polls(cce: Any, ctx: Any) -> None:
    p = make(ctx)
    s = spec()
    seen = create_until_ready(p, s)
    assert seen[0] is CloudStatus.CREATING and seen.count(CloudStatus.CREATING) >= 3

    # exactly one cluster and one pool were asked for, with the documented bodies
    (post,) = cce.sent("POST", r"/clusters$")
    body = post.body
    assert body["kind"] == "Cluster" and body["metadata"]["name"] == "burst-c1"
    assert body["spec"]["hostNetwork"] == {"vpc": "vpc-1", "subnet": "net-1"}
    assert body["spec"]["flavor"] == "cce.s1.small" and body["spec"]["version"] == "v1.29"
    tags = {t["key"]: t["value"] for t in body["spec"]["clusterTags"]}
    assert tags == {"burst.owner": "cern-burst", "burst.cluster": "burst-c1", "burst.campaign": "moriond"}
    (pool_post,) = cce.sent("POST", r"/nodepools$")
    pspec = pool_post.body["spec"]
    assert pool_post.body["metadata"]["name"] == POOL_NAME
    assert pspec["initialNodeCount"] == 3
    tmpl = pspec["nodeTemplate"]
    assert tmpl["flavor"] == "s3.2xlarge.4" and tmpl["az"] == "eu-de-01" and tmpl["login"] == {"sshKey": "burst-key"}
    assert tmpl["k8sTags"]["burst.cluster"] == "burst-c1"
    assert {t["key"]: t["value"] for t in tmpl["userTags"]}["burst.owner"] == "cern-burst"
    # every request carried the Keystone token and went to the project-scoped CCE path
    for r in cce.sent(path="^/cce/"):
        assert r.path.startswith(f"/cce/api/v3/projects/{cce.project_id}/")
        assert r.headers["x-auth-token"] in cce.tokens

    got = p.get_cluster("burst-c1")
    assert (got.status, got.nodes, got.desired_nodes, got.flavor) == (CloudStatus.READY, 3, 3, "s3.2xlarge.4")
    assert got.tags["burst.owner"] == "cern-burst"

    # resize: PUT on the pool with the new count, RESIZING, then READY with 5 nodes
    r = p.resize("burst-c1", 5)
    assert r.status is CloudStatus.RESIZING and r.desired_nodes == 5
    (put,) = cce.sent("PUT", r"/nodepools/")
    assert put.body["spec"]["initialNodeCount"] == 5 and put.body["spec"]["nodeTemplate"]["flavor"] == "s3.2xlarge.4"
    statuses = [p.get_cluster("burst-c1").status for _ in range(4)]
    assert statuses[-1] is CloudStatus.READY and CloudStatus.RESIZING in statuses
    assert p.get_cluster("burst-c1").nodes == 5
    # asking for the current size sends nothing
    before = len(cce.sent("PUT"))
    assert p.resize("burst-c1", 5).status is CloudStatus.READY
    assert len(cce.sent("PUT")) == before

    # delete: node pool first, then the cluster with every delete flag; NotFound when gone
    d = p.delete_cluster("burst-c1")
    assert d.status is CloudStatus.DELETING
    assert len(cce.sent("DELETE", r"/nodepools/")) == 1 and cce.sent("DELETE", r"/clusters/[^/]+$") == []
    steps = []
    for _ in range(10):
        try:
            steps.append(p.delete_cluster("burst-c1").status)
        except NotFound:
            break
    else:
        raise AssertionError("delete never finished")
    assert set(steps) == {CloudStatus.DELETING}
    (cdel,) = cce.sent("DELETE", r"/clusters/[^/]+$")
    assert {k: v[0] for k, v in cdel.query.items()} == DELETE_FLAGS
    assert cdel.param("delete_evs") == "true" and cdel.param("delete_efs") == "true"
    assert cce.clusters == {}
    with pytest.raises(NotFound):
        p.get_cluster("burst-c1")


def test_create_is_idempotent_and_list_filters_by_owner(cce: Any, ctx: Any) -> None:
    p = make(ctx)
    create_until_ready(p, spec("burst-a"))
    for _ in range(3):
        assert p.create_cluster(spec("burst-a")).status is CloudStatus.READY
    assert len(cce.sent("POST", r"/clusters$")) == 1 and len(cce.sent("POST", r"/nodepools$")) == 1

    p.create_cluster(spec("burst-b", owner="other-site"))
    listed = {c.cluster_id for c in p.list_clusters("cern-burst")}
    assert listed == {"burst-a"}
    assert {c.cluster_id for c in p.list_clusters("other-site")} == {"burst-b"}
    assert p.list_clusters("nobody") == []


def test_same_name_without_tags_is_never_adopted(cce: Any, ctx: Any) -> None:
    p = make(ctx)
    p.create_cluster(spec("burst-x", owner="someone-else"))
    with pytest.raises(ProviderError, match="without burst's tags"):
        p.create_cluster(spec("burst-x"))
    with pytest.raises(ProviderError):
        p.delete_cluster("burst-x")
    assert len(cce.sent("POST", r"/clusters$")) == 1 and cce.sent("DELETE") == []


def test_failed_cluster_reports_reason(cce: Any, ctx: Any) -> None:
    cce.fail_next_cluster = "subnet has no free IP addresses"
    p = make(ctx)
    p.create_cluster(spec())
    with pytest.raises(ProvisioningFailed, match="no free IP"):
        for _ in range(5):
            p.create_cluster(spec())
    got = p.get_cluster("burst-c1")
    assert got.status is CloudStatus.FAILED and "no free IP" in got.message


def test_failure_reason_is_read_from_the_job(cce: Any, ctx: Any) -> None:
    cce.fail_next_cluster, cce.reason_in_job_only = "etcd failed to start", True
    p = make(ctx)
    p.create_cluster(spec())
    with pytest.raises(ProvisioningFailed, match="etcd failed to start"):
        for _ in range(5):
            p.create_cluster(spec())
    (job_get,) = cce.sent("GET", r"/jobs/")
    assert job_get.path.endswith(next(iter(cce.jobs)))


def test_sold_out_node_pool_fails_provisioning(cce: Any, ctx: Any) -> None:
    cce.sold_out = True
    p = make(ctx)
    with pytest.raises(ProvisioningFailed, match="SoldOut"):
        for _ in range(10):
            p.create_cluster(spec())
    assert p.get_cluster("burst-c1").status is CloudStatus.FAILED


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (403, {"error_code": "CCE.01403004", "error_msg": "Insufficient quota for ECS instances"}, {}, QuotaExceeded),
        (
            400,
            {"error_code": "CCE.01400009", "error_msg": "Flavor s3.2xlarge.4 is sold out in eu-de-01"},
            {},
            CapacityUnavailable,
        ),
        (
            429,
            {"error_code": "APIGW.0308", "error_msg": "The throttling threshold has been reached"},
            {"Retry-After": "7"},
            Throttled,
        ),
        (401, {"error_code": "APIGW.0301", "error_msg": "Incorrect IAM authentication information"}, {}, AuthFailed),
        (
            403,
            {"error_code": "CCE.01403001", "error_msg": "Forbidden: no permission cce:cluster:create"},
            {},
            AuthFailed,
        ),
        (404, {"error_code": "CCE.01404001", "error_msg": "subnet net-1 not found"}, {}, ProviderError),
        (500, {"error_code": "CCE.01500001", "error_msg": "internal error"}, {}, ProviderError),
    ],
)
def test_error_mapping_on_create(cce: Any, ctx: Any, status: int, body: Any, headers: Any, expected: Any) -> None:
    p = make(ctx)
    # keystoneauth answers a 401 by re-authenticating and retrying once: keep the fault up
    cce.inject("POST", r"/clusters$", status, body, headers=headers, times=5)
    with pytest.raises(expected) as info:
        p.create_cluster(spec())
    assert type(info.value) is expected
    assert "creating CCE cluster burst-c1" in str(info.value)
    assert body["error_msg"] in str(info.value)
    if expected is Throttled:
        assert info.value.retry_after == 7.0
    assert cce.clusters == {}


def test_quota_from_cce_on_node_pool(cce: Any, ctx: Any) -> None:
    p = make(ctx)
    cce.inject(
        "POST", r"/nodepools$", 403, {"error_code": "CCE.01403004", "error_msg": "Quota exceeded: cores"}, times=1
    )
    p.create_cluster(spec())
    with pytest.raises(QuotaExceeded):
        for _ in range(5):
            p.create_cluster(spec())


def test_bad_credentials_are_auth_failed(cce: Any, ctx: Any) -> None:
    cce.reject_auth = True
    p = make(ctx)
    with pytest.raises(AuthFailed):
        p.list_clusters("cern-burst")
    with pytest.raises(AuthFailed):
        make(ctx, cloud="no-such-cloud").get_cluster("x")


def test_get_and_delete_of_missing_cluster_is_not_found(cce: Any, ctx: Any) -> None:
    p = make(ctx)
    cce.inject("GET", r"/clusters$", 404, {"error_code": "CCE.01404001", "error_msg": "Resource not found"})
    with pytest.raises(NotFound, match="Resource not found"):
        p.list_clusters("cern-burst")
    with pytest.raises(NotFound):
        p.get_cluster("burst-none")
    with pytest.raises(NotFound):
        p.delete_cluster("burst-none")
    with pytest.raises(NotFound):
        p.resize("burst-none", 2)


def test_credentials_keep_only_verified_contexts(cce: Any, ctx: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    p = make(ctx, cert_days=7)
    create_until_ready(p, spec())
    text = p.credentials("burst-c1")
    doc = yaml.safe_load(text)
    (post,) = cce.sent("POST", r"/clustercert$")
    assert post.body == {"duration": 7}
    assert doc["current-context"] == "externalTLSVerify"
    assert {c["name"] for c in doc["clusters"]} == {"internalCluster", "externalClusterTLSVerify"}
    assert all("insecure-skip-tls-verify" not in c["cluster"] for c in doc["clusters"])
    assert doc["users"][0]["user"]["client-key-data"]
    # secrets never reach the log
    assert doc["users"][0]["user"]["client-key-data"] not in caplog.text
    assert cce.password not in caplog.text


def test_quota(cce: Any, ctx: Any) -> None:
    cce.cluster_quota, cce.cores_limit, cce.cores_used = 5, 256, 64
    p = make(ctx)
    p.create_cluster(spec())
    q = p.quota()
    assert (q.max_clusters, q.used_clusters, q.max_cores, q.used_cores) == (5, 1, 256, 64)
    assert cce.sent("GET", r"/quotas$") and cce.sent("GET", r"^/compute/v2.1/limits$")


def test_offerings_and_price_override(ctx: Any) -> None:
    p = make(ctx)
    offs = {o.flavor: o for o in p.offerings()}
    assert set(offs) == {"s3.xlarge.4", "s3.2xlarge.4"}
    o = offs["s3.2xlarge.4"]
    assert (o.cpus, o.memory_mb, o.currency, o.provider, o.region) == (8, 32768, "EUR", "otc", "eu-de")
    assert o.control_plane_per_hour == 0.1 and o.max_nodes_per_cluster == 50
    assert 500 <= o.latency.median_s(10) <= 900
    q = make(ctx, flavor="s3.xlarge.4", prices={"s3.xlarge.4": {"price_per_hour": 0.123}}, cluster_fee_per_hour=0.0)
    (only,) = q.offerings()
    assert (only.flavor, only.price_per_hour, only.control_plane_per_hour) == ("s3.xlarge.4", 0.123, 0.0)


def test_config_rejects_unknown_keys_and_needs_network() -> None:
    with pytest.raises(ValueError, match="password"):
        TSystemsProviderConfig.model_validate({**BASE, "password": "x"})
    for key in ("vpc_id", "subnet_id", "keypair"):
        with pytest.raises(ValueError, match=key):
            TSystemsProviderConfig.model_validate({k: v for k, v in BASE.items() if k != key})


CHILD = textwrap.dedent(
    """
    from datetime import UTC, datetime
    from burst.api import ClusterSpec, ProviderContext, SimClock
    from burst_tsystems import TSystemsProviderConfig
    cfg = TSystemsProviderConfig.model_validate(
        {"kind": "tsystems", "cloud": "burst-test", "vpc_id": "vpc-1", "subnet_id": "net-1", "keypair": "k"})
    p = cfg.build("otc", ProviderContext(clock=SimClock(datetime(2026, 11, 25, tzinfo=UTC)), owner="cern-burst"))
    p.create_cluster(ClusterSpec("burst-crash", "otc", "eu-de", "s3.2xlarge.4", 2, "cern-burst"))
    print("finished")
    """
)


def test_crash_mid_create_then_retry_makes_exactly_one_cluster(cce: Any, ctx: Any) -> None:
    """The child's POST reaches CCE, which creates the cluster, but the answer is held back until
    the child has been SIGKILLed.  A fresh provider then finds the cluster by name."""
    cce.delay("POST", r"/clusters$", 30)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not cce.clusters and time.monotonic() < deadline:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            time.sleep(0.05)
        assert cce.clusters, "child never reached CCE"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    cce.delays.clear()

    p = make(ctx)
    s = ClusterSpec("burst-crash", "otc", "eu-de", "s3.2xlarge.4", 2, "cern-burst")
    create_until_ready(p, s)
    assert len(cce.clusters) == 1
    assert len(cce.sent("POST", r"/clusters$")) == 1
    assert len(cce.sent("POST", r"/nodepools$")) == 1


def test_unreachable_cloud_is_a_retryable_provider_error(cce: Any, ctx: Any) -> None:
    p = make(ctx)
    p.list_clusters("cern-burst")
    cce.stop()
    with pytest.raises(ProviderError) as info:
        p.get_cluster("burst-c1")
    assert type(info.value) is ProviderError and info.value.retryable


def test_malformed_answer_is_a_provider_error(cce: Any, ctx: Any) -> None:
    p = make(ctx)
    cce.inject("GET", r"/quotas$", 200, {"quotas": [{"quotaKey": "cluster"}]})
    with pytest.raises(ProviderError, match="unexpected answer from CCE"):
        p.quota()


def test_burst_providers_lists_the_offerings(cce: Any, tmp_path: Any) -> None:
    """The CLI, as a subprocess, builds the provider from a burst YAML and reaches CCE for quotas."""
    import json

    cfg = tmp_path / "burst.yaml"
    cfg.write_text(
        "onprem: {cores: 100}\n"
        "providers:\n"
        "  otc: {kind: tsystems, cloud: burst-test, vpc_id: v, subnet_id: s, keypair: k,\n"
        "        prices: {s3.2xlarge.4: {price_per_hour: 0.5}}}\n"
    )
    burst = os.path.join(os.path.dirname(sys.executable), "burst")
    out = subprocess.run([burst, "providers", "--config", str(cfg), "--output", "json"], env=dict(os.environ),
                         capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    rows = {r["flavor"]: r for r in json.loads(out.stdout)}
    assert set(rows) == {"s3.xlarge.4", "s3.2xlarge.4"}
    assert rows["s3.2xlarge.4"]["price_per_hour"] == 0.5 and rows["s3.2xlarge.4"]["currency"] == "EUR"
    assert rows["s3.xlarge.4"]["quota_cores_left"] == cce.cores_limit - cce.cores_used
    assert cce.sent("GET", r"/quotas$")
