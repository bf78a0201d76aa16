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
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from burst_gce import NODE_POOL

from burst.clock import Clock, RealClock
from burst.config import Config, parse
from burst.engine import Engine
from burst.lifecycle import ClusterState
from burst.model import Bucket, CloudStatus, ClusterSpec, Demand, Shape
from burst.store import Store

from .fake_gke import FakeGke
from .support import PROJECT, ZONE

S = ClusterState
OWNER = "burst"
CURRENCY = "USD"
FLAVOR = "n2-standard-8"  # 8 vCPUs: one node per 8-core job

# The burst process of the crash test: the production engine, built from the YAML file, ticking
# until it is killed.  Its backlog is fixed (argv[2] cores of 8-core jobs).
CHILD = """
import sys, time
from pathlib import Path
from burst.clock import RealClock
from burst.config import parse
from burst.engine import Engine
from burst.model import Bucket, Demand, Shape

class Backlog:
    name = "static"
    def __init__(self, clock, cores):
        self.clock, self.cores = clock, cores
    def poll(self):
        return Demand(self.clock.now(), (Bucket(Shape(8, 1000), self.cores // 8, 600.0),),
                      running_cores=100, onprem_cores=100, onprem_free_cores=0)

path = Path(sys.argv[1])
cfg = parse(path.read_text(), str(path))
clock = RealClock()
engine = Engine.build(cfg, clock, backlog=Backlog(clock, int(sys.argv[2])))
engine.reconciler.adopt()
for _ in range(600):
    engine.tick()
    print("tick", flush=True)
    time.sleep(0.05)
print("finished", flush=True)
"""


class LiveBacklog:
    """The backlog source of these tests: ``pending`` cores of 8-core jobs, read at the real time."""

    name = "static"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.demand = Demand(clock.now(), onprem_cores=100, onprem_free_cores=0)

    def set_pending(self, cores: int) -> None:
        buckets = (Bucket(Shape(8, 1000), cores // 8, 600.0),) if cores else ()
        self.demand = Demand(self.clock.now(), buckets, running_cores=100, onprem_cores=100, onprem_free_cores=0)

    def poll(self) -> Demand:
        return replace(self.demand, at=self.clock.now())


@dataclass
class Live:
    engine: Engine
    backlog: LiveBacklog


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


def write_config(tmp_path: Path, providers: dict[str, Any], policies: list[dict[str, Any]] | None = None) -> Config:
    """The operator's YAML, written to a file and loaded the way ``burst run`` loads it."""
    data: dict[str, Any] = {
        "installation": OWNER,
        "state": f"sqlite:///{tmp_path / 'burst.db'}",
        "currency": CURRENCY,
        "onprem": {"cores": 100},
        "federation": {"kind": "local", "join_latency": "0s"},
        "providers": providers,
        "policies": [
            {"kind": "backlog", "pending_cores_above": 0, "for": "0s", "idle_after": "1s", "cooldown": "0s"},
            *(policies or []),
        ],
        "reconciler": {"tick": "1s", "retry_backoff": "1s"},
    }
    path = tmp_path / "burst.yaml"
    path.write_text(yaml.safe_dump(data))
    return parse(path.read_text(), str(path))


def start(cfg: Config) -> Live:
    clock = RealClock()
    backlog = LiveBacklog(clock)
    engine = Engine.build(cfg, clock, store=Store(cfg.state_url(), OWNER), backlog=backlog)
    return Live(engine, backlog)


def tick_until(live: Live, done: Callable[[], bool], what: str, timeout: float = 15.0) -> int:
    """Tick with short real sleeps until ``done()``; fail loudly, with the fleet, at the deadline."""
    deadline = time.monotonic() + timeout
    ticks = 0
    while not done():
        if time.monotonic() > deadline:
            fleet = [(c.cluster_id, c.state.value, c.last_error) for c in live.engine.store.all_clusters()]
            pytest.fail(f"{what}: not reached in {timeout}s after {ticks} ticks; fleet {fleet}")
        live.engine.tick()
        ticks += 1
        time.sleep(0.02)
    return ticks


def state(live: Live, cid: str) -> ClusterState | None:
    rec = live.engine.store.get(cid)
    return rec.state if rec else None


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
    live = start(write_config(tmp_path, {"gce": gce_section(gke)}))
    live.backlog.set_pending(16)  # two 8-core jobs waiting: two nodes

    tick_until(live, lambda: bool(gke.sent("POST", r"/clusters$")), "create sent")
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

    tick_until(live, lambda: state(live, cid) is S.ACTIVE, "cluster active")
    trail = [t["to_state"] for t in live.engine.store.transitions(cid)]
    assert trail == ["PLANNED", "PROVISIONING", "JOINING", "ACTIVE"]
    assert gke.sent("GET", r"/operations/"), "the create operation was followed"

    live.backlog.set_pending(32)  # more work: the same cluster grows to four nodes
    tick_until(live, lambda: bool(gke.sent("POST", r":setSize$")), "resize sent")
    [resize] = gke.sent("POST", r":setSize$")
    assert resize.path.endswith(f"/clusters/{cid}/nodePools/{NODE_POOL}:setSize")
    assert resize.body["nodeCount"] == 4
    tick_until(live, lambda: getattr(live.engine.store.get(cid), "nodes", 0) == 4, "resize done")
    assert len(gke.sent("POST", r"/clusters$")) == 1, "growing never makes a second cluster"

    live.backlog.set_pending(0)  # the backlog is gone: drain, then delete
    tick_until(live, lambda: state(live, cid) is S.REMOVED, "cluster removed")
    trail = [t["to_state"] for t in live.engine.store.transitions(cid)]
    assert trail[-3:] == ["DRAINING", "REMOVING", "REMOVED"]
    assert [r.path for r in gke.sent("DELETE")] == [f"/v1/projects/{PROJECT}/locations/{ZONE}/clusters/{cid}"]
    assert_nothing_left(live, gke)


# ---- crash mid-create, restart, adopt --------------------------------------------------------


def test_killed_mid_create_the_next_process_adopts_and_never_duplicates(server: FakeGke, tmp_path: Path) -> None:
    gke = server
    cfg = write_config(tmp_path, {"gce": gce_section(gke)})
    gke.hold("POST", r"/clusters$")  # GKE acts on the create; its answer never reaches the process
    script = tmp_path / "burst_child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), cfg.path, "16"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
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
    assert state(live, cid) is S.PROVISIONING
    tick_until(live, lambda: state(live, cid) is S.ACTIVE and cloud_clusters(gke) == [cid], "adopted, orphan gone")
    assert len(gke.sent("POST", r"/clusters$")) == creates_before, "the cluster was adopted, not created again"
    assert [c.cluster_id for c in live.engine.store.all_clusters()] == [cid]
    assert not any(r.path.endswith(f"/clusters/{cid}") for r in gke.sent("DELETE")), "adopted, not cleaned"

    live.backlog.set_pending(0)
    tick_until(live, lambda: state(live, cid) is S.REMOVED, "cluster removed")
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
    live = start(write_config(tmp_path, providers, [{"kind": "placement", "strategy": "priority"}]))
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
    tick_until(live, lambda: state(live, failed) is S.REMOVED, "failed cluster cleaned up")
    assert len(gke.sent("POST", r"/clusters$")) == 1, "gce is backed off: not asked again"
    assert cloud_clusters(gke) == []
    assert {c.provider for c in live.engine.store.fleet()} == {"spare"}
