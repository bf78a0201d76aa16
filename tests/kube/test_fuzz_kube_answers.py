"""Kubernetes API answers to the backlog source, fuzzed: one answer per poll corrupted (a field
dropped or retyped, NaN/huge quantities, truncated, non-UTF-8, deeply nested, another status) by
a proxy in front of the test API server.  ``poll`` returns a sane Demand or raises
BacklogUnavailable (stale demand, never zero); never KeyError/TypeError, never a hang."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from burst.api import BacklogContext, BacklogUnavailable, SimClock
from burst.backlog.kubernetes import KubernetesBacklog, KubernetesBacklogConfig
from burst.testing.fuzzing import fuzz_examples
from burst.testing.garble import GarblingProxy, Mutation, mutations
from burst.testing.kube_server import KubeApiServer
from burst.units import MAX_CORES
from tests.kube.conftest import START


@pytest.fixture
def garbled(
    server: KubeApiServer, clock: SimClock, tmp_path: Path
) -> Iterator[tuple[GarblingProxy, KubernetesBacklog]]:
    server.add_pod("old", cpu="500m", memory="2Gi", unschedulable=True, created=START - timedelta(minutes=30))
    server.add_pod("gpu", cpu="250m", memory="1.5Gi", gpus=2, unschedulable=True)
    server.add_pod("run", cpu="4", memory="1Gi", node="n1", phase="Running")
    clock.advance(60)
    with GarblingProxy(server.url) as proxy:
        (tmp_path / "host.kubeconfig").write_text(server.kubeconfig().replace(server.url, proxy.url))
        cfg = KubernetesBacklogConfig(kubeconfig="host.kubeconfig", timeout="5s")
        source = cfg.build(BacklogContext(clock=clock, config_dir=str(tmp_path)))
        assert isinstance(source, KubernetesBacklog) and source.poll().pending_jobs == 2
        yield proxy, source


@settings(
    max_examples=fuzz_examples(),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(mutation=mutations())
def test_a_corrupted_answer_is_backlog_unavailable_or_a_sane_demand(
    garbled: tuple[GarblingProxy, KubernetesBacklog], mutation: Mutation
) -> None:
    proxy, source = garbled
    proxy.arm(mutation)
    try:
        demand = source.poll()
    except BacklogUnavailable:
        return
    finally:
        proxy.disarm()
    for b in demand.pending:
        assert 0 < b.shape.cpus <= MAX_CORES and b.count >= 0, (mutation, b)
        assert math.isfinite(b.oldest_wait_s) and b.oldest_wait_s >= 0, (mutation, b)
    assert 0 <= demand.running_cores <= MAX_CORES * 1000, (mutation, demand)
