"""A store with a ledger whose every number is known by hand, a config with budgets, and headless
Chromium.

The ledger (times UTC, prices EUR):

* ``a1`` aws, 3 nodes × 4 cpus at 0.40/h + control plane 0.10/h, campaign moriond, policy schedule,
  billed 2027-03-01 23:00 → 2027-03-02 01:00 (crosses midnight);
* ``g1`` gce, 2 nodes × 8 cpus at 1.00/h, no control-plane fee, no campaign, policy backlog,
  billed 2027-03-02 10:00 → 13:00, grown to 4 nodes at 12:00;
* ``a2`` aws, 1 node × 4 cpus at 0.40/h + 0.10/h, campaign moriond, policy backlog, billed from
  2027-03-02 12:00 and still open at ``NOW`` = 18:00.

Samples (on-prem 100 cores): 10:00 running 116, 12:00 running 120, 13:00 running 100.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from burst.config import Config
from burst.lifecycle import ClusterRecord, ClusterState
from burst.store import Store
from burst.testing.builders import make_config

S = ClusterState
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
NOW = datetime(2027, 3, 2, 18, 0, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2027, 3, day, hour, minute, tzinfo=UTC)


def record(
    cid: str, provider: str, cpus: int, nodes: int, price: float, cp: float, campaign: str, policy: str, t: datetime
) -> ClusterRecord:
    return ClusterRecord(
        cid,
        provider,
        "region-1",
        f"{provider}-flavor",
        cpus,
        16384,
        0,
        0,
        nodes,
        S.PLANNED,
        t,
        t,
        price,
        cp,
        "EUR",
        campaign=campaign,
        policy=policy,
    )


def bill(store: Store, rec: ClusterRecord, ready_after: timedelta) -> ClusterRecord:
    """Create accepted at the record's creation (billing starts), taking work after ``ready_after``."""
    start = rec.created_at
    rec = store.add(rec, "test wants it")
    rec = store.transition(rec, S.PROVISIONING, start, "create requested", requested_at=start)
    store.start_billing(rec, start)  # the cloud accepted it (issue 12: not the request itself)
    rec = store.transition(rec, S.JOINING, start + ready_after, "ready", ready_at=start + ready_after)
    return store.transition(rec, S.ACTIVE, start + ready_after, "joined", nodes=rec.desired_nodes)


def remove(store: Store, rec: ClusterRecord, end: datetime) -> ClusterRecord:
    rec = store.transition(rec, S.DRAINING, end - timedelta(minutes=1), "idle")
    rec = store.transition(rec, S.REMOVING, end - timedelta(minutes=1), "drained")
    return store.transition(rec, S.REMOVED, end, "deleted")


def build_hand_store(url: str = "sqlite://") -> Store:
    store = Store(url, "burst")
    a1 = bill(store, record("a1", "aws", 4, 3, 0.40, 0.10, "moriond", "schedule", at(1, 23)), timedelta(minutes=10))
    remove(store, a1, at(2, 1))
    g1 = bill(store, record("g1", "gce", 8, 2, 1.00, 0.0, "", "backlog", at(2, 10)), timedelta(minutes=5))
    g1 = store.update(g1, at(2, 12), desired_nodes=4, nodes=4)
    remove(store, g1, at(2, 13))
    bill(store, record("a2", "aws", 4, 1, 0.40, 0.10, "moriond", "backlog", at(2, 12)), timedelta(minutes=20))
    for t, running in ((at(2, 10), 116), (at(2, 12), 120), (at(2, 13), 100)):
        store.add_sample(t, pending_cores=0, running_cores=running, onprem_cores=100, burst_cores=0, burn_per_hour=0.0)
    return store


@pytest.fixture
def hand_store() -> Iterator[Store]:
    store = build_hand_store()
    yield store
    store.close()


BUDGET_POLICIES = [
    {"kind": "backlog", "pending_cores_above": 0, "for": "0s", "idle_after": "10m", "cooldown": "0s"},
    {"kind": "budget", "name": "cern", "monthly": "100 EUR", "campaigns": {"moriond": "5 EUR"}},
]


@pytest.fixture
def budget_cfg() -> Config:
    return make_config({"policies": BUDGET_POLICIES})


# --- headless Chromium ---------------------------------------------------------------------------


@dataclass
class BrowserRun:
    dom: str
    log: str
    screenshot: Path

    def svg_charts(self) -> int:
        return len(re.findall(r'class="main-svg"', self.dom))

    def console_errors(self) -> list[str]:
        """Console messages of uncaught errors and failed loads, as Chromium logs them to stderr."""
        lines = [ln for ln in self.log.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
        return [ln for ln in lines if re.search(r"Uncaught|Error|ERR_|Failed to load", ln)]


def open_in_chromium(url: str, name: str, tmp_path: Path, height: int = 2600, wait_ms: int = 8000) -> BrowserRun:
    """Load ``url`` in Debian's headless Chromium (installed by scripts/test), let its scripts run
    for ``wait_ms`` of virtual time, and return the DOM after that, the console log and a
    screenshot saved as ``artifacts/<name>.png``."""
    assert CHROMIUM.exists(), "Debian's chromium is missing: run scripts/test (it installs it with apt-get)"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / ('chromium-' + name)}",
        "--enable-logging=stderr",
        "--v=0",
        f"--window-size=1400,{height}",
        f"--virtual-time-budget={wait_ms}",
        "--dump-dom",
        f"--screenshot={shot}",
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "chromium saved no screenshot"
    return BrowserRun(proc.stdout, proc.stderr, shot)
