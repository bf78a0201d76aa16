"""Magnum, Nova and Keystone answers, fuzzed: one answer per call corrupted (a field dropped or retyped,
NaN/huge numbers, truncated, non-UTF-8, deeply nested, another status) by a proxy in front of the
fake, reached through an ordinary clouds.yaml.  The provider returns a sane result or raises a
typed BurstError ("cloud answered malformed data: …"); never KeyError/TypeError, never a hang."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from burst_openstack import OpenStackProvider, OpenStackProviderConfig
from hypothesis import given
from hypothesis import strategies as st

from burst.api import CloudStatus, ClusterSpec, ProviderContext
from burst.testing.fuzzing import answer_fuzz_settings
from burst.testing.garble import PROVIDER_CALLS, GarblingProxy, Mutation, assert_typed_error_or_sane, mutations

from .conftest import MagnumFake

CID = "burst-fz01"
OWNER = "cern-burst"
BASE = {
    "kind": "openstack",
    "cloud": "burst-test",
    "region": "cern",
    "cluster_template": "kubernetes-1.29",
    "keypair": "burst-key",
}


def _spec() -> ClusterSpec:
    return ClusterSpec(cluster_id=CID, provider="cern", region=BASE["region"], flavor="m2.xlarge", nodes=2, owner=OWNER)


@pytest.fixture
def garbled(
    magnum: MagnumFake, ctx: ProviderContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[GarblingProxy, OpenStackProvider]]:
    with GarblingProxy(magnum.base_url) as proxy:
        clouds = tmp_path / "garbled" / "clouds.yaml"
        clouds.parent.mkdir()
        clouds.write_text(magnum.clouds_yaml().replace(magnum.base_url, proxy.url))
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
        provider = OpenStackProviderConfig.model_validate(BASE).build("cern", ctx)
        for _ in range(20):
            if provider.create_cluster(_spec()).status is CloudStatus.READY:
                break
        assert provider.get_cluster(CID).status is CloudStatus.READY
        yield proxy, provider


@answer_fuzz_settings()
@given(op=st.sampled_from(PROVIDER_CALLS), mutation=mutations())
def test_a_corrupted_answer_is_a_typed_error_or_a_sane_result(
    garbled: tuple[GarblingProxy, OpenStackProvider], op: str, mutation: Mutation
) -> None:
    proxy, provider = garbled
    assert_typed_error_or_sane(proxy, provider, op, mutation, _spec())
