"""Several replicas opening one fresh store at once: every one of them opens it.

Each opener is a separate process started together (two replicas of a Deployment rolled out at
the same moment); the migrations and the installation claim run under a lock, so none fails and
the store ends with one installation row and the schema at its head.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

OPENERS = 6
_OPEN = """
import sys, time
from burst.store import Store
url, start = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start - time.time() - 0.05))
while time.time() < start:  # all six open at the same instant
    pass
s = Store(url, "burst")
s.next_cluster_number()
s.close()
print("opened")
"""


def _open_all(url: str) -> list[subprocess.CompletedProcess[str]]:
    start = time.time() + 2.0  # after every interpreter has imported burst
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN, url, str(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(OPENERS)
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=60)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def _check(url: str) -> None:
    results = _open_all(url)
    failed = [r.stderr.strip().splitlines()[-1:] for r in results if r.returncode != 0]
    assert not failed, failed
    assert all(r.stdout.strip() == "opened" for r in results)
    eng = create_engine(url)
    with eng.connect() as conn:
        rows = conn.execute(text("SELECT key, value FROM meta ORDER BY key")).all()
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    eng.dispose()
    assert dict(rows)["installation"] == "burst"
    assert [k for k, _ in rows].count("installation") == 1
    assert int(dict(rows)["cluster_seq"]) == OPENERS  # each opener numbered one cluster: none lost
    heads = sorted(
        p.name.split("_", 1)[0] for p in (Path(__file__).parents[2] / "burst/migrations/versions").glob("0*.py")
    )
    assert version == heads[-1]


def test_six_processes_open_a_fresh_sqlite_store(tmp_path: Path) -> None:
    _check(f"sqlite:///{tmp_path / 'burst.db'}")


@pytest.mark.postgres
def test_six_processes_open_a_fresh_postgres_store(postgres_url: str) -> None:
    eng = create_engine(postgres_url)
    with eng.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    eng.dispose()
    _check(postgres_url)
