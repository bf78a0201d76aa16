"""A small, faithful in-memory Kubernetes API server for tests.

No ``kube-apiserver`` binary can be had here, so tests talk to this one instead: the official
``kubernetes`` client (typed APIs, ``CustomObjectsApi`` and ``DynamicClient``) works against it
unchanged over plain HTTP on 127.0.0.1.  It serves what burst's backlog source and federation
plugins touch, with the semantics they rely on; it is not a scheduler or a controller manager.

What it serves
--------------
* Discovery: ``/version`` (a complete ``VersionInfo``), ``/api``, ``/api/v1``, ``/apis``,
  ``/apis/<group>``, ``/apis/<group>/<version>`` (complete ``APIResourceList`` shapes, including
  ``<plural>/status`` subresources), ``/healthz``, ``/readyz``, ``/livez``.  Trailing slashes are
  accepted.
* Kinds (see :data:`BUILTIN_KINDS`): core v1 namespaces, pods, nodes, secrets, serviceaccounts,
  configmaps, services, events; rbac.authorization.k8s.io/v1 clusterroles, clusterrolebindings,
  roles, rolebindings; apps/v1 daemonsets, deployments; batch/v1 jobs; coordination.k8s.io/v1
  leases; core.kubefed.io/v1beta1 KubeFedCluster (namespaced); cluster.karmada.io/v1alpha1
  Cluster (cluster-scoped); apiextensions.k8s.io/v1 CustomResourceDefinition: creating one serves
  its kinds at once (every served version, its scope, its ``status`` subresource) and reports it
  ``Established``; deleting it deletes its objects.  More with :meth:`KubeApiServer.register_kind`.
* Verbs: create (201, ``generateName``), get, list (``labelSelector`` with equality and set
  syntax, ``fieldSelector`` with ``=``/``==``/``!=`` on any dotted path such as ``status.phase``
  or ``spec.nodeName``, ``limit``/``continue``), watch (``watch=true`` with ``resourceVersion`` and
  ``timeoutSeconds``), replace (PUT; a stale ``metadata.resourceVersion`` is a 409 Conflict),
  patch (``application/merge-patch+json``, ``application/json-patch+json`` and
  ``application/strategic-merge-patch+json``, the last treated as a merge patch — lists are
  replaced, not merged by key), delete and deletecollection.  Deleting a namespace deletes its
  contents at once (no Terminating phase, no finalizers, no graceful pod deletion).
* Server-set metadata: ``uid``, ``resourceVersion`` (one global counter), ``creationTimestamp``
  (from the injectable ``clock``), ``generation`` (bumped when ``spec`` changes), ``namespace``.
* Status subresource: for kinds that have one, writes to the main resource keep the stored
  ``status`` and writes to ``/status`` change only ``status`` — as the real server does.
  Created pods start in phase ``Pending`` and namespaces in phase ``Active``.
* Errors as ``Status`` bodies with the real reasons: 401 Unauthorized, 404 NotFound (also for
  unknown resources and missing namespaces), 409 AlreadyExists / Conflict, 415, 422 Invalid.
* Authentication: every request needs ``Authorization: Bearer <token>`` with a valid token
  (:attr:`KubeApiServer.token`, or one minted by the token controller below); anything else is a
  401.  There is no authorisation (RBAC objects are stored, not enforced).
* A service-account token controller: a ``Secret`` of type ``kubernetes.io/service-account-token``
  annotated ``kubernetes.io/service-account.name`` whose service account exists gets ``data.token``,
  ``data.ca.crt`` and ``data.namespace`` filled in (now, or when the service account is created),
  and that token then authenticates.  Deleting the secret or the service account revokes it.
  ``KubeApiServer(auto_tokens=False)`` switches the controller off (a token never arrives).

Python API for tests
--------------------
::

    server = KubeApiServer()            # options: clock=SimClock(...).now (creationTimestamp etc.),
                                        # token="...", auto_tokens=False, ready_members=True
    url = server.start()                # "http://127.0.0.1:<port>", served from a daemon thread
    text = server.kubeconfig()          # YAML: cluster (server + certificate-authority-data), user
                                        # with the bearer token, context; kubeconfig(token="x",
                                        # name="ctx", namespace="ns") for other variants
    server.token / server.ca_data       # the admin token; the base64 CA the kubeconfig carries
    server.expire_token()               # the admin token (or a given one) now gets 401
    server.add_token("t")               # accept another bearer token

    server.add_node("n1", cpu="8", memory="32Gi", gpus=0, labels={}, unschedulable=False, ready=True)
    server.set_node_allocatable("n1", cpu="7910m", memory="30Gi", gpus=2)
    server.add_pod("p1", namespace="default", cpu="500m", memory="2Gi", gpus=0, phase="Pending",
                   node=None, unschedulable=True, labels={}, created=datetime(...))
    server.set_pod_phase("default", "p1", "Running", node="n1")

    server.create(obj)                  # as a POST; obj needs apiVersion and kind
    server.get(api_version, plural, name, namespace="")      # ApiError(404) when missing
    server.find(...)                    # like get, None when missing
    server.objects(api_version, plural, namespace="", labels="")
    server.patch(api_version, plural, name, merge_patch, namespace="")
    server.delete(api_version, plural, name, namespace="")
    server.set_status(api_version, plural, name, {...}, namespace="")   # merged into status
    server.set_condition(api_version, plural, name, "Ready", "True", namespace="", reason="", message="")
    server.object_keys()                # {(api_version, plural, namespace, name), ...}: compare
                                        # before/after to check that exactly the right objects exist
    server.requests                     # [RecordedRequest(method, path, query, content_type, body)]
    server.clear_requests()
    server.inject_fault("PUT", "/clusters/m1", 409, "Conflict", times=1)  # next matching requests fail
    server.on_request("PATCH", "/nodes/n1", lambda: server.add_pod(...), times=1)  # run something just
                                        # before the next matching request is served (a race: what
                                        # a scheduler or kubelet did meanwhile)
    server.register_kind(ResourceKind(group, version, plural, kind, namespaced, status=True))
    server.stop()                       # closes the listener and every open connection

Also usable as a context manager (``with KubeApiServer() as server:``), and as a process:
``python -m burst.testing.kube_server --kubeconfig FILE [--nodes N] [--namespace NS]...
[--ready-members]`` prints the URL and serves until SIGTERM.  All methods are thread-safe; they
share one lock with the HTTP handlers.

``ready_members=True`` stands in for the KubeFed and Karmada controllers: a KubeFedCluster or
Karmada Cluster is Ready as soon as it is created.  Without it, tests set the condition.

Known differences from a real API server
----------------------------------------
No RBAC enforcement, admission, defaulting or validation beyond names; a ``creationTimestamp``
sent on create is kept (tests backdate objects that way); strategic merge patch is a plain merge
patch; field selectors accept any path; deletion is immediate (no finalizers, no graceful
termination, no garbage collection by owner references); no scheduler, kubelet or controllers
other than the token controller (and ``ready_members``); watch history is the last 10 000 changes.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import re
import secrets
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from burst.testing.loopback import LoopbackServer

JSON = dict[str, Any]

SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"

#: A stand-in cluster CA (the server speaks plain HTTP, so nobody verifies it); kubeconfigs carry
#: it as ``certificate-authority-data`` and minted token secrets as ``ca.crt``, like real clusters.
FAKE_CA_PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "TUlJQmtUQ0IrL2Z0ZXN0LWt1YmUtc2VydmVyLWNhLW5vdC1hLXJlYWwtY2VydGlmaWNhdGU=\n"
    "-----END CERTIFICATE-----\n"
)


@dataclass(frozen=True, slots=True)
class ResourceKind:
    """One served resource: where it lives in the API and how it behaves."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    status: bool = True
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

BUILTIN_KINDS: tuple[ResourceKind, ...] = (
    ResourceKind("", "v1", "namespaces", "Namespace", False, short_names=("ns",)),
    ResourceKind("", "v1", "pods", "Pod", True, short_names=("po",)),
    ResourceKind("", "v1", "nodes", "Node", False, short_names=("no",)),
    ResourceKind("", "v1", "secrets", "Secret", True, status=False),
    ResourceKind("", "v1", "serviceaccounts", "ServiceAccount", True, status=False, short_names=("sa",)),
    ResourceKind("", "v1", "configmaps", "ConfigMap", True, status=False, short_names=("cm",)),
    ResourceKind("", "v1", "services", "Service", True, short_names=("svc",)),
    ResourceKind("", "v1", "events", "Event", True, status=False, short_names=("ev",)),
    ResourceKind("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, status=False),
    ResourceKind("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False, status=False),
    ResourceKind("rbac.authorization.k8s.io", "v1", "roles", "Role", True, status=False),
    ResourceKind("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, status=False),
    ResourceKind("apps", "v1", "daemonsets", "DaemonSet", True, short_names=("ds",)),
    ResourceKind("apps", "v1", "deployments", "Deployment", True, short_names=("deploy",)),
    ResourceKind("batch", "v1", "jobs", "Job", True),
    ResourceKind("coordination.k8s.io", "v1", "leases", "Lease", True, status=False),
    ResourceKind("core.kubefed.io", "v1beta1", "kubefedclusters", "KubeFedCluster", True, short_names=("kfc",)),
    ResourceKind("cluster.karmada.io", "v1alpha1", "clusters", "Cluster", False),
    ResourceKind("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False),
)

#: Federation member kinds whose Ready condition ``ready_members=True`` sets at once (standing in
#: for the KubeFed cluster controller and Karmada's cluster-status controller).
_MEMBER_KINDS = {("core.kubefed.io", "kubefedclusters"), ("cluster.karmada.io", "clusters")}

#: Namespaces every fresh cluster has.
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the client sent it (the Authorization header is never recorded)."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any


class ApiError(Exception):
    """Answered as a ``Status`` body; raised inside the server and by the Python API."""

    def __init__(self, code: int, reason: str, message: str, details: JSON | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> JSON:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def _not_found(rk: ResourceKind, name: str) -> ApiError:
    what = f"{rk.plural}.{rk.group}" if rk.group else rk.plural
    return ApiError(404, "NotFound", f'{what} "{name}" not found', {"name": name, "group": rk.group, "kind": rk.plural})


def _now_utc() -> datetime:
    return datetime.now(UTC)


def _timestamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------------
# selectors and patches
# ------------------------------------------------------------------------------------------------

_SET_REQ = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_REQ = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_./-]*)\s*$")


def _split_selector(text: str) -> list[str]:
    """Split on commas that are not inside ``in (...)`` parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p for p in parts if p.strip()]


def _label_ok(labels: dict[str, str], op: str, key: str, values: frozenset[str]) -> bool:
    if op == "exists":
        return key in labels
    if op == "!exists":
        return key not in labels
    if op == "in":
        return labels.get(key) in values
    return labels.get(key) not in values  # "notin", and "!=" (absent labels match, as in Kubernetes)


def label_matcher(selector: str) -> Callable[[dict[str, str]], bool]:
    """A predicate for a label selector (``a=b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``)."""
    reqs: list[tuple[str, str, frozenset[str]]] = []
    for req in _split_selector(selector):
        eq = _EQ_REQ.match(req)
        if eq:
            key, op, value = eq.groups()
            reqs.append(("notin" if op == "!=" else "in", key, frozenset({value})))
            continue
        st = _SET_REQ.match(req)
        if not st:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {req!r}")
        neg, key, op, values = st.groups()
        if op:
            reqs.append((op, key, frozenset(v.strip() for v in values.split(",") if v.strip())))
        else:
            reqs.append(("!exists" if neg else "exists", key, frozenset()))

    def matches(labels: dict[str, str]) -> bool:
        return all(_label_ok(labels, op, key, values) for op, key, values in reqs)

    return matches


def _field_value(obj: JSON, path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return ""
        cur = cur[part]
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return "" if cur is None else str(cur)


def field_matcher(selector: str) -> Callable[[JSON], bool]:
    """A predicate for a field selector (``status.phase=Pending,spec.nodeName!=``).  Any dotted
    path is accepted (the real server allows only a few per kind); a missing field reads as ""."""
    reqs: list[tuple[str, bool, str]] = []
    for req in _split_selector(selector):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", req)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid field selector: {req!r}")
        path, op, value = m.groups()
        reqs.append((path, op != "!=", value))

    def matches(obj: JSON) -> bool:
        return all((_field_value(obj, path) == value) == equal for path, equal, value in reqs)

    return matches


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    cur = doc
    for part in parts:
        if isinstance(cur, list):
            cur = cur[int(part)]
        elif isinstance(cur, dict):
            cur = cur[part]
        else:
            raise KeyError(part)
    return cur


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        try:
            kind = op["op"]
            parts = _pointer(op["path"])
            if kind == "test":
                if _walk(doc, parts) != op["value"]:
                    raise ApiError(422, "Invalid", f"test operation failed at {op['path']}")
                continue
            if kind in ("move", "copy"):
                value = copy.deepcopy(_walk(doc, _pointer(op["from"])))
                if kind == "move":
                    doc = _remove(doc, _pointer(op["from"]))
                doc = _add(doc, parts, value)
            elif kind == "add":
                doc = _add(doc, parts, copy.deepcopy(op["value"]))
            elif kind == "remove":
                doc = _remove(doc, parts)
            elif kind == "replace":
                _walk(doc, parts)  # must exist
                doc = _add(_remove(doc, parts), parts, copy.deepcopy(op["value"]))
            else:
                raise ApiError(422, "Invalid", f"unknown JSON patch operation {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as err:
            raise ApiError(422, "Invalid", f"the JSON patch cannot be applied: {op!r}: {err}") from err
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            index = int(last)
            if not 0 <= index <= len(parent):
                raise IndexError(last)
            parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise KeyError(last)
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return None
    parent = _walk(doc, parts[:-1])
    if isinstance(parent, list):
        del parent[int(parts[-1])]
    else:
        del parent[parts[-1]]
    return doc


# ------------------------------------------------------------------------------------------------
# the store
# ------------------------------------------------------------------------------------------------


@dataclass
class _Event:
    rv: int
    type: str
    rk: ResourceKind
    obj: JSON


@dataclass
class _Fault:
    method: str
    path_contains: str
    code: int
    reason: str
    times: int


@dataclass
class _Hook:
    method: str
    path_contains: str
    action: Callable[[], object]
    times: int


@dataclass
class _State:
    kinds: dict[tuple[str, str, str], ResourceKind] = field(default_factory=dict)
    objects: dict[tuple[str, str, str], dict[tuple[str, str], JSON]] = field(default_factory=dict)
    rv: int = 0
    events: list[_Event] = field(default_factory=list)


class KubeApiServer:
    """An in-memory Kubernetes API server; see the module docstring for what it serves."""

    def __init__(
        self,
        *,
        token: str | None = None,
        clock: Callable[[], datetime] = _now_utc,
        auto_tokens: bool = True,
        ready_members: bool = False,
        git_version: str = "v1.31.0",
    ) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.auto_tokens = auto_tokens
        self.ready_members = ready_members
        self.git_version = git_version
        self.requests: list[RecordedRequest] = []
        self._clock = clock
        self._tokens: set[str] = {self.token}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._state = _State()
        self._httpd: LoopbackServer | None = None
        self._conns: set[socket.socket] = set()
        self._url = ""
        self._faults: list[_Fault] = []
        self._hooks: list[_Hook] = []
        for rk in BUILTIN_KINDS:
            self.register_kind(rk)
        for ns in DEFAULT_NAMESPACES:
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        """Listen on a free port of 127.0.0.1 in a daemon thread; returns the base URL."""
        if self._httpd is not None:
            return self._url
        handler = type("BoundHandler", (_Handler,), {"api": self})
        self._httpd = LoopbackServer(handler, "kube-api-server").start()
        self._url = self._httpd.url
        return self._url

    def stop(self) -> None:
        """Stop listening and close every open connection (clients then see it unreachable)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.stop()
        with self._lock:
            conns, self._conns = set(self._conns), set()
            self._changed.notify_all()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> KubeApiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if not self._url:
            raise RuntimeError("the server is not started")
        return self._url

    @property
    def ca_data(self) -> str:
        """The base64 CA bundle kubeconfigs and token secrets carry."""
        return base64.b64encode(FAKE_CA_PEM.encode()).decode()

    def kubeconfig(self, *, token: str | None = None, name: str = "fake", namespace: str | None = None) -> str:
        """Kubeconfig YAML for this server with a bearer token (the admin token unless given)."""
        context: JSON = {"cluster": name, "user": f"{name}-admin"}
        if namespace:
            context["namespace"] = namespace
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": self.url, "certificate-authority-data": self.ca_data}}],
            "users": [{"name": f"{name}-admin", "user": {"token": token if token is not None else self.token}}],
            "contexts": [{"name": name, "context": context}],
            "current-context": name,
        }
        return yaml.safe_dump(doc, sort_keys=False)

    # -- authentication ----------------------------------------------------------------------

    def expire_token(self, token: str | None = None) -> None:
        """Make a token (the admin token by default) stop working: requests with it get 401."""
        with self._lock:
            self._tokens.discard(token if token is not None else self.token)

    def add_token(self, token: str) -> None:
        with self._lock:
            self._tokens.add(token)

    def token_valid(self, token: str) -> bool:
        with self._lock:
            return token in self._tokens

    # -- kinds -------------------------------------------------------------------------------

    def register_kind(self, rk: ResourceKind) -> None:
        with self._lock:
            key = (rk.group, rk.version, rk.plural)
            self._state.kinds[key] = rk
            self._state.objects.setdefault(key, {})

    def kind_for(self, api_version: str, plural: str) -> ResourceKind:
        group, _, version = api_version.rpartition("/")
        rk = self._state.kinds.get((group, version, plural))
        if rk is None:
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({api_version} {plural})"
            )
        return rk

    def kinds(self) -> list[ResourceKind]:
        with self._lock:
            return list(self._state.kinds.values())

    # -- the store operations (shared by HTTP and the Python API) -----------------------------

    def _bucket(self, rk: ResourceKind) -> dict[tuple[str, str], JSON]:
        return self._state.objects[(rk.group, rk.version, rk.plural)]

    def _next_rv(self) -> int:
        self._state.rv += 1
        return self._state.rv

    def _record(self, kind: str, rk: ResourceKind, obj: JSON) -> None:
        # Stored objects are never mutated in place (every write stores a new dict), so events
        # can share them without copying.
        self._state.events.append(_Event(int(obj["metadata"]["resourceVersion"]), kind, rk, obj))
        if len(self._state.events) > 10_000:
            del self._state.events[:5_000]
        self._changed.notify_all()

    def _check_namespace(self, rk: ResourceKind, namespace: str) -> None:
        if rk.namespaced and not namespace:
            raise ApiError(400, "BadRequest", f"{rk.plural} are namespaced: a namespace is required")
        if rk.namespaced and ("", namespace) not in self._state.objects[("", "v1", "namespaces")]:
            raise ApiError(
                404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"}
            )

    def do_create(self, rk: ResourceKind, namespace: str, body: Any, *, status: JSON | None = None) -> JSON:
        """POST semantics; ``status`` (Python API only) replaces the initial status."""
        with self._lock:
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body must be a JSON object")
            obj = copy.deepcopy(body)
            meta = obj.setdefault("metadata", {})
            if not isinstance(meta, dict):
                raise ApiError(422, "Invalid", "metadata must be an object")
            if not rk.namespaced:
                namespace = ""
            elif not namespace:
                namespace = meta.get("namespace") or ""
            if rk.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            self._check_namespace(rk, namespace)
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
            name = meta.get("name")
            if not name or not isinstance(name, str):
                raise ApiError(
                    422, "Invalid", f"{rk.kind} is invalid: metadata.name: Required value", {"kind": rk.kind}
                )
            bucket = self._bucket(rk)
            key = (namespace if rk.namespaced else "", name)
            if key in bucket:
                what = f"{rk.plural}.{rk.group}" if rk.group else rk.plural
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{what} "{name}" already exists',
                    {"name": name, "group": rk.group, "kind": rk.plural},
                )
            obj["apiVersion"], obj["kind"] = rk.api_version, rk.kind
            if rk.namespaced:
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = meta.get("creationTimestamp") or _timestamp(self._clock())
            meta["generation"] = 1
            meta["resourceVersion"] = str(self._next_rv())
            if rk.status:
                obj["status"] = copy.deepcopy(status) if status is not None else self._initial_status(rk, obj)
            bucket[key] = obj
            self._record("ADDED", rk, obj)
            self._after_create(rk, obj)
            return copy.deepcopy(bucket[key])

    def _initial_status(self, rk: ResourceKind, obj: JSON) -> JSON:
        if (rk.group, rk.plural) == ("", "pods"):
            return {"phase": "Pending", "qosClass": "Burstable"}
        if (rk.group, rk.plural) == ("", "namespaces"):
            return {"phase": "Active"}
        return {}

    def do_get(self, rk: ResourceKind, namespace: str, name: str) -> JSON:
        with self._lock:
            obj = self._bucket(rk).get((namespace if rk.namespaced else "", name))
            if obj is None:
                raise _not_found(rk, name)
            return copy.deepcopy(obj)

    def do_list(self, rk: ResourceKind, namespace: str, labels: str = "", fields: str = "") -> list[JSON]:
        with self._lock:
            return [copy.deepcopy(o) for o in self._select(rk, namespace, labels, fields)]

    def _select(self, rk: ResourceKind, namespace: str, labels: str, fields: str) -> list[JSON]:
        """The matching stored objects themselves (not copies): only use them under the lock."""
        match_labels = label_matcher(labels) if labels else None
        match_fields = field_matcher(fields) if fields else None
        out = []
        for (ns, _), obj in sorted(self._bucket(rk).items()):
            if rk.namespaced and namespace and ns != namespace:
                continue
            if match_labels and not match_labels(obj["metadata"].get("labels") or {}):
                continue
            if match_fields and not match_fields(obj):
                continue
            out.append(obj)
        return out

    def do_update(self, rk: ResourceKind, namespace: str, name: str, body: Any, *, subresource: str = "") -> JSON:
        """PUT semantics: replace the object (or only its status), checking resourceVersion."""
        with self._lock:
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the body must be a JSON object")
            current = self.do_get(rk, namespace, name)
            meta = body.get("metadata") or {}
            if meta.get("name") not in (None, name):
                raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
            rv = meta.get("resourceVersion")
            if rv and rv != current["metadata"]["resourceVersion"]:
                what = f"{rk.plural}.{rk.group}" if rk.group else rk.plural
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {what} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                    {"name": name, "group": rk.group, "kind": rk.plural},
                )
            return self._store_update(rk, namespace, name, current, copy.deepcopy(body), subresource=subresource)

    def do_patch(
        self, rk: ResourceKind, namespace: str, name: str, patch: Any, content_type: str, *, subresource: str = ""
    ) -> JSON:
        with self._lock:
            current = self.do_get(rk, namespace, name)
            ctype = content_type.split(";", maxsplit=1)[0].strip()
            if ctype == "application/json-patch+json":
                new = json_patch(current, patch)
            elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                if not isinstance(patch, dict):
                    raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
                rv = (patch.get("metadata") or {}).get("resourceVersion")
                if rv and rv != current["metadata"]["resourceVersion"]:
                    raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rk.plural} "{name}"')
                new = merge_patch(current, patch)
            else:
                raise ApiError(
                    415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}"
                )
            if not isinstance(new, dict):
                raise ApiError(422, "Invalid", "the patched object is not an object")
            return self._store_update(rk, namespace, name, current, new, subresource=subresource)

    def _store_update(
        self, rk: ResourceKind, namespace: str, name: str, current: JSON, new: JSON, *, subresource: str
    ) -> JSON:
        if subresource not in ("", "status") or (subresource == "status" and not rk.status):
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({rk.plural}/{subresource})"
            )
        if subresource == "status":
            obj = copy.deepcopy(current)
            obj["status"] = new.get("status") or {}
        else:
            obj = new
            obj["apiVersion"], obj["kind"] = rk.api_version, rk.kind
            if rk.status:
                obj["status"] = current.get("status", {})
            meta = obj.setdefault("metadata", {})
            for kept in ("uid", "creationTimestamp", "namespace", "name", "generation"):
                if kept in current["metadata"]:
                    meta[kept] = current["metadata"][kept]
            if {k: v for k, v in obj.items() if k not in ("metadata", "status")} != {
                k: v for k, v in current.items() if k not in ("metadata", "status")
            }:
                meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        if obj == current:
            return copy.deepcopy(current)  # a no-op write keeps the resourceVersion, as the real server does
        obj["metadata"]["resourceVersion"] = str(self._next_rv())
        self._bucket(rk)[(namespace if rk.namespaced else "", name)] = obj
        self._record("MODIFIED", rk, obj)
        self._after_update(rk, obj)
        return copy.deepcopy(obj)

    def do_delete(self, rk: ResourceKind, namespace: str, name: str) -> JSON:
        with self._lock:
            key = (namespace if rk.namespaced else "", name)
            stored = self._bucket(rk).pop(key, None)
            if stored is None:
                raise _not_found(rk, name)
            obj = copy.deepcopy(stored)
            obj["metadata"]["resourceVersion"] = str(self._next_rv())
            self._record("DELETED", rk, obj)
            self._after_delete(rk, obj)
            return obj

    # -- controllers (what the real control plane does right after a write) ---------------------

    def _after_create(self, rk: ResourceKind, obj: JSON) -> None:
        if (rk.group, rk.plural) == ("", "namespaces"):
            name = obj["metadata"]["name"]
            self.do_create(self.kind_for("v1", "serviceaccounts"), name, {"metadata": {"name": "default"}})
        elif (rk.group, rk.plural) == ("", "secrets"):
            self._fill_token(obj)
        elif (rk.group, rk.plural) == ("", "serviceaccounts"):
            sa_ns, sa_name = obj["metadata"]["namespace"], obj["metadata"]["name"]
            for secret in self.do_list(self.kind_for("v1", "secrets"), sa_ns):
                if (secret["metadata"].get("annotations") or {}).get(SA_NAME_ANNOTATION) == sa_name:
                    self._fill_token(secret)
        elif (rk.group, rk.plural) == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._establish(obj)
        elif self.ready_members and (rk.group, rk.plural) in _MEMBER_KINDS:
            meta = obj["metadata"]
            self.set_condition(
                rk.api_version, rk.plural, meta["name"], "Ready", "True", namespace=meta.get("namespace", "")
            )

    def _after_update(self, rk: ResourceKind, obj: JSON) -> None:
        if (rk.group, rk.plural) == ("", "secrets"):
            self._fill_token(obj)

    def _crd_kinds(self, crd: JSON) -> list[ResourceKind]:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        return [
            ResourceKind(
                str(spec.get("group") or ""),
                str(v["name"]),
                str(names.get("plural") or ""),
                str(names.get("kind") or ""),
                spec.get("scope") == "Namespaced",
                status="status" in (v.get("subresources") or {}),
                short_names=tuple(names.get("shortNames") or ()),
            )
            for v in spec.get("versions") or []
            if v.get("served", True) and v.get("name")
        ]

    def _establish(self, crd: JSON) -> None:
        """The apiextensions controller: serve the CRD's kinds at once and report it Established."""
        kinds = self._crd_kinds(crd)
        if not kinds or not all(rk.group and rk.plural and rk.kind for rk in kinds):
            return
        for rk in kinds:
            self.register_kind(rk)
        names = (crd.get("spec") or {}).get("names") or {}
        now = _timestamp(self._clock())
        status = {
            "acceptedNames": names,
            "storedVersions": [rk.version for rk in kinds[:1]],
            "conditions": [
                {"type": t, "status": "True", "reason": t, "message": "", "lastTransitionTime": now}
                for t in ("NamesAccepted", "Established")
            ],
        }
        rk_crd = self.kind_for("apiextensions.k8s.io/v1", "customresourcedefinitions")
        self.do_patch(
            rk_crd,
            "",
            crd["metadata"]["name"],
            {"status": status},
            "application/merge-patch+json",
            subresource="status",
        )

    def _after_delete(self, rk: ResourceKind, obj: JSON) -> None:
        meta = obj["metadata"]
        if (rk.group, rk.plural) == ("apiextensions.k8s.io", "customresourcedefinitions"):
            # Deleting a CRD deletes its objects and stops serving its kinds.
            for kind in self._crd_kinds(obj):
                served = (kind.group, kind.version, kind.plural)
                self._state.kinds.pop(served, None)
                self._state.objects.pop(served, None)
            return
        if (rk.group, rk.plural) == ("", "namespaces"):
            for other in self._state.kinds.values():
                if other.namespaced:
                    for key in [k for k in self._bucket(other) if k[0] == meta["name"]]:
                        self.do_delete(other, key[0], key[1])
        elif (rk.group, rk.plural) == ("", "secrets") and obj.get("type") == SA_TOKEN_TYPE:
            token = (obj.get("data") or {}).get("token")
            if token:
                self._tokens.discard(base64.b64decode(token).decode())
        elif (rk.group, rk.plural) == ("", "serviceaccounts"):
            secrets_kind = self.kind_for("v1", "secrets")
            for secret in self.do_list(secrets_kind, meta["namespace"]):
                smeta = secret["metadata"]
                if (
                    secret.get("type") == SA_TOKEN_TYPE
                    and (smeta.get("annotations") or {}).get(SA_NAME_ANNOTATION) == meta["name"]
                ):
                    self.do_delete(secrets_kind, smeta["namespace"], smeta["name"])

    def _fill_token(self, secret: JSON) -> None:
        """The token controller: fill a service-account token secret whose account exists."""
        meta = secret["metadata"]
        sa_name = (meta.get("annotations") or {}).get(SA_NAME_ANNOTATION)
        if not self.auto_tokens or secret.get("type") != SA_TOKEN_TYPE or not sa_name:
            return
        if (secret.get("data") or {}).get("token"):
            return
        sa = self._bucket(self.kind_for("v1", "serviceaccounts")).get((meta["namespace"], sa_name))
        if sa is None:
            return
        token = secrets.token_urlsafe(32)
        self._tokens.add(token)
        patch = {
            "metadata": {"annotations": {SA_UID_ANNOTATION: sa["metadata"]["uid"]}},
            "data": {
                "token": base64.b64encode(token.encode()).decode(),
                "ca.crt": self.ca_data,
                "namespace": base64.b64encode(meta["namespace"].encode()).decode(),
            },
        }
        self.do_patch(
            self.kind_for("v1", "secrets"), meta["namespace"], meta["name"], patch, "application/merge-patch+json"
        )

    # -- watch -------------------------------------------------------------------------------

    def watch_events(
        self, rk: ResourceKind, namespace: str, *, since: int | None, timeout_s: float, labels: str, fields: str
    ) -> Iterator[JSON]:
        """Events for one collection: the current objects as ADDED when ``since`` is None, then
        changes after ``since`` until ``timeout_s`` passes or the server stops."""
        match_labels = label_matcher(labels)
        match_fields = field_matcher(fields)

        def wanted(ev_rk: ResourceKind, obj: JSON) -> bool:
            if ev_rk != rk:
                return False
            if rk.namespaced and namespace and obj["metadata"].get("namespace") != namespace:
                return False
            return match_labels(obj["metadata"].get("labels") or {}) and match_fields(obj)

        with self._lock:
            if since is None:
                initial = [{"type": "ADDED", "object": o} for o in self.do_list(rk, namespace, labels, fields)]
                since = self._state.rv
            else:
                initial = []
        yield from initial
        deadline = threading.Event()
        timer = threading.Timer(timeout_s, deadline.set)
        timer.daemon = True
        timer.start()
        try:
            while not deadline.is_set() and self._httpd is not None:
                with self._lock:
                    fresh = [e for e in self._state.events if e.rv > since]
                    if not fresh:
                        self._changed.wait(timeout=0.2)
                        continue
                    since = fresh[-1].rv
                for ev in fresh:
                    if wanted(ev.rk, ev.obj):
                        yield {"type": ev.type, "object": copy.deepcopy(ev.obj)}
        finally:
            timer.cancel()

    # -- the Python API for tests -------------------------------------------------------------

    def create(self, obj: JSON) -> JSON:
        """Create ``obj`` (needs apiVersion and kind) as if a client POSTed it."""
        rk = self._kind_of(obj)
        return self.do_create(rk, (obj.get("metadata") or {}).get("namespace", ""), obj)

    def _kind_of(self, obj: JSON) -> ResourceKind:
        with self._lock:
            for rk in self._state.kinds.values():
                if rk.api_version == obj.get("apiVersion") and rk.kind == obj.get("kind"):
                    return rk
        raise ApiError(404, "NotFound", f"no kind {obj.get('kind')!r} in {obj.get('apiVersion')!r}")

    def get(self, api_version: str, plural: str, name: str, namespace: str = "") -> JSON:
        with self._lock:
            return self.do_get(self.kind_for(api_version, plural), namespace, name)

    def find(self, api_version: str, plural: str, name: str, namespace: str = "") -> JSON | None:
        """Like :meth:`get` but None when missing."""
        try:
            return self.get(api_version, plural, name, namespace)
        except ApiError as err:
            if err.code == 404:
                return None
            raise

    def objects(self, api_version: str, plural: str, namespace: str = "", labels: str = "") -> list[JSON]:
        with self._lock:
            return self.do_list(self.kind_for(api_version, plural), namespace, labels)

    def delete(self, api_version: str, plural: str, name: str, namespace: str = "") -> None:
        with self._lock:
            self.do_delete(self.kind_for(api_version, plural), namespace, name)

    def patch(self, api_version: str, plural: str, name: str, patch: JSON, namespace: str = "") -> JSON:
        """Merge-patch the main resource (status is kept, as over HTTP)."""
        with self._lock:
            rk = self.kind_for(api_version, plural)
            return self.do_patch(rk, namespace, name, patch, "application/merge-patch+json")

    def set_status(self, api_version: str, plural: str, name: str, status: JSON, namespace: str = "") -> JSON:
        """Merge ``status`` into the object's status (what a controller would write)."""
        with self._lock:
            rk = self.kind_for(api_version, plural)
            return self.do_patch(
                rk, namespace, name, {"status": status}, "application/merge-patch+json", subresource="status"
            )

    def set_condition(
        self,
        api_version: str,
        plural: str,
        name: str,
        type_: str,
        status: str,
        *,
        namespace: str = "",
        reason: str = "",
        message: str = "",
    ) -> JSON:
        """Set (add or replace) one condition in ``status.conditions``."""
        with self._lock:
            current = self.get(api_version, plural, name, namespace)
            now = _timestamp(self._clock())
            conditions = [c for c in (current.get("status") or {}).get("conditions") or [] if c.get("type") != type_]
            conditions.append(
                {
                    "type": type_,
                    "status": status,
                    "reason": reason or type_,
                    "message": message,
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                }
            )
            return self.set_status(api_version, plural, name, {"conditions": conditions}, namespace)

    def object_keys(self) -> set[tuple[str, str, str, str]]:
        """Every stored object as (apiVersion, plural, namespace, name): for exact before/after checks."""
        with self._lock:
            return {
                (rk.api_version, rk.plural, ns, name)
                for rk in self._state.kinds.values()
                for (ns, name) in self._bucket(rk)
            }

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def inject_fault(self, method: str, path_contains: str, code: int, reason: str, *, times: int = 1) -> None:
        """Answer the next ``times`` matching requests with an error ``Status`` instead of serving
        them (after authentication), e.g. a 409 Conflict on a PUT or a 500 on a list."""
        with self._lock:
            self._faults.append(_Fault(method.upper(), path_contains, code, reason, times))

    def _take_fault(self, method: str, path: str) -> ApiError | None:
        with self._lock:
            for fault in self._faults:
                if fault.method == method and fault.path_contains in path and fault.times > 0:
                    fault.times -= 1
                    return ApiError(fault.code, fault.reason, f"injected fault: {fault.reason}")
        return None

    def on_request(self, method: str, path_contains: str, action: Callable[[], object], *, times: int = 1) -> None:
        """Run ``action`` just before each of the next ``times`` matching requests is served (after
        authentication and faults), e.g. bind a pod to a node between a client's look and its
        cordon.  ``action`` may use this object's methods."""
        with self._lock:
            self._hooks.append(_Hook(method.upper(), path_contains, action, times))

    def _take_hooks(self, method: str, path: str) -> list[Callable[[], object]]:
        with self._lock:
            due = [h for h in self._hooks if h.method == method and h.path_contains in path and h.times > 0]
            for hook in due:
                hook.times -= 1
            return [h.action for h in due]

    def add_node(
        self,
        name: str,
        *,
        cpu: str = "8",
        memory: str = "32Gi",
        gpus: int = 0,
        labels: dict[str, str] | None = None,
        unschedulable: bool = False,
        ready: bool = True,
    ) -> JSON:
        """A node with capacity = allocatable = the given resources, Ready unless told."""
        resources = {"cpu": cpu, "memory": memory, "pods": "110"}
        if gpus:
            resources["nvidia.com/gpu"] = str(gpus)
        node = self.create(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
                "spec": {"unschedulable": True} if unschedulable else {},
            }
        )
        now = _timestamp(self._clock())
        status = {
            "capacity": resources,
            "allocatable": dict(resources),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "KubeletReady" if ready else "KubeletNotReady",
                    "message": "",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
        }
        del node
        return self.set_status("v1", "nodes", name, status)

    def set_node_allocatable(
        self, name: str, *, cpu: str | None = None, memory: str | None = None, gpus: int | None = None
    ) -> JSON:
        alloc: JSON = {}
        if cpu is not None:
            alloc["cpu"] = cpu
        if memory is not None:
            alloc["memory"] = memory
        if gpus is not None:
            alloc["nvidia.com/gpu"] = str(gpus) if gpus else None
        return self.set_status("v1", "nodes", name, {"allocatable": alloc})

    def add_pod(
        self,
        name: str,
        *,
        namespace: str = "default",
        cpu: str | None = "1",
        memory: str | None = "1Gi",
        gpus: int = 0,
        phase: str = "Pending",
        node: str | None = None,
        unschedulable: bool = False,
        labels: dict[str, str] | None = None,
        created: datetime | None = None,
    ) -> JSON:
        """A one-container pod with these requests; ``unschedulable`` sets the scheduler's
        ``PodScheduled=False/Unschedulable`` condition; ``node`` binds it."""
        requests: JSON = {}
        if cpu is not None:
            requests["cpu"] = cpu
        if memory is not None:
            requests["memory"] = memory
        resources: JSON = {"requests": requests}
        if gpus:
            resources["limits"] = {"nvidia.com/gpu": str(gpus)}
        meta: JSON = {"name": name, "namespace": namespace, "labels": labels or {}}
        if created is not None:
            meta["creationTimestamp"] = _timestamp(created)
        spec: JSON = {"containers": [{"name": "main", "image": "busybox", "resources": resources}]}
        if node:
            spec["nodeName"] = node
        status = self._pod_status(phase, scheduled=bool(node) or phase != "Pending", unschedulable=unschedulable)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
        return self.do_create(self.kind_for("v1", "pods"), namespace, pod, status=status)

    def _pod_status(self, phase: str, *, scheduled: bool, unschedulable: bool) -> JSON:
        now = _timestamp(self._clock())
        cond: JSON = {
            "type": "PodScheduled",
            "status": "True" if scheduled and not unschedulable else "False",
            "lastProbeTime": None,
            "lastTransitionTime": now,
        }
        if unschedulable:
            cond |= {"reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient cpu."}
        status: JSON = {"phase": phase, "qosClass": "Burstable", "conditions": [cond]}
        if phase != "Pending":
            status["startTime"] = now
        return status

    def set_pod_phase(
        self, namespace: str, name: str, phase: str, *, node: str | None = None, unschedulable: bool = False
    ) -> JSON:
        """Move a pod to ``phase`` (binding it to ``node`` if given), as scheduler and kubelet would."""
        with self._lock:
            if node:
                self.patch("v1", "pods", name, {"spec": {"nodeName": node}}, namespace)
            bound = bool(self.get("v1", "pods", name, namespace)["spec"].get("nodeName"))
            status = self._pod_status(phase, scheduled=bound or phase != "Pending", unschedulable=unschedulable)
            return self.set_status("v1", "pods", name, status, namespace)


# ------------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------------

_NON_RESOURCE = {"/healthz", "/readyz", "/livez"}
#: Built-in kinds whose DELETE answers with the deleted object (the typed client expects it);
#: the other built-ins answer with a ``Status``.  Custom resources answer with the object.
_RETURNS_DELETED = {("", "pods"), ("", "services"), ("", "serviceaccounts"), ("", "namespaces")}
_BUILTIN_GROUPS = {"", "apps", "batch", "rbac.authorization.k8s.io", "coordination.k8s.io", "apiextensions.k8s.io"}


class _Handler(BaseHTTPRequestHandler):
    api: KubeApiServer
    protocol_version = "HTTP/1.1"
    server_version = "burst-kube-server/1"

    def setup(self) -> None:
        super().setup()
        with self.api._lock:
            self.api._conns.add(self.connection)

    def finish(self) -> None:
        with self.api._lock:
            self.api._conns.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return

    # every verb goes through one place
    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type") or ""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self.api._lock:
            self.api.requests.append(RecordedRequest(method, path, query, ctype, body))
        try:
            auth = self.headers.get("Authorization") or ""
            if not (auth.startswith("Bearer ") and self.api.token_valid(auth[len("Bearer ") :].strip())):
                raise ApiError(401, "Unauthorized", "Unauthorized")
            fault = self.api._take_fault(method, path)
            if fault is not None:
                raise fault
            for action in self.api._take_hooks(method, path):
                action()
            if isinstance(body, str):
                raise ApiError(400, "BadRequest", "the request body is not JSON")
            if path in _NON_RESOURCE:
                self._send(200, b"ok", "text/plain")
                return
            result = self._route(method, path, query, body, ctype)
            if result is not None:
                code, payload = result
                self._send(code, payload)
        except ApiError as err:
            self._send(err.code, err.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self, method: str, path: str, query: dict[str, str], body: Any, ctype: str) -> tuple[int, Any] | None:
        segs = [unquote(s) for s in path.split("/") if s]
        api = self.api
        if method == "GET" and path in ("/version", "/api", "/apis"):
            return 200, self._discovery_root(path)
        if segs and segs[0] == "api":
            group, version, rest = "", segs[1] if len(segs) > 1 else "", segs[2:]
        elif segs and segs[0] == "apis":
            group = segs[1] if len(segs) > 1 else ""
            version = segs[2] if len(segs) > 2 else ""
            rest = segs[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        with api._lock:
            served = {(rk.group, rk.version) for rk in api._state.kinds.values()}
            plurals = {rk.plural for rk in api._state.kinds.values() if (rk.group, rk.version) == (group, version)}
        if method == "GET" and not version and group:
            return 200, self._api_group(group)
        if (group, version) not in served:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed here")
            return 200, self._resource_list(group, version)
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] in plurals:
            namespace, rest = rest[1], rest[2:]
        plural, name, sub = rest[0], (rest[1] if len(rest) > 1 else ""), (rest[2] if len(rest) > 2 else "")
        if len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        rk = api.kind_for(f"{group}/{version}" if group else version, plural)
        if not rk.namespaced and namespace:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not name:
            return self._collection(method, rk, namespace, query, body)
        if sub and not (sub == "status" and rk.status):
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({plural}/{sub})")
        if method == "GET":
            return 200, api.do_get(rk, namespace, name)
        if method == "PUT":
            return 200, api.do_update(rk, namespace, name, body, subresource=sub)
        if method == "PATCH":
            return 200, api.do_patch(rk, namespace, name, body, ctype, subresource=sub)
        if method == "DELETE" and not sub:
            obj = api.do_delete(rk, namespace, name)
            if (rk.group, rk.plural) in _RETURNS_DELETED or rk.group not in _BUILTIN_GROUPS:
                obj["metadata"]["deletionTimestamp"] = _timestamp(api._clock())
                return 200, obj
            details = {"name": name, "group": rk.group, "kind": rk.plural, "uid": obj["metadata"]["uid"]}
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")

    def _collection(
        self, method: str, rk: ResourceKind, namespace: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any] | None:
        api = self.api
        labels, fields = query.get("labelSelector", ""), query.get("fieldSelector", "")
        if method == "POST":
            return 201, api.do_create(rk, namespace, body)
        if method == "DELETE":
            for obj in api.do_list(rk, namespace, labels, fields):
                api.do_delete(rk, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        if method != "GET":
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")
        # Listing in a namespace that does not exist is an empty list, as on a real server.
        if query.get("watch") in ("true", "1"):
            self._watch(rk, namespace, query, labels, fields)
            return None
        start = int(base64.b64decode(query["continue"]).decode()) if query.get("continue") else 0
        limit = int(query.get("limit") or 0)
        with api._lock:  # serialise under the lock: a consistent snapshot without copying every object
            items = api._select(rk, namespace, labels, fields)
            meta: JSON = {"resourceVersion": str(api._state.rv)}
            if limit > 0 and start + limit < len(items):
                meta["continue"] = base64.b64encode(str(start + limit).encode()).decode()
                meta["remainingItemCount"] = len(items) - start - limit
                items = items[start : start + limit]
            else:
                items = items[start:]
            page = {"kind": f"{rk.kind}List", "apiVersion": rk.api_version, "metadata": meta, "items": items}
            return 200, json.dumps(page).encode()

    def _watch(self, rk: ResourceKind, namespace: str, query: dict[str, str], labels: str, fields: str) -> None:
        since = int(query["resourceVersion"]) if query.get("resourceVersion") not in (None, "", "0") else None
        timeout_s = float(query.get("timeoutSeconds") or 1800)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in self.api.watch_events(
                rk, namespace, since=since, timeout_s=timeout_s, labels=labels, fields=fields
            ):
                line = json.dumps(event).encode() + b"\n"
                self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    # -- discovery -----------------------------------------------------------------------------

    def _discovery_root(self, path: str) -> JSON:
        api = self.api
        address = [{"clientCIDR": "0.0.0.0/0", "serverAddress": api.url.removeprefix("http://")}]
        if path == "/version":
            major, minor = api.git_version.lstrip("v").split(".")[:2]
            return {
                "major": major,
                "minor": minor,
                "emulationMajor": major,
                "emulationMinor": minor,
                "minCompatibilityMajor": major,
                "minCompatibilityMinor": str(max(0, int(minor) - 1)),
                "gitVersion": api.git_version,
                "gitCommit": "0" * 40,
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.23.0",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": address}
        groups = sorted({rk.group for rk in api.kinds() if rk.group})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._api_group(g) for g in groups]}

    def _api_group(self, group: str) -> JSON:
        versions = sorted({rk.version for rk in self.api.kinds() if rk.group == group})
        if not versions:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs, "preferredVersion": gvs[0]}

    def _resource_list(self, group: str, version: str) -> JSON:
        resources: list[JSON] = []
        for rk in sorted(self.api.kinds(), key=lambda r: r.plural):
            if (rk.group, rk.version) != (group, version):
                continue
            entry: JSON = {
                "name": rk.plural,
                "singularName": rk.singular,
                "namespaced": rk.namespaced,
                "kind": rk.kind,
                "verbs": list(_VERBS),
            }
            if rk.short_names:
                entry["shortNames"] = list(rk.short_names)
            resources.append(entry)
            if rk.status:
                resources.append(
                    {
                        "name": f"{rk.plural}/status",
                        "singularName": "",
                        "namespaced": rk.namespaced,
                        "kind": rk.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def main(argv: list[str] | None = None) -> None:
    """``python -m burst.testing.kube_server``: serve until SIGTERM/SIGINT (for subprocess tests)."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="an in-memory Kubernetes API server on 127.0.0.1")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for the server to this file")
    parser.add_argument("--name", default="fake", help="cluster/context name in the kubeconfig")
    parser.add_argument("--namespace", action="append", default=[], help="create this namespace (repeatable)")
    parser.add_argument("--nodes", type=int, default=0, help="add this many Ready nodes")
    parser.add_argument("--cpu", default="8", help="allocatable cpu of each node")
    parser.add_argument("--memory", default="32Gi", help="allocatable memory of each node")
    parser.add_argument("--ready-members", action="store_true", help="KubeFed/Karmada clusters are Ready at once")
    args = parser.parse_args(argv)
    server = KubeApiServer(ready_members=args.ready_members)
    for ns in args.namespace:
        server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for i in range(args.nodes):
        server.add_node(f"node-{i + 1}", cpu=args.cpu, memory=args.memory)
    url = server.start()
    if args.kubeconfig:
        with open(args.kubeconfig, "w", encoding="utf-8") as fh:
            fh.write(server.kubeconfig(name=args.name))
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    print(url, flush=True)  # only now: a SIGTERM sent as soon as the URL is read must stop cleanly
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()
