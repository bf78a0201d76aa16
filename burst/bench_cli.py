"""The ``burst bench`` command function (registered in :mod:`burst.cli`).

Prints, per (trace, strategy), spend, wait p50/p95 (all jobs, spike-time jobs), the ratio of spend
to the clairvoyant lower bound, leaked clusters and killed jobs; ``--output json`` prints one
object per row.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from burst import config as config_mod
from burst.clitext import console, print_error, styled
from burst.errors import BurstError
from burst.logs import quiet_logs
from burst.units import MAX_CORES, parse_duration


class BenchOutput(StrEnum):
    table = "table"
    json = "json"


_DEFAULT_STRATEGIES = "burst,onprem-only,static-peak,reactive-ca,cobald,lower-bound"


def bench(
    traces: Annotated[list[Path], typer.Argument(help="job traces to replay (SWF or CSV)")],
    config: Annotated[Path, typer.Option("--config", "-c", help="burst YAML config (the scenario)")],
    output: Annotated[
        BenchOutput, typer.Option("--output", "-o", help="table for people, json for scripts")
    ] = BenchOutput.table,
    onprem_cores: Annotated[int | None, typer.Option(min=0, max=MAX_CORES, help="override onprem.cores")] = None,
    strategies: Annotated[str, typer.Option(help="comma-separated strategies to run, in order")] = _DEFAULT_STRATEGIES,
    wait_target: Annotated[str, typer.Option(help="wait every job meets in the lower bound")] = "1h",
) -> None:
    """Simulate burst and its baselines side by side on each trace; spend vs the lower bound."""
    from burst.bench import HEADER, render_json, row_cells, run_bench

    err = console(stderr=True)
    names = [s.strip() for s in strategies.split(",") if s.strip()]
    try:
        target: timedelta = parse_duration(wait_target)
        cfg = config_mod.load(config)
        with quiet_logs():
            rows = run_bench(
                traces,
                cfg,
                onprem_cores,
                names,
                wait_target=target,
                progress=(lambda m: err.print(styled(f"simulating {m}", "dim"))) if err.is_terminal else None,
            )
    except (BurstError, ValueError) as e:
        print_error(err, str(e))
        raise typer.Exit(2) from None
    if output is BenchOutput.json:
        sys.stdout.write(json.dumps(render_json(rows), indent=2) + "\n")
        return
    t = Table(title="burst bench", title_justify="left")
    for h in HEADER:
        left = h in ("trace", "strategy")
        t.add_column(h, justify="left" if left else "right", no_wrap=left)
    for r in rows:
        t.add_row(*row_cells(r))
    # Piped output has no terminal width: keep each row on one line rather than wrap at 80.
    console(width=None if sys.stdout.isatty() else 160).print(t)
