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

and the part of the Compute Engine ``v1`` API that node release uses (``instanceGroupManagers``
and ``zoneOperations`` REST reference; the older ``{"error": {"code", "message", "errors":
[{"domain", "reason", "message"}]}}`` error shape Compute sends):

- ``GET  /compute/v1/projects/{p}/zones/{z}/instanceGroupManagers/{m}``                       get
- ``POST /compute/v1/projects/{p}/zones/{z}/instanceGroupManagers/{m}/listManagedInstances``  list
- ``POST /compute/v1/projects/{p}/zones/{z}/instanceGroupManagers/{m}/deleteInstances``       → Operation
- ``GET  /compute/v1/projects/{p}/zones/{z}/operations/{op}``                                 get

Node pools and their managed instance groups stay consistent, as in GKE: when a node pool comes up
it gets one MIG per zone (``gke-<cluster>-<pool>-<hash>-grp``, ``baseInstanceName`` without
``-grp``) holding ``targetSize`` named instances (``<base>-<4 chars>``, which are also the
Kubernetes node names), listed in the pool's ``instanceGroupUrls``; ``setSize`` adds or drops
instances; ``deleteInstances`` flags the named instances DELETING, lowers ``targetSize`` at once and
drops them after ``instance_delete_polls`` reads of their group; the cluster's
``currentNodeCount`` is the sum of its groups' ``targetSize``.

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

__all__ = ["COMPUTE_URL", "AsyncFailure", "FakeGke", "Reply", "Request", "compute_error", "rpc_error"]

#: A PEM CA certificate's base64, as ``masterAuth.clusterCaCertificate`` carries it (not a real CA).
FAKE_CA = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUZBS0UKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
DEFAULT_VERSION = "1.33.5-gke.1080000"

_NAME_RE = re.compile(r"^[a-z](?:[-a-z0-9]{0,38}[a-z0-9])?$")
_BASE = r"^/v1/projects/(?P<p>[^/]+)/locations/(?P<loc>[^/]+)"
_COMPUTE = r"^/compute/v1/projects/(?P<p>[^/]+)/zones/(?P<z>[^/]+)"
#: Compute Engine resource URLs (``selfLink``) start so; GKE's ``instanceGroupUrls`` too.
COMPUTE_URL = "https://www.googleapis.com/compute/v1"
_INSTANCE_REF = re.compile(r"(?:^|/)zones/(?P<z>[^/]+)/instances/(?P<i>[^/]+)$")
_ZONE_LIKE = re.compile(r"^[a-z]+-[a-z]+\d+-[a-z]$")
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(_BASE + r"/clusters$"), "create_cluster"),
    ("GET", re.compile(_BASE + r"/clusters$"), "list_clusters"),
    ("GET", re.compile(_BASE + r"/clusters/(?P<c>[^/:]+)$"), "get_cluster"),
    ("DELETE", re.compile(_BASE + r"/clusters/(?P<c>[^/:]+)$"), "delete_cluster"),
    ("GET", re.compile(_BASE + r"/clusters/(?P<c>[^/:]+)/nodePools/(?P<np>[^/:]+)$"), "get_node_pool"),
    ("POST", re.compile(_BASE + r"/clusters/(?P<c>[^/:]+)/nodePools/(?P<np>[^/:]+):setSize$"), "set_size"),
    ("GET", re.compile(_BASE + r"/operations$"), "list_operations"),
    ("GET", re.compile(_BASE + r"/operations/(?P<op>[^/]+)$"), "get_operation"),
    ("GET", re.compile(_COMPUTE + r"/instanceGroupManagers/(?P<m>[^/]+)$"), "get_mig"),
    ("POST", re.compile(_COMPUTE + r"/instanceGroupManagers/(?P<m>[^/]+)/listManagedInstances$"), "list_managed"),
    ("POST", re.compile(_COMPUTE + r"/instanceGroupManagers/(?P<m>[^/]+)/deleteInstances$"), "delete_instances"),
    ("GET", re.compile(_COMPUTE + r"/operations/(?P<op>[^/]+)$"), "get_zone_operation"),
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


def compute_error(http: int, reason: str, message: str) -> dict[str, Any]:
    """A Compute Engine error body: ``errors[]`` with ``domain``/``reason`` (no google.rpc ``status``)."""
    return {"error": {"code": http, "message": message, "errors": [{"message": message, "domain": "global",
                                                                      "reason": reason}]}}  # fmt: skip


def _numeric_id() -> str:
    """Compute's resource ids: uint64 rendered as a JSON string."""
    return str(uuid.uuid4().int % 10**19)


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
    cluster is RUNNING (GKE creates node pools after the control plane).
    ``instance_delete_polls``: reads of its group an instance stays DELETING after deleteInstances.
    ``require_token``: when set, requests without ``Authorization: Bearer <token>`` get 401 UNAUTHENTICATED.
    """

    def __init__(
        self,
        *,
        create_polls: int = 3,
        delete_polls: int = 2,
        resize_polls: int = 2,
        pool_lag_polls: int = 0,
        instance_delete_polls: int = 1,
        require_token: str | None = None,
    ) -> None:
        self.create_polls = create_polls
        self.delete_polls = delete_polls
        self.resize_polls = resize_polls
        self.pool_lag_polls = pool_lag_polls
        self.instance_delete_polls = instance_delete_polls
        self.require_token = require_token
        #: Zones the list answer claims it could not reach (``missingZones``).
        self.missing_zones: list[str] = []
        self.requests: list[Request] = []
        self.clusters: dict[str, dict[str, Any]] = {}  # full resource name → Cluster JSON
        self.operations: dict[str, dict[str, Any]] = {}  # full resource name → Operation JSON
        #: ``projects/p/zones/z/instanceGroupManagers/m`` → InstanceGroupManager JSON; its private
        #: ``_instances`` maps instance name → {"id", "action" (NONE/DELETING), "left"}.
        self.migs: dict[str, dict[str, Any]] = {}
        self.zone_operations: dict[str, dict[str, Any]] = {}  # ``projects/p/zones/z/operations/op`` → Operation
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

    def cluster_migs(self, project: str, location: str, name: str) -> list[dict[str, Any]]:
        """The managed instance groups of a cluster's node pools."""
        key = f"projects/{project}/locations/{location}/clusters/{name}"
        with self.lock:
            return [m for m in self.migs.values() if m["_cluster"] == key]

    def nodes(self, project: str, location: str, name: str, *, deleting: bool = False) -> list[str]:
        """Instance (= Kubernetes node) names of a cluster: those not being deleted, or only those
        being deleted."""
        want = "DELETING" if deleting else "NONE"
        return sorted(
            i for m in self.cluster_migs(project, location, name) for i, st in m["_instances"].items()
            if st["action"] == want
        )  # fmt: skip

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
        if req.path.startswith("/compute/"):
            return _compute_not_found(req.path)
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
        cluster["endpoint"] = f"127.0.113.{len(self.clusters) % 250 + 1}"
        cluster["masterAuth"] = {"clusterCaCertificate": FAKE_CA}
        for pool in cluster.get("nodePools", []):
            pool["status"] = "RUNNING"
            self._size_migs(cluster, pool)
        self._count_nodes(cluster)

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
            self.migs = {k: m for k, m in self.migs.items() if m["_cluster"] != st["cluster"]}
        elif st["kind"] == "SET_NODE_POOL_SIZE":
            cluster["status"] = "RUNNING"
            for pool in cluster.get("nodePools", []):
                pool["status"] = "RUNNING"
                if pool.get("name") == st["pool"]:
                    self._size_migs(cluster, pool)
            self._count_nodes(cluster)

    # ---- Compute Engine: managed instance groups --------------------------------------------------
    def _get_mig(self, req: Request, p: str, z: str, m: str) -> Reply:
        mig = self._read_mig(p, z, m)
        if mig is None:
            return _compute_not_found(f"projects/{p}/zones/{z}/instanceGroupManagers/{m}")
        return Reply(200, _public_mig(mig))

    def _list_managed(self, req: Request, p: str, z: str, m: str) -> Reply:
        mig = self._read_mig(p, z, m)
        if mig is None:
            return _compute_not_found(f"projects/{p}/zones/{z}/instanceGroupManagers/{m}")
        out = []
        for name, st in sorted(mig["_instances"].items()):
            deleting = st["action"] == "DELETING"
            out.append(
                {
                    "instance": f"{COMPUTE_URL}/projects/{p}/zones/{z}/instances/{name}",
                    "id": st["id"],
                    "name": name,
                    "currentAction": st["action"],
                    "instanceStatus": "STOPPING" if deleting else "RUNNING",
                    "version": {"instanceTemplate": mig["instanceTemplate"]},
                }
            )
        return Reply(200, {"managedInstances": out} if out else {})

    def _delete_instances(self, req: Request, p: str, z: str, m: str) -> Reply:
        mig = self.migs.get(f"projects/{p}/zones/{z}/instanceGroupManagers/{m}")
        if mig is None:
            return _compute_not_found(f"projects/{p}/zones/{z}/instanceGroupManagers/{m}")
        body = req.body if isinstance(req.body, dict) else {}
        refs = body.get("instances") or []
        if not isinstance(refs, list) or not refs:
            return Reply(400, compute_error(400, "required", "Required field 'instances' not specified"))
        skip = body.get("skipInstancesOnValidationError") is True
        chosen: list[str] = []
        for index, ref in enumerate(refs):
            match = _INSTANCE_REF.search(ref) if isinstance(ref, str) else None
            st = mig["_instances"].get(match["i"]) if match and match["z"] == z else None
            if st is None or st["action"] != "NONE" or (match and match["i"] in chosen):
                if skip:
                    continue
                msg = (f"Invalid value for field 'resource.instances[{index}]': '{ref}'. The instance is not a "
                       f"member of the managed instance group {m} or is already being deleted.")  # fmt: skip
                return Reply(400, compute_error(400, "invalid", msg))
            assert match is not None
            chosen.append(match["i"])
        for name in chosen:
            mig["_instances"][name].update(action="DELETING", left=self.instance_delete_polls)
        mig["targetSize"] -= len(chosen)
        self._mig_status(mig)
        cluster = self.clusters.get(mig["_cluster"])
        if cluster is not None:
            self._count_nodes(cluster)
        return Reply(200, self._new_zone_operation(p, z, "compute.instanceGroupManagers.deleteInstances", mig))

    def _get_zone_operation(self, req: Request, p: str, z: str, op: str) -> Reply:
        full = f"projects/{p}/zones/{z}/operations/{op}"
        found = self.zone_operations.get(full)
        if found is None:
            return _compute_not_found(full)
        if found["status"] != "DONE":  # the group action is scheduled: DONE at the first look
            found.update(status="DONE", progress=100, endTime=_now())
        return Reply(200, dict(found))

    def _new_zone_operation(self, p: str, z: str, kind: str, target: Mapping[str, Any]) -> dict[str, Any]:
        op_id = f"operation-{int(datetime.now(UTC).timestamp() * 1000)}-{uuid.uuid4().hex[:13]}"
        op = {
            "kind": "compute#operation",
            "id": _numeric_id(),
            "name": op_id,
            "zone": f"{COMPUTE_URL}/projects/{p}/zones/{z}",
            "operationType": kind,
            "targetLink": target["selfLink"],
            "targetId": target["id"],
            "status": "RUNNING",
            "user": "burst@example.iam.gserviceaccount.com",
            "progress": 0,
            "insertTime": _now(),
            "startTime": _now(),
            "selfLink": f"{COMPUTE_URL}/projects/{p}/zones/{z}/operations/{op_id}",
        }
        self.zone_operations[f"projects/{p}/zones/{z}/operations/{op_id}"] = op
        return dict(op)

    def _read_mig(self, p: str, z: str, m: str) -> dict[str, Any] | None:
        """A MIG as a read sees it: instances being deleted move one read closer to gone."""
        mig = self.migs.get(f"projects/{p}/zones/{z}/instanceGroupManagers/{m}")
        if mig is None:
            return None
        for name, st in list(mig["_instances"].items()):
            if st["action"] == "DELETING":
                st["left"] -= 1
                if st["left"] < 0:
                    del mig["_instances"][name]
        self._mig_status(mig)
        return mig

    def _size_migs(self, cluster: Mapping[str, Any], pool: dict[str, Any]) -> None:
        """Give ``pool`` its MIGs (one per zone) on first use, then make each hold ``_target``
        instances: new ones named ``<base>-<4 chars>``, or the newest dropped (setSize picks)."""
        p, loc = cluster["_project"], cluster["location"]
        zones = pool.get("locations") or [loc if _ZONE_LIKE.match(loc) else f"{loc}-a"]
        if "_migs" not in pool:
            pool["_migs"] = []
            digest = uuid.uuid4().hex[:8]
            for z in zones:
                base = f"gke-{cluster['name'][:20]}-{pool['name'][:15]}-{digest}"
                name = f"{base}-grp"
                link = f"{COMPUTE_URL}/projects/{p}/zones/{z}"
                self.migs[f"projects/{p}/zones/{z}/instanceGroupManagers/{name}"] = {
                    "kind": "compute#instanceGroupManager",
                    "id": _numeric_id(),
                    "name": name,
                    "zone": link,
                    "baseInstanceName": base,
                    "instanceGroup": f"{link}/instanceGroups/{name}",
                    "instanceTemplate": f"{COMPUTE_URL}/projects/{p}/global/instanceTemplates/{base}",
                    "selfLink": f"{link}/instanceGroupManagers/{name}",
                    "creationTimestamp": _now(),
                    "targetSize": 0,
                    "listManagedInstancesResults": "PAGELESS",
                    "_cluster": f"projects/{p}/locations/{loc}/clusters/{cluster['name']}",
                    "_instances": {},
                }
                pool["_migs"].append(f"projects/{p}/zones/{z}/instanceGroupManagers/{name}")
            # GKE lists the groups' managers here (the field is named after instance groups).
            pool["instanceGroupUrls"] = [f"{COMPUTE_URL}/{key}" for key in pool["_migs"]]
        target = int(pool.get("_target", 0))
        for key in pool["_migs"]:
            mig = self.migs[key]
            live = [i for i, st in mig["_instances"].items() if st["action"] == "NONE"]
            while len(live) < target:
                name = f"{mig['baseInstanceName']}-{uuid.uuid4().hex[:4]}"
                if name not in mig["_instances"]:
                    mig["_instances"][name] = {"id": _numeric_id(), "action": "NONE", "left": 0}
                    live.append(name)
            for name in live[target:]:
                del mig["_instances"][name]
            mig["targetSize"] = target
            self._mig_status(mig)

    @staticmethod
    def _mig_status(mig: dict[str, Any]) -> None:
        deleting = sum(1 for st in mig["_instances"].values() if st["action"] == "DELETING")
        mig["status"] = {"isStable": deleting == 0}
        mig["currentActions"] = {"none": len(mig["_instances"]) - deleting, "deleting": deleting, "creating": 0,
                                 "abandoning": 0, "recreating": 0, "refreshing": 0, "restarting": 0,
                                 "verifying": 0}  # fmt: skip

    def _count_nodes(self, cluster: dict[str, Any]) -> None:
        """GKE's node count follows the node pools' MIG target sizes."""
        keys = [k for pool in cluster.get("nodePools", []) for k in pool.get("_migs", [])]
        cluster["currentNodeCount"] = sum(int(self.migs[k]["targetSize"]) for k in keys if k in self.migs)

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


def _compute_not_found(what: str) -> Reply:
    return Reply(404, compute_error(404, "notFound", f"The resource '{what}' was not found"))


def _public_mig(mig: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mig.items() if not k.startswith("_")}


def _invalid(message: str) -> Reply:
    return Reply(400, rpc_error(400, "INVALID_ARGUMENT", message))
