"""Fixtures: a fresh fake GKE server per test on a random loopback port, stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .fake_gke import FakeGke


@pytest.fixture
def gke() -> Iterator[FakeGke]:
    with FakeGke() as server:
        yield server
