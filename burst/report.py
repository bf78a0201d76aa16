"""Cost reports from the store's ledger: what burst spent, where, on what, and how much of it ran jobs.

The ledger holds *segments*: ``quantity`` units (nodes, or one control plane) billed at a rate
from a start to an end.  A report cuts every segment at the report's range, at UTC midnights and
at the store's demand/capacity samples, and adds the pieces up per group (provider, campaign,
policy, cluster or day).  Cutting at the samples is what lets the report say how much of the
spend ran jobs (see :data:`WASTE_METHOD`).

Renderers: a rich table for the terminal, CSV, JSON, and one self-contained HTML file with
plotly charts (plotly.js is inlined: the file opens without a network).  The status page
(:mod:`burst.status`) reuses the chart builders.
"""

from __future__ import annotations

import csv
import html
import io
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich import box
from rich.table import Table

from burst.errors import BurstError
from burst.units import Money, parse_money

if TYPE_CHECKING:
    from burst.config import Config
    from burst.store import LedgerSegment, Store

GroupBy = Literal["provider", "campaign", "policy", "cluster", "day"]
GROUP_KEYS: tuple[GroupBy, ...] = ("provider", "campaign", "policy", "cluster", "day")
NONE_LABEL = "(none)"

WASTE_METHOD = (
    "Waste is the share of spend on burst capacity that ran no job: clusters provisioning, joining, "
    "idle, draining or being removed. It is estimated from the store's samples of demand and "
    "capacity (taken every `reconciler.sample_every`). At each sample, the cores running jobs "
    "beyond the busy on-prem cores are busy burst cores; they hold until the next sample. When a "
    "sample does not say how many on-prem cores were free, on-prem counts as full (jobs fill it "
    "first), which makes busy burst cores a lower bound and waste an upper bound. Within each "
    "interval the spend of every ledger segment (nodes and control planes alike) is split in "
    "proportion: busy core-hours / billed core-hours of the whole burst fleet ran jobs, the rest "
    "is waste. Before the first sample nothing counts as busy."
)


class ReportError(BurstError):
    """A report cannot be made as asked (empty or inverted range, mixed currencies, bad grouping)."""


@dataclass
class GroupRow:
    """One line of a report: the pieces of ledger segments that fall in one group."""

    key: str
    node_hours: float = 0.0
    control_plane_hours: float = 0.0
    core_hours: float = 0.0
    used_core_hours: float = 0.0
    node_spend: float = 0.0
    control_plane_spend: float = 0.0
    used_spend: float = 0.0
    cluster_ids: set[str] = field(default_factory=set)

    @property
    def clusters(self) -> int:
        return len(self.cluster_ids)

    @property
    def spend(self) -> float:
        return self.node_spend + self.control_plane_spend

    @property
    def waste(self) -> float:
        return max(0.0, self.spend - self.used_spend)

    @property
    def waste_share(self) -> float:
        return self.waste / self.spend if self.spend > 0 else 0.0

    @property
    def price_per_core_hour(self) -> float | None:
        """What one billed core-hour of nodes cost on average (control planes excluded)."""
        return self.node_spend / self.core_hours if self.core_hours > 0 else None

    def as_json(self) -> dict[str, Any]:
        ppch = self.price_per_core_hour
        return {
            "key": self.key,
            "clusters": self.clusters,
            "node_hours": round(self.node_hours, 4),
            "control_plane_hours": round(self.control_plane_hours, 4),
            "core_hours": round(self.core_hours, 4),
            "used_core_hours": round(self.used_core_hours, 4),
            "node_spend": round(self.node_spend, 4),
            "control_plane_spend": round(self.control_plane_spend, 4),
            "spend": round(self.spend, 4),
            "waste": round(self.waste, 4),
            "waste_share": round(self.waste_share, 4),
            "price_per_core_hour": round(ppch, 6) if ppch is not None else None,
        }


@dataclass(frozen=True)
class BudgetLine:
    """A cap to draw spend against: a calendar month (all spend) or one campaign's whole life."""

    label: str
    limit: float
    currency: str
    campaign: str | None = None  # None: counts all spend
    monthly: bool = False


@dataclass
class CostReport:
    by: GroupBy
    start: datetime
    end: datetime
    now: datetime
    currency: str
    rows: list[GroupRow]
    total: GroupRow
    budgets: list[BudgetLine]
    #: cell boundaries of the time grid; ``cell_spend[i]`` is spent in [grid[i], grid[i+1])
    grid: list[datetime]
    cell_spend: list[float]
    cell_spend_by_campaign: dict[str, list[float]]
    samples: list[dict[str, Any]]
    latencies: dict[str, list[float]]
    by_provider: list[GroupRow] = field(default_factory=list)
    by_campaign: list[GroupRow] = field(default_factory=list)

    @property
    def burst_core_hours_used(self) -> float:
        return self.total.used_core_hours

    def as_json(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "currency": self.currency,
            "groups": [r.as_json() for r in self.rows],
            "total": self.total.as_json(),
            "burst_core_hours_used": round(self.burst_core_hours_used, 4),
            "budgets": [
                {
                    "label": b.label,
                    "limit": b.limit,
                    "currency": b.currency,
                    "campaign": b.campaign,
                    "monthly": b.monthly,
                }
                for b in self.budgets
            ],
            "waste_method": WASTE_METHOD,
        }


# --- computing ----------------------------------------------------------------------------------


def day_start(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def date_range(from_: date | None, to: date | None) -> tuple[datetime | None, datetime | None]:
    """``--from``/``--to`` as instants: from the first day's midnight to the end of the last day (inclusive)."""
    start = day_start(from_) if from_ is not None else None
    end = day_start(to) + timedelta(days=1) if to is not None else None
    if start is not None and end is not None and start >= end:
        raise ReportError(f"--from {from_} is after --to {to}")
    return start, end


def budgets_from_config(cfg: Config) -> list[BudgetLine]:
    """The caps of every ``kind: budget`` policy, read from the file as written (no plugin needed)."""
    out: list[BudgetLine] = []
    for raw in cfg.file.policies:
        if raw.get("kind") != "budget":
            continue
        name = str(raw.get("name", "budget"))
        if raw.get("monthly") is not None:
            m = parse_money(raw["monthly"])
            out.append(BudgetLine(f"{name} monthly", m.amount, m.currency, monthly=True))
        for campaign, amount in (raw.get("campaigns") or {}).items():
            m = parse_money(amount)
            out.append(BudgetLine(f"{name} {campaign}", m.amount, m.currency, campaign=str(campaign)))
    return out


def latest_activity(store: Store) -> datetime | None:
    """The last instant the store knows of: the 'now' of a finished (simulated) season."""
    times: list[datetime] = []
    for seg in store.ledger():
        times.append(seg.end or seg.start)
    samples = store.samples()
    if samples:
        times.append(samples[-1]["at"])
    trans = store.transitions()
    if trans:
        times.append(max(t["at"] for t in trans))
    return max(times) if times else None


def _key(seg: LedgerSegment, by: GroupBy, cell_start: datetime) -> str:
    if by == "provider":
        return seg.provider
    if by == "campaign":
        return seg.campaign or NONE_LABEL
    if by == "policy":
        return seg.policy or NONE_LABEL
    if by == "cluster":
        return seg.cluster_id
    return cell_start.date().isoformat()


def _busy_cores(sample: Mapping[str, Any]) -> int:
    """Burst cores running jobs at a sample: what runs beyond the busy on-prem cores.  Without the
    on-prem free cores in the sample, on-prem counts as full (jobs fill it first): a lower bound."""
    onprem_busy = int(sample["onprem_cores"])
    free = sample.get("onprem_free_cores")
    if free is not None:
        onprem_busy -= int(free)
    return max(0, int(sample["running_cores"]) - onprem_busy)


def _span(seg: LedgerSegment, start: datetime, end: datetime, now: datetime) -> tuple[datetime, datetime]:
    """The part of a segment inside the range; an open segment is billed until ``now``."""
    return max(seg.start, start), min(seg.end if seg.end is not None else now, end)


class _Cells:
    """The report range cut into cells at every sample inside it and every UTC midnight, with the
    ledger's pieces in each cell and the share of each cell's spend that ran jobs."""

    def __init__(
        self,
        segs: Sequence[tuple[LedgerSegment, datetime, datetime]],
        samples: Sequence[Mapping[str, Any]],
        start: datetime,
        end: datetime,
    ) -> None:
        points = {start, end}
        points.update(s["at"] for s in samples if start < s["at"] < end)
        d = day_start(start.date()) + timedelta(days=1)
        while d < end:
            points.add(d)
            d += timedelta(days=1)
        self.points = sorted(points)
        n = len(self.points) - 1
        times = [s["at"] for s in samples]
        #: (segment, cell, hours) for every piece of every segment inside the range
        self.pieces: list[tuple[LedgerSegment, int, float]] = []
        self.billed_core_hours = [0.0] * n
        self.spend = [0.0] * n
        self.spend_by_campaign: dict[str, list[float]] = defaultdict(lambda: [0.0] * n)
        for seg, a, b in segs:
            for i, h in self._cut(a, b):
                self.pieces.append((seg, i, h))
                cost = h * seg.quantity * seg.rate_per_hour
                self.spend[i] += cost
                self.spend_by_campaign[seg.campaign or NONE_LABEL][i] += cost
                if seg.item == "nodes":
                    self.billed_core_hours[i] += h * seg.cores
        self.busy_core_hours = [0.0] * n
        self.used_fraction = [0.0] * n
        for i in range(n):
            k = bisect_right(times, self.points[i]) - 1
            busy = _busy_cores(samples[k]) if k >= 0 else 0
            hours = (self.points[i + 1] - self.points[i]).total_seconds() / 3600
            billed = self.billed_core_hours[i]
            self.busy_core_hours[i] = min(busy * hours, billed)
            self.used_fraction[i] = self.busy_core_hours[i] / billed if billed > 0 else 0.0

    def _cut(self, a: datetime, b: datetime) -> Iterator[tuple[int, float]]:
        """(cell index, hours) of [a, b) cut at the cell boundaries."""
        i = max(0, bisect_right(self.points, a) - 1)
        while i < len(self.points) - 1 and self.points[i] < b:
            lo, hi = max(a, self.points[i]), min(b, self.points[i + 1])
            if hi > lo:
                yield i, (hi - lo).total_seconds() / 3600
            i += 1

    def rows(self, by: GroupBy) -> tuple[dict[str, GroupRow], GroupRow]:
        rows: dict[str, GroupRow] = {}
        total = GroupRow("total")
        for seg, i, h in self.pieces:
            key = _key(seg, by, self.points[i])
            row = rows.get(key)
            if row is None:
                row = rows[key] = GroupRow(key)
            cost = h * seg.quantity * seg.rate_per_hour
            for r in (row, total):
                r.cluster_ids.add(seg.cluster_id)
                r.used_spend += cost * self.used_fraction[i]
                if seg.item == "nodes":
                    r.node_hours += h * seg.quantity
                    r.core_hours += h * seg.cores
                    r.node_spend += cost
                    # the cell's busy core-hours, shared out in proportion to billed cores
                    if self.billed_core_hours[i] > 0:
                        r.used_core_hours += self.busy_core_hours[i] * h * seg.cores / self.billed_core_hours[i]
                else:
                    r.control_plane_hours += h * seg.quantity
                    r.control_plane_spend += cost
        return rows, total


def compute_report(
    store: Store,
    *,
    by: str = "provider",
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime,
    currency: str | None = None,
    budgets: Sequence[BudgetLine] = (),
) -> CostReport:
    """A report of the ledger between ``start`` and ``end`` (default: the first segment and
    ``now``); segments still open are billed until ``now``."""
    if by not in GROUP_KEYS:
        raise ReportError(f"cannot group by {by!r}: use one of {', '.join(GROUP_KEYS)}")
    group: GroupBy = by
    segs = store.ledger(start, end)
    samples = store.samples()
    if start is None:
        firsts = [s.start for s in segs] + [s["at"] for s in samples[:1]]
        # an empty store still gets a (zero) report: of the last 30 days
        start = min(firsts) if firsts else (end or now) - timedelta(days=30)
    if end is None:
        end = max(now, start)
    if start >= end:
        raise ReportError(f"empty report range: {start.isoformat()} to {end.isoformat()}")
    currencies = {s.currency for s in segs if s.rate_per_hour > 0}
    if len(currencies) > 1:
        raise ReportError(f"the ledger mixes currencies ({', '.join(sorted(currencies))}); a report sums one")
    cur = currency or next(iter(currencies), None) or "EUR"
    if currencies and cur not in currencies:
        raise ReportError(f"the ledger is in {next(iter(currencies))}, the report was asked in {cur}")

    cells = _Cells([(s, *_span(s, start, end, now)) for s in segs], samples, start, end)
    rows, total = cells.rows(group)

    latencies: dict[str, list[float]] = defaultdict(list)
    for c in store.all_clusters():
        if c.ready_at is not None and c.requested_at is not None and start <= c.requested_at < end:
            latencies[c.provider].append((c.ready_at - c.requested_at).total_seconds())

    def ordered(rs: Mapping[str, GroupRow]) -> list[GroupRow]:
        return sorted(rs.values(), key=lambda r: (-r.spend, r.key))

    return CostReport(
        by=group,
        start=start,
        end=end,
        now=now,
        currency=cur,
        rows=sorted(rows.values(), key=lambda r: r.key) if group == "day" else ordered(rows),
        total=total,
        budgets=list(budgets),
        grid=cells.points,
        cell_spend=cells.spend,
        cell_spend_by_campaign=dict(cells.spend_by_campaign),
        samples=[s for s in samples if start <= s["at"] < end],
        latencies=dict(latencies),
        by_provider=ordered(cells.rows("provider")[0]),
        by_campaign=ordered(cells.rows("campaign")[0]),
    )


# --- terminal, CSV, JSON ------------------------------------------------------------------------


def _num(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def _cells(r: GroupRow, key: str) -> list[str]:
    """One report row as text, the same in the terminal table and the HTML one."""
    ppch = r.price_per_core_hour
    return [
        key,
        str(r.clusters),
        _num(r.node_hours),
        _num(r.control_plane_hours),
        _num(r.core_hours),
        _num(r.spend, 2),
        f"{ppch:.4f}" if ppch is not None else "-",
        f"{r.waste_share:.0%}",
    ]


def render_table(report: CostReport) -> Table:
    cur = report.currency
    t = Table(
        title=f"burst costs by {report.by}, {report.start:%Y-%m-%d %H:%M} – {report.end:%Y-%m-%d %H:%M} UTC",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
    )
    t.add_column(report.by, no_wrap=True, min_width=10)
    for col in ("clusters", "node-h", "cp-h", "core-h", f"spend {cur}", f"{cur}/core-h", "waste"):
        t.add_column(col, justify="right", no_wrap=True)

    for r in report.rows:
        t.add_row(*_cells(r, r.key))
    t.add_section()
    t.add_row(*_cells(report.total, report.total.key), style="bold")
    t.caption = (
        "cp-h = control-plane hours; "
        f"burst core-hours that ran jobs: {report.burst_core_hours_used:,.1f}; "
        f"waste = spend on capacity that ran no job ({report.total.waste:,.2f} {cur})"
    )
    return t


CSV_FIELDS = (
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
)


def to_csv(report: CostReport) -> str:
    """One row per group and a last row ``(total)``; the group column is named after the grouping."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([report.by, *CSV_FIELDS, "currency"])
    for r in [*report.rows, report.total]:
        d = r.as_json()
        key = "(total)" if r is report.total else r.key
        w.writerow([key, *("" if d[f] is None else d[f] for f in CSV_FIELDS), report.currency])
    return buf.getvalue()


# --- charts -------------------------------------------------------------------------------------

_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "height": 360,
    "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
    "legend": {"orientation": "h", "y": -0.15},
}


def capacity_figure(samples: Sequence[Mapping[str, Any]], title: str = "Demand and capacity") -> Any:
    """Pending cores against on-prem and burst capacity (and what ran), as steps between samples."""
    import plotly.graph_objects as go

    x = [s["at"] for s in samples]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=x, y=[s["onprem_cores"] for s in samples], name="on-prem cores", line_shape="hv", stackgroup="cap")
    )
    fig.add_trace(
        go.Scatter(
            x=x, y=[s["burst_cores"] for s in samples], name="burst cores (active)", line_shape="hv", stackgroup="cap"
        )
    )
    fig.add_trace(go.Scatter(x=x, y=[s["running_cores"] for s in samples], name="running cores", line={"dash": "dot"}))
    fig.add_trace(go.Scatter(x=x, y=[s["pending_cores"] for s in samples], name="pending cores", line={"width": 2.5}))
    fig.update_layout(title=title, yaxis_title="cores", **_LAYOUT)
    return fig


def _cumulative(values: Sequence[float]) -> list[float]:
    out, acc = [], 0.0
    for v in values:
        acc += v
        out.append(round(acc, 4))
    return out


def spend_figure(report: CostReport, budget: Money | None = None, title: str = "Spend over time") -> Any:
    """Cumulative spend over the range, against the budget line(s)."""
    import plotly.graph_objects as go

    x = report.grid[1:]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[report.grid[0], *x], y=[0.0, *_cumulative(report.cell_spend)], name="spend"))

    def cap_line(limit: float, label: str, color: str) -> None:
        fig.add_trace(
            go.Scatter(
                x=[report.grid[0], report.grid[-1]],
                y=[limit, limit],
                name=label,
                mode="lines",
                line={"dash": "dash", "color": color},
            )
        )

    if budget is not None:
        cap_line(budget.amount, f"budget {budget}", "crimson")
    for b in report.budgets:
        if b.monthly:
            mtd, acc, month = [], 0.0, (report.grid[0].year, report.grid[0].month)
            for i, v in enumerate(report.cell_spend):
                m = (report.grid[i].year, report.grid[i].month)
                if m != month:
                    acc, month = 0.0, m
                acc += v
                mtd.append(round(acc, 4))
            fig.add_trace(go.Scatter(x=x, y=mtd, name="spend this month", line={"dash": "dot"}))
            cap_line(b.limit, f"{b.label}: {b.limit:,.0f} {b.currency}", "crimson")
        elif b.campaign is not None:
            series = report.cell_spend_by_campaign.get(b.campaign, [0.0] * len(report.cell_spend))
            fig.add_trace(go.Scatter(x=x, y=_cumulative(series), name=f"spend {b.campaign}"))
            cap_line(b.limit, f"{b.label}: {b.limit:,.0f} {b.currency}", "darkorange")
    fig.update_layout(title=title, yaxis_title=report.currency, **_LAYOUT)
    return fig


def groups_figure(rows: Sequence[GroupRow], currency: str, title: str) -> Any:
    """Spend per group, split into what ran jobs and what did not (waste)."""
    import plotly.graph_objects as go

    keys = [r.key for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=keys, y=[round(r.used_spend, 2) for r in rows], name="ran jobs", marker_color="#2a9d8f"))
    fig.add_trace(
        go.Bar(
            x=keys, y=[round(r.waste, 2) for r in rows], name="idle / provisioning / draining", marker_color="#e9a23b"
        )
    )
    fig.update_layout(title=title, barmode="stack", yaxis_title=currency, **_LAYOUT)
    return fig


def latency_figure(latencies: Mapping[str, Sequence[float]], title: str = "Provisioning latency") -> Any:
    """Create request → cluster ready, per provider, in minutes."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for prov in sorted(latencies):
        fig.add_trace(go.Box(y=[v / 60 for v in latencies[prov]], name=prov, boxpoints="all", jitter=0.4))
    fig.update_layout(title=title, yaxis_title="minutes", showlegend=False, **_LAYOUT)
    return fig


def figure_div(fig: Any, modebar: bool = True) -> str:
    """A chart as an HTML fragment that expects plotly.js to be loaded already.  Small charts go
    without plotly's tool bar, which would cover their titles."""
    config = {"displaylogo": False, "responsive": True, "displayModeBar": "hover" if modebar else False}
    return str(fig.to_html(full_html=False, include_plotlyjs=False, config=config))


def plotly_js() -> str:
    """plotly.js itself, shipped inside the plotly package: inlined, the page needs no network."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


PAGE_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5rem 2rem; color: #1d2430; background: #fafbfc; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
.sub { color: #5b6472; margin-top: 0; }
.kpis { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1rem 0; }
.kpi { background: #fff; border: 1px solid #dde1e7; border-radius: 8px; padding: .6rem 1rem; min-width: 9rem; }
.kpi b { display: block; font-size: 1.3rem; } .kpi span { color: #5b6472; font-size: .85rem; }
table { border-collapse: collapse; background: #fff; font-size: .9rem; }
th, td { border-bottom: 1px solid #e3e6eb; padding: .35rem .7rem; text-align: right; }
th:first-child, td:first-child { text-align: left; } tr.total td { font-weight: 600; border-top: 2px solid #999; }
.charts { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 1rem; margin-top: 1rem; }
/* fixed tracks: a chart drawn before the next one's div exists keeps its final width */
.chart { background: #fff; border: 1px solid #dde1e7; border-radius: 8px; padding: .3rem; min-width: 0; }
.chart.wide { margin-top: 1rem; }
.note { color: #5b6472; font-size: .85rem; max-width: 60rem; }
"""


def kpis_html(report: CostReport) -> str:
    t, cur = report.total, report.currency
    ppch = t.price_per_core_hour
    items = [
        (f"{t.spend:,.2f} {cur}", "total spend"),
        (f"{t.node_hours:,.1f}", "node-hours"),
        (f"{t.control_plane_hours:,.1f}", "control-plane hours"),
        (f"{ppch:.4f} {cur}" if ppch is not None else "-", "average per core-hour"),
        (f"{t.waste_share:.0%}", "waste (ran no job)"),
        (f"{report.burst_core_hours_used:,.0f}", "burst core-hours that ran jobs"),
        (str(t.clusters), "clusters"),
    ]
    cells = "".join(f'<div class="kpi"><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>' for v, k in items)
    return f'<div class="kpis">{cells}</div>'


def rows_html(report: CostReport) -> str:
    cur = report.currency
    head = [report.by, "clusters", "node-h", "control-plane-h", "core-h", f"spend {cur}", f"{cur}/core-h", "waste"]
    out = ["<table><thead><tr>", *(f"<th>{html.escape(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for r in [*report.rows, report.total]:
        cells = _cells(r, r.key if r is not report.total else "total")
        cls = ' class="total"' if r is report.total else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def charts_html(report: CostReport, budget: Money | None = None) -> str:
    """The time series full width, one above the other; the breakdowns side by side below."""
    wide = [capacity_figure(report.samples), spend_figure(report, budget)]
    small = [
        groups_figure(report.by_provider, report.currency, "Spend by provider"),
        groups_figure(report.by_campaign, report.currency, "Spend by campaign"),
        latency_figure(report.latencies),
    ]
    return (
        "".join(f'<div class="chart wide">{figure_div(f)}</div>' for f in wide)
        + '<div class="charts">'
        + "".join(f'<div class="chart">{figure_div(f, modebar=False)}</div>' for f in small)
        + "</div>"
    )


def render_html(report: CostReport, title: str, budget: Money | None = None) -> str:
    """One self-contained page: plotly.js inlined, no request to any network when opened."""
    sub = (
        f"{report.start:%Y-%m-%d %H:%M} – {report.end:%Y-%m-%d %H:%M} UTC · grouped by {report.by} · "
        f"amounts in {report.currency}"
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{PAGE_CSS}</style>"
        f"<script>{plotly_js()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='sub'>{html.escape(sub)}</p>"
        f"{kpis_html(report)}<h2>Costs by {html.escape(report.by)}</h2>{rows_html(report)}"
        f"<h2>Charts</h2>{charts_html(report, budget)}"
        f"<h2>How waste is computed</h2><p class='note'>{html.escape(WASTE_METHOD)}</p>"
        "</body></html>\n"
    )


def _money(budget: object) -> Money | None:
    if budget is None:
        return None
    if isinstance(budget, Money):
        return budget
    amount, currency = getattr(budget, "amount", None), getattr(budget, "currency", None)
    if isinstance(amount, int | float) and isinstance(currency, str):
        return Money(float(amount), currency)
    return parse_money(budget)


def write_html_report(
    store: Store,
    cfg: Config,
    path: str | Path,
    *,
    title: str = "burst cost report",
    budget: object = None,
    by: str = "provider",
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
) -> CostReport:
    """Write the HTML report of ``store``'s ledger to ``path``.

    ``budget`` (a Money, anything with ``amount``/``currency``, or '40000 EUR') draws one budget
    line; without it the caps of the config's ``kind: budget`` policies are drawn.  ``now``
    defaults to the last instant the store knows of, which is the end of a simulated season.
    """
    money = _money(budget)
    if now is None:
        now = latest_activity(store) or datetime.now(UTC)
    report = compute_report(
        store,
        by=by,
        start=start,
        end=end,
        now=now,
        currency=cfg.file.currency,
        budgets=[] if money is not None else budgets_from_config(cfg),
    )
    out = Path(path)
    try:
        out.write_text(render_html(report, title, money), encoding="utf-8")
    except OSError as err:
        raise ReportError(f"cannot write report {out}: {err.strerror}") from err
    return report
