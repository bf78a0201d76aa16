"""The fence and the store's lease, under a simulated clock; the config rule that makes them sound."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from burst_local import LocalProvider

from burst.clock import SimClock
from burst.config import LeaderElectionConfig
from burst.daemon import Daemon, JsonFormatter, TextFormatter
from burst.errors import ConfigError
from burst.fence import LeaseFence, LeaseLost
from burst.leader import StoreElector, _local_prefix
from burst.lifecycle import ClusterState
from burst.model import Bucket, Demand, Shape
from burst.store import Store
from burst.testing.builders import T0, StaticBacklog, make_config, make_engine

S = ClusterState
EXAMPLE_TRACE = Path(__file__).parents[2] / "examples" / "traces" / "KTH-SP2-1996-slice-1997w06-w11.swf.gz"


class ScriptedElector:
    """An elector whose answers the test scripts; each renewal takes ``renew_s`` of clock time."""

    identity = "replica-a"

    def __init__(self, clock: SimClock, renew_s: float = 0.0) -> None:
        self.clock = clock
        self.renew_s = renew_s
        self.grant = True
        self.asked = 0

    def try_lead(self) -> bool:
        self.asked += 1
        self.clock.advance(self.renew_s)
        return self.grant

    def release(self) -> None:
        self.grant = False


def test_fence_renews_before_a_call_could_outlast_the_lease_and_stops_when_refused() -> None:
    clock = SimClock(T0)
    el = ScriptedElector(clock, renew_s=1.0)
    fence = LeaseFence(el, clock, duration=10.0, margin=1.0, call_timeout=3.0)
    assert fence.renew()
    # valid until (sent + 10 - 1): the 1 s the renewal took already counts against it
    assert fence.remaining() == pytest.approx(8.0)
    clock.advance(5.0)  # 3 s left: just enough for one call
    fence.check("create c1")
    assert el.asked == 1
    clock.advance(0.5)  # 2.5 s left: a call could outlast the lease, so renew first
    fence.check("create c2")
    assert el.asked == 2 and fence.remaining() == pytest.approx(8.0)
    el.grant = False  # another replica took the lease meanwhile
    clock.advance(6.0)
    with pytest.raises(LeaseLost, match=r"create c3.*replica-a.*does not hold the lease"):
        fence.check("create c3")
    with pytest.raises(LeaseLost):  # and stays out until a renewal succeeds
        fence.check("delete c1")


def test_a_paused_leader_finds_its_lease_gone_before_its_next_call() -> None:
    clock = SimClock(T0)
    el = ScriptedElector(clock)
    fence = LeaseFence(el, clock, duration=10.0, margin=1.0, call_timeout=3.0)
    assert fence.renew()
    fence.check("create c1")
    clock.advance(60.0)  # SIGSTOP; the monotonic clock runs on
    el.grant = False
    with pytest.raises(LeaseLost):
        fence.check("create c2")


def test_store_lease_one_holder_takeover_after_expiry_and_release(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'burst.db'}"
    clock = SimClock(T0)
    cfg = LeaderElectionConfig(lease_duration=timedelta(seconds=30))
    sa, sb = Store(url, "burst"), Store(url, "burst")
    a = StoreElector(sa, cfg, clock, "a")
    b = StoreElector(sb, cfg, clock, "b")
    assert a.try_lead() and not b.try_lead()
    assert a.token == 1
    clock.advance(29)
    assert a.try_lead() and not b.try_lead()  # renewed: good for 30 s more
    clock.advance(29)
    assert not b.try_lead()
    clock.advance(2)  # a missed its renewal
    assert b.try_lead() and b.token == 2  # a new holder, a larger fencing token
    assert not a.try_lead()
    b.release()
    assert a.try_lead() and a.token == 3  # at once, no waiting the lease out
    assert sa.lease("burst-leader")[0] == "a"
    sa.close()
    sb.close()


def test_store_lease_of_a_dead_process_on_this_host_is_taken_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'burst.db'}"
    clock = SimClock(T0)
    cfg = LeaderElectionConfig(lease_duration=timedelta(seconds=30))
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True
    )
    dead = f"{_local_prefix()}-{int(gone.stdout)}"
    store = Store(url, "burst")
    elsewhere = StoreElector(store, cfg, clock, "otherhost-1")
    assert elsewhere.try_lead()
    # a replica on another host: this one cannot tell whether it runs, so it waits the lease out
    assert not StoreElector(store, cfg, clock).try_lead()
    elsewhere.release()
    assert StoreElector(store, cfg, clock, dead).try_lead()  # then killed -9 while leading
    me = StoreElector(store, cfg, clock)  # this host, a live pid: the dead one's lease is void
    assert me.try_lead() and store.lease("burst-leader")[0] == me.identity
    assert not StoreElector(store, cfg, clock, "otherhost-1").try_lead()  # and me is alive
    store.close()


def test_reconciler_sends_nothing_without_the_lease_and_blames_no_cluster() -> None:
    clock = SimClock(T0)
    backlog = StaticBacklog(clock)
    backlog.demand = Demand(clock.now(), (Bucket(Shape(8, 1000), 8, 600.0),), 100, 100, 0)
    eng = make_engine(make_config(), clock, backlog=backlog)
    el = ScriptedElector(clock)
    el.grant = False
    eng.reconciler.fence = LeaseFence(el, clock, duration=30.0, margin=2.0, call_timeout=10.0)
    clock.advance(60)
    with pytest.raises(LeaseLost):
        eng.tick()
    prov = eng.providers["aws"]
    assert isinstance(prov, LocalProvider) and prov.calls == []  # no create reached the cloud
    [rec] = eng.store.fleet()
    # the intent is written (harmless: the next leader continues it); no attempt is counted
    assert rec.state is S.PROVISIONING and rec.attempts == 0 and rec.last_error == ""


def test_adopt_never_deletes_a_cluster_another_process_created_meanwhile(tmp_path: Path) -> None:
    """``burst apply`` opened the store before the daemon wrote its intent and created the cluster."""
    url = f"sqlite:///{tmp_path / 'burst.db'}"
    state = str(tmp_path / "cloud.json")
    providers = {"aws": {"kind": "local", "cloud": "aws", "max_nodes": 8, "nodes_per_cluster": 4, "state_file": state}}
    clock = SimClock(T0)
    apply_eng = make_engine(make_config({"providers": providers}), clock, Store(url, "burst"), StaticBacklog(clock))
    backlog = StaticBacklog(clock)
    backlog.demand = Demand(clock.now(), (Bucket(Shape(8, 1000), 4, 600.0),), 100, 100, 0)
    daemon = make_engine(make_config({"providers": providers}), clock, Store(url, "burst"), backlog)
    clock.advance(60)
    daemon.tick()  # PROVISIONING committed, then the create call
    [cid] = [c.cluster_id for c in daemon.store.fleet()]
    assert apply_eng.store.fleet() == []  # apply's view predates it
    report = apply_eng.reconciler.adopt()
    assert report.orphans_removed == []
    prov = apply_eng.providers["aws"]
    assert isinstance(prov, LocalProvider) and ("delete_cluster", cid) not in prov.calls


def _config_file(tmp_path: Path, extra: dict[str, object]) -> Path:
    doc = {
        "installation": "burst",
        "onprem": {"cores": 10},
        "providers": {"aws": {"kind": "local"}},
        **extra,
    }
    path = tmp_path / "burst.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_config_refuses_a_lease_shorter_than_a_renewal_plus_a_call(tmp_path: Path) -> None:
    from burst.config import load

    # a 10 s tick: the lease also covers two ticks (check_lease_vs_tick), so only this rule speaks
    ok = _config_file(tmp_path, {"reconciler": {"tick": "10s"}, "leader_election": {"lease_duration": "30s"}})
    load(ok)  # 10 s renewal + 10 s call + 2 s margin < 30 s
    bad = _config_file(
        tmp_path,
        {"reconciler": {"tick": "10s", "call_timeout": "20s"}, "leader_election": {"lease_duration": "30s"}},
    )
    with pytest.raises(ConfigError) as info:
        load(bad)
    msg = str(info.value)
    assert msg.startswith(f"{bad}:") and "leader_election.lease_duration" in msg and "= 42s" in msg
    line = int(msg.split(":")[1])
    assert "lease_duration" in bad.read_text().splitlines()[line - 1]
    out = subprocess.run(
        [sys.executable, "-m", "burst.cli", "config", "validate", str(bad)], check=False, capture_output=True, text=True
    )
    assert out.returncode != 0 and "Traceback" not in out.stderr + out.stdout
    assert "must outlast a renewal" in out.stderr + out.stdout


def test_a_tick_that_raises_anything_is_logged_as_one_json_line_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(StaticBacklog):
        def poll(self) -> Demand:
            raise ZeroDivisionError("a bug in a backlog plugin")

    clock = SimClock(T0)
    cfg = make_config()
    daemon = Daemon(cfg, clock=clock)
    daemon.engine = make_engine(cfg, clock, backlog=Broken(clock))
    daemon.fence = LeaseFence(ScriptedElector(clock), clock, duration=30.0, margin=2.0, call_timeout=10.0)
    with caplog.at_level(logging.ERROR, logger="burst.daemon"):
        daemon._tick()  # returns: the scheduler runs the next tick on time
        daemon._tick()
    assert daemon.failures == {"ZeroDivisionError": 2} and daemon.ticks == 0
    [rec, _] = [r for r in caplog.records if r.name == "burst.daemon"]
    line = json.loads(JsonFormatter().format(rec))
    assert line["event"] == "tick_failed" and "ZeroDivisionError: a bug in a backlog plugin" in line["msg"]
    assert "Traceback" in line["exc"] and "\n" not in JsonFormatter().format(rec)
    text = TextFormatter().format(rec)
    assert "\n" not in text and text.endswith("(ZeroDivisionError: a bug in a backlog plugin)")


def test_apply_refuses_to_act_beside_a_daemon_holding_the_lease(tmp_path: Path) -> None:
    cfg = tmp_path / "burst.yaml"
    cfg.write_text(
        "onprem: {cores: 10}\n"
        f"backlog: {{kind: trace, path: {EXAMPLE_TRACE}, offset: 154d}}\n"
        "providers:\n  aws: {kind: local, cloud: aws, state_file: cloud.json}\n"
        "policies: [{kind: backlog, for: 0s}]\n"
    )
    store = Store(f"sqlite:///{tmp_path / 'burst.db'}", "burst")
    daemon = StoreElector(store, LeaderElectionConfig(), SimClock(datetime.now(UTC)), "otherhost-7")
    assert daemon.try_lead()
    cmd = [sys.executable, "-m", "burst.cli", "apply", "--config", str(cfg)]
    refused = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "holds this installation's lease" in refused.stderr
    assert store.all_clusters() == [] and not (tmp_path / "cloud.json").exists()  # nothing done
    daemon.release()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert store.all_clusters() and store.lease("burst-leader")[0] is None  # apply gave it back
    store.close()
