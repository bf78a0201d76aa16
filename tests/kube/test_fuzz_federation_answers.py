"""Kubernetes API answers to the kubefed federation, fuzzed: one answer per call of the host or
the member corrupted (a field dropped or retyped, NaN/huge numbers, truncated, non-UTF-8, deeply
nested, another status) by proxies in front of the test API servers.  join, running, drain and
undrain return what they promise or raise FederationError; never KeyError/TypeError, never a hang."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burst.api import FederationContext, FederationError, JoinStatus, SimClock
from burst.federation.kubefed import KubefedConfig, KubefedFederation
from burst.testing.fuzzing import fuzz_examples
from burst.testing.garble import GarblingProxy, Mutation, mutations
from burst.testing.kube_server import KubeApiServer
from tests.kube.conftest import record

NS = "kube-federation-system"
Garbled = tuple[GarblingProxy, GarblingProxy, KubefedFederation, str]


@pytest.fixture
def garbled(host: KubeApiServer, member: KubeApiServer, clock: SimClock, tmp_path: Path) -> Iterator[Garbled]:
    with GarblingProxy(host.url) as host_proxy, GarblingProxy(member.url) as member_proxy:
        (tmp_path / "host.kubeconfig").write_text(host.kubeconfig(name="condor-host").replace(host.url, host_proxy.url))
        cfg = KubefedConfig(host_kubeconfig="host.kubeconfig", host_context="condor-host")
        fed = cfg.build(FederationContext(clock=clock, owner="cern-burst", config_dir=str(tmp_path)))
        member_kubeconfig = member.kubeconfig().replace(member.url, member_proxy.url)
        fed.join(record(), member_kubeconfig)
        host.set_condition("core.kubefed.io/v1beta1", "kubefedclusters", "aws-burst-1", "Ready", "True", namespace=NS)
        assert fed.join(record(), member_kubeconfig).ready
        yield host_proxy, member_proxy, fed, member_kubeconfig


@settings(
    max_examples=fuzz_examples(),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(op=st.sampled_from(["join", "running", "drain", "undrain"]), on_host=st.booleans(), mutation=mutations())
def test_a_corrupted_answer_is_a_federation_error_or_a_sane_result(
    garbled: Garbled, op: str, on_host: bool, mutation: Mutation
) -> None:
    host_proxy, member_proxy, fed, member_kubeconfig = garbled
    proxy = host_proxy if on_host else member_proxy
    proxy.arm(mutation)
    try:
        if op == "join":
            result: object = fed.join(record(), member_kubeconfig)
            assert isinstance(result, JoinStatus) and isinstance(result.message, str)
        elif op == "running":
            result = fed.running(record())
            assert isinstance(result, int) and 0 <= result <= 10**7
        elif op == "drain":
            result = fed.drain(record())
            assert isinstance(result, int) and 0 <= result <= 10**7
        else:
            fed.undrain(record())
    except FederationError:
        return
    finally:
        proxy.disarm()
