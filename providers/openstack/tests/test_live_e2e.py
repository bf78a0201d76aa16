"""burst end to end against the local Keystone + Magnum v1 server: the real engine and reconciler on
a RealClock, the real openstacksdk client through an ordinary clouds.yaml.

What the provider's own tests cannot show: that the core drives it through a whole life (a backlog
appears → a Magnum cluster labelled with burst's owner/cluster labels → CREATE_COMPLETE → the member
joins with a kubeconfig from a signed CSR → node_count grows with the backlog → backlog gone →
drained and deleted, ledger closed), that a burst *process* killed mid-create is finished by the
next one without a second cluster (Magnum names need not be unique, so this is the case that
matters), that ``adopt()`` removes a labelled cluster the store does not know, and that a quota
answer from Magnum sends placement to the next provider within the same tick.  Time passes for real:
Heat stacks finish after a few reads and the tests tick under a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from burst.config import Config
from burst.lifecycle import ClusterState
from burst.model import CloudStatus, ClusterSpec
from burst.testing.live import Live, child_command, start, write_config

S = ClusterState
OWNER = "burst"
CURRENCY = "EUR"
NAME = "cern"
REGION = "cern"
FLAVOR = "m2.xlarge"  # 8 vCPUs: one node per 8-core job
LOCAL_CLOUD, LOCAL_FLAVOR = "openstack", "m2.2xlarge"
CREATE_PATH = r"/magnum/v1/clusters$"
_QUOTA_DETAIL = "Resource Limit Exceeded: You have reached the maximum clusters per project, 20."
QUOTA_ERROR = {
    "errors": [
        {
            "request_id": "",
            "code": "client",
            "status": 403,
            "title": _QUOTA_DETAIL,
            "detail": _QUOTA_DETAIL,
            "links": [],
        }
    ]
}


def section(**extra: Any) -> dict[str, Any]:
    return {
        "kind": "openstack",
        "cloud": "burst-test",
        "region": REGION,
        "cluster_template": "kubernetes-1.29",
        "keypair": "burst-key",
        "flavor": FLAVOR,
        "max_nodes": 4,
        "nodes_per_cluster": 4,
        **extra,
    }


def cloud_clusters(magnum: Any) -> list[str]:
    with magnum.lock:
        return sorted(str(c["name"]) for c in magnum.clusters.values())


def kill_mid_create(fake: Any, cfg: Config, tmp_path: Path) -> None:
    """Run burst in its own process until its create reached the server (which acts on it, then
    holds the answer back), SIGKILL it there, and let the server answer again."""
    fake.delay("POST", CREATE_PATH, 10)
    child = subprocess.Popen(
        child_command(cfg.path, 16),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),  # OS_CLIENT_CONFIG_FILE: the clouds.yaml naming the server
    )
    try:
        deadline = time.monotonic() + 30
        while not (fake.sent("POST", CREATE_PATH) and fake.clusters):
            if child.poll() is not None or time.monotonic() > deadline:
                _out, err = child.communicate(timeout=5) if child.poll() is not None else (b"", b"")
                pytest.fail(f"the burst process never created its cluster: {err.decode()[-2000:]}")
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        fake.delays.clear()
    assert child.returncode == -signal.SIGKILL
    assert b"tick" not in out, "killed inside its first tick, mid-create"


def assert_nothing_left(live: Live, fake: Any) -> None:
    assert cloud_clusters(fake) == []
    assert live.engine.store.fleet() == []
    segments = live.engine.store.ledger()
    assert segments and all(s.end is not None for s in segments), "every billed segment is closed"


# ---- a whole life ------------------------------------------------------------------------------


def test_backlog_creates_grows_and_removes_a_magnum_cluster(magnum: Any, tmp_path: Path) -> None:
    live = start(write_config(tmp_path, {NAME: section()}, currency=CURRENCY))
    live.backlog.set_pending(16)  # two 8-core jobs waiting: two nodes

    live.tick_until(lambda: bool(magnum.sent("POST", CREATE_PATH)), "create sent")
    [rec] = live.engine.store.all_clusters()
    cid = rec.cluster_id
    assert rec.provider == NAME and rec.desired_nodes == 2
    [post] = magnum.sent("POST", CREATE_PATH)
    assert post.body["name"] == cid and post.body["node_count"] == 2 and post.body["flavor_id"] == FLAVOR
    assert post.body["labels"]["burst.owner"] == OWNER and post.body["labels"]["burst.cluster"] == cid
    assert post.body["labels"]["kube_tag"] == "v1.29.1", "the template's labels are kept"

    live.tick_until(lambda: live.state(cid) is S.ACTIVE, "cluster active")
    trail = [t["to_state"] for t in live.engine.store.transitions(cid)]
    assert trail == ["PLANNED", "PROVISIONING", "JOINING", "ACTIVE"]
    assert magnum.sent("POST", r"/magnum/v1/certificates$"), "the kubeconfig came from a signed CSR"

    live.backlog.set_pending(32)  # more work: the same cluster grows to four nodes
    live.tick_until(lambda: bool(magnum.sent("PATCH")), "resize sent")
    [patch] = magnum.sent("PATCH")
    [uuid] = [k for k, c in magnum.clusters.items() if c["name"] == cid]
    assert patch.path.rsplit("/", 1)[-1] in (cid, uuid)
    assert patch.body == [{"op": "replace", "path": "/node_count", "value": 4}]
    live.tick_until(lambda: getattr(live.engine.store.get(cid), "nodes", 0) == 4, "resize done")
    assert len(magnum.sent("POST", CREATE_PATH)) == 1, "growing never makes a second cluster"

    live.backlog.set_pending(0)  # the backlog is gone: drain, then delete
    live.tick_until(lambda: live.state(cid) is S.REMOVED, "cluster removed")
    trail = [t["to_state"] for t in live.engine.store.transitions(cid)]
    assert trail[-3:] == ["DRAINING", "REMOVING", "REMOVED"]
    assert len(magnum.sent("DELETE")) == 1
    assert_nothing_left(live, magnum)


# ---- crash mid-create, restart, adopt --------------------------------------------------------


def test_killed_mid_create_the_next_process_adopts_and_never_duplicates(magnum: Any, tmp_path: Path) -> None:
    fake = magnum
    cfg = write_config(tmp_path, {NAME: section()}, currency=CURRENCY)
    kill_mid_create(fake, cfg, tmp_path)
    [cid] = cloud_clusters(fake)

    # An orphan: tagged with our owner, unknown to the store (as if from a lost store).
    live = start(cfg)
    orphan = f"{OWNER}-{NAME}-09999"
    provider = live.engine.providers[NAME]
    spec = ClusterSpec(orphan, NAME, REGION, FLAVOR, 1, OWNER)
    for _ in range(12):
        if provider.create_cluster(spec).status is CloudStatus.READY:
            break
    assert cloud_clusters(fake) == sorted([cid, orphan])
    creates_before = len(fake.sent("POST", CREATE_PATH))

    # The next process: same store file, same project.
    live.backlog.set_pending(16)
    report = live.engine.reconciler.adopt()
    assert report.orphans_removed == [orphan] and report.errors == []
    assert live.state(cid) is S.PROVISIONING
    live.tick_until(lambda: live.state(cid) is S.ACTIVE and cloud_clusters(fake) == [cid], "adopted, orphan gone")
    assert len(fake.sent("POST", CREATE_PATH)) == creates_before, "the cluster was adopted, not created again"
    # issue 12: the orphan became a record, was drained through the federation, then removed
    assert {c.cluster_id: c.state for c in live.engine.store.all_clusters()} == {cid: S.ACTIVE, orphan: S.REMOVED}

    live.backlog.set_pending(0)
    live.tick_until(lambda: live.state(cid) is S.REMOVED, "cluster removed")
    assert_nothing_left(live, fake)


# ---- quota on create: the next provider in the same tick ---------------------------------------


def test_quota_exceeded_on_create_falls_back_to_the_next_provider_in_the_same_tick(magnum: Any, tmp_path: Path) -> None:
    fake = magnum
    providers = {
        NAME: section(priority=10),
        "spare": {
            "kind": "local",
            "cloud": LOCAL_CLOUD,
            "flavors": [LOCAL_FLAVOR],
            "max_nodes": 4,
            "nodes_per_cluster": 4,
            "prices": {LOCAL_FLAVOR: {"price_per_hour": 9.0}},
        },
    }
    live = start(write_config(tmp_path, providers, [{"kind": "placement", "strategy": "priority"}], currency=CURRENCY))
    fake.inject("POST", CREATE_PATH, 403, QUOTA_ERROR, times=5)
    live.backlog.set_pending(16)
    res = live.engine.tick()
    assert res.replans == 1
    by_provider = {c.provider: c for c in live.engine.store.all_clusters()}
    assert by_provider[NAME].state is S.FAILED and "QuotaExceeded" in (by_provider[NAME].last_error or "")
    assert by_provider["spare"].state is S.PROVISIONING  # asked in the same tick
    assert live.engine.store.backoffs()[NAME] > live.engine.clock.now()
    assert len(fake.sent("POST", CREATE_PATH)) == 1

    failed = by_provider[NAME].cluster_id
    live.tick_until(lambda: live.state(failed) is S.REMOVED, "failed cluster cleaned up")
    assert len(fake.sent("POST", CREATE_PATH)) == 1, "backed off: not asked again"
    assert cloud_clusters(fake) == []
    assert {c.provider for c in live.engine.store.fleet()} == {"spare"}
