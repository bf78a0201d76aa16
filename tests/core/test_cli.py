"""The CLI as an operator runs it: a subprocess, one-line errors, JSON for scripts."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TRACE = ROOT / "examples" / "traces" / "KTH-SP2-1996-slice-1997w06-w11.swf.gz"
EXAMPLE_CONFIG = ROOT / "examples" / "burst.yaml"


def burst(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "burst.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=300,
        check=False,
    )


def test_simulate_example_json() -> None:
    r = burst("simulate", str(EXAMPLE_TRACE), "--config", str(EXAMPLE_CONFIG), "--output", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["jobs"] == 3786
    assert out["leaked_clusters"] == 0 and out["killed_jobs"] == 0
    assert out["clusters_created"] > 0 and out["cost_total"] > 0 and out["currency"] == "EUR"
    assert set(out["cost_by_provider"]) <= {"tsystems", "aws", "gce"}


def test_simulate_table_prints_the_season_summary() -> None:
    r = burst("simulate", str(EXAMPLE_TRACE), "--config", str(EXAMPLE_CONFIG))
    assert r.returncode == 0, r.stderr
    for label in ("wait p50 / p95 / max", "cloud spend", "clusters left running", "jobs killed"):
        assert label in r.stdout


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        ("onprem: {cores: -1}\nproviders: {a: {kind: local}}\n", ":1: onprem.cores: Input should be greater"),
        ("onprem: {cores: 10}\nproviders:\n  a: {kind: nimbus}\n", ":3: providers.a.kind: unknown provider kind"),
        ("onprem: {cores: 10}\nproviders: {a: {kind: local, clod: aws}}\n", ":2: providers.a.clod: unknown key"),
    ],
)
def test_config_errors_are_one_line(tmp_path: Path, content: str, expect: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(content)
    r = burst("config", "validate", str(cfg))
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and expect in lines[0] and str(cfg) in lines[0]
    assert "Traceback" not in r.stderr


def test_config_validate_ok_and_schema() -> None:
    r = burst("config", "validate", str(EXAMPLE_CONFIG))
    assert r.returncode == 0 and "ok" in r.stdout
    as_json = json.loads(burst("config", "validate", str(EXAMPLE_CONFIG), "--output", "json").stdout)
    assert as_json["ok"] is True and as_json["providers"] == {"tsystems": "local", "aws": "local", "gce": "local"}
    schema = json.loads(burst("config", "schema").stdout)
    assert "providers" in schema["properties"]


@pytest.mark.parametrize(
    ("lines", "expect"),
    [
        (["; UnixStartTime: 0", "1 0 0 10 1 -1 -1 1 -1 -1 1 1 1 1 1 1 -1 -1", "2 5 0 10 x"], ":3:"),
        (["; UnixStartTime: 0"], "no"),
    ],
)
def test_bad_trace_is_one_line(tmp_path: Path, lines: list[str], expect: str) -> None:
    trace = tmp_path / "bad.swf.gz"
    with gzip.open(trace, "wt") as f:
        f.write("\n".join(lines) + "\n")
    r = burst("simulate", str(trace), "--config", str(EXAMPLE_CONFIG))
    assert r.returncode == 2
    assert expect in r.stderr and "bad.swf.gz" in r.stderr and "Traceback" not in r.stderr


def test_missing_trace(tmp_path: Path) -> None:
    r = burst("simulate", str(tmp_path / "nope.swf"), "--config", str(EXAMPLE_CONFIG))
    assert r.returncode == 2 and "nope.swf" in r.stderr


def test_trace_info_json() -> None:
    r = burst("trace", "info", str(EXAMPLE_TRACE), "--output", "json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["jobs"] == 3786


def test_plan_apply_status_on_the_local_cloud(tmp_path: Path) -> None:
    cfg = tmp_path / "burst.yaml"
    cfg.write_text(
        "onprem: {cores: 10}\n"
        f"backlog: {{kind: trace, path: {EXAMPLE_TRACE}, offset: 154d}}\n"
        "providers:\n  aws: {kind: local, cloud: aws, state_file: cloud.json}\n"
        "policies: [{kind: backlog, for: 0s}]\n"
    )
    plan = burst("plan", "--config", str(cfg), "--output", "json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["actions"], "a backlog on 10 cores should want burst capacity"
    status = burst("status", "--config", str(cfg), "--output", "json")
    assert json.loads(status.stdout)["clusters"] == []  # plan never acts
    applied = burst("apply", "--config", str(cfg), "--output", "json")
    assert applied.returncode == 0, applied.stderr
    assert json.loads(applied.stdout)["transitions"]
    status = json.loads(burst("status", "--config", str(cfg), "--output", "json").stdout)
    assert status["clusters"] and status["clusters"][0]["state"] == "PROVISIONING"
    assert (tmp_path / "cloud.json").exists()
    cid = status["clusters"][0]["cluster"]
    drained = burst("drain", cid, "--config", str(cfg), "--output", "json")
    assert drained.returncode == 0, drained.stderr
    assert json.loads(drained.stdout) == {"cluster": cid, "state": "REMOVING", "hard_stop": False}  # never took work
    missing = burst("drain", "no-such-cluster", "--config", str(cfg))
    assert missing.returncode == 2 and "no cluster 'no-such-cluster'" in missing.stderr


def test_providers_lists_offerings() -> None:
    r = burst("providers", "--config", str(EXAMPLE_CONFIG), "--output", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {r["provider"] for r in rows} == {"tsystems", "aws", "gce"}
    assert all(r["price_per_hour"] >= 0 for r in rows)


def test_help_shows_examples() -> None:
    r = burst("--help")
    assert r.returncode == 0 and "burst simulate" in r.stdout


def test_run_stops_cleanly_on_sigterm_while_it_starts(tmp_path: Path) -> None:
    """A pod deleted while burst imports its SDKs and opens the store: exit 0, no traceback, and
    no cluster touched (the signal's default action would have killed it with -15)."""
    import signal
    import time

    cfg = tmp_path / "burst.yaml"
    cfg.write_text(
        f"state: sqlite:///{tmp_path / 'burst.db'}\nonprem: {{cores: 8}}\nproviders: {{sim: {{kind: local}}}}\n"
    )
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "burst.cli", "run", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    time.sleep(1.0)  # importing the CLI and the SDKs, or opening the store: before the first tick
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
