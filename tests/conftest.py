"""Session fixtures shared by the core tests: a throwaway PostgreSQL server and paths."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from burst.testing.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT.parent / "shared" / "traces"
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server of our own on 127.0.0.1, gone after the session.  Fails loudly when the
    binaries are missing: the README's test command installs them."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()
