"""Fixtures: fake Kubernetes API servers (one per "cluster") and official clients bound to them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from burst.api import SimClock
from burst.testing.kube_server import KubeApiServer

START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> SimClock:
    return SimClock(START)


@pytest.fixture
def server(clock: SimClock) -> Iterator[KubeApiServer]:
    with KubeApiServer(clock=clock.now) as srv:
        yield srv


def api_client(srv: KubeApiServer, token: str | None = None) -> Any:
    """The official client, configured from the server's kubeconfig exactly as a user's would be."""
    text = srv.kubeconfig(token=token)
    return config.new_client_from_config_dict(yaml.safe_load(text), persist_config=False)  # type: ignore[no-untyped-call]


@pytest.fixture
def api(server: KubeApiServer) -> Iterator[Any]:
    c = api_client(server)
    yield c
    c.close()


@pytest.fixture
def core(api: Any) -> Any:
    return client.CoreV1Api(api)
