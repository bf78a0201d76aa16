"""The kubeconfig and its ``aws eks get-token``-style bearer token.

moto cannot check such a token (EKS's authenticator does, by calling STS with the URL), so the test
decodes it and re-checks the SigV4 signature with an independent implementation written from the
SigV4 documentation: it only matches when the signed ``x-k8s-aws-id`` header was this cluster's name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import boto3
import pytest
import yaml
from burst_aws import AwsProvider

from burst.api import ProviderError

from .fake_aws import FakeAws
from .support import REGION, ProviderFactory, spec

CID = "burst-7f3a"
SECRET = "burst-test-secret"  # the conftest's AWS_SECRET_ACCESS_KEY


def ready(provider: AwsProvider) -> None:
    for _ in range(3):
        provider.create_cluster(spec())


def decode(token: str) -> str:
    prefix = "k8s-aws-v1."
    assert token.startswith(prefix)
    body = token[len(prefix) :]
    assert "=" not in body  # padding stripped, as aws-iam-authenticator expects
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def sigv4_matches(url: str, cluster_name: str, secret: str) -> bool:
    """Recompute a presigned GET's signature (SigV4 query-string form) with the header value given."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    signature = query.pop("X-Amz-Signature")
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items()))
    headers = {"host": parts.netloc, "x-k8s-aws-id": cluster_name}
    signed = query["X-Amz-SignedHeaders"].split(";")
    canonical_request = "\n".join(
        [
            "GET",
            parts.path or "/",
            canonical_query,
            "".join(f"{h}:{headers[h]}\n" for h in signed),
            ";".join(signed),
            hashlib.sha256(b"").hexdigest(),
        ]
    )
    _key_id, date, region, service, _terminator = query["X-Amz-Credential"].split("/")
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", query["X-Amz-Date"], scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), signature)


def test_kubeconfig_has_endpoint_ca_and_a_presigned_sts_token(provider: AwsProvider, fake: FakeAws) -> None:
    ready(provider)
    fake.clear()
    kubeconfig: dict[str, Any] = yaml.safe_load(provider.credentials(CID))

    (described,) = [r for r in fake.requests if r.operation == "DescribeCluster"]
    assert described.cluster == CID
    assert fake.operations() == ["DescribeCluster"]  # presigning is offline: no STS call was made

    truth = boto3.client("eks", region_name=REGION, endpoint_url=fake.url).describe_cluster(name=CID)["cluster"]
    assert urlsplit(truth["endpoint"]).hostname == "127.0.0.1"  # the fake hands out loopback only
    (cluster,) = kubeconfig["clusters"]
    assert cluster["cluster"] == {
        "server": truth["endpoint"],
        "certificate-authority-data": truth["certificateAuthority"]["data"],
    }
    assert kubeconfig["current-context"] == CID
    (context,) = kubeconfig["contexts"]
    (user,) = kubeconfig["users"]
    assert context["context"] == {"cluster": CID, "user": user["name"]}

    url = decode(user["user"]["token"])
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    assert (parts.scheme, parts.netloc, parts.path) == ("https", f"sts.{REGION}.amazonaws.com", "/")
    assert query["Action"] == "GetCallerIdentity"
    assert query["Version"] == "2011-06-15"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-SignedHeaders"] == "host;x-k8s-aws-id"
    assert query["X-Amz-Expires"] == "60"
    key_id, _date, region, service, _ = query["X-Amz-Credential"].split("/")
    assert (key_id, region, service) == ("AKIDBURSTTEST", REGION, "sts")

    assert sigv4_matches(url, CID, SECRET)
    assert not sigv4_matches(url, "another-cluster", SECRET)  # the cluster name is bound into the token


def test_sts_endpoint_is_configurable(make_built: ProviderFactory, fake: FakeAws) -> None:
    provider = make_built(sts_endpoint_url="https://sts.eu-central-1.vpce.example.internal")
    ready(provider)
    (user,) = yaml.safe_load(provider.credentials(CID))["users"]
    assert urlsplit(decode(user["user"]["token"])).netloc == "sts.eu-central-1.vpce.example.internal"


def test_handler_is_removed_after_signing(provider: AwsProvider, fake: FakeAws) -> None:
    """Each token names its own cluster: a handler left registered would sign the wrong header."""
    ready(provider)
    for name in ("burst-2", "burst-2", "burst-2"):
        provider.create_cluster(spec(name))
    token_a = yaml.safe_load(provider.credentials(CID))["users"][0]["user"]["token"]
    token_b = yaml.safe_load(provider.credentials("burst-2"))["users"][0]["user"]["token"]
    assert sigv4_matches(decode(token_a), CID, SECRET)
    assert sigv4_matches(decode(token_b), "burst-2", SECRET)


def test_no_credentials_while_the_control_plane_is_creating(provider: AwsProvider, fake: FakeAws) -> None:
    fake.lag(creating=1)
    provider.create_cluster(spec())
    with pytest.raises(ProviderError, match="no endpoint yet"):
        provider.credentials(CID)
