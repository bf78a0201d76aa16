"""CCE and Keystone answers, fuzzed: one answer per call corrupted (a field dropped or retyped,
NaN/huge numbers, truncated, non-UTF-8, deeply nested, another status) by a proxy in front of the
fake, reached through an ordinary clouds.yaml.  The provider returns a sane result or raises a
typed BurstError ("cloud answered malformed data: …"); never KeyError/TypeError, never a hang."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from burst_tsystems import TSystemsProvider, TSystemsProviderConfig
from hypothesis import given
from hypothesis import strategies as st

from burst.api import CloudStatus, ClusterSpec, ProviderContext
from burst.testing.fuzzing import answer_fuzz_settings
from burst.testing.garble import PROVIDER_CALLS, GarblingProxy, Mutation, assert_typed_error_or_sane, mutations

from .conftest import CceFake

CID = "burst-fz01"
OWNER = "cern-burst"
BASE = {
    "kind": "tsystems",
    "cloud": "burst-test",
    "region": "eu-de",
    "vpc_id": "vpc-1",
    "subnet_id": "net-1",
    "keypair": "burst-key",
}


def _spec() -> ClusterSpec:
    return ClusterSpec(
        cluster_id=CID, provider="otc", region=BASE["region"], flavor="s3.2xlarge.4", nodes=2, owner=OWNER
    )


@pytest.fixture
def garbled(
    cce: CceFake, ctx: ProviderContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[GarblingProxy, TSystemsProvider]]:
    with GarblingProxy(cce.base_url) as proxy:
        clouds = tmp_path / "garbled" / "clouds.yaml"
        clouds.parent.mkdir()
        clouds.write_text(cce.clouds_yaml().replace(cce.base_url, proxy.url))
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
        provider = TSystemsProviderConfig.model_validate(BASE).build("otc", ctx)
        for _ in range(20):
            if provider.create_cluster(_spec()).status is CloudStatus.READY:
                break
        assert provider.get_cluster(CID).status is CloudStatus.READY
        yield proxy, provider


@answer_fuzz_settings()
@given(op=st.sampled_from(PROVIDER_CALLS), mutation=mutations())
def test_a_corrupted_answer_is_a_typed_error_or_a_sane_result(
    garbled: tuple[GarblingProxy, TSystemsProvider], op: str, mutation: Mutation
) -> None:
    proxy, provider = garbled
    assert_typed_error_or_sane(proxy, provider, op, mutation, _spec())
