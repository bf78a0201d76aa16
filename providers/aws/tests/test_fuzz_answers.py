"""EKS, EC2 and Auto Scaling answers, fuzzed: one answer per call corrupted (a field dropped or
retyped, NaN/huge numbers, truncated, non-UTF-8, deeply nested, another status) by a proxy in
front of the moto-backed fake.  The provider returns a sane result or raises a typed BurstError
("cloud answered malformed data: …"); never KeyError/TypeError, never a hang."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session
import pytest
from botocore.loaders import Loader
from burst_aws import AwsProvider
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burst.answers import check_answer
from burst.errors import BurstError
from burst.model import CloudStatus
from burst.testing.fuzzing import fuzz_examples
from burst.testing.garble import GarblingProxy, Mutation, mutations

from .fake_aws import FakeAws
from .support import OWNER, config, spec

CID = "burst-fz01"
OPERATIONS = ("get_cluster", "list_clusters", "quota", "credentials", "create_cluster", "delete_missing", "resize")


@pytest.fixture
def garbled(fake: FakeAws, data_loader: Loader) -> Any:
    with GarblingProxy(fake.url) as proxy:
        cfg = config(proxy.url)
        core = botocore.session.get_session()
        core.register_component("data_loader", data_loader)
        session = boto3.session.Session(botocore_session=core, region_name=cfg.region)
        provider = AwsProvider(name="aws", config=cfg, owner=OWNER, clients=cfg.make_clients(session))
        for _ in range(4):
            if provider.create_cluster(spec(cluster_id=CID, nodes=2)).status is CloudStatus.READY:
                break
        assert provider.get_cluster(CID).status is CloudStatus.READY
        yield proxy, provider


def _call(provider: AwsProvider, op: str) -> object:
    if op == "get_cluster":
        return provider.get_cluster(CID)
    if op == "list_clusters":
        return provider.list_clusters(OWNER)
    if op == "quota":
        return provider.quota()
    if op == "credentials":
        return provider.credentials(CID)
    if op == "create_cluster":
        return provider.create_cluster(spec(cluster_id=CID, nodes=2))  # exists: reads and adopts it
    if op == "resize":
        return provider.resize(CID, 2)  # already 2: reads, changes nothing
    return provider.delete_cluster("burst-nope")


@settings(
    max_examples=fuzz_examples(),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(op=st.sampled_from(OPERATIONS), mutation=mutations())
def test_a_corrupted_answer_is_a_typed_error_or_a_sane_result(garbled: Any, op: str, mutation: Mutation) -> None:
    proxy, provider = garbled
    proxy.arm(mutation)
    try:
        result = _call(provider, op)
    except BurstError:
        return
    finally:
        proxy.disarm()
    assert check_answer(result) == "", (op, mutation, result)
