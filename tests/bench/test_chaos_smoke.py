"""A short seeded run of the chaos harness (``python -m bench.chaos``): the real ``burst run``
under a SIGKILL with restart (against its unrestarted twin), a host API outage, EKS faults (moto
behind the fault proxy) and a budget cap, on SQLite and PostgreSQL.  Every invariant the harness counts must hold
in every run; a failure names the run's seed and what the harness saw, so it can be replayed with
``python -m bench.chaos --scenarios S --backends B --stores ST --seed N --runs 1 --keep DIR``.
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
    ("sigkill", "local", "sqlite", 5),  # its kill lands while work pends (restart regret shows on 2026-12-02)
    ("backlog_down", "local", "postgres", 12),
    ("cloud_faults", "aws", "sqlite", 13),  # 503, 429 with Retry-After, done but gone
    ("budget", "local", "postgres", 14),
]


@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_seeded_chaos_smoke_keeps_every_invariant() -> None:
    specs = [sc.make_spec(*cell) for cell in SMOKE]
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
        f"{r.spec.scenario}/{r.spec.backend}/{r.spec.store} seed {r.spec.seed}": (
            run_violations(r),
            r.failures,
            r.notes,
        )
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


def test_the_host_names_who_wrote_and_who_held_the_lease(tmp_path: Path) -> None:
    """The evidence a non-leader check stands on: lease writes by the daemon's own elector, and
    each mutating request attributed to the replica whose token sent it; outages answer 503."""
    import time
    from datetime import timedelta

    from kubernetes import client

    from bench.chaos.world import Window, make_host
    from burst.clock import RealClock
    from burst.config import LeaderElectionConfig
    from burst.daemon import LeaseElector
    from burst.federation.kube import client_from_kubeconfig

    host = make_host(1, "8")
    try:
        electors = {}
        for name in ("a", "b"):
            token = f"token-{name}"
            host.token_for(name, token)
            (tmp_path / f"{name}.kubeconfig").write_text(host.kubeconfig(token=token), encoding="utf-8")
            cfg = LeaderElectionConfig(
                kubeconfig=f"{name}.kubeconfig", identity=f"replica-{name}", lease_duration=timedelta(seconds=4)
            )
            electors[name] = LeaseElector(cfg, str(tmp_path), RealClock())
        assert electors["a"].try_lead() and not electors["b"].try_lead()
        assert host.holder_at(time.time()) == "replica-a"
        electors["a"].release()
        assert electors["b"].try_lead()
        assert [w.holder for w in host.lease_writes] == ["replica-a", None, "replica-b"]
        assert host.holder_at(host.lease_writes[1].t - 1e-6) == "replica-a"

        api, _ = client_from_kubeconfig((tmp_path / "b.kubeconfig").read_text(), None)
        core = client.CoreV1Api(api)
        core.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
        assert [(w.replica, w.method) for w in host.writes] == [("b", "POST")]
        now = time.time()
        host.windows.append(Window("/configmaps", 503, "ServiceUnavailable", now, now + 60))
        with pytest.raises(client.ApiException) as err:
            core.read_namespaced_config_map("x", "default")
        assert err.value.status == 503
    finally:
        host.stop()
