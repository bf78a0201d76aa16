"""The read-only status page and the Prometheus endpoint, on one port.

``/`` shows the fleet (cluster, provider, state, age, nodes, cost so far), the last decisions with
their reasons, the budget gauges and the charts of the last days; ``/metrics`` is the Prometheus
exposition of the registry passed in; ``/static/plotly.min.js`` serves plotly.js from the plotly
package, so the page needs no network either.

The server only reads: it has no route that changes anything, and it answers GET and HEAD only.
It reads the store through database queries (not the store's in-memory caches, which the tick's
thread mutates), so it can run in its own thread beside the daemon.

**It cannot hurt the daemon.**  Given a store URL it opens its own small read-only connection pool
(never the tick's); a few worker threads answer requests, an accepted socket only takes a worker
once it has sent something, idle sockets are closed after ``idle_timeout`` and at most
``max_connections`` are kept, every socket read and write has a timeout, and concurrent requests for
``/`` share one rendering.  Any failure is logged on one line and answered 503.

**No secret ever appears on the page.**  The page shows no configuration beyond provider names and
budget caps, and every free text it shows (decision reasons, cluster errors) goes through
:func:`redact`, which removes what looks like a credential: PEM blocks, kubeconfig data fields,
bearer and JWT/EKS tokens, ``key=value`` pairs with secret-like keys, URL passwords, access-key
ids and long base64 blobs.
"""

from __future__ import annotations

import contextlib
import html
import logging
import re
import selectors
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from burst.alarms import AlarmInputs, AlarmSignals, Firing, cluster_ages, evaluate
from burst.clock import Clock, RealClock
from burst.errors import BurstError
from burst.lifecycle import ClusterRecord, ClusterState
from burst.policy import Spend
from burst.report import (
    PAGE_CSS,
    BudgetLine,
    budgets_from_config,
    capacity_figure,
    compute_report,
    figure_div,
    groups_figure,
    latency_figure,
    plotly_js,
    spend_figure,
)
from burst.units import format_duration

if TYPE_CHECKING:
    from burst.config import Config
    from burst.store import LedgerSegment, Store

log = logging.getLogger("burst.status")
S = ClusterState
REDACTED = "[redacted]"

_SECRET_KEYS = (
    r"client-key-data|client-certificate-data|certificate-authority-data|id-token|refresh-token|"
    r"idtoken|token|password|passwd|secret|secret[_-]?access[_-]?key|access[_-]?key(?:[_-]?id)?|"
    r"api[_-]?key|private[_-]?key|credentials?|auth|authorization|x-amz-signature|x-amz-credential|"
    r"x-amz-security-token|signature|sig"
)
_REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|$)", re.S), REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    (
        re.compile(rf"(?i)([\"']?(?:{_SECRET_KEYS})[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&}}\]]+)"),
        r"\1" + REDACTED,
    ),
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.?[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"k8s-aws-v1\.[A-Za-z0-9_-]+"), REDACTED),
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"[A-Za-z0-9+/]{40,}={0,2}"), REDACTED),
]


def redact(text: str) -> str:
    """``text`` without anything that looks like a credential (see the module docstring)."""
    for pattern, repl in _REDACTIONS:
        text = pattern.sub(repl, text)
    return text


def ledger_spend(segs: Sequence[LedgerSegment], now: datetime, currency: str) -> Spend:
    """Spend from ledger rows (a database read, safe beside the tick's thread): this month, per
    campaign over its life, and the burn rate of the segments still open."""
    month_start = datetime(now.year, now.month, 1, tzinfo=UTC)
    month = sum(s.cost_between(month_start, now) for s in segs)
    by_campaign: dict[str, float] = {}
    for s in segs:
        by_campaign[s.campaign] = by_campaign.get(s.campaign, 0.0) + s.cost(now)
    burn = sum(s.quantity * s.rate_per_hour for s in segs if s.end is None)
    return Spend(currency=currency, month_to_date=month, by_campaign=by_campaign, burn_per_hour=burn)


def budget_spent(b: BudgetLine, spend: Spend) -> float:
    return spend.month_to_date if b.monthly else spend.by_campaign.get(b.campaign or "", 0.0)


def gauge_figure(b: BudgetLine, spent: float) -> Any:
    import plotly.graph_objects as go

    top = max(b.limit, spent) * 1.1 or 1.0
    fig = go.Figure(
        go.Indicator(
            mode="gauge+number",
            value=round(spent, 2),
            number={"suffix": f" {b.currency}", "valueformat": ",.2f"},
            title={"text": f"{b.label} (cap {b.limit:,.0f} {b.currency})"},
            gauge={
                "axis": {"range": [0, top]},
                "bar": {"color": "#c0392b" if spent >= b.limit else "#2a9d8f"},
                "steps": [{"range": [0.8 * b.limit, b.limit], "color": "#fbe3c0"}],
                "threshold": {"line": {"color": "crimson", "width": 3}, "value": b.limit},
            },
        )
    )
    fig.update_layout(height=230, margin={"l": 30, "r": 30, "t": 60, "b": 10})
    return fig


def _td(cells: Sequence[str]) -> str:
    return "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return (
        f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>' + "".join(_td(r) for r in rows) + "</tbody></table>"
    )


def _reasons(detail: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for key in ("wants", "actions", "targets"):
        for item in detail.get(key) or []:
            if isinstance(item, Mapping) and item.get("reason"):
                out.append(str(item["reason"]))
    out.extend(str(n) for n in detail.get("notes") or [])
    return list(dict.fromkeys(out))  # in order, once each


STATUS_CSS = """
td.reasons { text-align: left; white-space: normal; max-width: 60rem; }
td.reasons ul { margin: 0; padding-left: 1.1rem; }
.gauges { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 1rem; }
table.fleet td { white-space: nowrap; }
table.fleet td:last-child { white-space: normal; text-align: left; max-width: 32rem; font-size: .8rem; }
table.decisions th:last-child { text-align: left; }
table.alarms td, table.alarms th { text-align: left; }
table.alarms { border-left: 4px solid #c0392b; }
.state-ACTIVE { color: #1e7d55; font-weight: 600; } .state-FAILED { color: #c0392b; font-weight: 600; }
"""


@dataclass
class StatusPage:
    """Renders ``/`` from the store; ``days`` is how far back the charts look."""

    store: Store
    cfg: Config
    clock: Clock
    days: float = 3.0
    decisions: int = 20
    #: what the daemon serving this page sees (error streaks, backlog, Lease); None: store only
    signals: AlarmSignals | None = None

    def firing(self, now: datetime, spend: Spend, fleet: Sequence[ClusterRecord]) -> list[Firing]:
        """The alarms of :mod:`burst.alarms` that fire now, from the store and this daemon's signals."""
        ratios = [
            (b.label, budget_spent(b, spend) / b.limit if b.limit > 0 else 0.0) for b in budgets_from_config(self.cfg)
        ]
        ages = cluster_ages(fleet, now, self.cfg.file.reconciler)
        return evaluate(AlarmInputs(now, ratios, ages, self.signals))

    def render(self) -> str:
        now = self.clock.now()
        cur = self.cfg.file.currency
        segs = self.store.ledger()
        spend = ledger_spend(segs, now, cur)
        budgets = budgets_from_config(self.cfg)
        cost_by_cluster: dict[str, float] = {}
        for s in segs:
            cost_by_cluster[s.cluster_id] = cost_by_cluster.get(s.cluster_id, 0.0) + s.cost(now)
        fleet = [c for c in self.store.all_clusters() if c.state is not S.REMOVED]
        samples = self.store.samples(now - timedelta(days=self.days))
        last = samples[-1] if samples else None
        active = sum(c.cores for c in fleet if c.state is S.ACTIVE)

        kpis = [
            (f"{spend.month_to_date:,.2f} {cur}", "spent this month"),
            (f"{spend.burn_per_hour:,.2f} {cur}/h", "burning now"),
            (f"{active:,}", "burst cores active"),
            (f"{last['pending_cores']:,}" if last else "-", "cores pending (last sample)"),
            (str(len(fleet)), "clusters"),
        ]
        kpi_html = '<div class="kpis">' + "".join(
            f'<div class="kpi"><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>' for v, k in kpis
        )
        kpi_html += "</div>"

        firing = self.firing(now, spend, fleet)
        alarms_html = (
            _table(
                ["alarm", "severity", "what", "why"],
                [[f.alarm, f.severity, f.subject, redact(f.message)] for f in firing],
                "alarms",
            )
            if firing
            else "<p class='no-alarms'>No alarm firing.</p>"
        )

        fleet_rows = [
            [
                c.cluster_id,
                c.provider,
                c.flavor,
                # a budget's hard stop is announced here before it acts
                c.state.value + (f" (hard stop {c.drain_deadline:%Y-%m-%d %H:%M})" if c.drain_deadline else ""),
                format_duration(max(0.0, (now - c.created_at).total_seconds())),
                f"{c.nodes}/{c.desired_nodes}",
                c.campaign or "-",
                f"{cost_by_cluster.get(c.cluster_id, 0.0):,.2f} {cur}",
                redact(c.last_error)[:160],
            ]
            for c in fleet
        ]
        fleet_html = (
            _table(
                ["cluster", "provider", "flavor", "state", "age", "nodes", "campaign", "cost so far", "last error"],
                fleet_rows,
                "fleet",
            )
            if fleet_rows
            else "<p>No clusters.</p>"
        )

        backing = []
        for name, until in sorted(self.store.backoffs().items()):
            b = self.store.backoff(name)
            if until > now and b is not None:
                backing.append(
                    f"<li>{html.escape(name)}: avoided until {until:%Y-%m-%d %H:%M} UTC after {b.attempts} failed "
                    f"create(s) in a row ({html.escape(redact(b.reason))[:200]})</li>"
                )
        if backing:
            fleet_html += "<p>Providers backing off:</p><ul class='backoffs'>" + "".join(backing) + "</ul>"

        dec_rows = []
        for d in self.store.decisions(self.decisions):
            reasons = "".join(f"<li>{html.escape(redact(r))}</li>" for r in _reasons(d["detail"]))
            dec_rows.append(
                f"<tr><td>{d['at']:%Y-%m-%d %H:%M}</td><td class='reasons'>{html.escape(redact(d['summary']))}"
                f"<ul>{reasons}</ul></td></tr>"
            )
        dec_html = (
            "<table class='decisions'><thead><tr><th>at (UTC)</th><th>decision and reasons</th></tr></thead><tbody>"
            + "".join(dec_rows)
            + "</tbody></table>"
            if dec_rows
            else "<p>No decisions yet.</p>"
        )

        if budgets:
            gauges = "".join(
                f'<div class="chart">{figure_div(gauge_figure(b, budget_spent(b, spend)), modebar=False)}</div>'
                for b in budgets
            )
            budget_html = f'<div class="gauges">{gauges}</div>'
        else:
            budget_html = "<p>No budget policy configured.</p>"

        start = now - timedelta(days=self.days)
        window = compute_report(self.store, start=start, end=now, now=now, currency=cur, budgets=budgets)
        charts = [
            capacity_figure(window.samples, f"Demand and capacity, last {self.days:g} days"),
            spend_figure(window, None, f"Spend, last {self.days:g} days"),
        ]
        charts_html = "".join(f'<div class="chart wide">{figure_div(f)}</div>' for f in charts)
        days = f"last {self.days:g} days"
        small = [
            groups_figure(window.by_provider, cur, f"Spend by provider, {days}"),
            groups_figure(window.by_campaign, cur, f"Spend by campaign, {days}"),
            latency_figure(window.latencies, f"Provisioning latency, {days}"),
        ]
        charts_html += '<div class="charts">' + "".join(
            f'<div class="chart">{figure_div(f, modebar=False)}</div>' for f in small
        )
        charts_html += "</div>"

        title = f"burst — {self.cfg.file.installation}"
        return (
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta http-equiv='refresh' content='60'>"
            f"<title>{html.escape(title)}</title><style>{PAGE_CSS}{STATUS_CSS}</style>"
            "<script src='/static/plotly.min.js'></script></head><body>"
            f"<h1>{html.escape(title)}</h1>"
            f"<p class='sub'>{now:%Y-%m-%d %H:%M:%S} UTC · read-only · <a href='/metrics'>metrics</a></p>"
            f"{kpi_html}<h2>Alarms firing</h2>{alarms_html}<h2>Fleet</h2>{fleet_html}<h2>Budgets</h2>{budget_html}"
            f"<h2>Last decisions</h2>{dec_html}<h2>Last {self.days:g} days</h2>{charts_html}"
            "</body></html>\n"
        )


class StatusError(BurstError):
    """The status server cannot start (the port is taken, the address is wrong)."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    #: seconds any one read or write on the socket may take (a slow client holds a worker no longer)
    timeout = 5.0

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        srv = self.server
        if path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(srv.registry), body)
        elif path == "/":
            try:
                page = srv.page_html()
            except Exception as err:  # never a traceback on the daemon's output: one line, a 503
                log.warning("status page unavailable: %s", err.__class__.__name__)
                self._send(503, "text/plain; charset=utf-8", b"status unavailable: the store cannot be read\n", body)
                return
            self._send(200, "text/html; charset=utf-8", page, body)
        elif path == "/static/plotly.min.js":
            self._send(200, "application/javascript", srv.plotly_js(), body, cache=True)
        elif path == "/healthz":
            self._send(200, "text/plain; charset=utf-8", b"ok\n", body)
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found\n", body)

    def do_POST(self) -> None:
        self._send(405, "text/plain; charset=utf-8", b"read-only\n", True)

    def do_PUT(self) -> None:
        self.do_POST()

    def do_DELETE(self) -> None:
        self.do_POST()

    def do_PATCH(self) -> None:
        self.do_POST()

    def _send(self, code: int, ctype: str, data: bytes, body: bool, cache: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "max-age=86400" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _Server(HTTPServer):
    """An HTTP server with a bounded worker pool.  One thread multiplexes the listening socket and
    the accepted ones that sent nothing yet (:mod:`selectors`); a socket goes to a worker only once
    readable, so idle connections cost a file descriptor, not a thread."""

    def __init__(
        self,
        addr: tuple[str, int],
        page: StatusPage,
        registry: CollectorRegistry,
        *,
        workers: int = 4,
        idle_timeout: float = 10.0,
        max_connections: int = 1024,
    ) -> None:
        super().__init__(addr, _Handler)
        self.page = page
        self.registry = registry
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._js: bytes | None = None
        self._js_lock = threading.Lock()
        self._render_lock = threading.Lock()
        self._rendered: tuple[int, bytes] | None = None  # (render number, page)
        self._renders = 0
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="burst-status")
        self._sel = selectors.DefaultSelector()
        self._parked: dict[socket.socket, tuple[Any, float]] = {}  # socket → (address, parked at)
        self._stopping = threading.Event()

    def plotly_js(self) -> bytes:
        with self._js_lock:
            if self._js is None:
                self._js = plotly_js().encode("utf-8")
            return self._js

    def page_html(self) -> bytes:
        """The page; requests arriving while it renders get that rendering (it is at most one
        rendering old), so fifty readers cost one set of queries, not fifty."""
        seen = self._renders
        with self._render_lock:
            if self._rendered is not None and self._rendered[0] > seen:
                return self._rendered[1]
            page = self.page.render().encode("utf-8")
            self._renders += 1
            self._rendered = (self._renders, page)
            return page

    def serve(self) -> None:
        self._sel.register(self.socket, selectors.EVENT_READ)
        try:
            while not self._stopping.is_set():
                for key, _ in self._sel.select(timeout=0.25):
                    if key.fileobj is self.socket:
                        self._accept()
                    else:
                        conn = key.fileobj
                        assert isinstance(conn, socket.socket)
                        self._sel.unregister(conn)
                        addr, _ = self._parked.pop(conn)
                        self._pool.submit(self._handle, conn, addr)
                self._close_idle()
        finally:
            for conn in list(self._parked):
                self._drop(conn)
            self._sel.close()

    def _accept(self) -> None:
        try:
            conn, addr = self.socket.accept()
        except OSError:
            return
        if len(self._parked) >= self.max_connections:  # the oldest idle one makes room
            self._drop(min(self._parked, key=lambda c: self._parked[c][1]))
        self._parked[conn] = (addr, time.monotonic())
        self._sel.register(conn, selectors.EVENT_READ)

    def _close_idle(self) -> None:
        cutoff = time.monotonic() - self.idle_timeout
        for conn in [c for c, (_, since) in self._parked.items() if since < cutoff]:
            self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        self._parked.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):  # not registered (any more)
            self._sel.unregister(conn)
        conn.close()

    def _handle(self, conn: socket.socket, addr: Any) -> None:
        try:
            self.finish_request(conn, addr)
        except Exception as err:  # a client that went away mid-answer, a timeout: one debug line
            log.debug("status request from %s failed: %s: %s", addr, type(err).__name__, err)
        finally:
            self.shutdown_request(conn)

    def stop(self) -> None:
        self._stopping.set()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.server_close()


class StatusServer:
    """A running status server; :meth:`stop` shuts it down and joins its thread."""

    def __init__(self, server: _Server, thread: threading.Thread, reader: Store | None = None) -> None:
        self._server = server
        self._thread = thread
        self._reader = reader
        self.host = str(server.server_address[0])
        self.port = int(server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.stop()
        self._thread.join(timeout=10)
        self._server.close()
        if self._reader is not None:
            self._reader.close()

    def __enter__(self) -> StatusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_status_server(
    store: Store | str,
    cfg: Config,
    registry: CollectorRegistry,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Clock | None = None,
    days: float = 3.0,
    signals: AlarmSignals | None = None,
) -> StatusServer:
    """Serve ``/`` and ``/metrics`` on ``host:port`` (0 = a free port) from a background thread.
    ``store`` is a store URL (the daemon: the server opens its own read-only connections) or an
    open store (tests, a private in-memory database).  ``clock`` (default: the real one) says what
    'now' is for ages, costs and the charts' window."""
    from burst.store import Store as StoreClass

    reader = StoreClass.reader(store) if isinstance(store, str) else None
    source = reader if reader is not None else store
    assert not isinstance(source, str)
    page = StatusPage(source, cfg, clock or RealClock(), days=days, signals=signals)
    try:
        server = _Server((host, port), page, registry)
    except OSError as err:
        if reader is not None:
            reader.close()
        raise StatusError(f"cannot listen on {host}:{port} for the status page: {err.strerror}") from err
    thread = threading.Thread(target=server.serve, name="burst-status", daemon=True)
    thread.start()
    return StatusServer(server, thread, reader)
