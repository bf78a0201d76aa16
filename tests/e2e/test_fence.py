"""One actor at a time, fenced — seen from the cloud.

The local cloud journals every call that changes its account with the calling process's pid
(the local cloud's ``audit_file``), so these tests judge the replicas by what reached the cloud, not by what
they log:

* the leader is SIGSTOPped inside a slow cloud call, past its lease: the standby takes over, and
  the old leader, resumed, sends nothing more (Kubernetes Lease);
* cloud calls so slow that a tick lasts longer than the lease, with no SIGSTOP: the leader renews
  its lease between calls and the standby never acts (the default lease, a row in the store).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import e2e_harness as h
import pytest

from burst.testing.kube_server import KubeApiServer

# A 3 s lease: a renewal (1 s) + one call (1 s, cloud or federation) + 0.5 s margin fits.
FAST_FED = {
    "kind": "kubefed",
    "host_kubeconfig": "host.kubeconfig",
    "host_context": "condor-host",
    "timeout": "1s",
}


def _journal(tmp: h.Path) -> list[dict[str, Any]]:
    path = tmp / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _by(tmp: h.Path, pid: int) -> list[dict[str, Any]]:
    return [c for c in _journal(tmp) if c["pid"] == pid]


@pytest.fixture
def host4() -> Iterator[KubeApiServer]:
    """32 cores pending: four one-node clusters, so one tick makes four cloud calls."""
    srv = h.make_host(pending=8)
    yield srv
    srv.stop()


def _config(tmp: h.Path, host: KubeApiServer, slow: float, clusters: int, le: dict[str, Any]) -> h.Path:
    return h.write_config(
        tmp,
        host,
        latency_scale=0.03,  # ~20 s of provisioning: create_cluster is called tick after tick
        federation=FAST_FED,
        provider={
            "max_nodes": clusters,
            "nodes_per_cluster": 1,
            "faults": [{"kind": "slow_call", "seconds": slow}],
            "audit_file": "audit.jsonl",
        },
        reconciler={"call_timeout": "1s"},
        extra={"leader_election": le},
    )


def test_sigstopped_leader_sends_nothing_after_its_lease(
    tmp_path: h.Path, host4: KubeApiServer, runs: list[h.BurstRun]
) -> None:
    host = host4
    le = {"kubeconfig": "host.kubeconfig", "lease_duration": "3s", "safety_margin": "0.5s"}
    config = _config(tmp_path, host, 0.8, 4, le)
    a = h.BurstRun(config, metrics=False)
    runs.append(a)
    a.wait_log("tick 1:")
    b = h.BurstRun(config, metrics=False)
    runs.append(b)
    b.wait_log("standing by")

    # A is inside a slow create call (the cloud applied it; the answer takes 0.8 s): stop it there.
    # A *new* call, of a later tick: the journal already holds tick 1's, whose answers came back.
    seen = len(_by(tmp_path, a.proc.pid))
    h.wait_until("a new create call from A", lambda: len(_by(tmp_path, a.proc.pid)) > seen, timeout=20, every=0.02)
    os.kill(a.proc.pid, signal.SIGSTOP)
    stopped_at = time.time()
    try:
        took_over = b.wait_log("tick 1:", timeout=15)  # only once A's lease ran out
        assert took_over["leader"] is True
        h.wait_until("B's own call in the cloud", lambda: _by(tmp_path, b.proc.pid), timeout=15)
        assert time.time() - stopped_at >= 3 - 0.5
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    lease = host.get("coordination.k8s.io/v1", "leases", "burst-leader", "default")["spec"]
    assert lease["holderIdentity"].endswith(f"-{b.proc.pid}")

    # A wakes up in the middle of its tick: its next side effect, if the tick has one left, finds
    # the lease gone (LeaseLost ends the tick); either way its next tick stands by.  What must
    # hold is below: nothing from A reaches the cloud after it was stopped.
    a.wait_log("standing by", timeout=10)
    for lost in a.find("does not hold the lease"):
        assert lost["event"] == "lease_lost" and lost["level"] == "warning"
    time.sleep(3)  # several of A's ticks: it stands by
    from_a = _by(tmp_path, a.proc.pid)
    assert from_a and all(c["t"] < stopped_at for c in from_a), from_a
    assert len(a.find("standing by")) >= 2
    # B still leads: A, resumed, never took the lease back
    lease = host.get("coordination.k8s.io/v1", "leases", "burst-leader", "default")["spec"]
    assert lease["holderIdentity"].endswith(f"-{b.proc.pid}")
    assert b.ticks() and all(t["leader"] for t in b.ticks())
    assert all(c["t"] > stopped_at for c in _by(tmp_path, b.proc.pid))
    assert "Traceback" not in a.text()
    assert a.stop() == 0 and b.stop() == 0


def test_slow_calls_past_the_lease_one_actor_without_sigstop(
    tmp_path: h.Path, host4: KubeApiServer, runs: list[h.BurstRun]
) -> None:
    host = host4
    host.add_pod("job-8", cpu="4", memory="1Gi", unschedulable=True)
    host.add_pod("job-9", cpu="4", memory="1Gi", unschedulable=True)
    # five one-node clusters, each create call 0.9 s: a tick of 4.5 s, the lease 3 s (the store's)
    config = _config(tmp_path, host, 0.9, 5, {"lease_duration": "3s", "safety_margin": "0.5s"})
    a = h.BurstRun(config, metrics=False)
    runs.append(a)
    a.wait_log("tick 1:", timeout=30)
    b = h.BurstRun(config, metrics=False)
    runs.append(b)
    b.wait_log("standing by")
    store = h.open_store(tmp_path)
    h.wait_until(
        "five clusters ACTIVE",
        lambda: sum(c.state.value == "ACTIVE" for c in h.clusters(store).values()) == 5,
        timeout=60,
    )
    # ticks really outlasted the lease: five 0.9 s creates in one tick
    assert max(t["duration_s"] for t in a.ticks()) > 3, [t["duration_s"] for t in a.ticks()]
    assert _by(tmp_path, a.proc.pid)
    assert _by(tmp_path, b.proc.pid) == []  # the standby never reached the cloud
    assert b.ticks() == [] and not b.find("→")
    assert len(h.cloud_ids(tmp_path)) == 5
    store.close()
    assert a.stop() == 0 and b.stop() == 0
