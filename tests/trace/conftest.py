"""Shared fixture for the trace tests: writing small trace files, plain or gzipped."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write ``text`` to ``tmp_path/name`` (gzipped when the name ends in .gz)."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        if name.endswith(".gz"):
            with gzip.open(path, "wt", encoding="latin-1") as fh:
                fh.write(text)
        else:
            path.write_text(text, encoding="latin-1")
        return path

    return _write
