"""The shared kube helpers: kubeconfig handling, dict access through the official client, errors."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from burst.api import BacklogUnavailable, FederationError
from burst.federation.kube import (
    Kind,
    Kube,
    KubeconfigError,
    client_from_kubeconfig,
    k8s_name,
    kube_errors,
    kubeconfig_endpoint,
    label_value,
    parse_kubeconfig,
    status_of,
)
from burst.testing.kube_server import KubeApiServer

KFC = Kind("core.kubefed.io/v1beta1", "KubeFedCluster", "kubefedclusters")


def _kube(server: KubeApiServer) -> Kube:
    api, endpoint = client_from_kubeconfig(server.kubeconfig())
    return Kube(api, endpoint, page_size=2)


def test_kube_reads_and_writes_custom_objects_as_dicts_and_pages_lists(server: KubeApiServer) -> None:
    kube = _kube(server)
    for i in range(5):
        assert kube.create(KFC, {"metadata": {"name": f"m{i}"}, "spec": {"apiEndpoint": f"https://m{i}"}}, "default")
    assert kube.create(KFC, {"metadata": {"name": "m0"}}, "default") is None  # already exists
    assert [o["metadata"]["name"] for o in kube.list(KFC, "default")] == [f"m{i}" for i in range(5)]
    assert len([r for r in server.requests if r.path.endswith("/kubefedclusters") and r.method == "GET"]) == 3
    assert kube.patch(KFC, "m1", {"metadata": {"labels": {"a": "b"}}}, "default")["metadata"]["labels"] == {"a": "b"}
    assert [o["metadata"]["name"] for o in kube.list(KFC, labels="a=b")] == ["m1"]
    assert kube.get(KFC, "nope", "default") is None
    assert kube.delete(KFC, "m1", "default") and not kube.delete(KFC, "m1", "default")
    kube.close()


def test_kubeconfig_context_and_endpoint(server: KubeApiServer, tmp_path: Path) -> None:
    doc = parse_kubeconfig(server.kubeconfig(name="condor-host"))
    assert kubeconfig_endpoint(doc) == kubeconfig_endpoint(doc, "condor-host")
    assert kubeconfig_endpoint(doc).server == server.url and kubeconfig_endpoint(doc).ca_data == server.ca_data
    with pytest.raises(KubeconfigError, match="no context 'other'"):
        kubeconfig_endpoint(doc, "other")
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(b"PEM")
    cluster = doc["clusters"][0]["cluster"]
    del cluster["certificate-authority-data"]
    cluster["certificate-authority"] = str(ca_file)
    assert kubeconfig_endpoint(doc).ca_data == base64.b64encode(b"PEM").decode()
    with pytest.raises(KubeconfigError, match="no clusters"):
        parse_kubeconfig(yaml.safe_dump({"users": []}))


def test_errors_name_the_action_and_endpoint_but_never_the_token(server: KubeApiServer) -> None:
    api, endpoint = client_from_kubeconfig(server.kubeconfig(token="wrong-token-123"))
    kube = Kube(api, endpoint)
    with pytest.raises(FederationError) as err, kube_errors("kubefed: joining m1: host", FederationError, endpoint):
        kube.get(KFC, "m1", "default")
    assert str(err.value).startswith(f"kubefed: joining m1: host: the API server at {server.url} rejected")
    assert "wrong-token-123" not in str(err.value) and status_of(err.value) == 401
    server.inject_fault("GET", "/kubefedclusters/m1", 403, "Forbidden")
    good = _kube(server)
    with (
        pytest.raises(BacklogUnavailable, match="403 Forbidden: missing RBAC permission"),
        kube_errors("reading", BacklogUnavailable, good.endpoint),
    ):
        good.get(KFC, "m1", "default")


def test_names_and_label_values() -> None:
    assert k8s_name("AWS_Burst.1") == "aws-burst-1"
    assert label_value("cern burst/prod") == "cern-burst-prod"
    assert len(label_value("x" * 100)) == 63
    with pytest.raises(FederationError, match="cannot make a Kubernetes name"):
        k8s_name("___")
