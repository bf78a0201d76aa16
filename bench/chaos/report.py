"""The chaos table: one row per scenario × backend × store, every invariant a column."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from bench.chaos.runner import RunResult

#: column → the most a row may show (sums are over the row's runs; ``creates/need`` is a max)
BOUNDS: dict[str, float] = {
    "leaked": 0,
    "duplicates": 0,
    "killed_jobs": 0,
    "restart_regret": 0,
    "non_leader": 0,
    "max_creates_per_needed": 3.0,
    "budget_overrun": 0.0,
    "phantom_spend": 0.0,
    "secrets_leaked": 0,
    "failures": 0,
}

COLUMNS = [
    ("runs", "runs"),
    ("leaked", "leaked"),
    ("duplicates", "dup"),
    ("killed_jobs", "killed"),
    ("restart_regret", "regret"),
    ("non_leader", "non-leader"),
    ("max_creates_per_needed", "creates/need"),
    ("budget_overrun", "overrun €"),
    ("phantom_spend", "phantom €"),
    ("secrets_leaked", "secrets"),
    ("failures", "failures"),
    ("mean_wall_s", "s/run"),
]


def summarize(results: list[RunResult]) -> list[dict[str, Any]]:
    cells: dict[tuple[str, str, str], list[RunResult]] = defaultdict(list)
    for r in results:
        cells[r.spec.key].append(r)
    rows = []
    for (scenario, backend, store), rs in sorted(cells.items()):
        rows.append(
            {
                "scenario": scenario,
                "backend": backend,
                "store": store,
                "runs": len(rs),
                "leaked": sum(r.leaked for r in rs),
                "duplicates": sum(r.duplicates for r in rs),
                "killed_jobs": sum(r.killed_jobs for r in rs),
                "restart_regret": sum(r.restart_regret for r in rs),
                "non_leader": sum(r.non_leader for r in rs),
                "max_creates_per_needed": max(r.creates_per_needed for r in rs),
                "budget_overrun": round(max(r.budget_overrun for r in rs), 6),
                "phantom_spend": round(sum(r.phantom_spend for r in rs), 6),
                "secrets_leaked": sum(r.secrets_leaked for r in rs),
                "failures": sum(len(r.failures) for r in rs),
                "mean_wall_s": round(sum(r.wall_s for r in rs) / len(rs), 1),
                "seeds_with_violations": sorted(r.spec.seed for r in rs if run_violations(r)),
            }
        )
    return rows


def run_violations(r: RunResult) -> list[str]:
    out = []
    for col, value in (
        ("leaked", r.leaked),
        ("duplicates", r.duplicates),
        ("killed_jobs", r.killed_jobs),
        ("restart_regret", r.restart_regret),
        ("non_leader", r.non_leader),
        ("max_creates_per_needed", r.creates_per_needed),
        ("budget_overrun", r.budget_overrun),
        ("phantom_spend", r.phantom_spend),
        ("secrets_leaked", r.secrets_leaked),
        ("failures", len(r.failures)),
    ):
        if value > BOUNDS[col]:
            out.append(f"{col}={value:g}")
    return out


def violations(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in rows:
        over = [f"{col}={row[col]:g} (bound {BOUNDS[col]:g})" for col in BOUNDS if row[col] > BOUNDS[col]]
        if over:
            out.append(
                f"{row['scenario']}/{row['backend']}/{row['store']}: {', '.join(over)}; "
                f"seeds {row['seeds_with_violations']}"
            )
    return out


def table(rows: list[dict[str, Any]], done: int, planned: int) -> str:
    """A rich table rendered to text (so it can be printed, logged and pasted into a note)."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"burst chaos: {done} of {planned} run(s)")
    for name in ("scenario", "backend", "store"):
        t.add_column(name)
    for _, head in COLUMNS:
        t.add_column(head, justify="right")
    for row in rows:
        cells = []
        for col, _ in COLUMNS:
            v = row[col]
            text = f"{v:g}" if isinstance(v, float) else str(v)
            if col in BOUNDS and v > BOUNDS[col]:
                text = f"[bold red]{text}[/]"
            cells.append(text)
        t.add_row(row["scenario"], row["backend"], row["store"], *cells)
    console = Console(width=200, record=True, force_terminal=False)
    with console.capture() as cap:
        console.print(t)
    return cap.get()
