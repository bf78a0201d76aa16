"""The karmada federation against a fake Karmada API server and a fake member API server."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from burst.api import Federation, FederationContext, FederationError, SimClock
from burst.federation.karmada import KarmadaConfig, KarmadaFederation
from burst.registry import config_class
from burst.testing.kube_server import KubeApiServer
from tests.kube.conftest import api_client, record

CLUSTER = ("cluster.karmada.io/v1alpha1", "clusters")
NS = "karmada-cluster"


def _fed(karmada: KubeApiServer, clock: SimClock, tmp_path: Path, **cfg: Any) -> KarmadaFederation:
    (tmp_path / "karmada.kubeconfig").write_text(karmada.kubeconfig(name="karmada-apiserver"))
    config = KarmadaConfig(kubeconfig="karmada.kubeconfig", **cfg)
    return config.build(FederationContext(clock=clock, owner="cern-burst", config_dir=str(tmp_path)))


def _ready(karmada: KubeApiServer, cid: str, status: str = "True", **kw: str) -> None:
    karmada.set_condition(*CLUSTER, cid, "Ready", status, **kw)


def _taints(karmada: KubeApiServer, cid: str) -> list[dict[str, Any]]:
    taints: list[dict[str, Any]] = karmada.get(*CLUSTER, cid)["spec"].get("taints") or []
    return taints


def test_kind_is_registered_and_implements_the_contract(host: KubeApiServer, clock: SimClock, tmp_path: Path) -> None:
    assert config_class("burst.federations", "karmada") is KarmadaConfig
    fed: Federation = _fed(host, clock, tmp_path)
    assert isinstance(fed, Federation) and fed.name == "karmada"


def test_join_registers_a_push_mode_cluster_with_its_secret(
    host: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(host, clock, tmp_path)
    rec = record("gce-burst-7")
    status = fed.join(rec, member.kubeconfig())
    assert not status.ready and "to report Ready" in status.message

    sa = member.get("v1", "serviceaccounts", "karmada-gce-burst-7", NS)
    assert sa["metadata"]["labels"]["burst.cluster"] == "gce-burst-7"
    assert member.find("rbac.authorization.k8s.io/v1", "clusterroles", "karmada-controller-manager:karmada-gce-burst-7")
    token_secret = member.get("v1", "secrets", "karmada-gce-burst-7-token", NS)
    assert token_secret["type"] == "kubernetes.io/service-account-token"

    secret = host.get("v1", "secrets", "gce-burst-7", NS)
    assert secret["data"]["token"] == token_secret["data"]["token"]
    assert secret["data"]["caBundle"] == member.ca_data
    cluster = host.get(*CLUSTER, "gce-burst-7")
    assert cluster["spec"] == {
        "syncMode": "Push",
        "apiEndpoint": member.url,
        "secretRef": {"namespace": NS, "name": "gce-burst-7"},
    }
    assert cluster["metadata"]["labels"] == {"burst.cluster": "gce-burst-7", "burst.owner": "cern-burst"}
    posted = [r for r in host.requests if r.method == "POST" and r.path == "/apis/cluster.karmada.io/v1alpha1/clusters"]
    assert posted[0].body["kind"] == "Cluster"
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert client.CoreV1Api(api_client(member, token=token)).list_pod_for_all_namespaces() is not None

    keys = (host.object_keys(), member.object_keys())
    assert not fed.join(rec, member.kubeconfig()).ready
    assert (host.object_keys(), member.object_keys()) == keys
    _ready(host, "gce-burst-7")
    assert fed.join(rec, member.kubeconfig()).ready


def test_member_never_ready_stays_not_ready(
    host: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(host, clock, tmp_path)
    rec = record()
    fed.join(rec, member.kubeconfig())
    _ready(host, rec.cluster_id, "False", reason="ClusterNotReachable", message="cluster is not reachable")
    for _ in range(3):
        clock.advance(900)
        status = fed.join(rec, member.kubeconfig())
        assert not status.ready
    assert "ClusterNotReachable" in status.message


def test_drain_taints_noschedule_counts_running_pods_and_undrain_removes_only_ours(
    host: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(host, clock, tmp_path)
    rec = record()
    fed.join(rec, member.kubeconfig())
    _ready(host, rec.cluster_id)
    operator_taint = {"key": "maintenance", "value": "x", "effect": "NoSchedule"}
    host.patch(*CLUSTER, rec.cluster_id, {"spec": {"taints": [operator_taint]}})
    member.add_pod("step-1", phase="Running", node="node-1")
    member.add_pod("step-2", phase="Running", node="node-2")
    member.add_pod("coredns", namespace="kube-system", phase="Running", node="node-1")

    fed = _fed(host, clock, tmp_path)  # as after a restart: reaches the member through Karmada's secret
    assert fed.drain(rec) == 2
    taints = _taints(host, rec.cluster_id)
    assert taints[0] == operator_taint
    assert taints[1] == {
        "key": "burst.draining",
        "value": "true",
        "effect": "NoSchedule",
        "timeAdded": "2026-11-25T12:00:00Z",
    }
    put = [r for r in host.requests if r.method == "PUT"]
    assert len(put) == 1 and put[0].body["metadata"]["resourceVersion"]  # a conditional update
    assert fed.drain(rec) == 2
    assert len([r for r in host.requests if r.method == "PUT"]) == 1  # idempotent: no second write
    assert not [n for n in member.objects("v1", "nodes") if n["spec"].get("unschedulable")]  # nothing cordoned

    member.set_pod_phase("default", "step-1", "Succeeded")
    member.set_pod_phase("default", "step-2", "Succeeded")
    assert fed.drain(rec) == 0
    fed.undrain(rec)
    assert _taints(host, rec.cluster_id) == [operator_taint]


def test_a_concurrent_write_is_re_read_not_overwritten(
    host: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(host, clock, tmp_path)
    rec = record()
    fed.join(rec, member.kubeconfig())
    host.inject_fault("PUT", f"/clusters/{rec.cluster_id}", 409, "Conflict")
    assert fed.drain(rec) == 0
    assert [t["key"] for t in _taints(host, rec.cluster_id)] == ["burst.draining"]
    assert len([r for r in host.requests if r.method == "PUT"]) == 2
    host.inject_fault("PUT", f"/clusters/{rec.cluster_id}", 409, "Conflict", times=5)
    with pytest.raises(FederationError, match="409"):
        fed.undrain(rec)


def test_unjoin_deletes_the_cluster_its_secret_and_the_member_account(
    host: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    before_host, before_member = host.object_keys(), member.object_keys()
    fed = _fed(host, clock, tmp_path)
    rec = record()
    fed.join(rec, member.kubeconfig())
    assert host.object_keys() - before_host == {(*CLUSTER, "", "aws-burst-1"), ("v1", "secrets", NS, "aws-burst-1")}
    fed.drain(rec)
    _fed(host, clock, tmp_path).unjoin(rec)
    assert host.object_keys() == before_host
    assert member.object_keys() == before_member
    fed.unjoin(rec)
    assert host.object_keys() == before_host


def test_unjoin_of_a_vanished_member_still_cleans_karmada(
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


def test_unreachable_member_or_karmada_is_a_federation_error(
    host: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(host, clock, tmp_path)
    rec = record()
    fed.join(rec, member.kubeconfig())
    member.stop()
    with pytest.raises(FederationError, match="draining aws-burst-1: member: cannot reach"):
        fed.drain(rec)
    host.stop()
    with pytest.raises(FederationError, match="Karmada API: cannot reach"):
        fed.undrain(rec)


def test_drain_of_a_never_joined_cluster_is_zero(host: KubeApiServer, clock: SimClock, tmp_path: Path) -> None:
    fed = _fed(host, clock, tmp_path)
    before = host.object_keys()
    assert fed.drain(record("never")) == 0
    fed.undrain(record("never"))
    fed.unjoin(record("never"))
    assert host.object_keys() == before
