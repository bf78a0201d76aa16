"""Shared test helpers: the provider built the way production builds it, against a FakeGke."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from burst_gce import GceProvider, GceProviderConfig
from google.auth.credentials import AnonymousCredentials, Credentials

from burst.api import CloudCluster, CloudStatus, ClusterSpec, Provider, RemovesNodes

from .fake_gke import FakeGke

PROJECT = "burst-test"
ZONE = "europe-west4-a"
OWNER = "cern-burst"
ProviderFactory = Callable[..., GceProvider]

# The compile-time-like check that GceProvider implements burst's Provider protocol (mypy).
_check: Callable[[GceProvider], Provider] = lambda p: p  # noqa: E731
_check_removes: Callable[[GceProvider], RemovesNodes] = lambda p: p  # noqa: E731


def config(gke: FakeGke, **overrides: Any) -> GceProviderConfig:
    """A config as an operator would write it, pointed at the fake's endpoint."""
    raw: dict[str, Any] = {
        "kind": "gce",
        "project": PROJECT,
        "location": ZONE,
        "machine_types": ["n2-standard-8", "n1-standard-8+t4"],
        "spot": True,
        "api_endpoint": gke.base_url,
        "compute_endpoint": gke.base_url,
        "credentials": "anonymous",
    }
    raw.update(overrides)
    return GceProviderConfig.model_validate(raw)


def provider(gke: FakeGke, *, creds: Credentials | None = None, owner: str = OWNER, **overrides: Any) -> GceProvider:
    """A provider whose client is built by production code from the config (REST, api_endpoint).
    ``creds`` injects a google-auth credentials object; config keys go in ``overrides``."""
    return GceProvider("gce", config(gke, **overrides), owner, credentials=creds)


def anonymous() -> Credentials:
    creds: Credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
    return creds


def spec(cluster_id: str = "burst-c1", nodes: int = 3, flavor: str = "n2-standard-8", **kw: Any) -> ClusterSpec:
    return ClusterSpec(
        cluster_id=cluster_id,
        provider="gce",
        region=ZONE,
        flavor=flavor,
        nodes=nodes,
        owner=kw.pop("owner", OWNER),
        campaign=kw.pop("campaign", "moriond-2027"),
        **kw,
    )


def create_until_ready(p: GceProvider, s: ClusterSpec, limit: int = 30) -> list[CloudCluster]:
    """Call create_cluster tick after tick until READY; return every answer."""
    seen = []
    for _ in range(limit):
        c = p.create_cluster(s)
        seen.append(c)
        if c.status is CloudStatus.READY:
            return seen
    raise AssertionError(f"not READY after {limit} ticks: {[c.status for c in seen]}")


def cluster_path(name: str) -> str:
    return f"/v1/projects/{PROJECT}/locations/{ZONE}/clusters/{name}"
