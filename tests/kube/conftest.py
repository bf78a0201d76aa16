"""Fixtures: fake Kubernetes API servers (one per "cluster") and official clients bound to them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from burst.api import ClusterRecord, ClusterState, SimClock
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


def record(cluster_id: str = "aws-burst-1") -> ClusterRecord:
    """A burst cluster record in JOINING state, as the reconciler hands it to a federation."""
    return ClusterRecord(
        cluster_id=cluster_id,
        provider="aws",
        region="eu-central-1",
        flavor="m5.2xlarge",
        cpus_per_node=8,
        memory_mb_per_node=32768,
        gpus_per_node=0,
        nodes=2,
        desired_nodes=2,
        state=ClusterState.JOINING,
        state_since=START,
        created_at=START,
        price_per_hour=0.4,
        control_plane_per_hour=0.1,
        currency="USD",
    )


@pytest.fixture
def host(clock: SimClock) -> Iterator[KubeApiServer]:
    """A federation host (KubeFed) or Karmada API server, with its installed namespaces."""
    with KubeApiServer(clock=clock.now) as srv:
        for ns in ("kube-federation-system", "karmada-cluster"):
            srv.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        yield srv


@pytest.fixture
def member(clock: SimClock) -> Iterator[KubeApiServer]:
    """A fresh burst cluster with two nodes."""
    with KubeApiServer(clock=clock.now) as srv:
        srv.add_node("node-1", cpu="8")
        srv.add_node("node-2", cpu="8")
        yield srv
