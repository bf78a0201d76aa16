"""Report numbers against the hand-computed ledger of conftest.py (every expected value below is
worked out by hand from the segments' nodes, prices and hours, not by the code under test)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from burst.report import (
    CSV_FIELDS,
    GROUP_KEYS,
    ReportError,
    budgets_from_config,
    compute_report,
    date_range,
    render_table,
    to_csv,
)
from burst.store import Store

from .conftest import NOW, at, build_hand_store, record

# a1: 3 × 0.40 × 2 h nodes + 0.10 × 2 h control plane; g1: 2 × 1.00 × 2 h + 4 × 1.00 × 1 h;
# a2: (0.40 + 0.10) × 6 h, open until NOW.
A1, G1, A2 = 3 * 0.40 * 2 + 0.10 * 2, 2 * 1.00 * 2 + 4 * 1.00 * 1, (0.40 + 0.10) * 6
TOTAL = A1 + G1 + A2  # 13.60


def test_totals(hand_store: Store) -> None:
    r = compute_report(hand_store, now=NOW)
    t = r.total
    assert t.spend == pytest.approx(13.60)
    assert t.spend == pytest.approx(TOTAL)
    assert t.node_spend == pytest.approx(3 * 0.40 * 2 + 8.0 + 0.40 * 6)
    assert t.control_plane_spend == pytest.approx(0.10 * 2 + 0.10 * 6)
    assert t.node_hours == pytest.approx(3 * 2 + (2 * 2 + 4 * 1) + 1 * 6)  # 20
    assert t.control_plane_hours == pytest.approx(2 + 6)  # g1 pays no control-plane fee
    assert t.core_hours == pytest.approx(12 * 2 + (16 * 2 + 32 * 1) + 4 * 6)  # 112
    assert t.price_per_core_hour == pytest.approx((2.40 + 8.0 + 2.40) / 112)
    assert t.clusters == 3
    assert r.start == at(1, 23) and r.end == NOW


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        ("provider", {"aws": A1 + A2, "gce": G1}),
        ("campaign", {"moriond": A1 + A2, "(none)": G1}),
        ("policy", {"schedule": A1, "backlog": G1 + A2}),
        ("cluster", {"a1": A1, "g1": G1, "a2": A2}),
        # a1 bills one hour on each side of midnight
        ("day", {"2027-03-01": 3 * 0.40 + 0.10, "2027-03-02": 3 * 0.40 + 0.10 + G1 + A2}),
    ],
)
def test_group_by_each_key(hand_store: Store, by: str, expected: dict[str, float]) -> None:
    r = compute_report(hand_store, by=by, now=NOW)
    assert {row.key: round(row.spend, 6) for row in r.rows} == {k: round(v, 6) for k, v in expected.items()}
    assert sum(row.spend for row in r.rows) == pytest.approx(r.total.spend)
    if by == "day":
        assert [row.key for row in r.rows] == sorted(expected)  # days in order
    else:
        assert [row.spend for row in r.rows] == sorted((row.spend for row in r.rows), reverse=True)


def test_every_grouping_is_covered() -> None:
    assert set(GROUP_KEYS) == {"provider", "campaign", "policy", "cluster", "day"}


def test_group_details(hand_store: Store) -> None:
    r = compute_report(hand_store, by="provider", now=NOW)
    aws = next(row for row in r.rows if row.key == "aws")
    assert aws.clusters == 2
    assert aws.node_hours == pytest.approx(3 * 2 + 1 * 6)
    assert aws.control_plane_hours == pytest.approx(8)
    assert aws.price_per_core_hour == pytest.approx(0.10)  # 0.40 per 4-cpu node-hour


def test_date_range_cuts_segments_at_its_days() -> None:
    store = build_hand_store()
    start, end = date_range(date(2027, 3, 2), date(2027, 3, 2))
    assert (start, end) == (at(2, 0), at(2, 0) + timedelta(days=1))
    r = compute_report(store, start=start, end=end, now=NOW)
    by_cluster = {row.key: row.spend for row in compute_report(store, by="cluster", start=start, end=end, now=NOW).rows}
    assert by_cluster["a1"] == pytest.approx(3 * 0.40 + 0.10)  # only 00:00–01:00 of its two hours
    assert r.total.spend == pytest.approx(TOTAL - (3 * 0.40 + 0.10))
    first_day = compute_report(store, start=at(1, 0), end=at(2, 0), now=NOW)
    assert first_day.total.spend == pytest.approx(3 * 0.40 + 0.10)
    assert first_day.total.node_hours == pytest.approx(3)
    store.close()


def test_range_inside_segments_and_around_a_resize(hand_store: Store) -> None:
    r = compute_report(hand_store, by="cluster", start=at(2, 11), end=at(2, 12, 30), now=NOW)
    spend = {row.key: row.spend for row in r.rows}
    # g1: 2 nodes 11:00–12:00, 4 nodes 12:00–12:30; a2: half an hour of node + control plane
    assert spend == pytest.approx({"g1": 2 * 1.0 * 1 + 4 * 1.0 * 0.5, "a2": 0.5 * (0.40 + 0.10)})
    assert r.total.node_hours == pytest.approx(2 * 1 + 4 * 0.5 + 1 * 0.5)


def test_open_segment_is_billed_until_now(hand_store: Store) -> None:
    later = NOW + timedelta(hours=4)
    r = compute_report(hand_store, by="cluster", now=later)
    assert {row.key: row.spend for row in r.rows}["a2"] == pytest.approx((0.40 + 0.10) * 10)
    # a range ending before now stops the open segment at the range's end
    r2 = compute_report(hand_store, by="cluster", end=at(2, 14), now=later)
    assert {row.key: row.spend for row in r2.rows}["a2"] == pytest.approx((0.40 + 0.10) * 2)


def test_waste_from_samples(hand_store: Store) -> None:
    """Busy burst cores = running − on-prem at each sample, held until the next one:
    10–12 h 16 busy of g1's 16 billed cores (all used); 12–13 h 20 busy of 36 billed (g1 32 + a2 4);
    after 13 h nothing busy; a1 ran before the first sample (counts as idle)."""
    r = compute_report(hand_store, now=NOW)
    used = 4.0 * 1 + (4.0 + 0.5) * 20 / 36
    assert r.total.used_spend == pytest.approx(used)
    assert r.total.waste == pytest.approx(TOTAL - used)
    assert r.total.waste_share == pytest.approx((TOTAL - used) / TOTAL)
    assert r.burst_core_hours_used == pytest.approx(16 * 2 + 20 * 1)
    prov = {row.key: row for row in r.rows}
    assert prov["gce"].waste == pytest.approx(G1 - (4.0 + 4.0 * 20 / 36))
    assert prov["aws"].waste == pytest.approx(A1 + A2 - 0.5 * 20 / 36)
    assert prov["gce"].used_core_hours == pytest.approx(16 * 2 + 20 * 32 / 36)


def test_busy_cores_use_onprem_free_cores_when_sampled() -> None:
    from burst.report import _busy_cores

    assert _busy_cores({"running_cores": 130, "onprem_cores": 100}) == 30
    assert _busy_cores({"running_cores": 130, "onprem_cores": 100, "onprem_free_cores": 20}) == 50
    assert _busy_cores({"running_cores": 60, "onprem_cores": 100}) == 0


def test_errors() -> None:
    store = build_hand_store()
    with pytest.raises(ReportError, match="cannot group by"):
        compute_report(store, by="flavor", now=NOW)
    with pytest.raises(ReportError, match="empty report range"):
        compute_report(store, start=at(2, 12), end=at(2, 11), now=NOW)
    with pytest.raises(ReportError, match="after --to"):
        date_range(date(2027, 3, 3), date(2027, 3, 2))
    with pytest.raises(ReportError, match="asked in USD"):
        compute_report(store, now=NOW, currency="USD")
    rec = record("u1", "aws", 4, 1, 0.5, 0.0, "", "", at(2, 14))
    from dataclasses import replace

    from .conftest import bill

    bill(store, replace(rec, currency="USD"), timedelta(minutes=5))
    with pytest.raises(ReportError, match="mixes currencies"):
        compute_report(store, now=NOW)
    store.close()


def test_csv_shape(hand_store: Store) -> None:
    r = compute_report(hand_store, by="campaign", now=NOW)
    rows = list(csv.reader(io.StringIO(to_csv(r))))
    assert rows[0] == ["campaign", *CSV_FIELDS, "currency"]
    assert [row[0] for row in rows[1:]] == ["(none)", "moriond", "(total)"]
    assert all(len(row) == len(rows[0]) for row in rows)
    total = dict(zip(rows[0], rows[-1], strict=True))
    assert float(total["spend"]) == pytest.approx(TOTAL, abs=1e-4)
    assert float(total["node_hours"]) == pytest.approx(20)
    assert total["currency"] == "EUR"


def test_json_shape(hand_store: Store, budget_cfg: object) -> None:
    from burst.config import Config

    assert isinstance(budget_cfg, Config)
    r = compute_report(hand_store, by="provider", now=NOW, budgets=budgets_from_config(budget_cfg))
    data = json.loads(json.dumps(r.as_json()))
    assert set(data) == {
        "by",
        "from",
        "to",
        "currency",
        "groups",
        "total",
        "burst_core_hours_used",
        "budgets",
        "waste_method",
    }
    assert data["from"] == "2027-03-01T23:00:00+00:00" and data["to"] == "2027-03-02T18:00:00+00:00"
    assert [g["key"] for g in data["groups"]] == ["gce", "aws"]
    assert data["total"]["spend"] == pytest.approx(TOTAL, abs=1e-4)
    assert set(data["groups"][0]) == {
        "key",
        "clusters",
        "node_hours",
        "control_plane_hours",
        "core_hours",
        "used_core_hours",
        "node_spend",
        "control_plane_spend",
        "spend",
        "waste",
        "waste_share",
        "price_per_core_hour",
    }
    assert data["budgets"] == [
        {"label": "cern monthly", "limit": 100.0, "currency": "EUR", "campaign": None, "monthly": True},
        {"label": "cern moriond", "limit": 5.0, "currency": "EUR", "campaign": "moriond", "monthly": False},
    ]


def test_table_lists_groups_and_total(hand_store: Store) -> None:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120, no_color=True)
    console.print(render_table(compute_report(hand_store, by="cluster", now=NOW)))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for key in ("a1", "g1", "a2", "total", "13.60", "20.0"):
        assert key in text


def test_empty_store_gives_a_zero_report(tmp_path: Path) -> None:
    from burst.report import write_html_report
    from burst.testing.builders import make_config

    store = Store("sqlite://", "burst")
    r = write_html_report(store, make_config(), tmp_path / "empty.html", now=NOW)
    assert r.rows == [] and r.total.spend == 0 and r.total.waste_share == 0
    assert r.end == NOW and r.start == NOW - timedelta(days=30)
    assert "0.00 EUR" in (tmp_path / "empty.html").read_text()
    store.close()
