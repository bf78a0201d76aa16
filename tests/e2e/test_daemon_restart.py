"""SIGTERM and restart, and two replicas under leader election: the store and the Lease decide,
so a cluster is never created twice."""

from __future__ import annotations

import e2e_harness as h

from burst.testing.kube_server import KubeApiServer


def test_sigterm_mid_provisioning_then_restart_continues_the_same_cluster(
    tmp_path: h.Path, host: KubeApiServer, runs: list[h.BurstRun]
) -> None:
    # ~3-4 s of provisioning: room to stop the daemon while the cloud is still creating
    config = h.write_config(tmp_path, host, latency_scale=0.005)
    store = h.open_store(tmp_path)
    first = h.BurstRun(config, metrics=False)
    runs.append(first)
    first.wait_log("PLANNED → PROVISIONING")
    assert first.stop() == 0
    assert first.find("stopped after")
    [rec] = h.clusters(store).values()
    assert rec.state.value == "PROVISIONING"
    cid = rec.cluster_id
    assert h.cloud_ids(tmp_path) == [cid]  # the cloud got the create request before the stop

    second = h.BurstRun(config, metrics=False)
    runs.append(second)
    h.wait_until("the same cluster ACTIVE", lambda: h.state_of(store, cid) == "ACTIVE", timeout=25)
    assert list(h.clusters(store)) == [cid]
    assert h.cloud_ids(tmp_path) == [cid]
    assert store.get(cid) is not None and store.get(cid).requested_at == rec.requested_at  # type: ignore[union-attr]
    # the restarted daemon planned nothing new and removed no "orphan"
    assert not second.find("decision: create") and not second.find("orphan")
    states = [t["to_state"] for t in store.transitions(cid)]
    assert states == ["PLANNED", "PROVISIONING", "JOINING", "ACTIVE"], states
    assert host.get("core.kubefed.io/v1beta1", "kubefedclusters", cid, h.KFS)
    assert second.stop() == 0


def test_leader_election_one_replica_acts_and_the_other_takes_over(
    tmp_path: h.Path, host: KubeApiServer, runs: list[h.BurstRun]
) -> None:
    le = {
        "kubeconfig": "host.kubeconfig",
        "namespace": "default",
        "name": "burst-leader",
        "lease_duration": "5s",  # > a renewal (1 s) + a federation call (3 s) + the margin
        "safety_margin": "0.5s",
    }
    config = h.write_config(
        tmp_path,
        host,
        latency_scale=0.004,
        extra={"leader_election": le},
        reconciler={"joining_timeout": "60s", "call_timeout": "1s"},
    )
    store = h.open_store(tmp_path)
    a = h.BurstRun(config, metrics=False)
    runs.append(a)
    a.wait_log("tick 1:")
    lease = host.get("coordination.k8s.io/v1", "leases", "burst-leader", "default")
    leader = lease["spec"]["holderIdentity"]
    assert leader.endswith(f"-{a.proc.pid}")

    b = h.BurstRun(config, metrics=False)
    runs.append(b)
    b.wait_log("standing by")
    a.wait_log("PLANNED → PROVISIONING")
    h.wait_until("B standing by a few times", lambda: len(b.find("standing by")) >= 3, timeout=10)
    assert b.ticks() == [] and not b.find("→")  # B acted on nothing
    assert all(ln.get("leader") is False for ln in b.find("standing by"))
    assert host.get("coordination.k8s.io/v1", "leases", "burst-leader", "default")["spec"]["holderIdentity"] == leader
    [cid] = h.clusters(store)

    # the leader stops: it releases the lease, B takes over at its next tick, well before 5 s
    assert a.stop() == 0
    released = host.get("coordination.k8s.io/v1", "leases", "burst-leader", "default")["spec"]
    assert released.get("holderIdentity") in (None, f"{leader[: leader.rfind('-')]}-{b.proc.pid}")
    took_over = b.wait_log("tick 1:", timeout=5)
    assert took_over["leader"] is True
    lease = host.get("coordination.k8s.io/v1", "leases", "burst-leader", "default")["spec"]
    assert lease["holderIdentity"].endswith(f"-{b.proc.pid}") and lease["leaseTransitions"] >= 1
    h.wait_until("B brings the same cluster to ACTIVE", lambda: h.state_of(store, cid) == "ACTIVE", timeout=20)
    assert list(h.clusters(store)) == [cid] and h.cloud_ids(tmp_path) == [cid]
    assert not b.find("decision: create") and not b.find("orphan")  # A's cluster is known, not an orphan
    assert b.stop() == 0
