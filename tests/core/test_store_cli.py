"""``burst store``: the operator's way to see and move the schema revision (a rollback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from burst.store import schema_revisions

ROOT = Path(__file__).resolve().parents[2]


def burst(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "burst.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


def test_store_verbs_report_move_and_refuse(tmp_path: Path) -> None:
    db = tmp_path / "burst.db"
    cfg = tmp_path / "burst.yaml"
    cfg.write_text(f"state: sqlite:///{db}\nonprem: {{cores: 64}}\nproviders: {{sim: {{kind: local}}}}\n")
    head, older = schema_revisions()[-1], schema_revisions()[-2]

    r = burst("store", "current", "-c", str(cfg), cwd=tmp_path)
    assert r.returncode == 2 and f"no store at {db}" in r.stderr
    assert not db.exists(), "a read-only verb created the store"

    r = burst("store", "upgrade", "-c", str(cfg), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == head

    r = burst("store", "downgrade", "-c", str(cfg), "--to", older, cwd=tmp_path)
    assert (r.returncode, r.stdout.strip()) == (0, older), r.stderr
    r = burst("store", "current", "-c", str(cfg), cwd=tmp_path)
    assert r.stdout.strip() == older

    r = burst("store", "downgrade", "-c", str(cfg), "--to", "9999", cwd=tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "unknown schema revision '9999'" in r.stderr

    # Any verb that opens the store brings it back to the newest schema.
    r = burst("status", "-c", str(cfg), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert burst("store", "current", "-c", str(cfg), cwd=tmp_path).stdout.strip() == head
