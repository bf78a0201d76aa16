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
from hypothesis import given
from hypothesis import strategies as st

from burst.model import CloudStatus
from burst.testing.fuzzing import answer_fuzz_settings
from burst.testing.garble import PROVIDER_CALLS, GarblingProxy, Mutation, assert_typed_error_or_sane, mutations

from .fake_aws import FakeAws
from .support import OWNER, config, spec

CID = "burst-fz01"


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


@answer_fuzz_settings()
@given(op=st.sampled_from(PROVIDER_CALLS), mutation=mutations())
def test_a_corrupted_answer_is_a_typed_error_or_a_sane_result(garbled: Any, op: str, mutation: Mutation) -> None:
    proxy, provider = garbled
    assert_typed_error_or_sane(proxy, provider, op, mutation, spec(cluster_id=CID, nodes=2))
