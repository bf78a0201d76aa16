"""The seed's picture, automatic: ``burst run`` bursts into the local cloud, joins each new cluster
to KubeFed, lets work run there, drains after the peak without killing a pod, and removes it.

One daemon subprocess, one host API server in the test, one member API server per burst cluster
(inside the daemon, reached through what the KubeFedCluster points to).  The status page and
/metrics of the running daemon are checked along the way.
"""

from __future__ import annotations

import json
import time

import e2e_harness as h
from kubernetes import client

from burst.testing.kube_server import KubeApiServer

KFC = ("core.kubefed.io/v1beta1", "kubefedclusters")


def test_backlog_spike_to_removed_cluster_without_killing_a_pod(
    tmp_path: h.Path, host: KubeApiServer, runs: list[h.BurstRun]
) -> None:
    before = host.object_keys()
    config = h.write_config(tmp_path, host)
    store = h.open_store(tmp_path)
    daemon = h.BurstRun(config)
    runs.append(daemon)
    url = daemon.status_url

    # --- spike → created → joined → ACTIVE ---------------------------------------------------------
    active = h.wait_until(
        "a cluster ACTIVE", lambda: [c for c in h.clusters(store).values() if c.state.value == "ACTIVE"]
    )
    assert len(active) == 1 and len(h.clusters(store)) == 1
    cid = active[0].cluster_id
    assert cid == "e2e-aws-00001" and active[0].nodes == 2 and active[0].flavor == "m5.2xlarge"
    path = [(t["from_state"], t["to_state"]) for t in store.transitions(cid)]
    assert [b for _a, b in path] == ["PLANNED", "PROVISIONING", "JOINING", "ACTIVE"], path
    assert h.cloud_ids(tmp_path) == [cid]

    # joined: the host has the KubeFedCluster and its credentials Secret, labelled as burst's
    kfc = host.get(*KFC, cid, h.KFS)
    assert kfc["metadata"]["labels"] == {"burst.cluster": cid, "burst.owner": h.OWNER}
    assert kfc["spec"]["secretRef"] == {"name": f"{cid}-credentials"}
    assert kfc["spec"]["apiEndpoint"].startswith("http://127.0.0.1:")
    host_secret = host.get("v1", "secrets", f"{cid}-credentials", h.KFS)
    member_token = h.unb64(host_secret["data"]["token"])
    # …and the member has the service account, its token Secret and full-access RBAC
    api = h.member_api(host, cid)
    core = client.CoreV1Api(api)
    sa = core.read_namespaced_service_account(f"{cid}-host", h.KFS)
    assert sa.metadata.labels["burst.cluster"] == cid
    assert core.read_namespaced_secret(f"{cid}-host-token", h.KFS).type == "kubernetes.io/service-account-token"
    rbac = client.RbacAuthorizationV1Api(api)
    binding = rbac.read_cluster_role_binding(f"kubefed-controller-manager:{cid}-host")
    assert binding.subjects[0].name == f"{cid}-host"

    # --- status page and /metrics while it runs ------------------------------------------------------
    def scraped_active() -> str | None:
        text = h.scrape(url + "/metrics")
        return text if h.metric(text, "burst_clusters", state="ACTIVE") == 1 else None

    metrics = h.wait_until("burst_clusters ACTIVE in /metrics", scraped_active)
    assert h.metric(metrics, "burst_pending_cores") == 16
    assert h.metric(metrics, "burst_burst_cores", provider="aws") == 16
    assert h.metric(metrics, "burst_transitions_total", to_state="ACTIVE") == 1
    assert h.metric(metrics, "burst_demand_stale") == 0
    ticks_then = h.metric(metrics, "burst_ticks_total")
    assert ticks_then >= 2
    page = h.scrape(url + "/")
    assert cid in page and "ACTIVE" in page
    kubeconfig_text = (tmp_path / "host.kubeconfig").read_text(encoding="utf-8")
    for secret in (host.token, member_token, kubeconfig_text, host.ca_data):
        assert secret not in page and secret not in metrics
        assert secret not in daemon.text()

    # --- work runs on the member; the peak ends on the host -------------------------------------------
    nodes = [n.metadata.name for n in core.list_node().items]
    assert len(nodes) == 2
    watch = h.PodWatch(api)
    h.run_pod(core, "reco-1", nodes[0])
    h.run_pod(core, "reco-2", nodes[1])
    for i in range(4):
        host.delete("v1", "pods", f"job-{i}", "default")

    h.wait_until("DRAINING after idle_after", lambda: h.state_of(store, cid) == "DRAINING", timeout=20)
    h.wait_until("member nodes cordoned", lambda: all(n.spec.unschedulable for n in core.list_node().items), timeout=10)
    assert host.get(*KFC, cid, h.KFS)["metadata"]["labels"]["burst.draining"] == "true"
    drain_ticks = len(daemon.ticks())
    h.wait_until("two more ticks", lambda: len(daemon.ticks()) >= drain_ticks + 2, timeout=10)
    # still running: drain waits, nothing removed
    assert h.state_of(store, cid) == "DRAINING"
    assert {p.metadata.name: p.status.phase for p in core.list_namespaced_pod("default").items} == {
        "reco-1": "Running",
        "reco-2": "Running",
    }
    assert h.cloud_ids(tmp_path) == [cid]
    metrics = h.scrape(url + "/metrics")
    assert h.metric(metrics, "burst_clusters", state="DRAINING") == 1
    assert h.metric(metrics, "burst_pending_cores") == 0
    assert h.metric(metrics, "burst_ticks_total") > ticks_then

    # --- the jobs finish → unjoined → removed --------------------------------------------------------
    h.set_phase(core, "reco-1", "Succeeded")
    time.sleep(1.5)
    assert h.state_of(store, cid) == "DRAINING"  # one pod still runs
    h.set_phase(core, "reco-2", "Succeeded")
    h.wait_until("REMOVED", lambda: h.state_of(store, cid) == "REMOVED", timeout=20)
    watch.stop()
    api.close()

    assert watch.killed() == [], watch.events
    assert ("MODIFIED", "reco-2", "Succeeded") in watch.events
    # unjoin deleted exactly what join created: the host is as before, minus the finished backlog
    assert host.object_keys() == before - {("v1", "pods", "default", f"job-{i}") for i in range(4)}
    assert not [r for r in host.requests if r.method == "DELETE" and "/pods" in r.path]
    assert h.cloud_ids(tmp_path) == []
    path = [t["to_state"] for t in store.transitions(cid)]
    assert path[-3:] == ["DRAINING", "REMOVING", "REMOVED"], path
    reasons = " ".join(str(t["reason"]) for t in store.transitions(cid))
    assert "killed" not in reasons

    status = h.cli("status", "--config", str(config), "--output", "json", "--all", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)["clusters"]
    assert [(r["cluster"], r["state"]) for r in rows] == [(cid, "REMOVED")]
    assert json.loads(status.stdout)["spend"]["currency"] == "EUR"

    # --- SIGTERM: a clean stop ------------------------------------------------------------------------
    assert daemon.stop() == 0
    stopped = daemon.find("stopped after")
    assert stopped and stopped[-1]["level"] == "info" and stopped[-1]["logger"] == "burst.daemon"
    assert daemon.find("stopping (SIGTERM)")
    store.close()
