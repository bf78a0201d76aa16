"""Run the benchmark on every trace with its scenario config, and keep the results.

    uv run python -m bench.run                        # every trace in ../shared/traces
    uv run python -m bench.run TRACE... [--config F]  # chosen traces (default: their scenario)
    uv run python -m bench.run --strategies burst,reactive-ca,lower-bound

A trace ``NAME.swf.gz`` is run with ``examples/scenarios/NAME.yaml`` unless ``--config`` is given.
Each trace's rows are written to ``--out`` (``NAME.json``) as soon as they are done, and the
markdown table of everything is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from bench.strategies import STRATEGIES
from burst import config as config_mod
from burst.backlog.trace import load_trace
from burst.bench import BenchRow, bench_trace, render_markdown

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT.parent / "shared" / "traces"
SCENARIOS = ROOT / "examples" / "scenarios"


def trace_stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".swf", ".csv"):
        name = name.removesuffix(suffix)
    return name


def scenario_for(trace: Path) -> Path:
    return SCENARIOS / f"{trace_stem(trace)}.yaml"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    ap.add_argument("traces", nargs="*", type=Path, help="traces (default: every trace in ../shared/traces)")
    ap.add_argument("--config", type=Path, help="one config for all traces (default: each trace's scenario)")
    ap.add_argument("--onprem-cores", type=int, default=None)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--out", type=Path, default=Path("bench/results"), help="directory for NAME.json")
    args = ap.parse_args(argv)
    logging.getLogger("burst").setLevel(logging.ERROR)

    traces = args.traces or sorted(p for p in TRACES.iterdir() if p.name.endswith((".swf.gz", ".swf")))
    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[BenchRow] = []
    t0 = time.perf_counter()
    for tr_path in traces:
        cfg_path = args.config or scenario_for(tr_path)
        cfg = config_mod.load(cfg_path)
        trace = load_trace(tr_path)

        def say(msg: str) -> None:
            print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

        say(f"{trace.name}: {len(trace.jobs):,} jobs, config {cfg_path}")
        got = bench_trace(cfg, trace, onprem_cores=args.onprem_cores, strategies=names, progress=say)
        rows += got
        detail = [
            {
                **r.as_json(),
                "currency": r.currency,
                "wall_seconds": r.wall_seconds,
                "clusters_created": r.clusters_created,
                "peak_burst_cores": r.peak_burst_cores,
                "node_hours": r.node_hours,
                "burst_core_hours_used": r.burst_core_hours_used,
                "note": r.note,
            }
            for r in got
        ]
        (args.out / f"{trace.name}.json").write_text(json.dumps(detail, indent=2) + "\n")
        say(f"{trace.name}: done")
    sys.stdout.write(render_markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
