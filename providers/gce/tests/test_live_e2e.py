"""burst end to end against the local GKE v1 server: the real engine and reconciler on a RealClock.

What the provider's own tests cannot show: that the core drives it through a whole life (a backlog
appears → a GKE cluster with burst's labels is created and its operation followed until RUNNING →
the member joins → its node pool grows by ``setSize`` with the backlog → backlog gone → drained and
deleted, ledger closed), that a burst *process* killed mid-create is finished by the next one
without a second cluster, that ``adopt()`` removes a labelled cluster the store does not know, and
that a quota answer from GKE sends placement to the next provider within the same tick.  Time passes
for real: the server's operations finish after a few polls and the tests tick under a deadline.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from burst_gce import NODE_POOL

from burst.lifecycle import ClusterState
from burst.model import CloudStatus, ClusterSpec
from burst.testing.live import Live, child_command, start, write_config

from .fake_gke import FakeGke
from .support import PROJECT, ZONE

S = ClusterState
OWNER = "burst"
CURRENCY = "USD"
FLAVOR = "n2-standard-8"  # 8 vCPUs: one node per 8-core job


def gce_section(gke: FakeGke, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "gce",
        "project": PROJECT,
        "location": ZONE,
        "machine_types": [FLAVOR],
        "api_endpoint": gke.base_url,
        "credentials": "anonymous",
        "max_nodes": 4,
        "nodes_per_cluster": 4,
        **extra,
    }


def cloud_clusters(gke: FakeGke) -> list[str]:
    with gke.lock:
        return sorted(c["name"] for c in gke.clusters.values())


def assert_nothing_left(live: Live, gke: FakeGke) -> None:
    assert cloud_clusters(gke) == []
    assert live.engine.store.fleet() == []
    segments = live.engine.store.ledger()
    assert segments and all(s.end is not None for s in segments), "every billed segment is closed"


@pytest.fixture
def server(gke: FakeGke) -> Iterator[FakeGke]:
    """GKE's pace, shortened: a create operation runs for two polls, a delete or resize for one."""
    gke.create_polls, gke.delete_polls, gke.resize_polls = 2, 1, 1
    yield gke


# ---- a whole life ------------------------------------------------------------------------------


def test_backlog_creates_grows_and_removes_a_gke_cluster(server: FakeGke, tmp_path: Path) -> None:
    gke = server
    live = start(write_config(tmp_path, {"gce": gce_section(gke)}, currency=CURRENCY))
    live.backlog.set_pending(16)  # two 8-core jobs waiting: two nodes

    live.tick_until(lambda: bool(gke.sent("POST", r"/clusters$")), "create sent")
    [rec] = live.engine.store.all_clusters()
    cid = rec.cluster_id
    assert rec.provider == "gce" and rec.desired_nodes == 2
    [post] = gke.sent("POST", r"/clusters$")
    body = post.body["cluster"]
    assert body["name"] == cid
    assert body["resourceLabels"]["burst-owner"] == OWNER and body["resourceLabels"]["burst-cluster"] == cid
    [pool] = body["nodePools"]
    assert pool["name"] == NODE_POOL and pool["initialNodeCount"] == 2 and pool["config"]["machineType"] == FLAVOR
    assert post.path == f"/v1/projects/{PROJECT}/locations/{ZONE}/clusters"

    live.tick_until(lambda: live.state(cid) is S.ACTIVE, "cluster active")
    trail = [t["to_state"] for t in live.engine.store.transitions(cid)]
    assert trail == ["PLANNED", "PROVISIONING", "JOINING", "ACTIVE"]
    assert gke.sent("GET", r"/operations/"), "the create operation was followed"

    live.backlog.set_pending(32)  # more work: the same cluster grows to four nodes
    live.tick_until(lambda: bool(gke.sent("POST", r":setSize$")), "resize sent")
    [resize] = gke.sent("POST", r":setSize$")
    assert resize.path.endswith(f"/clusters/{cid}/nodePools/{NODE_POOL}:setSize")
    assert resize.body["nodeCount"] == 4
    live.tick_until(lambda: getattr(live.engine.store.get(cid), "nodes", 0) == 4, "resize done")
    assert len(gke.sent("POST", r"/clusters$")) == 1, "growing never makes a second cluster"

    live.backlog.set_pending(0)  # the backlog is gone: drain, then delete
    live.tick_until(lambda: live.state(cid) is S.REMOVED, "cluster removed")
    trail = [t["to_state"] for t in live.engine.store.transitions(cid)]
    assert trail[-3:] == ["DRAINING", "REMOVING", "REMOVED"]
    assert [r.path for r in gke.sent("DELETE")] == [f"/v1/projects/{PROJECT}/locations/{ZONE}/clusters/{cid}"]
    assert_nothing_left(live, gke)


# ---- crash mid-create, restart, adopt --------------------------------------------------------


def test_killed_mid_create_the_next_process_adopts_and_never_duplicates(server: FakeGke, tmp_path: Path) -> None:
    gke = server
    cfg = write_config(tmp_path, {"gce": gce_section(gke)}, currency=CURRENCY)
    gke.hold("POST", r"/clusters$")  # GKE acts on the create; its answer never reaches the process
    child = subprocess.Popen(child_command(cfg.path, 16), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if not gke.applied.wait(timeout=30):
            _out, err = child.communicate(timeout=5) if child.poll() is not None else (b"", b"")
            pytest.fail(f"the burst process never created its cluster: {err.decode()[-2000:]}")
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        gke.release()
    assert child.returncode == -signal.SIGKILL
    assert b"tick" not in out, "killed inside its first tick, mid-create"
    [cid] = cloud_clusters(gke)

    # An orphan: labelled with our owner, unknown to the store (as if from a lost store).
    live = start(cfg)
    orphan = f"{OWNER}-gce-09999"
    provider = live.engine.providers["gce"]
    spec = ClusterSpec(orphan, "gce", ZONE, FLAVOR, 1, OWNER)
    for _ in range(8):
        if provider.create_cluster(spec).status is CloudStatus.READY:
            break
    assert cloud_clusters(gke) == sorted([cid, orphan])
    creates_before = len(gke.sent("POST", r"/clusters$"))

    # The next process: same store file, same project.
    live.backlog.set_pending(16)
    report = live.engine.reconciler.adopt()
    assert report.orphans_removed == [orphan] and report.errors == []
    assert live.state(cid) is S.PROVISIONING
    live.tick_until(lambda: live.state(cid) is S.ACTIVE and cloud_clusters(gke) == [cid], "adopted, orphan gone")
    assert len(gke.sent("POST", r"/clusters$")) == creates_before, "the cluster was adopted, not created again"
    # issue 12: the orphan became a record, was drained through the federation, then removed
    assert {c.cluster_id: c.state for c in live.engine.store.all_clusters()} == {cid: S.ACTIVE, orphan: S.REMOVED}
    assert not any(r.path.endswith(f"/clusters/{cid}") for r in gke.sent("DELETE")), "adopted, not cleaned"

    live.backlog.set_pending(0)
    live.tick_until(lambda: live.state(cid) is S.REMOVED, "cluster removed")
    assert_nothing_left(live, gke)


# ---- quota on create: the next provider in the same tick ---------------------------------------


def test_quota_exceeded_on_create_falls_back_to_the_next_provider_in_the_same_tick(
    server: FakeGke, tmp_path: Path
) -> None:
    gke = server
    providers = {
        "gce": gce_section(gke, priority=10),
        "spare": {
            "kind": "local",
            "cloud": "gce",
            "flavors": [FLAVOR],
            "max_nodes": 4,
            "nodes_per_cluster": 4,
            "prices": {FLAVOR: {"price_per_hour": 9.0, "currency": CURRENCY}},
        },
    }
    live = start(write_config(tmp_path, providers, [{"kind": "placement", "strategy": "priority"}], currency=CURRENCY))
    gke.inject_error(
        "POST",
        r"/clusters$",
        429,
        "RESOURCE_EXHAUSTED",
        "Quota 'N2_CPUS' exceeded. Limit: 24.0 in region europe-west4.",
    )
    live.backlog.set_pending(16)
    res = live.engine.tick()
    assert res.replans == 1
    by_provider = {c.provider: c for c in live.engine.store.all_clusters()}
    assert by_provider["gce"].state is S.FAILED and "QuotaExceeded" in (by_provider["gce"].last_error or "")
    assert by_provider["spare"].state is S.PROVISIONING  # asked in the same tick
    assert live.engine.store.backoffs()["gce"] > live.engine.clock.now()
    assert len(gke.sent("POST", r"/clusters$")) == 1

    failed = by_provider["gce"].cluster_id
    live.tick_until(lambda: live.state(failed) is S.REMOVED, "failed cluster cleaned up")
    assert len(gke.sent("POST", r"/clusters$")) == 1, "gce is backed off: not asked again"
    assert cloud_clusters(gke) == []
    assert {c.provider for c in live.engine.store.fleet()} == {"spare"}
