"""A short seeded run of the chaos harness (``python -m bench.chaos``): the real ``burst run``
under a SIGKILL with restart (against its unrestarted twin), a host API outage, injected cloud
faults and a budget cap, on SQLite and PostgreSQL.  Every invariant the harness counts must hold
in every run; a failure names the run's seed and what the harness saw, so it can be replayed with
``python -m bench.chaos --scenarios S --stores ST --seed N --runs 1 --keep DIR``.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.chaos import scenarios as sc
from bench.chaos.report import run_violations
from bench.chaos.runner import Postgres, RunResult, run_one

ROOT = Path(__file__).resolve().parents[2]

SMOKE = [
    ("sigkill", "sqlite", 5),  # its kill lands while work pends (restart regret shows on 2026-12-02)
    ("backlog_down", "postgres", 12),
    ("cloud_faults", "sqlite", 13),
    ("budget", "postgres", 14),
]


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_seeded_chaos_smoke_keeps_every_invariant() -> None:
    specs = [sc.make_spec(s, "local", store, seed) for s, store, seed in SMOKE]
    pg = Postgres()
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:  # runs mostly wait: 3 fit 2 cores
            results: list[RunResult] = list(pool.map(lambda spec: run_one(spec, pg), specs))
    finally:
        pg.close()
    assert [r.spec.key for r in results] == [s.key for s in specs]
    # the runs did something: clusters were created for the queue in every run
    assert all(r.creates >= 1 for r in results), [(r.spec.key, r.notes) for r in results]
    report = {
        f"{r.spec.scenario}/{r.spec.store} seed {r.spec.seed}": (run_violations(r), r.failures, r.notes)
        for r in results
        if run_violations(r)
    }
    assert not report, report


def test_bad_arguments_are_one_line_and_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--runs", "1", "--scenarios", "baseline,nope"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown ['nope']" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_run_is_planned_from_its_seed_alone() -> None:
    a = sc.plan_runs(12, 7, sc.SCENARIOS, ("local",), ("sqlite", "postgres"))
    b = sc.plan_runs(12, 7, sc.SCENARIOS, ("local",), ("sqlite", "postgres"))
    assert a == b
    assert {r.store for r in a if r.scenario == "pg_restart"} <= {"postgres"}
    both = sc.plan_runs(60, 7, sc.SCENARIOS, ("local", "aws"), ("sqlite", "postgres"))
    assert {r.backend for r in both if r.scenario in ("budget", "federation_down")} == {"local"}
    assert {r.backend for r in both if r.scenario == "sigkill"} == {"local", "aws"}
    kill = sc.make_spec("sigkill", "local", "sqlite", 3)
    assert kill.events and kill.untouched().events == () and kill.untouched().twin
