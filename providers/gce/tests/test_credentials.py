"""Kubeconfigs for the federation: endpoint + CA from GKE, token from google-auth credentials."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from google.oauth2.credentials import Credentials as OAuthCredentials
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from burst.api import AuthFailed, ProviderError

from .fake_gke import FAKE_CA, FakeGke
from .support import PROJECT, ZONE, create_until_ready, provider, spec

TOKEN = "ya29.test-access-token-not-a-real-one"


def test_kubeconfig_carries_endpoint_ca_and_the_access_token(gke: FakeGke, caplog: pytest.LogCaptureFixture) -> None:
    """With real (already valid) OAuth credentials: every API call and the kubeconfig use the token."""
    caplog.set_level(logging.DEBUG)
    gke.require_token = TOKEN
    creds = OAuthCredentials(token=TOKEN, expiry=datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1))  # type: ignore[no-untyped-call]
    p = provider(gke, creds=creds)
    create_until_ready(p, spec())
    assert {r.headers.get("authorization") for r in gke.requests} == {f"Bearer {TOKEN}"}

    text = p.credentials("burst-c1")
    doc = yaml.safe_load(text)
    endpoint = gke.cluster(PROJECT, ZONE, "burst-c1")["endpoint"]  # type: ignore[index]
    name = f"gke_{PROJECT}_{ZONE}_burst-c1"
    assert doc["current-context"] == name
    assert doc["clusters"] == [
        {"name": name, "cluster": {"server": f"https://{endpoint}", "certificate-authority-data": FAKE_CA}}
    ]
    assert doc["users"] == [{"name": name, "user": {"token": TOKEN}}]
    assert base64.b64decode(FAKE_CA).startswith(b"-----BEGIN CERTIFICATE-----")

    # The official Kubernetes client accepts it as it is.
    api = k8s_client.ApiClient()
    k8s_config.load_kube_config_from_dict(doc, client_configuration=api.configuration)  # type: ignore[no-untyped-call]
    assert api.configuration.host == f"https://{endpoint}"
    assert api.configuration.api_key["BearerToken"] == f"Bearer {TOKEN}"
    assert TOKEN not in caplog.text  # a secret: never logged


def test_anonymous_credentials_give_a_token_less_kubeconfig(gke: FakeGke) -> None:
    """``credentials: anonymous`` (test servers only): no Authorization header, no token in the kubeconfig."""
    p = provider(gke)
    create_until_ready(p, spec())
    doc = yaml.safe_load(p.credentials("burst-c1"))
    assert doc["users"][0]["user"] == {}
    assert all("authorization" not in r.headers for r in gke.requests)


def test_credentials_that_cannot_be_refreshed_are_auth_failed(gke: FakeGke) -> None:
    p = provider(gke)
    create_until_ready(p, spec())
    expired = OAuthCredentials(token=TOKEN, expiry=datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=5))  # type: ignore[no-untyped-call]
    # Same cluster, a provider whose credentials have expired and hold no refresh token.
    stale = provider(gke, creds=expired)
    stale._client = p._api()  # reading the cluster works; only the token for the kubeconfig is stale
    with pytest.raises(AuthFailed) as caught:
        stale.credentials("burst-c1")
    assert TOKEN not in str(caught.value)


def test_missing_application_default_credentials_are_auth_failed(
    gke: FakeGke, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", f"{tmp_path}/no-such-key.json")
    p = provider(gke, credentials="application-default")
    with pytest.raises(AuthFailed, match="application-default"):
        p.get_cluster("burst-c1")
    assert gke.requests == []


def test_credentials_before_the_endpoint_exists(gke: FakeGke) -> None:
    gke.create_polls = 5
    p = provider(gke)
    p.create_cluster(spec())
    with pytest.raises(ProviderError, match="no endpoint yet"):
        p.credentials("burst-c1")
