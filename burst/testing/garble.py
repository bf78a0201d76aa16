"""A loopback proxy that corrupts one answer of a test server: fuzzing what a cloud may send.

The provider under test talks to the proxy with its real SDK client, exactly as it talks to the
fake cloud; the proxy forwards every request to the fake and relays its answer, except the
``nth`` answer after :meth:`GarblingProxy.arm`, which it corrupts as a :class:`Mutation` says:
a field dropped or retyped, a number made NaN, infinite or huge, the body truncated, made
non-UTF-8 or nested absurdly deep, or the status changed.  The corrupted answer is still a
well-formed HTTP response (the wire protocol is real; only the content is hostile).

Answers that name the upstream's address (a Keystone catalog) are rewritten to name the proxy,
so follow-up requests come back through it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from burst.testing.loopback import LoopbackServer

#: Values a corrupted field takes: wrong types, NaN and infinities, numbers that overflow int64.
HOSTILE_VALUES: tuple[Any, ...] = (
    None, "", "x", "[/x]", -1, 0, 2**63, 10**30, 1e308, float("nan"), float("inf"), float("-inf"), True, [], {},
    [None], {"": None}, "9" * 40, "\u202e", -(2**63) - 1,
)  # fmt: skip
_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "server", "date"}
)


@dataclass(frozen=True)
class Mutation:
    """How to corrupt one answer; ``pick`` selects a field (modulo the number of fields)."""

    nth: int = 0
    kind: str = "field"  # field | drop | truncate | bytes | deep | status | type
    pick: int = 0
    value: int = 0  # index into HOSTILE_VALUES
    status: int = 200

    def apply(self, status: int, body: bytes) -> tuple[int, bytes]:
        if self.kind == "status":
            return self.status, body
        if self.kind == "truncate":
            return status, body[: self.pick % (len(body) + 1)]
        if self.kind == "bytes":
            return status, b"\xff\xfe" + body[: self.pick % (len(body) + 1)] + b"\x80"
        if self.kind == "deep":
            return status, b"[" * 100_000 + b"]" * 100_000
        try:
            doc = json.loads(body)
        except ValueError:  # XML (EC2) or text: corrupt the text instead
            return status, _corrupt_text(body, self.pick, self.value)
        if self.kind == "type":
            return status, _dumps(HOSTILE_VALUES[self.value % len(HOSTILE_VALUES)])
        paths = list(_paths(doc))
        if not paths:
            return status, _dumps(HOSTILE_VALUES[self.value % len(HOSTILE_VALUES)])
        parent, key = paths[self.pick % len(paths)]
        if self.kind == "drop":
            if isinstance(parent, dict):
                del parent[key]
            else:
                parent.pop(key)
        else:
            parent[key] = HOSTILE_VALUES[self.value % len(HOSTILE_VALUES)]
        return status, _dumps(doc)


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


def _paths(doc: Any) -> Any:
    """(container, key) for every value in a JSON document, depth first."""
    stack = [doc]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in list(items):
            yield node, key
            stack.append(value)


def _corrupt_text(body: bytes, pick: int, value: int) -> bytes:
    """Replace the ``pick``-th run of digits (or the body's middle) by a hostile value's text."""
    runs = list(re.finditer(rb"\d+", body))
    hostile = str(HOSTILE_VALUES[value % len(HOSTILE_VALUES)]).encode("utf-8", "surrogateescape")
    if not runs:
        mid = len(body) // 2
        return body[:mid] + hostile + body[mid:]
    m = runs[pick % len(runs)]
    return body[: m.start()] + hostile + body[m.end() :]


class GarblingProxy:
    """Forwards to ``upstream`` (``http://127.0.0.1:port``); corrupts the armed answer."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        assert parts.hostname in ("127.0.0.1", "localhost"), "a test proxy forwards to loopback only"
        self.upstream = upstream.rstrip("/")
        self._host, self._port = parts.hostname, parts.port or 80
        self._lock = threading.Lock()
        self._armed: Mutation | None = None
        self._seen = 0
        self.garbled = 0
        self._server = LoopbackServer(self._handler(), name="garbling-proxy")

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> GarblingProxy:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> GarblingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def arm(self, mutation: Mutation) -> None:
        with self._lock:
            self._armed, self._seen = mutation, 0

    def disarm(self) -> None:
        with self._lock:
            self._armed = None

    def _mutation_for_next(self) -> Mutation | None:
        with self._lock:
            m = self._armed
            if m is None:
                return None
            n, self._seen = self._seen, self._seen + 1
            if n != m.nth:
                return None
            self.garbled += 1
            return m

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, bytes]:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
        try:
            headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, out = proxy._forward(self.command, self.path, dict(self.headers.items()), body)
                out = out.replace(proxy.upstream.encode(), proxy.url.encode())
                mutation = proxy._mutation_for_next()
                if mutation is not None:
                    status, out = mutation.apply(status, out)
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in _HOP:
                        self.send_header(k, v.replace(proxy.upstream, proxy.url))
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                        self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve  # noqa: N815

        return Handler


#: Status codes a corrupted answer may carry (each keeps HTTP framing intact: no 1xx, 204, 304).
STATUSES = (200, 201, 202, 400, 401, 403, 404, 409, 429, 500, 502, 503)
KINDS = ("field", "field", "field", "drop", "drop", "truncate", "bytes", "deep", "status", "type")


def mutations(max_nth: int = 4) -> Any:
    """A hypothesis strategy of :class:`Mutation` (hypothesis, a test dependency, is imported here only)."""
    from hypothesis import strategies as st

    return st.builds(
        Mutation,
        nth=st.integers(0, max_nth),
        kind=st.sampled_from(KINDS),
        pick=st.integers(0, 10**6),
        value=st.integers(0, len(HOSTILE_VALUES) - 1),
        status=st.sampled_from(STATUSES),
    )


#: The provider calls each cloud's answer fuzzer replays against a cluster that exists and is READY.
PROVIDER_CALLS = ("get_cluster", "list_clusters", "quota", "credentials", "create_cluster", "delete_missing", "resize")


def call_provider(provider: Any, op: str, spec: Any) -> object:
    """One of :data:`PROVIDER_CALLS` on ``provider``, about the READY cluster ``spec`` describes."""
    if op == "get_cluster":
        return provider.get_cluster(spec.cluster_id)
    if op == "list_clusters":
        return provider.list_clusters(spec.owner)
    if op == "quota":
        return provider.quota()
    if op == "credentials":
        return provider.credentials(spec.cluster_id)
    if op == "create_cluster":
        return provider.create_cluster(spec)  # exists: reads and adopts it
    if op == "resize":
        return provider.resize(spec.cluster_id, spec.nodes)  # already that size: reads, changes nothing
    return provider.delete_cluster("burst-nope")


def assert_typed_error_or_sane(proxy: GarblingProxy, provider: Any, op: str, mutation: Mutation, spec: Any) -> None:
    """The property every provider keeps: a corrupted answer ends in a typed burst error, or in a
    result that passes :func:`burst.answers.check_answer` (nothing absurd is acted on)."""
    from burst.answers import check_answer
    from burst.errors import BurstError

    proxy.arm(mutation)
    try:
        result = call_provider(provider, op, spec)
    except BurstError:
        return
    finally:
        proxy.disarm()
    assert check_answer(result) == "", (op, mutation, result)
