"""Prometheus metrics from real engine ticks, scraped over HTTP; the status page, in Chromium too;
and no secret on either, whatever the store and the config hold."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from burst.clock import SimClock
from burst.config import Config
from burst.engine import Engine
from burst.lifecycle import ClusterState
from burst.metrics import BurstMetrics, observe_tick
from burst.model import Bucket, Demand, Shape
from burst.report import budgets_from_config
from burst.status import StatusError, StatusServer, redact, start_status_server
from burst.testing.builders import T0, StaticBacklog, make_config, make_engine

from .conftest import BUDGET_POLICIES, open_in_chromium

S = ClusterState

# Credentials as they would leak: a kubeconfig, service-account and EKS tokens, cloud keys, a
# password in a URL, a PEM key.  Each marker is a part of a secret that must never be served.
KUBECONFIG = """apiVersion: v1
clusters:
- cluster: {certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUNDQ0FURQ==, server: https://1.2.3.4}
users:
- name: admin
  user:
    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFb3dJQkFBS0NBUUVBdGVzdA==
    token: kubeconfig-token-Zx81Qq"""
JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCpemsecret\n-----END PRIVATE KEY-----"
SECRET_TEXT = (
    f"join failed for marker-cluster-x: kubeconfig was\n{KUBECONFIG}\n"
    f"Authorization: Bearer sk-live-7Hq2ZLmQ9xT; IDTOKEN={JWT}; eks token k8s-aws-v1.aHR0cHM6Ly9zdHMuYW1hem9u "
    "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY key id AKIAIOSFODNN7EXAMPLE "
    f"keystone https://admin:Pa55w0rd-zeta@keystone.example:5000/v3 and\n{PEM}\n"
    '{"password": "json-pw-Qz7"} secret=plain-secret-Wm4'
)
MARKERS = [
    "LS0tLS1CRUdJTiBDRVJU",
    "LS0tLS1CRUdJTiBSU0Eg",
    "kubeconfig-token-Zx81Qq",
    "sk-live-7Hq2ZLmQ9xT",
    "eyJhbGciOiJSUzI1NiIs",
    "c2lnbmF0dXJl",
    "aHR0cHM6Ly9zdHMuYW1hem9u",
    "wJalrXUtnFEMI",
    "AKIAIOSFODNN7EXAMPLE",
    "Pa55w0rd-zeta",
    "pemsecret",
    "json-pw-Qz7",
    "plain-secret-Wm4",
    "PGPASSWORD-s3cr3t",
]


@dataclass
class Season:
    cfg: Config
    engine: Engine
    clock: SimClock
    registry: CollectorRegistry
    errors: Counter[tuple[str, str]]  # (provider, kind)
    ticks: int


def secret_config() -> Config:
    return make_config(
        {
            # a store URL with a password: the page must not show it (the engine gets its own store)
            "state": "postgresql+psycopg://burst:PGPASSWORD-s3cr3t@127.0.0.1:1/burst",
            "providers": {
                "aws": {
                    "kind": "local",
                    "cloud": "aws",
                    "max_nodes": 20,
                    "nodes_per_cluster": 4,
                    "faults": [{"kind": "provisioning_fails", "end": (T0 + timedelta(minutes=3)).isoformat()}],
                },
                "gce": {"kind": "local", "cloud": "gce", "max_nodes": 20, "nodes_per_cluster": 4, "quota_cores": 64},
            },
            "policies": BUDGET_POLICIES,
            "reconciler": {"tick": "1m", "sample_every": "5m"},
        }
    )


@pytest.fixture(scope="module")
def season() -> Iterator[Season]:
    """40 one-minute ticks of the real engine on the local clouds (aws fails its first creates),
    with the metrics updated after each tick, as the daemon does."""
    cfg = secret_config()
    clock = SimClock(T0)
    backlog = StaticBacklog(clock)
    backlog.demand = Demand(
        T0,
        (Bucket(Shape(4, 8000), 30, 600), Bucket(Shape(1, 2000, 0), 10, 60)),
        running_cores=100,
        onprem_cores=100,
        onprem_free_cores=0,
    )
    engine = make_engine(cfg, clock, backlog=backlog)
    registry = CollectorRegistry()
    metrics = BurstMetrics(registry, budgets_from_config(cfg))
    errors: Counter[tuple[str, str]] = Counter()
    for _ in range(40):
        clock.advance(60)
        t = time.perf_counter()
        res = engine.tick()
        observe_tick(metrics, engine, res, time.perf_counter() - t)
        errors.update(res.step.error_kinds)
    # plant secrets where free text reaches the page: a decision and a cluster's last error
    engine.store.record_decision(
        clock.now(),
        f"note: {SECRET_TEXT}",
        {"notes": [SECRET_TEXT], "wants": [{"cores": 1, "reason": f"why: {SECRET_TEXT}"}], "actions": []},
    )
    victim = engine.store.fleet()[0]
    engine.store.update(victim, clock.now(), last_error=SECRET_TEXT, reason=SECRET_TEXT)
    yield Season(cfg, engine, clock, registry, errors, 40)
    engine.store.close()


@pytest.fixture
def server(season: Season) -> Iterator[StatusServer]:
    srv = start_status_server(season.engine.store, season.cfg, season.registry, clock=season.clock)
    yield srv
    srv.stop()


def get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    _, ctype, text = get(url + "/metrics")
    assert ctype.startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def val(m: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return m[(name, frozenset(labels.items()))]


def test_metrics_match_the_store(season: Season, server: StatusServer) -> None:
    m = scrape(server.url)
    store, now = season.engine.store, season.clock.now()
    # demand, by shape (the last tick's)
    assert val(m, "burst_pending_cores", cpus="4", memory_mb="8000", gpus="0") == 120
    assert val(m, "burst_pending_jobs", cpus="1", memory_mb="2000", gpus="0") == 10
    assert val(m, "burst_onprem_cores") == 100
    # fleet by provider and state, zeros included
    fleet = Counter((c.provider, c.state.value) for c in store.fleet())
    assert fleet, "the season created no cluster"
    for prov in ("aws", "gce"):
        for st in S:
            if st is not S.REMOVED:
                assert val(m, "burst_clusters", provider=prov, state=st.value) == fleet.get((prov, st.value), 0)
        active = sum(c.cores for c in store.fleet() if c.provider == prov and c.state is S.ACTIVE)
        assert val(m, "burst_burst_cores", provider=prov) == active
    # spend and budgets
    spend = store.spend(now, "EUR")
    assert val(m, "burst_spend_month_to_date", currency="EUR") == pytest.approx(spend.month_to_date)
    ledger_total = sum(s.quantity * s.rate_per_hour * s.hours(now) for s in store.ledger())
    assert val(m, "burst_spend_all_time", currency="EUR") == pytest.approx(ledger_total)
    assert val(m, "burst_burn_per_hour", currency="EUR") == pytest.approx(spend.burn_per_hour)
    assert val(m, "burst_budget_limit", budget="cern monthly", currency="EUR") == 100
    assert val(m, "burst_budget_limit", budget="cern moriond", currency="EUR") == 5
    assert val(m, "burst_budget_used_ratio", budget="cern monthly") == pytest.approx(spend.month_to_date / 100)
    # provisioning latencies: one observation per cluster that became ready
    ready = [c for c in store.all_clusters() if c.ready_at is not None and c.requested_at is not None]
    for prov in ("aws", "gce"):
        mine = [(c.ready_at - c.requested_at).total_seconds() for c in ready if c.provider == prov]  # type: ignore[operator]
        assert val(m, "burst_provisioning_latency_seconds_count", provider=prov) == len(mine)
        assert val(m, "burst_provisioning_latency_seconds_sum", provider=prov) == pytest.approx(sum(mine))
    # errors by provider and kind (issue 12: labelled by provider too), ticks and their durations
    assert season.errors, "the injected provisioning failures were not seen"
    for (provider, kind), n in season.errors.items():
        assert val(m, "burst_errors_total", provider=provider, kind=kind) == n
    assert val(m, "burst_ticks_total") == season.ticks
    assert val(m, "burst_tick_duration_seconds_count") == season.ticks
    assert val(m, "burst_last_tick_timestamp_seconds") == now.timestamp()


def test_registry_is_the_one_passed_in() -> None:
    """Two metric sets side by side: no global registry, so no duplicate-name clash."""
    a, b = CollectorRegistry(), CollectorRegistry()
    BurstMetrics(a)
    BurstMetrics(b)
    assert a.get_sample_value("burst_onprem_cores") == 0
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("burst_onprem_cores") is None


def test_status_page_shows_fleet_decisions_budgets(season: Season, server: StatusServer) -> None:
    status, ctype, page = get(server.url + "/")
    assert status == 200 and ctype.startswith("text/html")
    now = season.clock.now()
    for c in season.engine.store.fleet():
        cost = sum(
            s.quantity * s.rate_per_hour * s.hours(now)
            for s in season.engine.store.ledger()
            if s.cluster_id == c.cluster_id
        )
        assert f"<td>{c.cluster_id}</td><td>{c.provider}</td>" in page
        assert f"<td>{cost:,.2f} EUR</td>" in page
    assert "marker-cluster-x" in page  # the planted decision and error are shown…
    assert "backlog:" in page  # …and so are the engine's own decisions with their reasons
    assert "cern monthly" in page and "cern moriond" in page
    assert "<script src='/static/plotly.min.js'>" in page and "http" not in page.split("<body>")[0].replace(
        "http-equiv", ""
    )


def test_no_secret_on_the_page_or_in_metrics(season: Season, server: StatusServer) -> None:
    _, _, page = get(server.url + "/")
    _, _, metrics = get(server.url + "/metrics")
    assert "marker-cluster-x" in page, "the planted text is not on the page: the test would prove nothing"
    for marker in MARKERS:
        assert marker not in page, f"secret {marker!r} on the status page"
        assert marker not in metrics, f"secret {marker!r} in /metrics"
    assert "[redacted]" in page


def test_redact_keeps_ordinary_text() -> None:
    text = "create burst-aws-00001 (4× c5.4xlarge on aws): backlog: 130 cores pending → 5× c5.4xlarge (cheapest)"
    assert redact(text) == text
    for marker in MARKERS[:-1]:
        assert marker not in redact(SECRET_TEXT)


def test_routes_and_read_only(server: StatusServer) -> None:
    assert get(server.url + "/healthz")[2] == "ok\n"
    status, ctype, js = get(server.url + "/static/plotly.min.js")
    assert status == 200 and "javascript" in ctype and len(js) > 1_000_000
    with pytest.raises(urllib.error.HTTPError) as nf:
        get(server.url + "/nope")
    assert nf.value.code == 404
    req = urllib.request.Request(server.url + "/", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as post:
        urllib.request.urlopen(req, timeout=10)
    assert post.value.code == 405
    head = urllib.request.Request(server.url + "/metrics", method="HEAD")
    with urllib.request.urlopen(head, timeout=10) as resp:
        assert resp.status == 200 and resp.read() == b""


def test_stop_frees_the_port_and_busy_port_is_an_error(season: Season) -> None:
    srv = start_status_server(season.engine.store, season.cfg, season.registry, clock=season.clock)
    with pytest.raises(StatusError, match="cannot listen"):
        start_status_server(season.engine.store, season.cfg, season.registry, port=srv.port)
    port = srv.port
    srv.stop()
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))


@pytest.mark.browser
def test_status_page_in_chromium(season: Season, server: StatusServer, tmp_path: Path) -> None:
    run = open_in_chromium(server.url + "/", "status-page", tmp_path, height=2400)
    assert run.console_errors() == []
    # two budget gauges; demand/capacity, spend, spend by provider and by campaign, latency
    assert run.dom.count('class="plot-container plotly"') == 7
    assert run.svg_charts() >= 7
    assert "burn" in run.dom and "Fleet" in run.dom
    for marker in MARKERS:
        assert marker not in run.dom
