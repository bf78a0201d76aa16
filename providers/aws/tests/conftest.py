"""Fixtures: one moto server per session (reset before each test) behind a fresh fault proxy.

The provider runs its production code path: real boto3 clients, credentials from the standard
chain (environment variables set here), talking HTTP to 127.0.0.1.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.loaders import Loader, create_loader
from burst_aws import AwsProvider
from moto.server import ThreadedMotoServer

from burst.api import ProviderContext, SimClock

from .fake_aws import FakeAws
from .support import OWNER, ProviderFactory, config


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Credentials through the boto3 chain (env), nothing read from the user's ~/.aws, no IMDS."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDBURSTTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "burst-test-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def fake(moto_url: str, aws_env: None) -> Iterator[FakeAws]:
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10).read()
    proxy = FakeAws(moto_url).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def data_loader() -> Loader:
    """botocore's parsed service models, shared: parsing them again for every provider built
    costs more CPU than the tests themselves.  Credentials are still resolved per provider."""
    return create_loader()


def _ctx(owner: str) -> ProviderContext:
    return ProviderContext(clock=SimClock(datetime(2026, 11, 25, tzinfo=UTC)), owner=owner)


@pytest.fixture
def make_provider(fake: FakeAws, data_loader: Loader) -> ProviderFactory:
    """Providers on the production client setup (``make_clients``), pointed at the proxy."""

    def make(owner: str = OWNER, **overrides: Any) -> AwsProvider:
        cfg = config(fake.url, **overrides)
        core = botocore.session.get_session()
        core.register_component("data_loader", data_loader)
        session = boto3.session.Session(botocore_session=core, profile_name=cfg.profile, region_name=cfg.region)
        return AwsProvider(name="aws", config=cfg, owner=owner, clients=cfg.make_clients(session))

    return make


@pytest.fixture
def make_built(fake: FakeAws) -> ProviderFactory:
    """Providers made exactly as burst makes them: ``AwsProviderConfig.build``."""

    def make(owner: str = OWNER, **overrides: Any) -> AwsProvider:
        return config(fake.url, **overrides).build("aws", _ctx(owner))

    return make


@pytest.fixture
def make_offline(aws_env: None) -> ProviderFactory:
    """Providers for tests that never reach AWS (offerings, config, local failures): no server needed."""

    def make(owner: str = OWNER, **overrides: Any) -> AwsProvider:
        return config(overrides.pop("endpoint_url", "http://127.0.0.1:9"), **overrides).build("aws", _ctx(owner))

    return make


@pytest.fixture
def provider(make_provider: ProviderFactory) -> AwsProvider:
    return make_provider()
