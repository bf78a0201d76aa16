"""MultiKueue end to end: ``burst run`` turns a Kueue backlog spike into a burst cluster, joins it
as a MultiKueue worker (Kueue installed there), Workloads are dispatched there and run, and after
the peak the worker is drained without evicting a Workload, then removed.

The manager is a test API server with Kueue's CRDs; the test plays Kueue's controllers: the
MultiKueueCluster controller (Active once the kubeconfig Secret reaches the worker), the manager's
dispatcher (quota reserved on the manager, a copy created on an active worker listed in the
MultiKueueConfig and nominated by burst, which acts as MultiKueue's external dispatcher; Admitted
once the worker admitted the copy), the worker's Kueue (admits copies
into its ClusterQueue unless it is held) and the kubelets (the Workloads finish).  The worker is
the local cloud's API server inside the daemon, reached only through what Kueue itself uses: the
kubeconfig in the MultiKueueCluster's Secret.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import e2e_harness as h
import yaml
from kubernetes import client, config

from burst.testing import kueue as kt
from burst.testing.kube_server import KubeApiServer

MKC = (kt.KUEUE, "multikueueclusters")
ORIGIN = "kueue.x-k8s.io/multikueue-origin"


def _worker_api(manager: KubeApiServer, cid: str) -> client.ApiClient:
    mkc = manager.get(*MKC, cid)
    secret = manager.get("v1", "secrets", mkc["spec"]["kubeConfig"]["location"], kt.NS)
    text = base64.b64decode(secret["data"]["kubeconfig"]).decode()
    return config.new_client_from_config_dict(yaml.safe_load(text), persist_config=False)  # type: ignore[no-any-return,no-untyped-call]


class Worker:
    """The worker's Kueue and kubelets, over HTTP with the MultiKueue kubeconfig."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.co = client.CustomObjectsApi(api)

    def workloads(self) -> list[dict[str, Any]]:
        return list(self.co.list_cluster_custom_object("kueue.x-k8s.io", "v1beta1", "workloads")["items"])

    def held(self) -> bool:
        cq = self.co.get_cluster_custom_object("kueue.x-k8s.io", "v1beta1", "clusterqueues", "burst")
        return bool(cq["spec"].get("stopPolicy") in ("Hold", "HoldAndDrain"))

    def create_copy(self, wl: dict[str, Any]) -> None:
        meta = wl["metadata"]
        copy = {
            "apiVersion": kt.KUEUE,
            "kind": "Workload",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": {ORIGIN: "multikueue"}},
            "spec": wl["spec"],
        }
        self.co.create_namespaced_custom_object("kueue.x-k8s.io", "v1beta1", meta["namespace"], "workloads", copy)

    def set_conditions(self, ns: str, name: str, extra: dict[str, Any] | None = None, **conds: str) -> None:
        wl = self.co.get_namespaced_custom_object("kueue.x-k8s.io", "v1beta1", ns, "workloads", name)
        current = [c for c in (wl.get("status") or {}).get("conditions") or [] if c["type"] not in conds]
        stamp = "2026-12-02T00:00:00Z"
        new = [
            {"type": t, "status": s, "reason": t, "message": "", "lastTransitionTime": stamp} for t, s in conds.items()
        ]
        body = {"status": {**(extra or {}), "conditions": current + new}}
        self.co.patch_namespaced_custom_object_status("kueue.x-k8s.io", "v1beta1", ns, "workloads", name, body)

    def admit_all(self) -> int:
        """The worker's Kueue: admit every waiting copy, unless its ClusterQueue is held."""
        if self.held():
            return 0
        admitted = 0
        for wl in self.workloads():
            conds = {c["type"]: c["status"] for c in (wl.get("status") or {}).get("conditions") or []}
            if conds.get("QuotaReserved") != "True":
                meta = wl["metadata"]
                self.set_conditions(
                    meta["namespace"],
                    meta["name"],
                    {"admission": {"clusterQueue": "burst"}},
                    QuotaReserved="True",
                    Admitted="True",
                )
                admitted += 1
        return admitted


def test_kueue_backlog_spike_to_multikueue_worker_and_back_without_evicting(
    tmp_path: h.Path, runs: list[h.BurstRun]
) -> None:
    manager = KubeApiServer()
    manager.start()
    try:
        _run(tmp_path, runs, manager)
    finally:
        manager.stop()


def _run(tmp_path: h.Path, runs: list[h.BurstRun], manager: KubeApiServer) -> None:
    kt.manager_setup(manager, clusters=("onprem",))
    # the manager's own ClusterQueue: 8 cores, 4 of them busy (so 4 running cores fit on-prem)
    manager.create(kt.cluster_queue_obj("local", cpu="8"))
    manager.create(
        {
            "apiVersion": kt.KUEUE,
            "kind": "LocalQueue",
            "metadata": {"name": "local-queue", "namespace": "default"},
            "spec": {"clusterQueue": "local"},
        }
    )
    manager.create(kt.workload("onprem-busy", queue="local-queue", cpu="4"))
    kt.admit(manager, "default", "onprem-busy", "local")
    usage = [{"name": "default-flavor", "resources": [{"name": "cpu", "total": "4"}]}]
    manager.set_status(kt.KUEUE, "clusterqueues", "local", {"flavorsReservation": usage})
    for i in range(4):
        manager.create(kt.workload(f"reco-{i}", count=1, cpu="4", memory="1Gi"))
    before = manager.object_keys()
    (tmp_path / "manager.kubeconfig").write_text(manager.kubeconfig(name="manager"), encoding="utf-8")
    (tmp_path / "kueue-manifests.yaml").write_text(kt.install_manifests(), encoding="utf-8")
    cfg = h.write_config(
        tmp_path,
        None,
        federation={
            "kind": "multikueue",
            "kubeconfig": "manager.kubeconfig",
            "admission_check": "multikueue",
            "worker_install": ["kueue-manifests.yaml"],
            "dispatcher": True,
            "timeout": "3s",
        },
        extra={
            "backlog": {
                "kind": "kueue",
                "kubeconfig": "manager.kubeconfig",
                "cluster_queues": ["cluster-queue", "local"],
                "timeout": "3s",
            }
        },
    )
    store = h.open_store(tmp_path)
    daemon = h.BurstRun(cfg, metrics=False)
    runs.append(daemon)

    # --- spike → a cluster created → joined as a worker (Kueue installed there) ----------------------
    cid = h.wait_until(
        "a MultiKueueCluster on the manager", lambda: [m["metadata"]["name"] for m in manager.objects(*MKC)], 30
    )[0]
    assert h.state_of(store, cid) == "JOINING"
    h.wait_until(
        "the worker listed in the MultiKueueConfig",
        lambda: manager.get(kt.KUEUE, "multikueueconfigs", "multikueue")["spec"]["clusters"] == ["onprem", cid],
    )
    api = _worker_api(manager, cid)
    worker = Worker(api)
    assert worker.workloads() == []  # Kueue's CRDs are served there
    cq = worker.co.get_cluster_custom_object("kueue.x-k8s.io", "v1beta1", "clusterqueues", "burst")
    assert cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"][0] == {"name": "cpu", "nominalQuota": "16"}
    manager.set_condition(*MKC, cid, "Active", "True", message="Connected")  # the kubeconfig works: Active
    h.wait_until("ACTIVE", lambda: h.state_of(store, cid) == "ACTIVE", 20)

    # --- the manager dispatches the backlog there; the worker admits and runs it ----------------------
    for i in range(4):
        kt.reserve(manager, "default", f"reco-{i}", "cluster-queue")

    def nominated() -> bool:
        wls = [manager.get(kt.KUEUE, "workloads", f"reco-{i}", "default") for i in range(4)]
        return all(w["status"].get("nominatedClusterNames") == ["onprem", cid] for w in wls)

    # burst, MultiKueue's external dispatcher, nominates its empty worker (the on-prem one first)
    h.wait_until("the Workloads nominated to the burst worker", nominated, 10)
    assert daemon.find(f"steering: {cid} 100 (")
    plan = h.cli("plan", "--config", str(cfg), "--output", "json", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    steering = json.loads(plan.stdout)["steering"]
    assert [(m["cluster"], m["weight"], m["price_weight"]) for m in steering] == [(cid, 100, 100)]
    assert "(the cheapest), 16 of 16 cores free" in steering[0]["reason"]
    for i in range(4):
        worker.create_copy(manager.get(kt.KUEUE, "workloads", f"reco-{i}", "default"))
    assert worker.admit_all() == 4
    for i in range(4):
        kt.admit(manager, "default", f"reco-{i}", "cluster-queue")

    # --- the peak is over: three finish; 4 + 4 running cores fit on-prem → drained while one still runs ---
    assert h.state_of(store, cid) == "ACTIVE"
    for i in range(3):
        worker.set_conditions("default", f"reco-{i}", Finished="True")
        kt.finish(manager, "default", f"reco-{i}")
    h.wait_until("DRAINING after idle_after", lambda: h.state_of(store, cid) == "DRAINING", 30)
    h.wait_until("the worker's ClusterQueue held", worker.held, 10)
    assert manager.get(*MKC, cid)["metadata"]["labels"]["burst.draining"] == "true"
    ticks = len(daemon.ticks())
    h.wait_until("two more ticks", lambda: len(daemon.ticks()) >= ticks + 2, 10)
    assert h.state_of(store, cid) == "DRAINING"  # reco-3 still runs there: drain waits
    # still listed: the manager keeps seeing reco-3 on its worker (never counted lost, never evicted)
    assert manager.get(kt.KUEUE, "multikueueconfigs", "multikueue")["spec"]["clusters"] == ["onprem", cid]
    assert {w["metadata"]["name"] for w in worker.workloads()} == {f"reco-{i}" for i in range(4)}
    worker.set_conditions("default", "reco-3", Finished="True")
    kt.finish(manager, "default", "reco-3")

    # --- all finished → withdrawn from the config → unjoined → removed -------------------------------
    h.wait_until("REMOVED", lambda: h.state_of(store, cid) == "REMOVED", 30)
    api.close()
    assert manager.get(kt.KUEUE, "multikueueconfigs", "multikueue")["spec"]["clusters"] == ["onprem"]
    assert manager.object_keys() == before
    assert h.cloud_ids(tmp_path) == []
    # no Workload was evicted or deleted by burst
    for wl in manager.objects(kt.KUEUE, "workloads"):
        assert "Evicted" not in {c["type"] for c in wl["status"].get("conditions") or []}
    assert not [r for r in manager.requests if r.method == "DELETE" and "/workloads" in r.path]
    path = [t["to_state"] for t in store.transitions(cid)]
    assert path == ["PLANNED", "PROVISIONING", "JOINING", "ACTIVE", "DRAINING", "REMOVING", "REMOVED"], path
    assert daemon.stop() == 0
    store.close()
