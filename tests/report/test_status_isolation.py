"""The status server keeps to itself: a read-only store of its own, idle sockets closed without a
thread each, and any failure of the page answered 503 on one log line."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import OperationalError

from burst.clock import SimClock
from burst.status import StatusPage, _Server, start_status_server
from burst.store import Store
from burst.testing.builders import make_config

T = datetime(2027, 3, 2, 18, 0, tzinfo=UTC)


def test_the_page_reads_through_its_own_read_only_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'burst.db'}"
    daemon_store = Store(url, "burst")
    daemon_store.record_decision(T, "create burst-aws-00001", {"notes": ["backlog wants it"]})
    srv = start_status_server(url, make_config(), CollectorRegistry(), clock=SimClock(T))
    try:
        reader = srv._reader
        assert reader is not None and reader.engine is not daemon_store.engine
        with urllib.request.urlopen(srv.url + "/", timeout=60) as resp:
            assert resp.status == 200 and "backlog wants it" in resp.read().decode()
        with pytest.raises(OperationalError, match=r"attempt to write a readonly database"):
            reader.record_decision(T, "written by the page", {})
    finally:
        srv.stop()
    assert [d["summary"] for d in daemon_store.decisions()] == ["create burst-aws-00001"]
    daemon_store.close()


class _Broken(StatusPage):
    def render(self) -> str:
        raise RuntimeError("a bug in a chart")


def test_a_failing_page_is_a_503_and_idle_sockets_are_closed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(f"sqlite:///{tmp_path / 'burst.db'}", "burst")
    page = _Broken(store, make_config(), SimClock(T))
    server = _Server(("127.0.0.1", 0), page, CollectorRegistry(), idle_timeout=0.5, max_connections=3)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/", timeout=10)
        assert err.value.code == 503
        assert any("status page unavailable: RuntimeError" in r.getMessage() for r in caplog.records)
        with urllib.request.urlopen(base + "/healthz", timeout=10) as resp:
            assert resp.read() == b"ok\n"  # still serving

        idle = [socket.create_connection(server.server_address[:2], timeout=5) for _ in range(5)]
        time.sleep(0.3)
        # at most three kept: the two oldest were closed to make room
        assert [s.recv(1) for s in idle[:2]] == [b"", b""]
        time.sleep(1.0)  # past idle_timeout: the rest are closed too
        assert [s.recv(1) for s in idle[2:]] == [b"", b"", b""]
        for s in idle:
            s.close()
    finally:
        server.stop()
        thread.join(timeout=5)
        server.close()
        store.close()
