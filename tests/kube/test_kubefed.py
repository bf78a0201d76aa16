"""The kubefed federation against a fake host and a fake member API server."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from burst.api import Federation, FederationContext, FederationError, SimClock
from burst.federation.kubefed import KubefedConfig, KubefedFederation
from burst.registry import config_class
from burst.testing.kube_server import KubeApiServer
from tests.kube.conftest import api_client, record

KFC = ("core.kubefed.io/v1beta1", "kubefedclusters")
NS = "kube-federation-system"


def _fed(host: KubeApiServer, clock: SimClock, tmp_path: Path, **cfg: Any) -> KubefedFederation:
    (tmp_path / "host.kubeconfig").write_text(host.kubeconfig(name="condor-host"))
    config = KubefedConfig(host_kubeconfig="host.kubeconfig", host_context="condor-host", **cfg)
    return config.build(FederationContext(clock=clock, owner="cern-burst", config_dir=str(tmp_path)))


def _ready(host: KubeApiServer, cid: str, status: str = "True", **kw: str) -> None:
    host.set_condition(*KFC, cid, "Ready", status, namespace=NS, **kw)


def test_kind_is_registered_and_implements_the_contract(host: KubeApiServer, clock: SimClock, tmp_path: Path) -> None:
    assert config_class("burst.federations", "kubefed") is KubefedConfig
    fed: Federation = _fed(host, clock, tmp_path)
    assert isinstance(fed, Federation) and fed.name == "kubefed"


def test_join_creates_what_kubefedctl_join_creates(
    host: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(host, clock, tmp_path)
    rec = record("aws-burst-1")
    status = fed.join(rec, member.kubeconfig())
    assert not status.ready and "to report Ready" in status.message

    labels = {"burst.cluster": "aws-burst-1", "burst.owner": "cern-burst"}
    sa = member.get("v1", "serviceaccounts", "aws-burst-1-host", NS)
    assert labels.items() <= sa["metadata"]["labels"].items()
    role = member.get("rbac.authorization.k8s.io/v1", "clusterroles", "kubefed-controller-manager:aws-burst-1-host")
    assert role["rules"][0] == {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}
    binding = member.get(
        "rbac.authorization.k8s.io/v1", "clusterrolebindings", "kubefed-controller-manager:aws-burst-1-host"
    )
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "aws-burst-1-host", "namespace": NS}]
    token_secret = member.get("v1", "secrets", "aws-burst-1-host-token", NS)
    assert token_secret["type"] == "kubernetes.io/service-account-token"
    sent = [r for r in member.requests if r.method == "POST" and r.path.endswith("/secrets")]
    assert sent[0].body["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "aws-burst-1-host"}

    creds = host.get("v1", "secrets", "aws-burst-1-credentials", NS)
    assert creds["data"]["token"] == token_secret["data"]["token"]
    kfc = host.get(*KFC, "aws-burst-1", NS)
    assert kfc["spec"] == {
        "apiEndpoint": member.url,
        "caBundle": member.ca_data,
        "secretRef": {"name": "aws-burst-1-credentials"},
    }
    assert labels.items() <= kfc["metadata"]["labels"].items()
    # the stored credentials are what the KubeFed controller would use: they work on the member
    token = base64.b64decode(creds["data"]["token"]).decode()
    assert client.CoreV1Api(api_client(member, token=token)).list_node().items


def test_join_is_idempotent_and_ready_when_kubefed_says_so(
    host: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(host, clock, tmp_path)
    rec = record()
    fed.join(rec, member.kubeconfig())
    keys = (host.object_keys(), member.object_keys())
    assert not fed.join(rec, member.kubeconfig()).ready
    assert (host.object_keys(), member.object_keys()) == keys
    _ready(host, rec.cluster_id)
    status = fed.join(rec, member.kubeconfig())
    assert status.ready and "reports Ready" in status.message


def test_member_never_ready_stays_not_ready(
    host: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(host, clock, tmp_path)
    rec = record()
    fed.join(rec, member.kubeconfig())
    _ready(host, rec.cluster_id, "False", reason="ClusterNotReachable", message="cluster is not reachable")
    for _ in range(3):
        clock.advance(600)
        status = fed.join(rec, member.kubeconfig())
        assert not status.ready
    assert "ClusterNotReachable: cluster is not reachable" in status.message


def test_token_not_filled_yet_waits_and_touches_nothing_in_the_host(
    host: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    with KubeApiServer(clock=clock.now, auto_tokens=False) as slow:
        before = host.object_keys()
        status = _fed(host, clock, tmp_path).join(record(), slow.kubeconfig())
        assert not status.ready and "token controller" in status.message
        assert host.object_keys() == before


def test_drain_cordons_counts_running_pods_and_undrain_reverses(
    host: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(host, clock, tmp_path)
    rec = record()
    fed.join(rec, member.kubeconfig())
    _ready(host, rec.cluster_id)
    member.add_node("operator-cordoned", unschedulable=True)
    member.add_pod("job-a", phase="Running", node="node-1")
    member.add_pod("job-b", node="node-2")  # bound, starting: counts
    member.add_pod("queued")  # unbound, cannot start on a cordoned member: does not count
    member.add_pod("done", phase="Succeeded", node="node-1")
    member.add_pod("dns", namespace="kube-system", phase="Running", node="node-1")
    ds_pod = member.add_pod("startd-x", phase="Running", node="node-2")
    member.patch(
        "v1", "pods", "startd-x", {"metadata": {"ownerReferences": [{"kind": "DaemonSet", "name": "s"}]}}, "default"
    )
    assert ds_pod["metadata"]["name"] == "startd-x"

    # a fresh federation (as after a daemon restart) reaches the member through the host's secret
    fed = _fed(host, clock, tmp_path)
    assert fed.drain(rec) == 2
    kfc = host.get(*KFC, rec.cluster_id, NS)
    assert kfc["metadata"]["labels"]["burst.draining"] == "true"
    nodes = {n["metadata"]["name"]: n for n in member.objects("v1", "nodes")}
    assert all(n["spec"].get("unschedulable") for n in nodes.values())
    patches = len([r for r in member.requests if r.method == "PATCH"])
    assert fed.drain(rec) == 2
    assert len([r for r in member.requests if r.method == "PATCH"]) == patches  # idempotent: no writes

    member.set_pod_phase("default", "job-a", "Succeeded")
    member.set_pod_phase("default", "job-b", "Failed")
    assert fed.drain(rec) == 0

    fed.undrain(rec)
    assert "burst.draining" not in host.get(*KFC, rec.cluster_id, NS)["metadata"]["labels"]
    nodes = {n["metadata"]["name"]: n for n in member.objects("v1", "nodes")}
    assert not nodes["node-1"]["spec"].get("unschedulable") and not nodes["node-2"]["spec"].get("unschedulable")
    assert nodes["operator-cordoned"]["spec"]["unschedulable"] is True


def test_unjoin_deletes_exactly_what_join_created(
    host: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    before_host, before_member = host.object_keys(), member.object_keys()
    fed = _fed(host, clock, tmp_path)
    rec = record()
    fed.join(rec, member.kubeconfig())
    assert host.object_keys() - before_host == {
        ("v1", "secrets", NS, "aws-burst-1-credentials"),
        (*KFC, NS, "aws-burst-1"),
    }
    assert len(member.object_keys() - before_member) == 6  # namespace, its default SA, SA, token, role, binding
    _fed(host, clock, tmp_path).unjoin(rec)  # a fresh instance: no cached kubeconfig
    assert host.object_keys() == before_host
    assert member.object_keys() == before_member
    fed.unjoin(rec)  # again: already gone is fine
    assert host.object_keys() == before_host


def test_unjoin_keeps_a_member_namespace_burst_did_not_create(
    host: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    member.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    before = member.object_keys()
    fed = _fed(host, clock, tmp_path)
    fed.join(record(), member.kubeconfig())
    _fed(host, clock, tmp_path).unjoin(record())
    assert member.object_keys() == before


def test_unjoin_of_a_vanished_member_still_cleans_the_host(
    host: KubeApiServer, clock: SimClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = host.object_keys()
    fed = _fed(host, clock, tmp_path)
    with KubeApiServer(clock=clock.now) as doomed:
        fed.join(record(), doomed.kubeconfig())
    with caplog.at_level(logging.WARNING):
        fed.unjoin(record())
    assert host.object_keys() == before
    assert "cannot reach the API server" in caplog.text


def test_unreachable_member_or_host_is_a_federation_error(
    host: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(host, clock, tmp_path)
    rec = record()
    gone = KubeApiServer(clock=clock.now)
    gone.start()
    kubeconfig = gone.kubeconfig()
    gone.stop()
    with pytest.raises(FederationError, match=r"joining aws-burst-1: member: cannot reach the API server"):
        fed.join(rec, kubeconfig)
    fed.join(rec, member.kubeconfig())
    member.stop()
    with pytest.raises(FederationError, match="draining aws-burst-1: member: cannot reach"):
        fed.drain(rec)
    host.expire_token()
    with pytest.raises(FederationError, match=r"host: the API server .* rejected the credentials"):
        fed.drain(rec)


def test_drain_and_unjoin_of_a_never_joined_cluster(host: KubeApiServer, clock: SimClock, tmp_path: Path) -> None:
    fed = _fed(host, clock, tmp_path)
    before = host.object_keys()
    assert fed.drain(record("never")) == 0
    fed.undrain(record("never"))
    fed.unjoin(record("never"))
    assert host.object_keys() == before


def test_host_without_kubefed_is_a_clear_error(member: KubeApiServer, clock: SimClock, tmp_path: Path) -> None:
    with (
        KubeApiServer(clock=clock.now) as bare,
        pytest.raises(FederationError, match="no namespace kube-federation-system: is KubeFed installed"),
    ):
        _fed(bare, clock, tmp_path).join(record(), member.kubeconfig())
