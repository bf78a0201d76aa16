"""A small Keystone v3 server on 127.0.0.1 for testing OpenStack-based providers.

Both the ``tsystems`` (OTC CCE) and ``openstack`` (Magnum) providers talk through openstacksdk,
which always authenticates against Keystone first and then finds its services in the token's
catalog.  This module serves that part once: the version document (``GET /v3``), token issue
(``POST /v3/auth/tokens`` → 201 with ``X-Subject-Token`` and a catalog pointing back at this same
server), a token check on every other request, fault injection and request recording.  A
provider's fake subclasses :class:`KeystoneFake`, adds its catalog entries and answers its own
paths in :meth:`KeystoneFake.handle`.

The real SDK is pointed at it through an ordinary ``clouds.yaml`` (see
:meth:`KeystoneFake.clouds_yaml`), so the production code path is the one under test.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from burst.model import CloudCluster, CloudStatus
from burst.testing.loopback import LoopbackServer

__all__ = ["Fault", "KeystoneFake", "Reply", "Request", "until_ready"]


@dataclass(frozen=True)
class Request:
    """One request the SDK sent, as the server saw it."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    body: Any
    headers: Mapping[str, str]

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """An injected answer: the next ``times`` requests matching ``method`` and ``path`` get it."""

    method: str
    path: re.Pattern[str]
    reply: Reply
    times: int = 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read .requests instead
        return

    def _serve(self) -> None:
        if self.server.fake.stopped:  # a kept-alive connection outliving stop(): hang up, like a dead host
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        parts = urlsplit(self.path)
        req = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            body=body,
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        reply = self.server.fake.dispatch(req)
        self.server.fake.pause(req)
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            headers = {"Content-Type": "application/json", **reply.headers}
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload:
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a paused reply in a timeout test): not the fake's error

    def do_GET(self) -> None:  # http.server dispatches on these names
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()


class _Server(LoopbackServer):
    def __init__(self, fake: KeystoneFake) -> None:
        super().__init__(_Handler, "keystone-fake")
        self.fake = fake


class KeystoneFake:
    """Keystone v3 plus hooks for one cloud's services; start with ``with KeystoneFake() as f``.

    State changes happen under one lock, so a subclass's handlers may mutate plain dicts.
    """

    username = "burst-test"
    password = "s3cret-password"  # a test secret; tests check it never shows up in logs

    def __init__(self, region: str = "RegionOne", project_id: str | None = None) -> None:
        self.region = region
        self.project_id = project_id or uuid.uuid4().hex
        self.project_name = "burst-project"
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.tokens: set[str] = set()
        #: When set, token requests are refused with 401 (bad or expired credentials).
        self.reject_auth = False
        #: Nova-style absolute limits served at ``/compute/v2.1/limits`` (OTC's ECS speaks it too).
        self.cores_limit = 400
        self.cores_used = 0
        #: Nova servers by id, served at ``/compute/v2.1/servers/detail``; see :meth:`add_server`.
        self.servers: dict[str, dict[str, Any]] = {}
        self.delays: list[tuple[str, re.Pattern[str], float]] = []
        self.lock = threading.RLock()
        self._server: _Server | None = None
        self.stopped = False

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> KeystoneFake:
        self.stopped = False
        self._server = _Server(self)
        self._server.start()
        return self

    def stop(self) -> None:
        self.stopped = True
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> KeystoneFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("fake server not started")
        return self._server.url

    @property
    def auth_url(self) -> str:
        return f"{self.base_url}/v3"

    # ---- what a subclass provides --------------------------------------------------------------
    def catalog(self) -> list[dict[str, Any]]:
        """Service catalog entries; use :meth:`service` to build one.  The base offers Nova's
        ``compute`` (absolute limits and the server list only): subclasses add theirs to this list."""
        return [self.service("compute", "nova", f"{self.base_url}/compute/v2.1")]

    def handle(self, req: Request) -> Reply:
        """Answer a (token-checked) service request; the base knows none."""
        return Reply(404, {"error": {"code": 404, "message": f"no route for {req.method} {req.path}"}})

    def service(self, type_: str, name: str, url: str) -> dict[str, Any]:
        return {
            "type": type_,
            "name": name,
            "id": uuid.uuid4().hex,
            "endpoints": [
                {
                    "id": uuid.uuid4().hex,
                    "interface": "public",
                    "region": self.region,
                    "region_id": self.region,
                    "url": url,
                }
            ],
        }

    # ---- test controls -----------------------------------------------------------------------------
    def inject(
        self,
        method: str,
        path: str,
        status: int,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests ``method`` on paths matching regex ``path`` with this."""
        with self.lock:
            self.faults.append(Fault(method.upper(), re.compile(path), Reply(status, body, dict(headers or {})), times))

    def delay(self, method: str, path: str, seconds: float) -> None:
        """Hold answers to ``method`` on paths matching ``path`` for ``seconds`` *after* the request
        took effect: a client killed meanwhile never learns that its call succeeded."""
        with self.lock:
            self.delays.append((method.upper(), re.compile(path), seconds))

    def sent(self, method: str | None = None, path: str | None = None) -> list[Request]:
        """Recorded requests, optionally filtered by method and a regex searched in the path."""
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper()) and (path is None or re.search(path, r.path))
            ]

    def clear_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    def clouds_yaml(self, cloud: str = "burst-test") -> str:
        """An ordinary clouds.yaml naming this server, as an operator would write one."""
        doc = {
            "clouds": {
                cloud: {
                    "auth_type": "password",
                    "auth": {
                        "auth_url": self.auth_url,
                        "username": self.username,
                        "password": self.password,
                        "project_name": self.project_name,
                        "user_domain_name": "Default",
                        "project_domain_name": "Default",
                    },
                    "region_name": self.region,
                    "identity_api_version": 3,
                    "interface": "public",
                }
            }
        }
        return yaml.safe_dump(doc, sort_keys=False)

    def write_clouds_yaml(self, directory: Path, cloud: str = "burst-test") -> Path:
        path = Path(directory) / "clouds.yaml"
        path.write_text(self.clouds_yaml(cloud))
        return path

    # ---- dispatch ----------------------------------------------------------------------------------
    def dispatch(self, req: Request) -> Reply:
        with self.lock:
            self.requests.append(req)
            for fault in self.faults:
                if fault.times > 0 and fault.method == req.method and fault.path.search(req.path):
                    fault.times -= 1
                    return fault.reply
            self.faults = [f for f in self.faults if f.times > 0]
            if req.path.rstrip("/") in ("", "/v3") and req.method == "GET":
                return self._version(req)
            if req.path == "/v3/auth/tokens" and req.method == "POST":
                return self._issue_token(req)
            if req.headers.get("x-auth-token") not in self.tokens:
                return _unauthorized()
            if req.path == "/compute/v2.1/limits" and req.method == "GET":
                return self.compute_limits()
            if req.path == "/compute/v2.1/servers/detail" and req.method == "GET":
                return self.servers_detail(req)
            return self.handle(req)

    def pause(self, req: Request) -> None:
        with self.lock:
            wait = [s for m, p, s in self.delays if m == req.method and p.search(req.path)]
        if wait:
            time.sleep(max(wait))

    def compute_limits(self) -> Reply:
        absolute = {"maxTotalCores": self.cores_limit, "totalCoresUsed": self.cores_used}
        return Reply(200, {"limits": {"rate": [], "absolute": absolute}})

    # ---- Nova servers (the part a provider reads to map node names to servers) ------------------------
    def add_server(self, name: str, ip: str, **metadata: str) -> str:
        """A running Nova server with one fixed address on network ``private``; returns its id."""
        sid = str(uuid.uuid4())
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.servers[sid] = {
            "id": sid, "name": name, "status": "ACTIVE", "OS-EXT-STS:vm_state": "active",
            "OS-EXT-STS:task_state": None, "OS-EXT-STS:power_state": 1, "tenant_id": self.project_id,
            "user_id": "u-" + self.username, "metadata": dict(metadata), "created": now, "updated": now,
            "addresses": {"private": [{"addr": ip, "version": 4, "OS-EXT-IPS:type": "fixed",
                                       "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"}]},
            "flavor": {"original_name": "m2.xlarge"}, "image": "", "links": [],
        }  # fmt: skip
        return sid

    def servers_detail(self, req: Request) -> Reply:
        """``GET /servers/detail``: Nova's ``name`` filter is a regular expression searched in the name."""
        pattern = req.param("name")
        found = [s for s in self.servers.values() if pattern is None or re.search(pattern, s["name"])]
        return Reply(200, {"servers": found})

    def _version(self, req: Request) -> Reply:
        version = {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{self.auth_url}/"}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
        }
        if req.path.rstrip("/") == "/v3":
            return Reply(200, {"version": version})
        return Reply(300, {"versions": {"values": [version]}})

    def _issue_token(self, req: Request) -> Reply:
        ident = (req.body or {}).get("auth", {}).get("identity", {}) if isinstance(req.body, dict) else {}
        user = ident.get("password", {}).get("user", {})
        if self.reject_auth or user.get("name") != self.username or user.get("password") != self.password:
            return _unauthorized()
        token = uuid.uuid4().hex
        self.tokens.add(token)
        now = datetime.now(UTC)
        domain = {"id": "default", "name": "Default"}
        body = {
            "token": {
                "methods": ["password"],
                "issued_at": now.isoformat().replace("+00:00", "Z"),
                "expires_at": (now + timedelta(hours=24)).isoformat().replace("+00:00", "Z"),
                "user": {"id": "u-" + self.username, "name": self.username, "domain": domain},
                "project": {"id": self.project_id, "name": self.project_name, "domain": domain},
                "roles": [{"id": "r-member", "name": "member"}],
                "catalog": self.catalog(),
            }
        }
        return Reply(201, body, {"X-Subject-Token": token})


def _unauthorized() -> Reply:
    message = "The request you have made requires authentication."
    return Reply(401, {"error": {"code": 401, "title": "Unauthorized", "message": message}})


def until_ready(step: Callable[[], CloudCluster], limit: int = 12) -> CloudCluster:
    """Call ``step`` (a provider's create or get, which advances the fake a poll) until it answers
    READY, and return that answer; fails after ``limit`` calls."""
    seen = []
    for _ in range(limit):
        cc = step()
        if cc.status is CloudStatus.READY:
            return cc
        seen.append(cc.status.name)
    raise AssertionError(f"not READY after {limit} calls: {seen}")
