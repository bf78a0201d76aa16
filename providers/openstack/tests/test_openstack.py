"""The Magnum provider driven through the real openstacksdk against a local Keystone + Magnum v1
server (see conftest.py).  Assertions are on the requests the SDK actually sent."""

from __future__ import annotations

import base64
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
from burst_openstack import OpenStackProvider, OpenStackProviderConfig, cloud_status
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

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

BASE = {"kind": "openstack", "cloud": "burst-test", "region": "cern", "cluster_template": "kubernetes-1.29",
        "keypair": "burst-key"}  # fmt: skip


def make(ctx: Any, **extra: Any) -> OpenStackProvider:
    return OpenStackProviderConfig.model_validate({**BASE, **extra}).build("cern", ctx)


def spec(cid: str = "burst-m1", nodes: int = 3, owner: str = "cern-burst") -> ClusterSpec:
    return ClusterSpec(cluster_id=cid, provider="cern", region="cern", flavor="m2.xlarge", nodes=nodes, owner=owner,
                       campaign="moriond")  # fmt: skip


def create_until_ready(p: OpenStackProvider, s: ClusterSpec, limit: int = 20) -> list[CloudStatus]:
    seen = []
    for _ in range(limit):
        cc = p.create_cluster(s)
        seen.append(cc.status)
        if cc.status is CloudStatus.READY:
            return seen
    raise AssertionError(f"not READY after {limit} calls: {seen}")


def test_entry_point_and_protocol(ctx: Any) -> None:
    assert config_class("burst.providers", "openstack") is OpenStackProviderConfig
    assert isinstance(make(ctx), Provider)


def test_build_does_no_io(magnum: Any, ctx: Any) -> None:
    make(ctx)
    assert magnum.requests == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("CREATE_IN_PROGRESS", CloudStatus.CREATING),
        ("CREATE_COMPLETE", CloudStatus.READY),
        ("CREATE_FAILED", CloudStatus.FAILED),
        ("UPDATE_IN_PROGRESS", CloudStatus.RESIZING),
        ("UPDATE_COMPLETE", CloudStatus.READY),
        ("UPDATE_FAILED", CloudStatus.FAILED),
        ("DELETE_IN_PROGRESS", CloudStatus.DELETING),
        ("DELETE_FAILED", CloudStatus.FAILED),
        ("ROLLBACK_IN_PROGRESS", CloudStatus.RESIZING),
        ("ROLLBACK_COMPLETE", CloudStatus.READY),
        ("SOMETHING_NEW", CloudStatus.FAILED),
    ],
)
def test_status_mapping(status: str, expected: CloudStatus) -> None:
    assert cloud_status(status) is expected


def test_lifecycle_across_polls(magnum: Any, ctx: Any) -> None:
    p = make(ctx)
    seen = create_until_ready(p, spec())
    assert seen[0] is CloudStatus.CREATING and seen.count(CloudStatus.CREATING) >= 2

    (post,) = magnum.sent("POST", r"/magnum/v1/clusters$")
    body = post.body
    tpl_id = next(iter(magnum.templates))
    assert body["name"] == "burst-m1" and body["cluster_template_id"] == tpl_id
    assert (body["node_count"], body["master_count"], body["flavor_id"], body["keypair"]) == (
        3,
        1,
        "m2.xlarge",
        "burst-key",
    )
    # ownership labels merged over the template's (Magnum would otherwise drop kube_tag)
    assert body["labels"] == {"kube_tag": "v1.29.1", "cern_enabled": "true", "burst.owner": "cern-burst",
                              "burst.cluster": "burst-m1", "burst.campaign": "moriond"}  # fmt: skip
    for r in magnum.sent(path="^/magnum/"):
        assert r.headers["x-auth-token"] in magnum.tokens

    got = p.get_cluster("burst-m1")
    assert (got.status, got.nodes, got.desired_nodes, got.flavor) == (CloudStatus.READY, 3, 3, "m2.xlarge")
    assert got.tags["burst.cluster"] == "burst-m1"

    r = p.resize("burst-m1", 6)
    assert r.status is CloudStatus.RESIZING and r.desired_nodes == 6
    (patch,) = magnum.sent("PATCH")
    assert patch.body == [{"op": "replace", "path": "/node_count", "value": 6}]
    statuses = [p.get_cluster("burst-m1").status for _ in range(3)]
    assert statuses[0] is CloudStatus.RESIZING and statuses[-1] is CloudStatus.READY
    assert p.get_cluster("burst-m1").nodes == 6
    assert p.resize("burst-m1", 6).status is CloudStatus.READY
    assert len(magnum.sent("PATCH")) == 1

    assert p.delete_cluster("burst-m1").status is CloudStatus.DELETING
    steps = []
    for _ in range(10):
        try:
            steps.append(p.delete_cluster("burst-m1").status)
        except NotFound:
            break
    else:
        raise AssertionError("delete never finished")
    assert set(steps) == {CloudStatus.DELETING}
    assert len(magnum.sent("DELETE")) == 1  # one request; later calls only read
    assert magnum.clusters == {}
    with pytest.raises(NotFound):
        p.get_cluster("burst-m1")


def test_resize_waits_while_stack_busy(magnum: Any, ctx: Any) -> None:
    p = make(ctx)
    p.create_cluster(spec())
    r = p.resize("burst-m1", 5)
    assert r.desired_nodes == 3 and "waits" in r.message
    assert magnum.sent("PATCH") == []


def test_create_is_idempotent_and_list_filters_by_owner(magnum: Any, ctx: Any) -> None:
    p = make(ctx)
    create_until_ready(p, spec("burst-a"))
    for _ in range(3):
        assert p.create_cluster(spec("burst-a")).status is CloudStatus.READY
    assert len(magnum.sent("POST", r"/clusters$")) == 1
    p.create_cluster(spec("burst-b", owner="other-site"))
    assert {c.cluster_id for c in p.list_clusters("cern-burst")} == {"burst-a"}
    magnum.list_has_labels = False  # older Magnum: the provider reads each cluster's labels
    assert {c.cluster_id for c in p.list_clusters("other-site")} == {"burst-b"}
    assert p.list_clusters("nobody") == []


def test_same_name_without_labels_is_never_adopted(magnum: Any, ctx: Any) -> None:
    p = make(ctx)
    p.create_cluster(spec("burst-x", owner="someone-else"))
    with pytest.raises(ProviderError, match="without burst's labels"):
        p.create_cluster(spec("burst-x"))
    with pytest.raises(ProviderError):
        p.delete_cluster("burst-x")
    assert len(magnum.sent("POST", r"/clusters$")) == 1 and magnum.sent("DELETE") == []


def test_failed_stack_reports_status_reason(magnum: Any, ctx: Any) -> None:
    magnum.fail_next = "Resource CREATE failed: ResourceInError: resources.kube_minions: No valid host was found."
    p = make(ctx)
    p.create_cluster(spec())
    with pytest.raises(ProvisioningFailed, match="No valid host"):
        for _ in range(5):
            p.create_cluster(spec())
    got = p.get_cluster("burst-m1")
    assert got.status is CloudStatus.FAILED and "CREATE_FAILED" in got.message and "No valid host" in got.message


def _magnum_error(status: int, detail: str) -> dict[str, Any]:
    return {"errors": [{"request_id": "", "code": "client", "status": status, "title": detail, "detail": detail,
                        "links": []}]}  # fmt: skip


@pytest.mark.parametrize(
    ("status", "detail", "expected"),
    [
        (403, "Resource Limit Exceeded: You have reached the maximum clusters per project, 20.", QuotaExceeded),
        (400, "Quota exceeded for cores: Requested 64, but already used 960 of 1000 cores", QuotaExceeded),
        (400, "No valid host was found. There are not enough hosts available.", CapacityUnavailable),
        (429, "Rate limit exceeded, retry later", Throttled),
        (401, "The request you have made requires authentication.", AuthFailed),
        (403, "Policy doesn't allow cluster:create to be performed.", AuthFailed),
        (500, "Internal Server Error", ProviderError),
        (404, "Keypair burst-key could not be found.", ProviderError),
    ],
)
def test_error_mapping_on_create(magnum: Any, ctx: Any, status: int, detail: str, expected: Any) -> None:
    p = make(ctx)
    # keystoneauth answers a 401 by re-authenticating and retrying once: keep the fault up
    magnum.inject("POST", r"/magnum/v1/clusters$", status, _magnum_error(status, detail),
                  headers={"Retry-After": "11"}, times=5)  # fmt: skip
    with pytest.raises(expected) as info:
        p.create_cluster(spec())
    assert type(info.value) is expected
    assert "creating Magnum cluster burst-m1" in str(info.value) and detail in str(info.value)
    if expected is Throttled:
        assert info.value.retry_after == 11.0
    assert magnum.clusters == {}


def test_not_found_on_reads(magnum: Any, ctx: Any) -> None:
    p = make(ctx)
    for call in (lambda: p.get_cluster("burst-none"), lambda: p.delete_cluster("burst-none"),
                 lambda: p.resize("burst-none", 2), lambda: p.credentials("burst-none")):  # fmt: skip
        with pytest.raises(NotFound):
            call()


def test_ambiguous_name_is_an_error(magnum: Any, ctx: Any) -> None:
    p = make(ctx)
    p.create_cluster(spec("burst-dup"))
    magnum.inject(
        "GET",
        r"/clusters/burst-dup$",
        409,
        _magnum_error(409, "Multiple clusters exist with same name. Please use the cluster uuid instead."),
    )
    with pytest.raises(ProviderError, match="Multiple clusters") as info:
        p.create_cluster(spec("burst-dup"))
    assert type(info.value) is ProviderError
    assert len(magnum.sent("POST", r"/clusters$")) == 1


def test_bad_credentials_are_auth_failed(magnum: Any, ctx: Any) -> None:
    magnum.reject_auth = True
    with pytest.raises(AuthFailed):
        make(ctx).list_clusters("cern-burst")
    with pytest.raises(AuthFailed):
        make(ctx, cloud="no-such-cloud").get_cluster("x")


def test_credentials_sign_a_csr_and_embed_the_ca(magnum: Any, ctx: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    p = make(ctx)
    create_until_ready(p, spec())
    text = p.credentials("burst-m1")
    doc = yaml.safe_load(text)
    (sign,) = magnum.sent("POST", r"/magnum/v1/certificates$")
    cluster_uuid = next(iter(magnum.clusters))
    assert sign.body["cluster_uuid"] == cluster_uuid
    csr = x509.load_pem_x509_csr(sign.body["csr"].encode())
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "admin"
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    assert magnum.sent("GET", rf"/magnum/v1/certificates/{cluster_uuid}$")

    (cl,) = doc["clusters"]
    assert cl["cluster"]["server"] == "https://127.0.184.10:6443"
    assert base64.b64decode(cl["cluster"]["certificate-authority-data"]).decode() == magnum.ca.pem
    user = doc["users"][0]["user"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    assert cert.issuer == magnum.ca.cert.subject
    cert.verify_directly_issued_by(magnum.ca.cert)
    key = serialization.load_pem_private_key(base64.b64decode(user["client-key-data"]), password=None)
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(serialization.Encoding.PEM, pub) == cert.public_key().public_bytes(
        serialization.Encoding.PEM, pub)  # fmt: skip
    assert doc["current-context"] == "default"
    # the private key and the password never reach the log
    assert user["client-key-data"] not in caplog.text
    assert base64.b64decode(user["client-key-data"]).decode().splitlines()[1] not in caplog.text
    assert magnum.password not in caplog.text


def test_credentials_before_api_address_is_an_error(magnum: Any, ctx: Any) -> None:
    p = make(ctx)
    p.create_cluster(spec())
    with pytest.raises(ProviderError, match="no API address"):
        p.credentials("burst-m1")


def test_quota(magnum: Any, ctx: Any) -> None:
    magnum.cluster_quota, magnum.cores_limit, magnum.cores_used = 7, 1000, 96
    p = make(ctx)
    p.create_cluster(spec())
    q = p.quota()
    assert (q.max_clusters, q.used_clusters, q.max_cores, q.used_cores) == (7, 1, 1000, 96)
    assert magnum.sent("GET", rf"/magnum/v1/quotas/{magnum.project_id}/Cluster$")
    magnum.inject("GET", r"/quotas/", 403, _magnum_error(403, "Policy doesn't allow quota:get to be performed."))
    assert p.quota().max_clusters is None


def test_offerings_and_price_override(ctx: Any) -> None:
    p = make(ctx)
    offs = {o.flavor: o for o in p.offerings()}
    assert {"m2.large", "m2.xlarge"} <= set(offs)
    o = offs["m2.xlarge"]
    assert (o.cpus, o.price_per_hour, o.control_plane_per_hour, o.currency) == (8, 0.0, 0.0, "EUR")
    # FOSDEM 2017: 2 nodes 2.5 min, 128 nodes 5.5 min, 1 000 nodes 23 min
    assert abs(o.latency.median_s(2) - 150) < 20
    assert abs(o.latency.median_s(128) - 330) < 30
    assert abs(o.latency.median_s(1000) - 1380) < 60
    q = make(ctx, flavors=["m2.xlarge", "g1.xlarge"], prices={"m2.xlarge": {"price_per_hour": 0.05}},
             flavor_sizes={"g1.xlarge": {"vcpus": 16, "memory_mib": 65536, "gpus": 1}})  # fmt: skip
    got = {o.flavor: o for o in q.offerings()}
    assert set(got) == {"m2.xlarge", "g1.xlarge"}
    assert got["m2.xlarge"].price_per_hour == 0.05 and got["g1.xlarge"].gpus == 1


def test_config_rejects_unknown_keys_and_needs_template() -> None:
    with pytest.raises(ValueError, match="password"):
        OpenStackProviderConfig.model_validate({**BASE, "password": "x"})
    with pytest.raises(ValueError, match="cluster_template"):
        OpenStackProviderConfig.model_validate({"kind": "openstack"})


CHILD = textwrap.dedent(
    """
    from datetime import UTC, datetime
    from burst.api import ClusterSpec, ProviderContext, SimClock
    from burst_openstack import OpenStackProviderConfig
    cfg = OpenStackProviderConfig.model_validate(
        {"kind": "openstack", "cloud": "burst-test", "region": "cern", "cluster_template": "kubernetes-1.29"})
    p = cfg.build("cern", ProviderContext(clock=SimClock(datetime(2026, 11, 25, tzinfo=UTC)), owner="cern-burst"))
    p.create_cluster(ClusterSpec("burst-crash", "cern", "cern", "m2.xlarge", 2, "cern-burst"))
    print("finished")
    """
)


def test_crash_mid_create_then_retry_makes_exactly_one_cluster(magnum: Any, ctx: Any) -> None:
    """Magnum accepts the child's POST (the cluster exists) but the 202 is held back until the child
    is SIGKILLed; a fresh provider finds the cluster by name instead of creating a second one."""
    magnum.delay("POST", r"/magnum/v1/clusters$", 30)
    child = subprocess.Popen([sys.executable, "-c", CHILD], env=dict(os.environ), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not magnum.clusters and time.monotonic() < deadline:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            time.sleep(0.05)
        assert magnum.clusters, "child never reached Magnum"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    magnum.delays.clear()

    p = make(ctx)
    create_until_ready(p, ClusterSpec("burst-crash", "cern", "cern", "m2.xlarge", 2, "cern-burst"))
    assert len(magnum.clusters) == 1
    assert len(magnum.sent("POST", r"/magnum/v1/clusters$")) == 1


def test_unreachable_cloud_is_a_retryable_provider_error(magnum: Any, ctx: Any) -> None:
    p = make(ctx)
    p.list_clusters("cern-burst")
    magnum.stop()
    with pytest.raises(ProviderError) as info:
        p.get_cluster("burst-m1")
    assert type(info.value) is ProviderError and info.value.retryable


def test_works_when_otcextensions_replaced_the_sdks_error_raiser(
    magnum: Any, ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``register_otc_extensions`` (the tsystems provider, same process) swaps
    ``openstack.exceptions.raise_from_response`` for one raising a plain HttpException on 403."""
    import openstack.exceptions
    from otcextensions.common import exc

    monkeypatch.setattr(openstack.exceptions, "raise_from_response", exc.raise_from_response)
    p = make(ctx)
    with pytest.raises(NotFound):
        p.get_cluster("burst-none")
    create_until_ready(p, spec())
    magnum.inject("GET", r"/quotas/", 403, _magnum_error(403, "Policy doesn't allow quota:get to be performed."))
    assert p.quota().max_clusters is None
    magnum.inject("POST", r"/clusters$", 404, _magnum_error(404, "ClusterTemplate x could not be found."))
    with pytest.raises(ProviderError) as info:
        p.create_cluster(spec("burst-other"))
    assert type(info.value) is ProviderError
    magnum.inject("GET", r"/clusters/burst-m1$", 403, _magnum_error(403, "Policy doesn't allow cluster:get."))
    with pytest.raises(AuthFailed):
        p.get_cluster("burst-m1")


def test_burst_providers_lists_the_offerings(magnum: Any, tmp_path: Any) -> None:
    """The CLI, as a subprocess, builds the provider from a burst YAML and reaches Magnum/Nova."""
    import json

    cfg = tmp_path / "burst.yaml"
    cfg.write_text(
        "onprem: {cores: 100}\n"
        "providers:\n"
        "  cern: {kind: openstack, cloud: burst-test, region: cern, cluster_template: kubernetes-1.29,\n"
        "         flavor: m2.xlarge}\n"
    )
    magnum.cores_used = 100
    burst = os.path.join(os.path.dirname(sys.executable), "burst")
    out = subprocess.run([burst, "providers", "--config", str(cfg), "--output", "json"], env=dict(os.environ),
                         capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    (row,) = json.loads(out.stdout)
    assert (row["provider"], row["flavor"], row["cpus"], row["price_per_hour"]) == ("cern", "m2.xlarge", 8, 0.0)
    assert row["quota_cores_left"] == magnum.cores_limit - 100
    assert magnum.sent("GET", rf"/magnum/v1/quotas/{magnum.project_id}/Cluster$")


def test_delete_failed_is_retried_and_update_failed_is_reported(magnum: Any, ctx: Any) -> None:
    p = make(ctx)
    create_until_ready(p, spec())
    (uid,) = magnum.clusters
    magnum.clusters[uid]["status"] = "UPDATE_FAILED"
    magnum.clusters[uid]["status_reason"] = "Quota exceeded for instances: Requested 3, but already used 10 of 10"
    got = p.get_cluster("burst-m1")
    assert got.status is CloudStatus.FAILED and "Quota exceeded for instances" in got.message
    magnum.clusters[uid]["status"] = "DELETE_FAILED"
    assert p.delete_cluster("burst-m1").status is CloudStatus.DELETING
    assert len(magnum.sent("DELETE")) == 1
    magnum.clusters[uid]["status"] = "DELETE_FAILED"  # Heat gave up again: ask again
    p.delete_cluster("burst-m1")
    assert len(magnum.sent("DELETE")) == 2
