"""``burst report``: the costs in the store's ledger, as a table, CSV, JSON or an HTML page.

The CLI registers it with ``app.command("report")(report)``.  Errors are one line on stderr and
exit code 2, like every other verb.
"""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from burst.clitext import console, print_error
from burst.errors import BurstError
from burst.report import ReportError


class By(StrEnum):
    provider = "provider"
    campaign = "campaign"
    policy = "policy"
    cluster = "cluster"
    day = "day"


class ReportOutput(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    html = "html"


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as err:
        raise ReportError(f"cannot write {out}: {err.strerror}") from err


def run_report(
    config: Path,
    from_: datetime | None,
    to: datetime | None,
    by: By,
    output: ReportOutput,
    out: Path | None,
    now: datetime | None = None,
) -> str:
    """The work of ``burst report``, without the exit handling; returns what it printed or wrote."""
    from burst import config as config_mod
    from burst.report import budgets_from_config, compute_report, date_range, render_html, render_table, to_csv
    from burst.store import Store

    if output is ReportOutput.html and out is None:
        raise ReportError("--output html writes a file: add --out FILE.html")
    cfg = config_mod.load(config)
    start, end = date_range(from_.date() if from_ else None, to.date() if to else None)
    store = Store(cfg.state_url(), cfg.file.installation)
    try:
        rep = compute_report(
            store,
            by=by.value,
            start=start,
            end=end,
            now=now or datetime.now(UTC),
            currency=cfg.file.currency,
            budgets=budgets_from_config(cfg),
        )
    finally:
        store.close()
    if output is ReportOutput.table:
        if out is None:
            console().print(render_table(rep))
            return ""
        buf = io.StringIO()
        Console(file=buf, width=140, no_color=True, markup=False).print(render_table(rep))
        text = buf.getvalue()
    elif output is ReportOutput.csv:
        text = to_csv(rep)
    elif output is ReportOutput.json:
        text = json.dumps(rep.as_json(), indent=2) + "\n"
    else:
        text = render_html(rep, f"burst costs — {cfg.file.installation}")
    _write(text, out)
    return text


def report(
    config: Annotated[Path, typer.Option("--config", "-c", help="burst YAML config")],
    from_: Annotated[
        datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="first day (UTC), e.g. 2027-03-01")
    ] = None,
    to: Annotated[datetime | None, typer.Option("--to", formats=["%Y-%m-%d"], help="last day (UTC, included)")] = None,
    by: Annotated[By, typer.Option("--by", help="group spend by")] = By.provider,
    output: Annotated[ReportOutput, typer.Option("--output", "-o", help="table, csv, json or html")] = (
        ReportOutput.table
    ),
    out: Annotated[Path | None, typer.Option("--out", help="write to this file (html needs one)")] = None,
) -> None:
    """Costs from the ledger: node-hours, control-plane hours, spend, price per core-hour, waste.

    Example: burst report -c burst.yaml --from 2027-03-01 --to 2027-03-20 --by campaign -o html --out moriond.html
    """
    try:
        run_report(config, from_, to, by, output, out)
    except BurstError as err:
        print_error(console(stderr=True), str(err))
        raise typer.Exit(2) from None
    if out is not None:
        console(stderr=True).print(f"report written to {out}")
