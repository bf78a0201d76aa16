"""The GKE backend of the chaos runs: the real ``gce`` provider (google-cloud-container, REST)
against the provider tests' GKE server (``providers/gce/tests/fake_gke.py``) on 127.0.0.1.

GKE takes anonymous credentials here, so a request carries no identity: each replica gets its own
front door instead (``api_endpoint``), a small forwarder that stamps each request with the time
and the replica before passing it to the one GKE server every replica shares.  Faults are GKE's
own: 429 ``RESOURCE_EXHAUSTED`` with ``Retry-After``, 500 / 503, an operation that ends in a quota
or stockout error, slow calls, and "done but gone" (the create operation is DONE, then the cluster
is not there).  The provider's calls have a fixed 30 s timeout, too long for a run: timeouts and
lost answers are exercised on the AWS backend.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from bench.chaos.world import CloudView, load_test_module
from burst.testing.loopback import LoopbackServer

PROJECT = "burst-chaos"
ZONE = "europe-west4-a"


def _fake_gke_module() -> Any:
    return load_test_module("burst_chaos_fake_gke", "providers/gce/tests/fake_gke.py")


@dataclass(frozen=True)
class GkeCall:
    t: float
    replica: str
    method: str
    path: str
    cluster: str
    status: int

    @property
    def operation(self) -> str:
        if self.method == "POST" and self.path.endswith("/clusters"):
            return "CreateCluster"
        if self.method == "DELETE" and "/clusters/" in self.path and "/nodePools" not in self.path:
            return "DeleteCluster"
        return f"{self.method} {self.path.rsplit('/', 1)[-1]}"


def _cluster_of(path: str, raw: bytes) -> str:
    """The cluster a request is about: in the body of a create, else in the path."""
    if path.endswith("/clusters") and raw:
        try:
            return str(json.loads(raw).get("cluster", {}).get("name", ""))
        except ValueError:
            return ""
    parts = path.split("/clusters/", 1)
    return parts[1].split("/")[0].split(":")[0] if len(parts) == 2 else ""


class _Door(LoopbackServer):
    """One replica's endpoint: forwards to the shared GKE server, recording who sent what, when."""

    def __init__(self, cloud: GkeCloud, replica: str) -> None:
        door = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                arrived = time.time()
                cloud.before(replica, self.command)
                status, headers, body = door.forward(self.command, self.path, dict(self.headers.items()), raw)
                path = self.path.split("?")[0]
                cloud.record(GkeCall(arrived, replica, self.command, path, _cluster_of(path, raw), status))
                try:
                    self.send_response(status)
                    for k, v in headers:
                        if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve  # noqa: N815

        super().__init__(Handler, f"gke-door-{replica}")
        self.upstream = cloud.gke.base_url

    def forward(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, bytes]:
        host, port = self.upstream.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            skip = {"host", "content-length", "connection"}
            conn.request(
                method, path, body=raw or None, headers={k: v for k, v in headers.items() if k.lower() not in skip}
            )
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()


class GkeCloud:
    def __init__(self, owner: str, faults: tuple[dict[str, Any], ...], seed: int, replicas: tuple[str, ...]) -> None:
        mod = _fake_gke_module()
        self.owner = owner
        self.gke = mod.FakeGke(create_polls=2, delete_polls=1, resize_polls=1).start()
        self.calls: list[GkeCall] = []
        self.errors: list[str] = []
        self.on_call: Any = None
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._faults = [dict(f) for f in faults]
        self.doors = {r: _Door(self, r).start() for r in replicas}
        self._arm()

    def _arm(self) -> None:
        create = r"/clusters$"
        for f in self._faults:
            kind = f["kind"]
            if kind == "throttled":
                self.gke.inject_error(
                    "POST", create, 429, "RESOURCE_EXHAUSTED", "rate exceeded (injected)", headers={"Retry-After": "2"}
                )
            elif kind == "server_error":
                self.gke.inject_error("POST", create, 500, "INTERNAL", "internal error (injected)")
            elif kind == "unavailable":
                self.gke.inject_error("POST", create, 503, "UNAVAILABLE", "try again (injected)")
            elif kind == "quota_exceeded":
                self.gke.fail_next("CREATE_CLUSTER", "GCE_QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", "quota (injected)")
            elif kind == "capacity_unavailable":
                self.gke.fail_next("CREATE_CLUSTER", "GCE_STOCKOUT", "UNAVAILABLE", "stockout (injected)")

    def before(self, replica: str, method: str) -> None:
        hook = self.on_call
        if hook is not None and method in ("POST", "DELETE", "PUT", "PATCH"):
            hook(replica)
        if any(f["kind"] == "slow_calls" for f in self._faults) and self._rng.random() < 0.3:
            time.sleep(1.0)

    def record(self, call: GkeCall) -> None:
        with self._lock:
            self.calls.append(call)
        if call.method == "POST" and call.path.endswith("/clusters") and call.status < 300:
            for f in self._faults:
                if f["kind"] == "done_but_gone" and f.get("left", 1) > 0:
                    f["left"] = 0
                    threading.Thread(target=self._lose_next_ready, daemon=True).start()

    def _lose_next_ready(self) -> None:
        """Once a cluster of this run is RUNNING (its create DONE), it disappears."""
        deadline = time.time() + 30
        while time.time() < deadline:
            with self.gke.lock:
                for key, c in list(self.gke.clusters.items()):
                    if c.get("status") in ("RUNNING", 2) and c["name"].startswith(f"{self.owner}-"):
                        del self.gke.clusters[key]
                        return
            time.sleep(0.2)

    def provider_section(self, replica: str) -> dict[str, Any]:
        url = self.doors[replica].url
        return {
            "kind": "gce",
            "project": PROJECT,
            "location": ZONE,
            "machine_types": ["n2-standard-8"],
            "api_endpoint": url,
            "compute_endpoint": url,
            "credentials": "anonymous",
            "max_nodes": 4,
            "nodes_per_cluster": 2,
        }

    def poll(self, view: CloudView) -> None:
        """The project as the GKE server holds it: this run's clusters (named after its installation)."""
        with self.gke.lock:
            mine = [c for c in self.gke.clusters.values() if c["name"].startswith(f"{self.owner}-")]
            names = [c["name"] for c in mine]
            healthy = [c for c in mine if c.get("status") not in ("ERROR", "STOPPING")]
        view.last = {n: {} for n in names}
        view.max_alive = max(view.max_alive, len(healthy))  # failed or deleting: no duplicate
        view.ever |= {c[3] for c in self.audit() if c[2] == "CreateCluster" and c[4] == "accepted"}

    def audit(self) -> list[tuple[float, str, str, str, str]]:
        """Mutating calls as (time, replica, operation, cluster, outcome)."""
        with self._lock:
            calls = list(self.calls)
        return [
            (c.t, c.replica, c.operation, c.cluster, "accepted" if c.status < 300 else f"refused: {c.status}")
            for c in calls
            if c.method in ("POST", "DELETE", "PUT", "PATCH")
        ]

    def stop(self) -> None:
        for door in self.doors.values():
            door.stop()
        self.gke.stop()


def draw_faults(rng: random.Random) -> tuple[dict[str, Any], ...]:
    kinds = [
        "throttled",
        "server_error",
        "unavailable",
        "quota_exceeded",
        "capacity_unavailable",
        "done_but_gone",
        "slow_calls",
    ]
    return tuple({"kind": k} for k in rng.sample(kinds, rng.randint(1, 3)))
