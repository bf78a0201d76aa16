"""The HTML report: self-contained, numbers that match the season, charts that render in Chromium."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from burst import config as config_mod
from burst.backlog.trace import load_trace
from burst.config import Config
from burst.report import write_html_report
from burst.simulate import simulate
from burst.store import Store
from burst.units import Money

from .conftest import NOW, ROOT, open_in_chromium

KTH = ROOT / "examples" / "traces" / "KTH-SP2-1996-slice-1997w06-w11.swf.gz"
EXAMPLE_CFG = ROOT / "examples" / "burst.yaml"


def assert_self_contained(page: str) -> None:
    """Nothing the page loads comes from a network: no remote script, stylesheet, image or frame."""
    remote = re.findall(r"""<(?:script|link|img|iframe)\b[^>]*(?:src|href)\s*=\s*["']?(?:https?:)?//""", page, re.I)
    assert remote == []
    inline = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert any(len(js) > 1_000_000 and "Plotly" in js for js in inline), "plotly.js is not inlined"
    assert "cdn.plot.ly" not in re.sub(r"<script>.*?</script>", "", page, flags=re.S)


def test_html_report_is_self_contained_with_the_ledger_numbers(
    hand_store: Store, budget_cfg: Config, tmp_path: Path
) -> None:
    out = tmp_path / "costs.html"
    rep = write_html_report(hand_store, budget_cfg, out, title="Moriond <2027>", by="cluster", now=NOW)
    page = out.read_text()
    assert_self_contained(page)
    assert "<title>Moriond &lt;2027&gt;</title>" in page  # escaped, never raw
    assert "13.60 EUR" in page  # total spend (13.60 by hand)
    for cid in ("a1", "g1", "a2"):
        assert f"<td>{cid}</td>" in page
    assert rep.total.spend == pytest.approx(13.60)
    # the config's budgets are drawn: the monthly cap and the campaign cap
    assert "cern monthly: 100 EUR" in page and "cern moriond: 5 EUR" in page


def test_explicit_budget_replaces_the_configs(hand_store: Store, budget_cfg: Config, tmp_path: Path) -> None:
    out = tmp_path / "costs.html"
    write_html_report(hand_store, budget_cfg, out, title="t", budget=Money(40, "EUR"), now=NOW)
    page = out.read_text()
    assert "budget 40.00 EUR" in page and "cern monthly" not in page


def test_write_error_is_a_burst_error(hand_store: Store, budget_cfg: Config, tmp_path: Path) -> None:
    from burst.report import ReportError

    with pytest.raises(ReportError, match="cannot write report"):
        write_html_report(hand_store, budget_cfg, tmp_path / "missing-dir" / "r.html", now=NOW)


def short_season(tmp_path: Path, jobs: int = 500) -> tuple[Config, Store, object]:
    cfg = config_mod.load(EXAMPLE_CFG)
    tr = load_trace(KTH)
    tr = replace(tr, jobs=tr.jobs[:jobs])
    summary, store = simulate(cfg, tr, keep_store=True)
    return cfg, store, summary


@pytest.mark.browser
def test_simulated_season_report_in_chromium(tmp_path: Path) -> None:
    cfg, store, summary = short_season(tmp_path)
    out = tmp_path / "season.html"
    rep = write_html_report(store, cfg, out, title="burst simulate KTH (500 jobs)", budget=Money(300, "EUR"))
    store.close()
    # the report adds up to what the simulator counted on its own
    assert rep.total.spend == pytest.approx(summary.cost_total)  # type: ignore[attr-defined]
    assert rep.total.node_hours == pytest.approx(summary.node_hours)  # type: ignore[attr-defined]
    assert rep.total.clusters == summary.clusters_created  # type: ignore[attr-defined]
    # busy burst cores come from hourly samples (with free on-prem cores recorded): close to what
    # the simulator measured job by job, within the sampling error
    assert rep.burst_core_hours_used == pytest.approx(summary.burst_core_hours_used, rel=0.2)  # type: ignore[attr-defined]
    assert 0 < rep.total.waste_share < 1
    assert_self_contained(out.read_text())

    run = open_in_chromium(out.as_uri(), "report-season", tmp_path)
    assert run.console_errors() == []
    # five charts: capacity, spend vs budget, by provider, by campaign, provisioning latency
    assert len(re.findall(r'class="plot-container plotly"', run.dom)) == 5
    assert run.svg_charts() >= 5
    assert "budget 300.00 EUR" in run.dom  # the budget line's legend entry, drawn by plotly
    assert "pending cores" in run.dom and "Provisioning latency" in run.dom


@pytest.mark.browser
def test_console_errors_are_caught(tmp_path: Path) -> None:
    """The console check itself: a page that throws is seen as failing."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><p>x</p><script>throw new Error('report-check-boom')</script></body></html>")
    run = open_in_chromium(page.as_uri(), "broken-control", tmp_path, height=300, wait_ms=1000)
    assert any("report-check-boom" in e for e in run.console_errors())
    assert run.svg_charts() == 0


def test_simulate_cli_writes_the_report(tmp_path: Path) -> None:
    """`burst simulate … --report FILE.html` end to end, as a user runs it, on a short slice."""
    trace = tmp_path / "kth-slice.swf.gz"
    with gzip.open(KTH, "rt") as src, gzip.open(trace, "wt") as dst:
        kept = 0
        for line in src:
            if not line.startswith(";"):
                kept += 1
                if kept > 200:
                    break
            dst.write(line)
    out = tmp_path / "sim.html"
    burst = Path(sys.executable).parent / "burst"  # the console script of this environment
    proc = subprocess.run(
        [str(burst), "simulate", str(trace), "--config", str(EXAMPLE_CFG), "--report", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert_self_contained(page)
    assert "burst simulate kth-slice" in page
    assert page.count('class="plotly-graph-div"') == 5
