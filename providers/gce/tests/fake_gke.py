"""A small GKE ``v1`` REST server on 127.0.0.1 for testing the ``gce`` provider.

No GKE emulator exists, so this serves the part of the Kubernetes Engine API that burst uses, with
the documented JSON field names (camelCase, as in the REST reference for
``projects.locations.clusters``, ``…clusters.nodePools`` and ``projects.locations.operations``):

- ``POST   /v1/projects/{p}/locations/{loc}/clusters``                    create → Operation
- ``GET    /v1/projects/{p}/locations/{loc}/clusters``                    list → {clusters, missingZones}
- ``GET    /v1/projects/{p}/locations/{loc}/clusters/{c}``                get → Cluster
- ``DELETE /v1/projects/{p}/locations/{loc}/clusters/{c}``                delete → Operation
- ``GET    /v1/projects/{p}/locations/{loc}/clusters/{c}/nodePools/{np}`` get → NodePool
- ``POST   /v1/…/clusters/{c}/nodePools/{np}:setSize``                  setSize → Operation
- ``GET    /v1/projects/{p}/locations/{loc}/operations[/{op}]``           list / get → Operation

Like the real service, operations take time: each *poll* (a GET that reads an operation or its
cluster) moves an unfinished operation one step, and it is DONE after a configured number of polls;
meanwhile the cluster is PROVISIONING / RECONCILING / STOPPING.  A cluster with an operation in
flight refuses delete and setSize with 400 FAILED_PRECONDITION, as GKE does ("Operation … is
currently creating cluster …. Please wait and try again once it is done.").

Errors are google.rpc.Status bodies (``{"error": {"code", "message", "status", "details"}}``); any
request can be answered with an injected one, and an operation can be made to fail when it finishes
(``fail_next``), the way a stockout or a quota shortfall shows up in GKE: operation DONE with
``error``, cluster ERROR with ``statusMessage`` and ``conditions``.  Every request is recorded with
its path (the SDK's ``?$alt=json;enum-encoding=int`` query is kept apart), body and headers.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from burst.testing.loopback import LoopbackServer

__all__ = ["AsyncFailure", "FakeGke", "Reply", "Request"]

#: A PEM CA certificate's base64, as ``masterAuth.clusterCaCertificate`` carries it (not a real CA).
FAKE_CA = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUZBS0UKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
DEFAULT_VERSION = "1.33.5-gke.1080000"

_NAME_RE = re.compile(r"^[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?$")
_BASE = r"^/v1/projects/(?P<p>[^/]+)/locations/(?P<loc>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(_BASE + r"/clusters$"), "create_cluster"),
    ("GET", re.compile(_BASE + r"/clusters$"), "list_clusters"),
    ("GET", re.compile(_BASE + r"/clusters/(?P<c>[^/:]+)$"), "get_cluster"),
    ("DELETE", re.compile(_BASE + r"/clusters/(?P<c>[^/:]+)$"), "delete_cluster"),
    ("GET", re.compile(_BASE + r"/clusters/(?P<c>[^/:]+)/nodePools/(?P<np>[^/:]+)$"), "get_node_pool"),
    ("POST", re.compile(_BASE + r"/clusters/(?P<c>[^/:]+)/nodePools/(?P<np>[^/:]+):setSize$"), "set_size"),
    ("GET", re.compile(_BASE + r"/operations$"), "list_operations"),
    ("GET", re.compile(_BASE + r"/operations/(?P<op>[^/]+)$"), "get_operation"),
]


@dataclass(frozen=True)
class Request:
    """One request the SDK sent, as the server saw it."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    body: Any
    headers: Mapping[str, str]


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    method: str
    path: re.Pattern[str]
    reply: Reply
    times: int


@dataclass
class AsyncFailure:
    """How the next operation of ``operation_type`` ends: DONE with this error, cluster ERROR."""

    operation_type: str
    condition: str  # StatusCondition.Code, e.g. GCE_STOCKOUT, GCE_QUOTA_EXCEEDED, UNKNOWN
    canonical: str  # google.rpc.Code name, e.g. RESOURCE_EXHAUSTED
    message: str


_RPC_CODES = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
    "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14,
    "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}  # fmt: skip


def rpc_error(http: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A google.rpc.Status error body as Google's JSON APIs send it."""
    err: dict[str, Any] = {"code": http, "message": message, "status": status}
    if details:
        err["details"] = details
    return {"error": err}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY each answer on a kept-alive
    # connection waits ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read .requests instead
        return

    def _serve(self) -> None:
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
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            for key, value in {"Content-Type": "application/json; charset=UTF-8", **reply.headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client was killed mid-request (crash test)
            self.close_connection = True

    do_GET = do_POST = do_DELETE = _serve  # noqa: N815 - http.server's method names


class _Server(LoopbackServer):
    def __init__(self, fake: FakeGke) -> None:
        super().__init__(_Handler, "fake-gke")
        self.fake = fake


class FakeGke:
    """GKE v1 on a random loopback port; use as ``with FakeGke() as gke``.

    ``create_polls`` / ``delete_polls`` / ``resize_polls``: how many polls each kind of operation
    stays RUNNING.  ``pool_lag_polls``: extra polls the node pool stays PROVISIONING after the
    cluster is RUNNING (GKE creates node pools after the control plane).  ``require_token``: when
    set, requests without ``Authorization: Bearer <token>`` get 401 UNAUTHENTICATED.
    """

    def __init__(
        self,
        *,
        create_polls: int = 3,
        delete_polls: int = 2,
        resize_polls: int = 2,
        pool_lag_polls: int = 0,
        require_token: str | None = None,
    ) -> None:
        self.create_polls = create_polls
        self.delete_polls = delete_polls
        self.resize_polls = resize_polls
        self.pool_lag_polls = pool_lag_polls
        self.require_token = require_token
        #: Zones the list answer claims it could not reach (``missingZones``).
        self.missing_zones: list[str] = []
        self.requests: list[Request] = []
        self.clusters: dict[str, dict[str, Any]] = {}  # full resource name → Cluster JSON
        self.operations: dict[str, dict[str, Any]] = {}  # full resource name → Operation JSON
        self._op_state: dict[str, dict[str, Any]] = {}  # op name → {polls_left, cluster, on_done...}
        self._faults: list[_Fault] = []
        self._failures: list[AsyncFailure] = []
        self._hold: tuple[str, re.Pattern[str], threading.Event] | None = None
        #: Set when a held request (see :meth:`hold`) has been applied.
        self.applied = threading.Event()
        self._waiting: list[threading.Event] = []
        self.lock = threading.RLock()
        self._server: _Server | None = None

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> FakeGke:
        self._server = _Server(self)
        self._server.start()
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> FakeGke:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("fake server not started")
        return self._server.url

    # ---- test controls -------------------------------------------------------------------------------
    def inject(
        self,
        method: str,
        path: str,
        status: int,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests ``method`` on paths matching regex ``path`` with this."""
        with self.lock:
            self._faults.append(
                _Fault(method.upper(), re.compile(path), Reply(status, body, dict(headers or {})), times)
            )

    def inject_error(
        self,
        method: str,
        path: str,
        http: int,
        status: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer matching requests with a google.rpc.Status error body."""
        self.inject(method, path, http, body=rpc_error(http, status, message, details), headers=headers, times=times)

    def fail_next(self, operation_type: str, condition: str, canonical: str, message: str) -> None:
        """Make the next operation of ``operation_type`` (e.g. CREATE_CLUSTER) end in an error."""
        with self.lock:
            self._failures.append(AsyncFailure(operation_type, condition, canonical, message))

    def hold(self, method: str, path: str) -> None:
        """Apply the next successful ``method`` on a path matching ``path`` but hold its answer until
        :meth:`release` (or 30 s): the client is then killed mid-request (crash tests)."""
        with self.lock:
            self._hold = (method.upper(), re.compile(path), threading.Event())
            self.applied.clear()

    def release(self) -> None:
        with self.lock:
            if self._hold is not None:
                self._waiting.append(self._hold[2])
                self._hold = None
            for event in self._waiting:
                event.set()
            self._waiting.clear()

    def add_cluster(
        self,
        project: str,
        location: str,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        nodes: int = 1,
        machine_type: str = "e2-medium",
    ) -> dict[str, Any]:
        """A running cluster that somebody else created (for list filtering and ownership tests)."""
        with self.lock:
            pool = {"name": "default-pool", "initialNodeCount": nodes, "config": {"machineType": machine_type}}
            body = {"name": name, "resourceLabels": dict(labels or {}), "nodePools": [pool]}
            cluster = self._new_cluster(project, location, body)
            self._finish_cluster(cluster)
            return cluster

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

    def cluster(self, project: str, location: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return self.clusters.get(f"projects/{project}/locations/{location}/clusters/{name}")

    # ---- dispatch ------------------------------------------------------------------------------------
    def dispatch(self, req: Request) -> Reply:
        hold: threading.Event | None = None
        with self.lock:
            self.requests.append(req)
            reply = self._route(req)
            if self._hold and self._hold[0] == req.method and self._hold[1].search(req.path) and reply.status == 200:
                hold = self._hold[2]
                self._waiting.append(hold)
                self._hold = None
                self.applied.set()
        if hold is not None:
            hold.wait(timeout=30)
        return reply

    def _route(self, req: Request) -> Reply:
        for fault in self._faults:
            if fault.times > 0 and fault.method == req.method and fault.path.search(req.path):
                fault.times -= 1
                return fault.reply
        self._faults = [f for f in self._faults if f.times > 0]
        if self.require_token is not None and req.headers.get("authorization") != f"Bearer {self.require_token}":
            msg = ("Request is missing required authentication credential. Expected OAuth 2 access token, login "
                   "cookie or other valid authentication credential.")  # fmt: skip
            return Reply(
                401,
                rpc_error(401, "UNAUTHENTICATED", msg),
                {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        for method, pattern, handler in _ROUTES:
            m = pattern.match(req.path)
            if m and method == req.method:
                result: Reply = getattr(self, "_" + handler)(req, **m.groupdict())
                return result
        return Reply(404, rpc_error(404, "NOT_FOUND", f"The requested URL {req.path} was not found on this server."))

    # ---- handlers ------------------------------------------------------------------------------------
    def _create_cluster(self, req: Request, p: str, loc: str) -> Reply:
        body = req.body if isinstance(req.body, dict) else {}
        cluster = body.get("cluster")
        if not isinstance(cluster, dict):
            return _invalid("Cluster is required.")
        name = cluster.get("name", "")
        if not _NAME_RE.match(name):
            return _invalid(
                f'Invalid value for field "cluster.name": "{name}". Must be a match of regex '
                "'(?:[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?)' (only alphanumerics and '-' allowed, must start with a "
                "letter and end with an alphanumeric, and must be no longer than 40 characters)."
            )
        pools = cluster.get("nodePools") or []
        if pools and "initialNodeCount" in cluster:
            return _invalid("Cluster.initial_node_count and Cluster.node_pools are mutually exclusive.")
        for pool in pools:
            if not pool.get("name"):
                return _invalid("Node pool name is required.")
        for key in cluster.get("resourceLabels") or {}:
            if not re.match(r"^[a-z][a-z0-9_-]{0,62}$", key):
                return _invalid(
                    f'Invalid value for field "cluster.resource_labels": key "{key}" is not a valid label key.'
                )
        full = f"projects/{p}/locations/{loc}/clusters/{name}"
        if full in self.clusters:
            return Reply(409, rpc_error(409, "ALREADY_EXISTS", f"Already exists: {full}."))
        self._new_cluster(p, loc, cluster)
        op = self._new_operation(p, loc, "CREATE_CLUSTER", name, polls=self.create_polls)
        return Reply(200, op)

    def _list_clusters(self, req: Request, p: str, loc: str) -> Reply:
        # "-" lists every location of the project, as the real API does.
        prefix = f"projects/{p}/locations/" if loc == "-" else f"projects/{p}/locations/{loc}/clusters/"
        found = [c for key, c in self.clusters.items() if key.startswith(prefix)]
        for c in found:
            self._poll_cluster(c["name"], p, c["location"])
        out: dict[str, Any] = {}
        if found:
            out["clusters"] = [self._public(c) for c in found]
        if self.missing_zones:
            out["missingZones"] = list(self.missing_zones)
        return Reply(200, out)

    def _get_cluster(self, req: Request, p: str, loc: str, c: str) -> Reply:
        self._poll_cluster(c, p, loc)
        cluster = self.clusters.get(f"projects/{p}/locations/{loc}/clusters/{c}")
        if cluster is None:
            return _not_found(f"projects/{p}/locations/{loc}/clusters/{c}")
        return Reply(200, self._public(cluster))

    def _delete_cluster(self, req: Request, p: str, loc: str, c: str) -> Reply:
        full = f"projects/{p}/locations/{loc}/clusters/{c}"
        cluster = self.clusters.get(full)
        if cluster is None:
            return _not_found(full)
        busy = self._busy(c, p, loc)
        if busy is not None:
            return busy
        cluster["status"] = "STOPPING"
        cluster.pop("statusMessage", None)
        for pool in cluster.get("nodePools", []):
            pool["status"] = "STOPPING"
        return Reply(200, self._new_operation(p, loc, "DELETE_CLUSTER", c, polls=self.delete_polls))

    def _get_node_pool(self, req: Request, p: str, loc: str, c: str, np: str) -> Reply:
        self._poll_cluster(c, p, loc)
        cluster = self.clusters.get(f"projects/{p}/locations/{loc}/clusters/{c}")
        pool = _pool(cluster, np) if cluster else None
        if pool is None:
            return _not_found(f"projects/{p}/locations/{loc}/clusters/{c}/nodePools/{np}")
        return Reply(200, {k: v for k, v in pool.items() if not k.startswith("_")})

    def _set_size(self, req: Request, p: str, loc: str, c: str, np: str) -> Reply:
        cluster = self.clusters.get(f"projects/{p}/locations/{loc}/clusters/{c}")
        pool = _pool(cluster, np) if cluster else None
        if cluster is None or pool is None:
            return _not_found(f"projects/{p}/locations/{loc}/clusters/{c}/nodePools/{np}")
        body = req.body if isinstance(req.body, dict) else {}
        count = body.get("nodeCount", 0)
        if not isinstance(count, int) or count < 0:
            return _invalid(f'Invalid value for field "node_count": {count!r}.')
        busy = self._busy(c, p, loc)
        if busy is not None:
            return busy
        cluster["status"] = "RECONCILING"
        pool["status"] = "RECONCILING"
        pool["_target"] = count
        return Reply(200, self._new_operation(p, loc, "SET_NODE_POOL_SIZE", c, polls=self.resize_polls, pool=np))

    def _list_operations(self, req: Request, p: str, loc: str) -> Reply:
        prefix = f"projects/{p}/locations/{loc}/operations/"
        ops = [o for key, o in self.operations.items() if key.startswith(prefix)]
        for op in ops:
            self._poll_operation(op["name"])
        return Reply(200, {"operations": [dict(o) for o in ops]} if ops else {})

    def _get_operation(self, req: Request, p: str, loc: str, op: str) -> Reply:
        full = f"projects/{p}/locations/{loc}/operations/{op}"
        if full not in self.operations:
            return _not_found(full)
        self._poll_operation(op)
        return Reply(200, dict(self.operations[full]))

    # ---- state ---------------------------------------------------------------------------------------
    def _new_cluster(self, p: str, loc: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["name"]
        base = f"https://container.googleapis.com/v1/projects/{p}/locations/{loc}/clusters/{name}"
        version = body.get("initialClusterVersion") or DEFAULT_VERSION
        cluster: dict[str, Any] = json.loads(json.dumps(body))  # a deep copy of what the client asked for
        cluster.update(
            {
                "selfLink": base,
                "zone": loc,
                "location": loc,
                "id": uuid.uuid4().hex,
                "network": body.get("network") or "default",
                "subnetwork": body.get("subnetwork") or "default",
                "status": "PROVISIONING",
                "createTime": _now(),
                "initialClusterVersion": version,
                "currentMasterVersion": version,
                "currentNodeVersion": version,
                "labelFingerprint": uuid.uuid4().hex[:16],
                "masterAuth": {},
                "_project": p,
            }
        )
        for pool in cluster.get("nodePools", []):
            pool.update({"status": "PROVISIONING", "version": version, "selfLink": f"{base}/nodePools/{pool['name']}"})
            pool.setdefault("initialNodeCount", 0)
            pool["_target"] = pool["initialNodeCount"]
        self.clusters[f"projects/{p}/locations/{loc}/clusters/{name}"] = cluster
        return cluster

    def _finish_cluster(self, cluster: dict[str, Any]) -> None:
        cluster["status"] = "RUNNING"
        cluster["endpoint"] = f"203.0.113.{len(self.clusters) % 250 + 1}"
        cluster["masterAuth"] = {"clusterCaCertificate": FAKE_CA}
        cluster["currentNodeCount"] = sum(int(p.get("_target", 0)) for p in cluster.get("nodePools", []))
        for pool in cluster.get("nodePools", []):
            pool["status"] = "RUNNING"

    def _new_operation(
        self,
        p: str,
        loc: str,
        kind: str,
        cluster: str,
        *,
        polls: int,
        pool: str | None = None,
    ) -> dict[str, Any]:
        op_id = f"operation-{int(datetime.now(UTC).timestamp() * 1000)}-{uuid.uuid4().hex[:8]}"
        target = f"https://container.googleapis.com/v1/projects/{p}/locations/{loc}/clusters/{cluster}"
        if pool:
            target += f"/nodePools/{pool}"
        op = {
            "name": op_id,
            "zone": loc,
            "location": loc,
            "operationType": kind,
            "status": "RUNNING",
            "selfLink": f"https://container.googleapis.com/v1/projects/{p}/locations/{loc}/operations/{op_id}",
            "targetLink": target,
            "startTime": _now(),
        }
        self.operations[f"projects/{p}/locations/{loc}/operations/{op_id}"] = op
        failure = next((f for f in self._failures if f.operation_type == kind), None)
        if failure is not None:
            self._failures.remove(failure)
        self._op_state[op_id] = {
            "left": polls,
            "cluster": f"projects/{p}/locations/{loc}/clusters/{cluster}",
            "pool": pool,
            "kind": kind,
            "failure": failure,
            "full": f"projects/{p}/locations/{loc}/operations/{op_id}",
            "lag": self.pool_lag_polls,
        }
        if polls <= 0:
            self._advance(op_id)
        return dict(op)

    def _busy(self, c: str, p: str, loc: str) -> Reply | None:
        full = f"projects/{p}/locations/{loc}/clusters/{c}"
        for op_id, st in self._op_state.items():
            if st["cluster"] == full and self.operations[st["full"]]["status"] != "DONE":
                verb = {"CREATE_CLUSTER": "creating", "DELETE_CLUSTER": "deleting",
                        "SET_NODE_POOL_SIZE": "resizing a node pool of"}[st["kind"]]  # fmt: skip
                msg = f"Operation {op_id} is currently {verb} cluster {c}. Please wait and try again once it is done."
                return Reply(400, rpc_error(400, "FAILED_PRECONDITION", msg))
        return None

    def _poll_cluster(self, c: str, p: str, loc: str) -> None:
        full = f"projects/{p}/locations/{loc}/clusters/{c}"
        for op_id, st in list(self._op_state.items()):
            if st["cluster"] == full:
                self._poll_operation(op_id)

    def _poll_operation(self, op_id: str) -> None:
        st = self._op_state.get(op_id)
        if st is None:
            return
        op = self.operations[st["full"]]
        if op["status"] != "DONE":
            st["left"] -= 1
            if st["left"] <= 0:
                self._advance(op_id)
        elif st["lag"] > 0:  # the node pool comes up after the control plane
            st["lag"] -= 1
            cluster = self.clusters.get(st["cluster"])
            if cluster is not None and st["lag"] == 0:
                for pool in cluster.get("nodePools", []):
                    pool["status"] = "RUNNING"

    def _advance(self, op_id: str) -> None:
        """Finish an operation and apply its effect to the cluster."""
        st = self._op_state[op_id]
        op = self.operations[st["full"]]
        op["status"] = "DONE"
        op["endTime"] = _now()
        cluster = self.clusters.get(st["cluster"])
        failure: AsyncFailure | None = st["failure"]
        if failure is not None:
            op["error"] = {"code": _RPC_CODES[failure.canonical], "message": failure.message}
            op["statusMessage"] = failure.message
            op["detail"] = failure.message
            cond = {"code": failure.condition, "message": failure.message, "canonicalCode": failure.canonical}
            op["clusterConditions"] = [cond]
            if cluster is not None:
                cluster["status"] = "ERROR"
                cluster["statusMessage"] = failure.message
                cluster["conditions"] = [cond]
                for pool in cluster.get("nodePools", []):
                    pool["status"] = "ERROR"
                    pool["statusMessage"] = failure.message
            st["lag"] = 0
            return
        if cluster is None:
            return
        if st["kind"] == "CREATE_CLUSTER":
            self._finish_cluster(cluster)
            if st["lag"] > 0:
                for pool in cluster.get("nodePools", []):
                    pool["status"] = "PROVISIONING"
        elif st["kind"] == "DELETE_CLUSTER":
            del self.clusters[st["cluster"]]
        elif st["kind"] == "SET_NODE_POOL_SIZE":
            cluster["status"] = "RUNNING"
            for pool in cluster.get("nodePools", []):
                pool["status"] = "RUNNING"
            cluster["currentNodeCount"] = sum(int(p.get("_target", 0)) for p in cluster.get("nodePools", []))

    @staticmethod
    def _public(cluster: Mapping[str, Any]) -> dict[str, Any]:
        """The Cluster JSON without the server's private bookkeeping keys."""
        out = {k: v for k, v in cluster.items() if not k.startswith("_")}
        out["nodePools"] = [{k: v for k, v in p.items() if not k.startswith("_")} for p in cluster.get("nodePools", [])]
        return out


def _pool(cluster: Mapping[str, Any] | None, name: str) -> dict[str, Any] | None:
    if cluster is None:
        return None
    return next((p for p in cluster.get("nodePools", []) if p.get("name") == name), None)


def _not_found(what: str) -> Reply:
    return Reply(404, rpc_error(404, "NOT_FOUND", f"Not found: {what}."))


def _invalid(message: str) -> Reply:
    return Reply(400, rpc_error(400, "INVALID_ARGUMENT", message))
