"""A throwaway PostgreSQL server on 127.0.0.1: the tests' session fixture and the chaos bench use it.

The binaries come from the machine (``initdb``, ``pg_ctl`` on PATH or under
``/usr/lib/postgresql/*/bin``).  ``initdb`` refuses to run as root, so as root the server runs as
``nobody`` in a folder it owns.  ``restart()`` stops the server the hard way (``-m immediate``, as a
crash would) and starts it again on the same port and data: what a failover looks like to clients.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    raise RuntimeError(f"PostgreSQL's {name} is not installed: run scripts/test (it installs postgresql)")


class PostgresServer:
    """``start()`` → a SQLAlchemy URL of the ``postgres`` database; ``stop()`` removes everything."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="burst-pg-"))
        self.data = self.tmp / "data"
        self.port = 0
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.tmp, "nobody")
            self._run_as = ["runuser", "-u", "nobody", "--"]

    def _ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run([*self._run_as, pg_bin("pg_ctl"), "-D", str(self.data), *args], check=check, capture_output=True)

    def start(self) -> str:
        if not self.data.exists():
            subprocess.run(
                [*self._run_as, pg_bin("initdb"), "-D", str(self.data), "-U", "burst", "--auth=trust", "-E", "UTF8"],
                check=True,
                capture_output=True,
            )
            self.port = free_port()
        self._ctl("-l", str(self.tmp / "log"), "-w", "-o", f"-h 127.0.0.1 -p {self.port} -k {self.tmp}", "start")
        return self.url()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://burst@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database on this server (one per bench run); returns its URL."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=burst dbname=postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def restart(self, down_s: float = 0.0) -> None:
        """Crash-stop, stay down ``down_s`` seconds, start again on the same port and data."""
        import time

        self._ctl("-m", "immediate", "stop", check=False)
        time.sleep(down_s)
        self.start()

    def stop(self) -> None:
        self._ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)
