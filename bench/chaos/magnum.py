"""The OpenStack backend of the chaos runs: the real ``openstack`` provider (openstacksdk, Magnum)
against the provider tests' Keystone + Magnum server (``providers/openstack/tests/conftest.py``).

openstacksdk finds Magnum through the token's catalog, so each replica authenticates through its
own front door (its ``clouds.yaml`` names the door as ``auth_url``) and the catalog it receives
points back at that door: every later request of that replica passes it too, stamped with the time
and the sender.  The password is a planted secret.  Faults are Magnum's: 429 with ``Retry-After``,
500, 503, the project's cluster quota (403), a cluster that ends ``CREATE_FAILED`` (no valid host),
slow calls, and "done but gone" (``CREATE_COMPLETE``, then the cluster is not there).
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import yaml

from bench.chaos.world import CloudView, load_test_module
from burst.testing.loopback import LoopbackServer

CREATE = r"/magnum/v1/clusters$"
_QUOTA = "Resource Limit Exceeded: You have reached the maximum clusters per project, 20."


def _magnum_module() -> Any:
    return load_test_module("burst_chaos_fake_magnum", "providers/openstack/tests/conftest.py")


@dataclass(frozen=True)
class MagnumCall:
    t: float
    replica: str
    method: str
    path: str
    cluster: str
    status: int

    @property
    def operation(self) -> str:
        if self.method == "POST" and self.path.rstrip("/").endswith("/magnum/v1/clusters"):
            return "CreateCluster"
        if self.method == "DELETE" and "/clusters/" in self.path:
            return "DeleteCluster"
        return f"{self.method} {self.path.rsplit('/', 1)[-1]}"


class MagnumCloud:
    currency = "EUR"

    def __init__(
        self, owner: str, faults: tuple[dict[str, Any], ...], seed: int, replicas: tuple[str, ...], secret: str
    ) -> None:
        mod = _magnum_module()
        local = threading.local()
        self._local = local

        class Fake(mod.MagnumFake):  # type: ignore[misc,name-defined]
            """The catalog a replica receives names its own door."""

            password = secret

            @property
            def base_url(self) -> str:
                door = getattr(local, "door", None)
                return str(door) if door else super().base_url

            def _issue_token(self, req: Any) -> Any:
                local.door = doors.get(req.headers.get("x-chaos-replica", ""))
                try:
                    return super()._issue_token(req)
                finally:
                    local.door = None

        doors: dict[str, str] = {}
        self.owner = owner
        self.fake = Fake().start()
        self.fake.polls = 2
        self.calls: list[MagnumCall] = []
        self.errors: list[str] = []
        self.on_call: Any = None
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._faults = [dict(f) for f in faults]
        self._names: dict[str, str] = {}  # uuid → name, as seen
        self.doors = {r: _Door(self, r).start() for r in replicas}
        doors.update({r: d.url for r, d in self.doors.items()})
        self._arm()

    def _arm(self) -> None:
        f = self.fake
        for fault in self._faults:
            kind = fault["kind"]
            if kind == "throttled":
                f.inject("POST", CREATE, 429, {"errors": [{"status": 429, "title": "Too Many Requests"}]},
                         headers={"Retry-After": "2"})  # fmt: skip
            elif kind == "server_error":
                f.inject("POST", CREATE, 500, {"errors": [{"status": 500, "title": "Internal Server Error"}]})
            elif kind == "unavailable":
                f.inject("POST", CREATE, 503, {"errors": [{"status": 503, "title": "Service Unavailable"}]})
            elif kind == "quota_exceeded":
                body = {"errors": [{"status": 403, "code": "client", "title": _QUOTA, "detail": _QUOTA}]}
                f.inject("POST", CREATE, 403, body)
            elif kind == "capacity_unavailable":
                f.fail_next = "No valid host was found. There are not enough hosts available. (injected)"

    def before(self, replica: str, method: str) -> None:
        hook = self.on_call
        if hook is not None and method in ("POST", "DELETE", "PUT", "PATCH"):
            hook(replica)
        if any(f["kind"] == "slow_calls" for f in self._faults) and self._rng.random() < 0.3:
            time.sleep(1.0)

    def cluster_of(self, path: str, raw: bytes) -> str:
        if path.rstrip("/").endswith("/magnum/v1/clusters") and raw:
            try:
                return str(json.loads(raw).get("name", ""))
            except ValueError:
                return ""
        parts = path.split("/clusters/", 1)
        if len(parts) != 2:
            return ""
        ident = parts[1].split("/")[0]
        with self.fake.lock:
            c = self.fake.clusters.get(ident)
            if c is not None:
                self._names[ident] = str(c["name"])
        return self._names.get(ident, ident)

    def record(self, call: MagnumCall) -> None:
        with self._lock:
            self.calls.append(call)
        if call.operation == "CreateCluster" and call.status < 300:
            for f in self._faults:
                if f["kind"] == "done_but_gone" and f.get("left", 1) > 0:
                    f["left"] = 0
                    threading.Thread(target=self._lose, args=(call.cluster,), daemon=True).start()

    def _lose(self, name: str) -> None:
        """Once the cluster is CREATE_COMPLETE, it disappears."""
        deadline = time.time() + 30
        while time.time() < deadline:
            with self.fake.lock:
                for cid, c in list(self.fake.clusters.items()):
                    if c["name"] == name and c.get("status") == "CREATE_COMPLETE":
                        del self.fake.clusters[cid]
                        return
            time.sleep(0.2)

    def replica_env(self, replica: str, run_dir: Path) -> dict[str, str]:
        """The replica's clouds.yaml: the door as auth_url, the planted password."""
        auth = {
            "auth_url": f"{self.doors[replica].url}/v3",
            "username": self.fake.username,
            "password": self.fake.password,
            "project_name": self.fake.project_name,
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        }
        cloud = {"auth_type": "password", "auth": auth, "region_name": self.fake.region, "identity_api_version": 3,
                 "interface": "public"}  # fmt: skip
        path = run_dir / f"clouds-{replica}.yaml"
        path.write_text(yaml.safe_dump({"clouds": {"burst-test": cloud}}, sort_keys=False), encoding="utf-8")
        return {"OS_CLIENT_CONFIG_FILE": str(path)}

    def provider_section(self, replica: str = "a") -> dict[str, Any]:
        return {
            "kind": "openstack",
            "cloud": "burst-test",
            "region": "cern",
            "cluster_template": "kubernetes-1.29",
            "keypair": "burst-key",
            "flavor": "m2.xlarge",
            "max_nodes": 4,
            "nodes_per_cluster": 2,
        }

    def poll(self, view: CloudView) -> None:
        with self.fake.lock:
            mine = [c for c in self.fake.clusters.values() if str(c["name"]).startswith(f"{self.owner}-")]
            names = [str(c["name"]) for c in mine]
            status = [str(c.get("status", "")) for c in mine]
            healthy = [st for st in status if not st.endswith("FAILED") and not st.startswith("DELETE")]
        view.last = {n: {} for n in names}
        view.max_alive = max(view.max_alive, len(healthy))  # failed or deleting: no duplicate
        view.ever |= {c[3] for c in self.audit() if c[2] == "CreateCluster" and c[4] == "accepted"}

    def audit(self) -> list[tuple[float, str, str, str, str]]:
        with self._lock:
            calls = list(self.calls)
        return [
            (c.t, c.replica, c.operation, c.cluster, "accepted" if c.status < 300 else f"refused: {c.status}")
            for c in calls
            if c.method in ("POST", "DELETE", "PUT", "PATCH") and "/v3/auth" not in c.path
        ]

    def stop(self) -> None:
        for door in self.doors.values():
            door.stop()
        self.fake.stop()


class _Door(LoopbackServer):
    """One replica's way in: adds who it is (for the token's catalog), records, forwards."""

    def __init__(self, cloud: MagnumCloud, replica: str) -> None:
        door = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                arrived = time.time()
                path = self.path.split("?")[0]
                cloud.before(replica, self.command)
                headers = {**dict(self.headers.items()), "X-Chaos-Replica": replica}
                status, out_headers, body = door.forward(self.command, self.path, headers, raw)
                cloud.record(MagnumCall(arrived, replica, self.command, path, cloud.cluster_of(path, raw), status))
                try:
                    self.send_response(status)
                    for k, v in out_headers:
                        if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve  # noqa: N815

        super().__init__(Handler, f"magnum-door-{replica}")
        self.cloud = cloud

    def forward(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, bytes]:
        host, port = self.cloud.fake._server.url.removeprefix("http://").split(":")
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
