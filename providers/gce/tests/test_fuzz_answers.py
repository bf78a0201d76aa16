"""GKE and Compute answers, fuzzed: one answer per call corrupted (a field dropped or retyped,
NaN/huge numbers, truncated, non-UTF-8, deeply nested, another status) by a proxy in front of
the fake GKE server.  The provider returns a sane result or raises a typed BurstError ("cloud
answered malformed data: …"); never KeyError/TypeError, never a hang."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from burst_gce import GceProvider
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burst.answers import check_answer
from burst.errors import BurstError
from burst.testing.fuzzing import fuzz_examples
from burst.testing.garble import GarblingProxy, Mutation, mutations

from .fake_gke import FakeGke
from .support import OWNER, create_until_ready, spec

CID = "burst-fz01"
OPERATIONS = ("get_cluster", "list_clusters", "quota", "credentials", "create_cluster", "delete_missing", "resize")


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


def _call(provider: GceProvider, op: str) -> object:
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
def test_a_corrupted_answer_is_a_typed_error_or_a_sane_result(
    garbled: tuple[GarblingProxy, GceProvider], op: str, mutation: Mutation
) -> None:
    proxy, provider = garbled
    proxy.arm(mutation)
    try:
        result = _call(provider, op)
    except BurstError:
        return
    finally:
        proxy.disarm()
    assert check_answer(result) == "", (op, mutation, result)
