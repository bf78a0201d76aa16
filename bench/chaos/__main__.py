"""The chaos harness: ``python -m bench.chaos --runs N --seed S --minutes M``.

Runs N seeded scenarios of the real ``burst run`` (see ``bench/chaos/scenarios.py``), two at a
time by default, prints one table row per scenario × backend × store, writes every run to
``bench/results/chaos.json`` and exits 1 when any invariant is violated (2 on bad arguments).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from bench.chaos import scenarios as sc
from bench.chaos.report import BOUNDS, summarize, table, violations
from bench.chaos.runner import Postgres, Replica, RunResult, run_one

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("local", "aws", "gke", "magnum")


def _csv(value: str, known: tuple[str, ...], what: str) -> tuple[str, ...]:
    got = tuple(v for v in value.split(",") if v)
    unknown = [v for v in got if v not in known]
    if unknown or not got:
        raise argparse.ArgumentTypeError(f"--{what}: unknown {unknown or value!r} (known: {', '.join(known)})")
    return got


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=40.0, help="stop starting runs after this long")
    ap.add_argument("--jobs", type=int, default=3, help="runs side by side (mostly waiting: 3 fit 2 cores)")
    ap.add_argument("--scenarios", default=",".join(sc.SCENARIOS))
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--stores", default="sqlite,postgres")
    ap.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "chaos.json")
    ap.add_argument("--keep", type=Path, default=None, help="keep each run's directory under this folder")
    args = ap.parse_args(argv)
    try:
        scen = _csv(args.scenarios, sc.SCENARIOS, "scenarios")
        backends = _csv(args.backends, BACKENDS, "backends")
        stores = _csv(args.stores, ("sqlite", "postgres"), "stores")
        if args.runs < 1 or args.jobs < 1 or args.minutes <= 0:
            raise argparse.ArgumentTypeError("--runs, --jobs and --minutes must be positive")
        specs = sc.plan_runs(args.runs, args.seed, scen, backends, stores)
    except (argparse.ArgumentTypeError, ValueError) as err:
        print(f"python -m bench.chaos: {err}", file=sys.stderr)
        return 2
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)

    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so every daemon and server is stopped
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        results = run_all(specs, args.jobs, args.minutes * 60, args.keep)
    except KeyboardInterrupt:
        print("python -m bench.chaos: interrupted; every daemon and server it started is stopped", file=sys.stderr)
        return 130
    rows = summarize(results)
    print(table(rows, len(results), len(specs)))
    bad = violations(rows)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "seed": args.seed,
                "runs_planned": len(specs),
                "runs_done": len(results),
                "bounds": BOUNDS,
                "violations": bad,
                "rows": rows,
                "runs": [r.as_json() for r in results],
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    print(f"{len(results)} run(s); results in {args.output}")
    for line in bad:
        print(f"VIOLATION: {line}")
    return 1 if bad else 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_all(specs: list[sc.RunSpec], jobs: int, budget_s: float, keep: Path | None) -> list[RunResult]:
    """Run specs ``jobs`` at a time until all are done or ``budget_s`` has passed (runs already
    started finish; the rest are not started and the table says how many ran)."""
    pg = Postgres()
    deadline = time.monotonic() + budget_s
    results: list[RunResult] = []
    todo = list(specs)
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            running: set[Future[RunResult]] = set()
            while todo or running:
                while todo and len(running) < jobs and time.monotonic() < deadline:
                    running.add(pool.submit(run_one, todo.pop(0), pg, keep))
                if not running:
                    break
                try:
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:
                    Replica.kill_all()  # the runs under way see their daemons gone and wind up
                    raise
                for f in done:
                    r = f.result()
                    results.append(r)
                    flag = "" if not r.failures else f"  FAILURES {r.failures}"
                    print(
                        f"[{len(results)}/{len(specs)}] {r.spec.scenario}/{r.spec.backend}/{r.spec.store} "
                        f"seed {r.spec.seed}: {r.wall_s:.1f}s{flag}",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        Replica.kill_all()  # only when the bench itself was interrupted: runs reap their own
        pg.close()
    return results


if __name__ == "__main__":
    raise SystemExit(main())
