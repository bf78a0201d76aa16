"""Every GKE error the provider must understand, as the real SDK raises it from a real HTTP answer
(google.rpc.Status bodies, chosen status codes), mapped to burst's typed errors at one boundary."""

from __future__ import annotations

from typing import Any

import pytest
from burst_gce import ClusterBusy, RequestRejected
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc

from burst.api import (
    AuthFailed,
    CapacityUnavailable,
    CloudStatus,
    NotFound,
    ProviderError,
    ProvisioningFailed,
    QuotaExceeded,
    Throttled,
    is_fallback,
)

from .fake_gke import FakeGke
from .support import create_until_ready, provider, spec

RATE_INFO = [
    {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "RATE_LIMIT_EXCEEDED",
        "domain": "googleapis.com",
        "metadata": {"service": "container.googleapis.com", "quota_metric": "container.googleapis.com/write_requests"},
    }
]

CASES: list[tuple[str, int, str, str, dict[str, Any], type[ProviderError]]] = [  # label, http, status, message, …
    (
        "regional cpu quota (403, as GKE sends it)",
        403,
        "PERMISSION_DENIED",
        "Insufficient regional quota to satisfy request: resource \"CPUS\": request requires '24.0' and is short "
        "'16.0'. project has a quota of '8.0' with '8.0' available.",
        {},
        QuotaExceeded,
    ),
    (
        "missing permission",
        403,
        "PERMISSION_DENIED",
        'Required "container.clusters.create" permission(s) for "projects/burst-test".',
        {},
        AuthFailed,
    ),
    ("bad token", 401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", {}, AuthFailed),
    (
        "rate limit (429 RESOURCE_EXHAUSTED + RATE_LIMIT_EXCEEDED)",
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute' of service "
        "'container.googleapis.com' for consumer 'project_number:42'.",
        {"details": RATE_INFO, "headers": {"Retry-After": "17"}},
        Throttled,
    ),
    (
        "resource quota (429 RESOURCE_EXHAUSTED, no rate)",
        429,
        "RESOURCE_EXHAUSTED",
        "Quota 'N2_CPUS' exceeded. Limit: 24.0 in region europe-west4.",
        {},
        QuotaExceeded,
    ),
    ("bare 429", 429, "RESOURCE_EXHAUSTED", "Too many requests.", {}, Throttled),
    (
        "stockout",
        503,
        "UNAVAILABLE",
        "GCE_STOCKOUT: The zone 'projects/burst-test/zones/europe-west4-a' does not have enough resources available "
        "to fulfill the request. Try a different zone, or try again later.",
        {},
        CapacityUnavailable,
    ),
    (
        "zone resource pool exhausted",
        400,
        "FAILED_PRECONDITION",
        "ZONE_RESOURCE_POOL_EXHAUSTED: A n2-standard-8 VM instance is currently unavailable in the "
        "europe-west4-a zone.",
        {},
        CapacityUnavailable,
    ),
    ("invalid machine type", 400, "INVALID_ARGUMENT", "Invalid machine type n2-standard-9000.", {}, RequestRejected),
    ("server error", 500, "INTERNAL", "Internal error encountered.", {}, ProviderError),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_create_errors_map_to_burst_types(
    gke: FakeGke, case: tuple[str, int, str, str, dict[str, Any], type[ProviderError]]
) -> None:
    label, http, status, message, extra, expected = case
    gke.inject_error("POST", r"/clusters$", http, status, message, **extra)
    with pytest.raises(ProviderError) as caught:
        provider(gke).create_cluster(spec())
    err = caught.value
    assert type(err) is expected, f"{label}: got {type(err).__name__}: {err}"
    # Raised `from` the SDK's exception.  On 401 google-auth's session first tries to refresh the
    # token; anonymous credentials cannot, so the cause is google-auth's error instead.
    assert isinstance(err.__cause__, gexc.GoogleAPICallError | auth_exc.GoogleAuthError)
    assert "creating cluster burst-c1" in str(err)
    assert len(gke.sent("POST", r"/clusters$")) == 1  # retry=None: the SDK did not retry on its own
    assert gke.clusters == {}


def test_throttled_honours_retry_after(gke: FakeGke) -> None:
    gke.inject_error("POST", r"/clusters$", 429, "RESOURCE_EXHAUSTED", "per minute", details=RATE_INFO,
                     headers={"Retry-After": "17"})  # fmt: skip
    with pytest.raises(Throttled) as caught:
        provider(gke).create_cluster(spec())
    assert caught.value.retry_after == 17.0


def test_fallback_errors_are_fallbacks_and_auth_is_final(gke: FakeGke) -> None:
    gke.inject_error("POST", r"/clusters$", 403, "PERMISSION_DENIED", "Insufficient regional quota: CPUS")
    with pytest.raises(QuotaExceeded) as quota:
        provider(gke).create_cluster(spec())
    assert is_fallback(quota.value)
    gke.inject_error("POST", r"/clusters$", 401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
    with pytest.raises(AuthFailed) as auth:
        provider(gke).create_cluster(spec())
    assert not auth.value.retryable and not is_fallback(auth.value)


def test_not_found_on_get(gke: FakeGke) -> None:
    with pytest.raises(NotFound) as caught:
        provider(gke).get_cluster("burst-nope")
    assert isinstance(caught.value.__cause__, gexc.NotFound)


def test_get_does_not_retry_unavailable(gke: FakeGke) -> None:
    """get_cluster retries 503 by default in the SDK; burst passes retry=None and retries per tick."""
    gke.inject_error("GET", r"/clusters/burst-c1$", 503, "UNAVAILABLE", "The service is currently unavailable.")
    with pytest.raises(ProviderError) as caught:
        provider(gke).get_cluster("burst-c1")
    assert type(caught.value) is ProviderError and caught.value.retryable
    assert len(gke.sent("GET", r"/clusters/burst-c1$")) == 1


def test_throttled_list(gke: FakeGke) -> None:
    gke.inject_error("GET", r"/clusters$", 429, "RESOURCE_EXHAUSTED", "Read requests per minute", details=RATE_INFO)
    with pytest.raises(Throttled):
        provider(gke).list_clusters("cern-burst")


def test_resize_busy_maps_to_cluster_busy(gke: FakeGke) -> None:
    p = provider(gke)
    create_until_ready(p, spec())
    busy = "Operation operation-1 is currently upgrading cluster burst-c1. Please wait and try again once it is done."
    gke.inject_error("POST", r":setSize$", 400, "FAILED_PRECONDITION", busy)
    with pytest.raises(ClusterBusy) as caught:
        p.resize("burst-c1", 6)
    assert caught.value.retryable


def test_resize_quota_and_stockout(gke: FakeGke) -> None:
    p = provider(gke)
    create_until_ready(p, spec())
    gke.inject_error("POST", r":setSize$", 403, "PERMISSION_DENIED",
                     "Insufficient regional quota to satisfy request: resource \"CPUS\"")  # fmt: skip
    with pytest.raises(QuotaExceeded):
        p.resize("burst-c1", 60)
    gke.inject_error("POST", r":setSize$", 503, "UNAVAILABLE", "ZONE_RESOURCE_POOL_EXHAUSTED in europe-west4-a")
    with pytest.raises(CapacityUnavailable):
        p.resize("burst-c1", 60)


@pytest.mark.parametrize(
    ("condition", "canonical", "message", "expected"),
    [
        (
            "GCE_STOCKOUT",
            "RESOURCE_EXHAUSTED",
            "Try a different location, or try again later: Google Compute Engine does not have enough resources "
            "available to fulfill request: europe-west4-a.",
            CapacityUnavailable,
        ),
        (
            "GCE_QUOTA_EXCEEDED",
            "RESOURCE_EXHAUSTED",
            'Insufficient quota to satisfy the request: resource "NVIDIA_T4_GPUS".',
            QuotaExceeded,
        ),
        ("UNKNOWN", "INTERNAL", "Internal error while creating the node pool.", ProvisioningFailed),
    ],
)
def test_asynchronous_create_failures(
    gke: FakeGke, condition: str, canonical: str, message: str, expected: type[ProviderError]
) -> None:
    """GKE accepts the create, then the operation ends DONE with an error and the cluster in ERROR."""
    gke.create_polls = 2
    gke.fail_next("CREATE_CLUSTER", condition, canonical, message)
    p = provider(gke)
    with pytest.raises(ProviderError) as caught:
        for _ in range(10):
            assert p.create_cluster(spec()).status is CloudStatus.CREATING
    assert type(caught.value) is expected
    assert "must be deleted" in str(caught.value)
    assert message.split(":", maxsplit=1)[0] in str(caught.value)
    failed = p.get_cluster("burst-c1")
    assert failed.status is CloudStatus.FAILED and message in failed.message
    with pytest.raises(ProvisioningFailed, match="delete it"):
        p.resize("burst-c1", 5)
    # The failed cluster can be removed like any other, and is then gone.
    with pytest.raises(NotFound):
        for _ in range(10):
            assert p.delete_cluster("burst-c1").status is CloudStatus.DELETING
    assert gke.clusters == {} and len(gke.sent("POST", r"/clusters$")) == 1


def test_unreachable_api_is_a_retryable_provider_error() -> None:
    from .fake_gke import FakeGke as _Fake

    server = _Fake().start()
    p = provider(server)
    server.stop()  # nothing listens on that port any more
    with pytest.raises(ProviderError, match="cannot reach the GKE API") as caught:
        p.get_cluster("burst-c1")
    assert caught.value.retryable
