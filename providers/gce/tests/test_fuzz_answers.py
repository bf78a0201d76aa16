"""GKE and Compute answers, fuzzed: one answer per call corrupted (a field dropped or retyped,
NaN/huge numbers, truncated, non-UTF-8, deeply nested, another status) by a proxy in front of
the fake GKE server.  The provider returns a sane result or raises a typed BurstError ("cloud
answered malformed data: …"); never KeyError/TypeError, never a hang."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from burst_gce import GceProvider
from hypothesis import given
from hypothesis import strategies as st

from burst.testing.fuzzing import answer_fuzz_settings
from burst.testing.garble import PROVIDER_CALLS, GarblingProxy, Mutation, assert_typed_error_or_sane, mutations

from .fake_gke import FakeGke
from .support import OWNER, create_until_ready, spec

CID = "burst-fz01"


@pytest.fixture
def garbled(gke: FakeGke) -> Iterator[tuple[GarblingProxy, GceProvider]]:
    from burst_gce import GceProviderConfig

    with GarblingProxy(gke.base_url) as proxy:
        raw: dict[str, Any] = {
            "kind": "gce",
            "project": "burst-test",
            "location": "europe-west4-a",
            "machine_types": ["n2-standard-8"],
            "api_endpoint": proxy.url,
            "compute_endpoint": proxy.url,
            "credentials": "anonymous",
        }
        provider = GceProvider("gce", GceProviderConfig.model_validate(raw), OWNER)
        create_until_ready(provider, spec(cluster_id=CID, nodes=2))
        yield proxy, provider


@answer_fuzz_settings()
@given(op=st.sampled_from(PROVIDER_CALLS), mutation=mutations())
def test_a_corrupted_answer_is_a_typed_error_or_a_sane_result(
    garbled: tuple[GarblingProxy, GceProvider], op: str, mutation: Mutation
) -> None:
    proxy, provider = garbled
    assert_typed_error_or_sane(proxy, provider, op, mutation, spec(cluster_id=CID, nodes=2))
