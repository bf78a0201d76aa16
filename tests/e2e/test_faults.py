"""Bad input and faults under the running daemon, and the operator's overrides.

* the host's token expires, then the host goes away: a clear log line, stale demand, and the
  burst cluster is kept (a blind tick never scales down);
* a member that never reports Ready is rolled back after ``joining_timeout`` and deleted;
* ``burst drain`` takes effect at the daemon's next tick and is never undone by the plan;
  ``burst remove --force`` says what it kills and asks; declined, nothing changes; with ``--yes``
  it removes the cluster beside the running daemon without the two undoing each other.
"""

from __future__ import annotations

import e2e_harness as h
from kubernetes import client

from burst.federation.kube import b64
from burst.testing.kube_server import KubeApiServer

KFC = ("core.kubefed.io/v1beta1", "kubefedclusters")


def _active(store: h.Store, n: int = 1) -> list[str]:
    ids = [c.cluster_id for c in h.clusters(store).values() if c.state.value == "ACTIVE"]
    return ids if len(ids) >= n else []


def test_expired_token_and_unreachable_host_hold_capacity(
    tmp_path: h.Path, host: KubeApiServer, runs: list[h.BurstRun]
) -> None:
    config = h.write_config(tmp_path, host, idle_after="2s")
    store = h.open_store(tmp_path)
    daemon = h.BurstRun(config)
    runs.append(daemon)
    url = daemon.status_url
    [cid] = h.wait_until("a cluster ACTIVE", lambda: _active(store))

    # The peak ends *and* the token expires: burst must not see "no work" and drain.
    host.expire_token()
    for i in range(4):
        host.delete("v1", "pods", f"job-{i}", "default")
    line = daemon.wait_log("backlog unavailable")
    assert line["level"] == "warning"
    assert "401 Unauthorized" in line["msg"] and host.url in line["msg"] and "stale demand" in line["msg"]
    ticks = len(daemon.ticks())
    # idle_after is 2 s: five stale ticks would have drained on a zero demand
    h.wait_until("5 stale ticks", lambda: len(daemon.ticks()) >= ticks + 5, timeout=15)
    stale = daemon.ticks()[ticks:]
    assert all("[stale]" in t["msg"] and "16 cores pending" in t["msg"] for t in stale), stale
    assert h.state_of(store, cid) == "ACTIVE"
    metrics = h.scrape(url + "/metrics")
    assert h.metric(metrics, "burst_demand_stale") == 1
    assert h.metric(metrics, "burst_clusters", state="ACTIVE") == 1

    # Now the host is gone altogether (connection refused): same answer.
    host.stop()
    gone = daemon.wait_log("cannot reach the API server")
    assert "backlog unavailable" in gone["msg"]
    ticks = len(daemon.ticks())
    h.wait_until("2 more ticks", lambda: len(daemon.ticks()) >= ticks + 2, timeout=10)
    assert all("[stale]" in t["msg"] for t in daemon.ticks()[ticks:])
    assert h.state_of(store, cid) == "ACTIVE" and h.cloud_ids(tmp_path) == [cid]
    assert [t["to_state"] for t in store.transitions(cid)][-1] == "ACTIVE"
    assert host.token not in daemon.text()
    assert daemon.stop() == 0


def test_member_never_ready_is_rolled_back_and_deleted(tmp_path: h.Path, runs: list[h.BurstRun]) -> None:
    host = h.make_host(ready_members=False)  # no KubeFed controller: no KubeFedCluster ever gets Ready
    try:
        before = host.object_keys()
        config = h.write_config(tmp_path, host, reconciler={"joining_timeout": "2s"})
        store = h.open_store(tmp_path)
        daemon = h.BurstRun(config, metrics=False)
        runs.append(daemon)
        cid = "e2e-aws-00001"
        h.wait_until("joined, not Ready", lambda: host.find(*KFC, cid, h.KFS) is not None)
        assert h.state_of(store, cid) == "JOINING"
        h.wait_until("REMOVED after the joining timeout", lambda: h.state_of(store, cid) == "REMOVED", timeout=25)
        states = [(t["to_state"], t["reason"]) for t in store.transitions(cid)]
        assert [s for s, _ in states] == [
            "PLANNED",
            "PROVISIONING",
            "JOINING",
            "DRAINING",
            "REMOVING",
            "REMOVED",
        ], states
        assert states[3][1].startswith("rollback: never took work within")
        assert daemon.find(f"{cid}: JOINING → DRAINING (rollback: never took work within 0:00:02)")
        # unjoined (the host has nothing of it) and deleted from the cloud
        assert not {k for k in host.object_keys() - before if cid in k[3]}
        assert cid not in h.cloud_ids(tmp_path)
        assert daemon.stop() == 0
    finally:
        host.stop()


def test_operator_drain_and_forced_remove_under_the_running_daemon(tmp_path: h.Path, runs: list[h.BurstRun]) -> None:
    host = h.make_host(pending=4, pending_cpu="8")  # 32 cores pending: two clusters of 2 × 8 cores
    try:
        config = h.write_config(tmp_path, host, provider={"max_nodes": 4})
        store = h.open_store(tmp_path)
        daemon = h.BurstRun(config, metrics=False)
        runs.append(daemon)
        c1, c2 = sorted(h.wait_until("two clusters ACTIVE", lambda: _active(store, 2), timeout=25))

        # a job runs on c2
        api = h.member_api(host, c2)
        core = client.CoreV1Api(api)
        h.run_pod(core, "analysis-1", core.list_node().items[0].metadata.name)

        # `burst drain c1`: the backlog still wants the capacity, yet the plan never undrains it
        drained = h.cli("drain", "--config", str(config), c1, cwd=tmp_path)
        assert drained.returncode == 0, drained.stderr
        assert f"{c1}: DRAINING" in drained.stdout
        h.wait_until(f"{c1} REMOVED by the daemon", lambda: h.state_of(store, c1) == "REMOVED", timeout=20)
        c1_states = [t["to_state"] for t in store.transitions(c1)]
        assert c1_states[-3:] == ["DRAINING", "REMOVING", "REMOVED"] and c1_states.count("ACTIVE") == 1
        drain_reason = store.transitions(c1)[-3]["reason"]
        assert drain_reason == "operator: burst drain"
        assert not daemon.find(f"undrain {c1}")
        assert c1 not in h.cloud_ids(tmp_path)

        # `burst remove --force c2` says what it would kill and asks; "no" leaves it alone
        asked = h.cli("remove", "--config", str(config), "--force", c2, cwd=tmp_path, stdin="n\n")
        assert asked.returncode == 1, asked.stdout + asked.stderr
        assert "runs 1 job(s)" in asked.stderr and "Remove it anyway?" in asked.stderr
        assert h.state_of(store, c2) == "ACTIVE"
        # counting the jobs drained it (cordon + label); declining gives it back
        assert not any(n.spec.unschedulable for n in core.list_node().items)
        assert "burst.draining" not in (host.get(*KFC, c2, h.KFS)["metadata"].get("labels") or {})

        # `burst remove --force --yes c2`: says what it kills, then stays until it is gone.  It steps
        # the cluster itself while the daemon does too: whichever moves it first wins, the other's
        # stale write is refused (never an older state written back).
        removed = h.cli("remove", "--config", str(config), "--force", "--yes", c2, cwd=tmp_path, timeout=90)
        assert removed.returncode == 0, removed.stderr
        assert f"{c2} (ACTIVE) runs 1 job(s); --force removes it now and they will be killed." in removed.stderr
        assert f"{c2}: DRAINING (hard stop)" in removed.stdout and f"{c2}: REMOVED" in removed.stdout
        assert h.state_of(store, c2) == "REMOVED"
        c2_reasons = [str(t["reason"]) for t in store.transitions(c2)]
        assert any("1 running job(s) killed" in r for r in c2_reasons), c2_reasons
        c2_states = [t["to_state"] for t in store.transitions(c2)]
        assert len(c2_states) == len(set(c2_states)), c2_states  # no step taken twice by the two processes
        h.wait_until(f"{c2} gone from the cloud", lambda: c2 not in h.cloud_ids(tmp_path), timeout=10)
        assert host.find(*KFC, c2, h.KFS) is None
        # the replacement clusters the daemon created meanwhile are still in the cloud's account
        live = sorted(c.cluster_id for c in h.clusters(store).values() if c.state.value != "REMOVED")
        assert live and h.cloud_ids(tmp_path) == live
        api.close()

        # a member that cannot be reached (its token in the host revoked) is what --force is for
        [c3, *_] = h.wait_until("a replacement ACTIVE", lambda: _active(store), timeout=20)
        host.patch("v1", "secrets", f"{c3}-credentials", {"data": {"token": b64("revoked")}}, h.KFS)
        forced = h.cli("remove", "--config", str(config), "--force", "--yes", c3, cwd=tmp_path, timeout=90)
        assert forced.returncode == 0, forced.stderr
        assert f"{c3} (ACTIVE) cannot be asked what it runs (" in forced.stderr and "401" in forced.stderr
        assert f"{c3}: REMOVED" in forced.stdout
        why = [str(t["reason"]) for t in store.transitions(c3) if t["to_state"] == "REMOVING"]
        assert why and "an unknown number of running job(s) killed" in why[0], why
        assert host.find(*KFC, c3, h.KFS) is None and host.find("v1", "secrets", f"{c3}-credentials", h.KFS) is None
        assert daemon.stop() == 0
    finally:
        host.stop()
