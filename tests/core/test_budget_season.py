"""A budget is never passed in a simulated season; its hard stop is the only thing that kills jobs."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from burst.backlog.trace import load_trace
from burst.simulate import simulate
from burst.testing.builders import make_config

ROOT = Path(__file__).resolve().parents[2]
SLICE = ROOT / "examples" / "traces" / "KTH-SP2-1996-slice-1997w06-w11.swf.gz"
PROVIDERS = {
    "tsystems": {"kind": "local", "cloud": "tsystems", "max_nodes": 48, "nodes_per_cluster": 16},
    "aws": {"kind": "local", "cloud": "aws", "max_nodes": 48, "nodes_per_cluster": 16},
    "gce": {"kind": "local", "cloud": "gce", "max_nodes": 48, "nodes_per_cluster": 16},
}


def month_spend(store: object, year: int, month: int) -> float:
    a = datetime(year, month, 1, tzinfo=UTC)
    b = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return sum(s.cost_between(a, b) for s in store.ledger())  # type: ignore[attr-defined]


@pytest.mark.parametrize("cap", [150, 300, 600])
def test_monthly_cap_holds_with_a_hard_stop(cap: int) -> None:
    cfg = make_config(
        {
            "providers": PROVIDERS,
            "policies": [
                {"kind": "backlog", "pending_cores_above": 32, "for": "15m", "idle_after": "30m"},
                {"kind": "budget", "monthly": f"{cap} EUR", "hard_stop": True},  # opt-in since issue 12
            ],
            "simulation": {"tick": "5m"},
        }
    )
    summary, store = simulate(cfg, load_trace(SLICE), keep_store=True)
    tick_worth = 3 * 48 * 0.8 * 5 / 60  # the most the whole fleet could burn in one tick
    for month in (2, 3):
        assert month_spend(store, 1997, month) <= cap + tick_worth
    assert summary.leaked_clusters == 0
    assert summary.killed_jobs == 0, "only the hard stop kills, and its kills are counted apart"
    announced = [re.search(r"hard stop at [^:]+:\d+: (\d+) running job", t["reason"]) for t in store.transitions()]
    assert summary.budget_killed_jobs == sum(int(m.group(1)) for m in announced if m)
    store.close()


def test_soft_budget_never_kills() -> None:
    cfg = make_config(
        {
            "providers": PROVIDERS,
            "policies": [
                {"kind": "backlog", "pending_cores_above": 32, "for": "15m", "idle_after": "30m"},
                {"kind": "budget", "monthly": "300 EUR", "hard_stop": False},
            ],
        }
    )
    summary, _ = simulate(cfg, load_trace(SLICE))
    assert summary.killed_jobs == 0 and summary.leaked_clusters == 0
