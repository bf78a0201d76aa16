"""The multikueue federation against a MultiKueue manager and a fresh worker (test API servers,
Kueue's kinds served from its CRDs)."""

from __future__ import annotations

import base64
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from burst.api import Federation, FederationContext, FederationError, FollowsResize, SimClock, SteersWork
from burst.federation.multikueue import MultiKueueFederation, MultiKueueFederationConfig
from burst.registry import config_class
from burst.steering import MemberWeight
from burst.testing import kueue as kt
from burst.testing.kube_server import KubeApiServer
from tests.kube.conftest import record

MKC = (kt.KUEUE, "multikueueclusters")
CRD = ("apiextensions.k8s.io/v1", "customresourcedefinitions")


@pytest.fixture
def manager(host: KubeApiServer) -> KubeApiServer:
    kt.manager_setup(host, local_queues=(("default", "user-queue"), ("cms", "cms-queue")))
    return host


def _fed(
    manager: KubeApiServer, clock: SimClock, tmp_path: Path, *, deployment: bool = False, **cfg: Any
) -> MultiKueueFederation:
    (tmp_path / "manager.kubeconfig").write_text(manager.kubeconfig(name="manager"))
    (tmp_path / "kueue-manifests.yaml").write_text(kt.install_manifests(deployment=deployment))
    conf = MultiKueueFederationConfig(
        kubeconfig="manager.kubeconfig", admission_check="multikueue", worker_install=["kueue-manifests.yaml"], **cfg
    )
    return conf.build(FederationContext(clock=clock, owner="cern-burst", config_dir=str(tmp_path)))


def _clusters(manager: KubeApiServer) -> list[str]:
    return list(manager.get(kt.KUEUE, "multikueueconfigs", "multikueue")["spec"]["clusters"])


def _activate(manager: KubeApiServer, cid: str) -> None:
    """Kueue's MultiKueueCluster controller: Active once the kubeconfig in the Secret works."""
    mkc = manager.get(*MKC, cid)
    secret = manager.get("v1", "secrets", mkc["spec"]["kubeConfig"]["location"], kt.NS)
    text = base64.b64decode(secret["data"]["kubeconfig"]).decode()
    api = config.new_client_from_config_dict(yaml.safe_load(text), persist_config=False)  # type: ignore[no-untyped-call]
    try:
        client.CustomObjectsApi(api).list_cluster_custom_object("kueue.x-k8s.io", "v1beta1", "workloads")
    finally:
        api.close()
    manager.set_condition(*MKC, cid, "Active", "True", reason="Active", message="Connected")


def test_kind_is_registered_and_implements_the_contract(
    manager: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    assert config_class("burst.federations", "multikueue") is MultiKueueFederationConfig
    fed: Federation = _fed(manager, clock, tmp_path)
    assert isinstance(fed, Federation) and not isinstance(fed, SteersWork) and fed.name == "multikueue"
    assert isinstance(_fed(manager, clock, tmp_path, dispatcher=True), SteersWork)


def test_join_installs_kueue_mirrors_the_queues_and_registers_the_worker(
    manager: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(manager, clock, tmp_path)
    rec = record("gce-burst-7")
    status = fed.join(rec, member.kubeconfig())
    assert not status.ready and "MultiKueueCluster gce-burst-7 to report Active" in status.message

    # Kueue installed on the worker: its CRDs are served
    assert member.get(*CRD, "workloads.kueue.x-k8s.io")["status"]["conditions"][-1]["type"] == "Established"
    assert member.find("v1", "namespaces", "kueue-system")
    # the worker's queue: capacity of 2 × m5.2xlarge, and the manager's LocalQueues mirrored
    cq = member.get(kt.KUEUE, "clusterqueues", "burst")
    assert cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"] == [
        {"name": "cpu", "nominalQuota": "16"},
        {"name": "memory", "nominalQuota": "65536Mi"},
    ]
    assert member.find(kt.KUEUE, "resourceflavors", "burst-default")
    assert member.get(kt.KUEUE, "localqueues", "user-queue", "default")["spec"] == {"clusterQueue": "burst"}
    assert member.get(kt.KUEUE, "localqueues", "cms-queue", "cms")["spec"] == {"clusterQueue": "burst"}
    # the manager's account there, with Kueue's MultiKueue rules, not cluster-admin
    role = member.get("rbac.authorization.k8s.io/v1", "clusterroles", "burst-multikueue")
    assert {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]} not in role["rules"]
    assert any("workloads" in r["resources"] for r in role["rules"])

    # on the manager: the kubeconfig Secret, the MultiKueueCluster and the config entry
    mkc = manager.get(*MKC, "gce-burst-7")
    assert mkc["spec"] == {"kubeConfig": {"locationType": "Secret", "location": "gce-burst-7-kubeconfig"}}
    assert mkc["metadata"]["labels"] == {"burst.cluster": "gce-burst-7", "burst.owner": "cern-burst"}
    assert _clusters(manager) == ["onprem", "gce-burst-7"]
    secret = manager.get("v1", "secrets", "gce-burst-7-kubeconfig", kt.NS)
    kubeconfig = yaml.safe_load(base64.b64decode(secret["data"]["kubeconfig"]).decode())
    assert kubeconfig["clusters"][0]["cluster"]["server"] == member.url
    assert kubeconfig["users"][0]["user"]["token"] != member.token  # the account's token, not the admin's

    keys = (manager.object_keys(), member.object_keys())
    assert not fed.join(rec, member.kubeconfig()).ready
    assert (manager.object_keys(), member.object_keys()) == keys  # idempotent
    assert _clusters(manager) == ["onprem", "gce-burst-7"]
    _activate(manager, "gce-burst-7")
    assert fed.join(rec, member.kubeconfig()).ready


def test_join_waits_for_the_kueue_controller_to_be_available(
    manager: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(manager, clock, tmp_path, deployment=True)
    rec = record()
    for _ in range(2):
        status = fed.join(rec, member.kubeconfig())
        assert (
            status.message
            == "waiting for the worker's Deployment kueue-system/kueue-controller-manager to be available"
        )
        assert member.find(kt.KUEUE, "clusterqueues", "burst") is None
        assert manager.find(*MKC, rec.cluster_id) is None
    member.set_status("apps/v1", "deployments", "kueue-controller-manager", {"availableReplicas": 1}, "kueue-system")
    assert "to report Active" in fed.join(rec, member.kubeconfig()).message
    assert member.find(kt.KUEUE, "clusterqueues", "burst")


def test_drain_holds_the_worker_queue_until_its_workloads_finish_then_withdraws_it(
    manager: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(manager, clock, tmp_path)
    rec = record()
    cid = rec.cluster_id
    fed.join(rec, member.kubeconfig())
    _activate(manager, cid)
    # two Workloads dispatched there and admitted by the worker's Kueue; one still waiting there
    for name in ("a", "b", "c"):
        member.create(kt.workload(name))
    kt.admit(member, "default", "a", "burst")
    kt.reserve(member, "default", "b", "burst")

    fed = _fed(manager, clock, tmp_path)  # as after a restart: reaches the worker through Kueue's Secret
    assert fed.running(rec) == 2
    assert fed.drain(rec) == 2
    assert member.get(kt.KUEUE, "clusterqueues", "burst")["spec"]["stopPolicy"] == "Hold"
    assert manager.get(*MKC, cid)["metadata"]["labels"]["burst.draining"] == "true"
    assert _clusters(manager) == ["onprem", cid]  # still listed: its Workloads are not lost
    assert fed.join(rec, member.kubeconfig()).ready  # a join while draining does not list it again
    assert _clusters(manager) == ["onprem", cid]
    assert member.find(kt.KUEUE, "workloads", "a", "default") is not None  # nothing deleted

    kt.finish(member, "default", "a")
    assert fed.drain(rec) == 1
    kt.finish(member, "default", "b")
    assert fed.drain(rec) == 0
    assert _clusters(manager) == ["onprem"]
    assert fed.drain(rec) == 0

    fed.undrain(rec)
    assert member.get(kt.KUEUE, "clusterqueues", "burst")["spec"]["stopPolicy"] == "None"
    assert "burst.draining" not in manager.get(*MKC, cid)["metadata"]["labels"]
    assert _clusters(manager) == ["onprem", cid]


def test_the_last_cluster_of_the_config_stays_listed(
    host: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kt.manager_setup(host, clusters=("aws-burst-1",))
    fed = _fed(host, clock, tmp_path)
    rec = record()
    fed.join(rec, member.kubeconfig())
    with caplog.at_level(logging.WARNING):
        assert fed.drain(rec) == 0
    assert _clusters(host) == ["aws-burst-1"]
    assert "only cluster of the MultiKueueConfig" in caplog.text


def test_a_concurrent_config_write_is_re_read_not_overwritten(
    manager: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(manager, clock, tmp_path)
    rec = record()

    def operator_adds_a_worker() -> None:
        manager.patch(kt.KUEUE, "multikueueconfigs", "multikueue", {"spec": {"clusters": ["onprem", "site-b"]}})

    manager.on_request("PUT", "/multikueueconfigs/multikueue", operator_adds_a_worker)
    fed.join(rec, member.kubeconfig())
    assert _clusters(manager) == ["onprem", "site-b", rec.cluster_id]


def test_unjoin_removes_what_join_created(
    manager: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    before = manager.object_keys()
    fed = _fed(manager, clock, tmp_path)
    rec = record()
    fed.join(rec, member.kubeconfig())
    assert manager.object_keys() - before == {
        (*MKC, "", "aws-burst-1"),
        ("v1", "secrets", kt.NS, "aws-burst-1-kubeconfig"),
    }
    fed.drain(rec)
    _fed(manager, clock, tmp_path).unjoin(rec)
    assert manager.object_keys() == before
    assert _clusters(manager) == ["onprem"]
    assert member.find("v1", "serviceaccounts", "burst-multikueue", kt.NS) is None
    assert member.find("rbac.authorization.k8s.io/v1", "clusterroles", "burst-multikueue") is None
    fed.unjoin(rec)
    assert manager.object_keys() == before


def test_a_manager_without_the_admission_check_is_a_clear_error(
    host: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    kt.install(host)
    fed = _fed(host, clock, tmp_path)
    with pytest.raises(FederationError, match="the manager has no AdmissionCheck multikueue: is MultiKueue set up"):
        fed.join(record(), member.kubeconfig())
    host.create(
        {
            "apiVersion": kt.KUEUE,
            "kind": "AdmissionCheck",
            "metadata": {"name": "multikueue"},
            "spec": {"controllerName": "example.com/prov"},
        }
    )
    with pytest.raises(FederationError, match="AdmissionCheck multikueue is not a MultiKueue check"):
        fed.join(record(), member.kubeconfig())


def test_a_bad_install_manifest_names_the_file(host: KubeApiServer, clock: SimClock, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: [\n")
    conf = MultiKueueFederationConfig(kubeconfig="m", admission_check="mk", worker_install=["bad.yaml"])
    with pytest.raises(FederationError, match=r"worker_install: .*bad.yaml line \d+: not valid YAML"):
        conf.build(FederationContext(clock=clock, owner="o", config_dir=str(tmp_path)))
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: Namespace\n")
    with pytest.raises(FederationError, match=r"bad\.yaml document 1: needs metadata\.name"):
        conf.build(FederationContext(clock=clock, owner="o", config_dir=str(tmp_path)))


def test_unreachable_manager_or_worker_is_a_federation_error(
    manager: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(manager, clock, tmp_path)
    rec = record()
    fed.join(rec, member.kubeconfig())
    member.stop()
    with pytest.raises(FederationError, match="draining aws-burst-1: member: cannot reach"):
        fed.drain(rec)
    manager.stop()
    with pytest.raises(FederationError, match="manager: cannot reach"):
        fed.undrain(rec)


def _nominated(manager: KubeApiServer, name: str) -> list[str]:
    return list(manager.get(kt.KUEUE, "workloads", name, "default")["status"].get("nominatedClusterNames") or [])


def test_as_dispatcher_it_nominates_the_cheapest_emptiest_worker_with_room(
    manager: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    manager.patch(
        kt.KUEUE, "multikueueconfigs", "multikueue", {"spec": {"clusters": ["onprem", "cheap", "pricey", "old"]}}
    )
    for i, created in enumerate(("11:00", "11:10", "11:20")):
        manager.create(kt.workload(f"w{i}", cpu="4", created=f"2026-11-25T{created}:00Z"))
        kt.reserve(manager, "default", f"w{i}", "cluster-queue")
    manager.create(kt.workload("waiting-for-quota", cpu="1"))  # no quota reserved on the manager yet
    manager.create(kt.workload("placed", cpu="4"))
    kt.reserve(manager, "default", "placed", "cluster-queue")
    manager.set_status(
        kt.KUEUE, "workloads", "placed", {"clusterName": "pricey", "nominatedClusterNames": None}, "default"
    )
    weights = (
        MemberWeight("cheap", 100, 16, 8, "cheapest"),
        MemberWeight("pricey", 50, 16, 16, "2× the cheapest"),
        MemberWeight("old", 0, 16, 16, "draining"),
    )

    fed = _fed(manager, clock, tmp_path, dispatcher=True)
    fed.steer(weights)
    assert [_nominated(manager, f"w{i}") for i in range(3)] == [
        ["onprem", "cheap"],
        ["onprem", "cheap"],
        ["onprem", "pricey"],  # cheap is full with the first two
    ]
    assert _nominated(manager, "waiting-for-quota") == [] and _nominated(manager, "placed") == []
    patches = len([r for r in manager.requests if r.method == "PATCH"])
    fed.steer(weights)
    assert len([r for r in manager.requests if r.method == "PATCH"]) == patches  # idempotent

    # pricey is now preferred, but standing nominations that still fit are kept (no churn)
    fed.steer((MemberWeight("pricey", 100, 16, 16, ""), MemberWeight("cheap", 60, 16, 8, ""), weights[2]))
    assert [_nominated(manager, f"w{i}") for i in range(3)] == [
        ["onprem", "cheap"],
        ["onprem", "cheap"],
        ["onprem", "pricey"],
    ]

    # a Workload no worker has room for is offered to every weighted one, never to a draining one
    manager.create(kt.workload("huge", cpu="40", created="2026-11-25T11:30:00Z"))
    kt.reserve(manager, "default", "huge", "cluster-queue")
    fed.steer(weights)
    assert _nominated(manager, "huge") == ["onprem", "cheap", "pricey"]
    # cheap starts draining: its pending Workloads move to the next worker with room
    fed.steer((MemberWeight("cheap", 0, 16, 8, "draining"), weights[1], weights[2]))
    assert [_nominated(manager, f"w{i}") for i in range(3)] == [["onprem", "pricey"]] * 3


def test_releasing_idle_nodes_shrinks_the_worker_quota(
    manager: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(manager, clock, tmp_path)
    rec = record()
    fed.join(rec, member.kubeconfig())
    member.add_pod("reco", namespace="default", phase="Running", node="node-1")
    assert fed.release_idle(rec, 2) == ["node-2"]  # node-1 runs a pod
    quota = member.get(kt.KUEUE, "clusterqueues", "burst")["spec"]["resourceGroups"][0]["flavors"][0]["resources"]
    assert quota == [{"name": "cpu", "nominalQuota": "8"}, {"name": "memory", "nominalQuota": "32768Mi"}]
    assert member.get("v1", "nodes", "node-2")["spec"]["unschedulable"] is True


def test_a_grown_worker_gets_the_quota_of_its_new_nodes(
    manager: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    fed = _fed(manager, clock, tmp_path)
    rec = record()
    fed.join(rec, member.kubeconfig())
    assert isinstance(fed, FollowsResize)
    fed.resized(replace(rec, nodes=5, desired_nodes=5))
    quota = member.get(kt.KUEUE, "clusterqueues", "burst")["spec"]["resourceGroups"][0]["flavors"][0]["resources"]
    assert quota == [{"name": "cpu", "nominalQuota": "40"}, {"name": "memory", "nominalQuota": "163840Mi"}]
