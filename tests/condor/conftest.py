"""Makes the fakes module importable (pytest runs with --import-mode=importlib) and hands out a
fresh fake connector per test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from condor_fakes import FakeConnector


@pytest.fixture
def connector() -> FakeConnector:
    return FakeConnector()
