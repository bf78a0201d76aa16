"""Fixtures of the end-to-end tests; the helpers live in ``e2e_harness`` (importable by the tests)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import e2e_harness as h

from burst.testing.kube_server import KubeApiServer


@pytest.fixture
def runs() -> Iterator[list[h.BurstRun]]:
    """Every daemon a test starts; any still running at the end is stopped (then killed)."""
    yield from h.stopped_at_end()


@pytest.fixture
def host() -> Iterator[KubeApiServer]:
    """The on-prem host cluster (KubeFed installed, KubeFed controller stand-in on)."""
    yield from h.host_server()
