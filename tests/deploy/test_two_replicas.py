"""The rendered Deployment, started twice: two ``burst run`` processes with the overlay's config,
arguments, environment and mounted files, against the test Kubernetes API server (the Lease, the
backlog).  Both pass their probes; exactly one leads.

The only changes to what a kubelet would start: the mount paths live under a temporary root, the
in-cluster API address is the test server's, the store is one shared sqlite file instead of the
PostgreSQL service, and the status port listens on a free loopback port instead of 0.0.0.0:9090.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from burst.testing.kube_server import KubeApiServer
from tests.deploy.manifests import container, materialize, point_state_at, render

LEASE = ("coordination.k8s.io/v1", "leases")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, pred: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except OSError:
        return 0, ""


class Replica:
    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, port: int) -> None:
        self.port = port
        self.log = cwd / "stderr.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "burst.cli", *args],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for ln in self.log.read_text(encoding="utf-8").splitlines():
            if ln.startswith("{"):
                out.append(json.loads(ln))
        return out

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError("a replica did not stop within 30 s of SIGTERM") from None


@pytest.fixture
def host() -> Iterator[KubeApiServer]:
    with KubeApiServer() as srv:
        srv.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "burst"}})
        yield srv


@pytest.mark.timeout(180)
def test_two_replicas_from_the_rendered_deployment_exactly_one_leads(host: KubeApiServer, tmp_path: Path) -> None:
    docs = render("local")
    c = container(docs)
    probe_path = c["readinessProbe"]["httpGet"]["path"]
    assert c["livenessProbe"]["httpGet"]["path"] == probe_path
    replicas: list[Replica] = []
    try:
        for i in range(2):
            root = tmp_path / f"pod-{i}"
            pod = materialize(docs, root, host, secrets={"burst-state": {"password": "unused-by-sqlite"}})
            point_state_at(pod.config, f"sqlite:///{tmp_path / 'shared.db'}")
            args = list(pod.args)
            port = free_port()
            args[args.index("--metrics-port") + 1] = str(port)
            args[args.index("--metrics-host") + 1] = "127.0.0.1"
            replicas.append(Replica(args, pod.env, root, port))

        for r in replicas:  # the kubelet's probes
            wait_for(f"{probe_path} on :{r.port}", lambda r=r: get(f"http://127.0.0.1:{r.port}{probe_path}")[0] == 200)
        lease = wait_for(
            "the Lease to be held",
            lambda: (host.find(*LEASE, "burst-leader", "burst") or {}).get("spec", {}).get("holderIdentity"),
        )

        def verdicts() -> list[bool] | None:
            """Each replica's first tick: True if it led, False if it stood by; None before both ticked."""
            out: list[bool] = []
            for r in replicas:
                said = [ln["leader"] for ln in r.lines() if "leader" in ln]
                if not said:
                    return None
                out.append(bool(said[0]))
            return out

        seen = wait_for("both replicas to tick once", verdicts)
        assert sorted(seen) == [False, True], f"exactly one replica leads, got {seen}"
        leader = replicas[seen.index(True)]
        standby = replicas[seen.index(False)]
        assert lease.endswith(f"-{leader.proc.pid}")
        for r, want in ((leader, 1.0), (standby, 0.0)):
            status, text = get(f"http://127.0.0.1:{r.port}/metrics")
            assert status == 200
            assert f"burst_leader {want}" in text
        assert "No alarm firing." in get(f"http://127.0.0.1:{leader.port}/")[1]
    finally:
        codes = [r.stop() for r in replicas]
    assert codes == [0, 0]
    # the leader handed the Lease over on SIGTERM
    assert not host.get(*LEASE, "burst-leader", "burst")["spec"].get("holderIdentity")
