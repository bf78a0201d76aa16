"""Conformance of the fake API server with the official ``kubernetes`` client (typed, custom
objects, DynamicClient, watch), over HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, config, watch
from kubernetes.dynamic import DynamicClient

from burst.api import SimClock
from burst.testing.kube_server import KubeApiServer
from tests.kube.conftest import START, api_client


def _pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def _status(err: client.ApiException) -> dict[str, Any]:
    body = json.loads(err.body or "")
    assert body["kind"] == "Status"
    return body  # type: ignore[no-any-return]


def test_discovery_shapes_parse_in_the_strict_models(api: Any) -> None:
    version = client.VersionApi(api).get_code()
    assert version.git_version == "v1.31.0" and version.platform == "linux/amd64"
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
    preferred = groups["core.kubefed.io"].preferred_version
    assert preferred is not None and preferred.group_version == "core.kubefed.io/v1beta1"
    assert groups["cluster.karmada.io"].versions[0].version == "v1alpha1"
    assert {"apps", "batch", "rbac.authorization.k8s.io", "coordination.k8s.io"} <= set(groups)
    resources = {r.name: r for r in client.CoreV1Api(api).get_api_resources().resources}
    assert resources["pods"].namespaced and not resources["nodes"].namespaced
    assert "pods/status" in resources and "secrets/status" not in resources


def test_dynamic_client_discovers_and_serves_custom_kinds(api: Any, server: KubeApiServer, tmp_path: Any) -> None:
    dyn = DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))  # type: ignore[no-untyped-call]
    kfc = dyn.resources.get(api_version="core.kubefed.io/v1beta1", kind="KubeFedCluster")
    assert kfc.namespaced
    kfc.create(
        namespace="kube-system",
        body={"apiVersion": "core.kubefed.io/v1beta1", "kind": "KubeFedCluster", "metadata": {"name": "m1"}},
    )
    karmada = dyn.resources.get(api_version="cluster.karmada.io/v1alpha1", kind="Cluster")
    assert not karmada.namespaced
    karmada.create(body={"apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "m2"}})
    karmada.status.patch(
        body={"metadata": {"name": "m2"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        content_type="application/merge-patch+json",
    )
    assert server.get("cluster.karmada.io/v1alpha1", "clusters", "m2")["status"]["conditions"][0]["status"] == "True"
    assert [i.metadata.name for i in kfc.get(namespace="kube-system").items] == ["m1"]


def test_create_sets_server_metadata_and_answers_201(core: Any, server: KubeApiServer) -> None:
    pod = core.create_namespaced_pod("default", _pod("p1"))
    assert pod.metadata.uid and pod.metadata.resource_version
    assert pod.metadata.creation_timestamp == START
    assert pod.metadata.namespace == "default" and pod.status.phase == "Pending"
    post = [r for r in server.requests if r.method == "POST"]
    assert post[-1].path == "/api/v1/namespaces/default/pods" and post[-1].body["metadata"]["name"] == "p1"
    assert "Authorization" not in json.dumps(post[-1].body)
    got = core.read_namespaced_pod("p1", "default")
    assert got.metadata.uid == pod.metadata.uid
    named = core.create_namespaced_secret("default", {"metadata": {"generateName": "creds-"}, "type": "Opaque"})
    assert named.metadata.name.startswith("creds-") and len(named.metadata.name) > len("creds-")


def test_404_and_409_are_status_bodies(core: Any) -> None:
    with pytest.raises(client.ApiException) as missing:
        core.read_namespaced_pod("nope", "default")
    assert missing.value.status == 404 and _status(missing.value)["reason"] == "NotFound"
    core.create_namespaced_pod("default", _pod("p1"))
    with pytest.raises(client.ApiException) as dup:
        core.create_namespaced_pod("default", _pod("p1"))
    assert dup.value.status == 409 and _status(dup.value)["reason"] == "AlreadyExists"
    with pytest.raises(client.ApiException) as no_ns:
        core.create_namespaced_pod("ghost", _pod("p2"))
    assert no_ns.value.status == 404 and "ghost" in _status(no_ns.value)["message"]


def test_delete_then_gone_and_delete_again_is_404(core: Any) -> None:
    core.create_namespaced_pod("default", _pod("p1"))
    deleted = core.delete_namespaced_pod("p1", "default")
    assert deleted.metadata.name == "p1"
    status = core.delete_namespaced_secret  # a kind that answers with a Status
    core.create_namespaced_secret("default", {"metadata": {"name": "s"}})
    assert status("s", "default")["status"] == "Success"
    with pytest.raises(client.ApiException) as again:
        core.delete_namespaced_pod("p1", "default")
    assert again.value.status == 404


def test_put_with_stale_resource_version_is_409_conflict(core: Any) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    first = core.read_namespaced_config_map("cm", "default")
    body = {"metadata": {"name": "cm", "resourceVersion": first.metadata.resource_version}, "data": {"a": "2"}}
    updated = core.replace_namespaced_config_map("cm", "default", body)
    assert updated.data == {"a": "2"} and updated.metadata.resource_version != first.metadata.resource_version
    assert updated.metadata.uid == first.metadata.uid
    with pytest.raises(client.ApiException) as stale:
        core.replace_namespaced_config_map("cm", "default", body | {"data": {"a": "3"}})
    assert stale.value.status == 409 and _status(stale.value)["reason"] == "Conflict"
    assert core.read_namespaced_config_map("cm", "default").data == {"a": "2"}


def test_label_and_field_selectors(core: Any, server: KubeApiServer) -> None:
    server.add_pod("a", labels={"app": "reana", "tier": "x"})
    server.add_pod("b", labels={"app": "reana"}, phase="Running", node="n1")
    server.add_pod("c", labels={"app": "other"}, phase="Succeeded", node="n1")

    def names(**kw: str) -> list[str]:
        return [p.metadata.name for p in core.list_pod_for_all_namespaces(**kw).items]

    assert names(label_selector="app=reana") == ["a", "b"]
    assert names(label_selector="app!=reana") == ["c"]
    assert names(label_selector="app in (reana, other),tier") == ["a"]
    assert names(label_selector="app notin (reana),!tier") == ["c"]
    assert names(field_selector="status.phase=Pending") == ["a"]
    assert names(field_selector="spec.nodeName!=,status.phase!=Succeeded") == ["b"]
    assert names(field_selector="metadata.name=c") == ["c"]
    sent = [r.query for r in server.requests if r.path == "/api/v1/pods"]
    assert {"fieldSelector": "status.phase=Pending"}.items() <= sent[4].items()


def test_list_pages_with_limit_and_continue(core: Any, server: KubeApiServer) -> None:
    for i in range(5):
        server.add_pod(f"p{i}")
    page = core.list_namespaced_pod("default", limit=2)
    assert len(page.items) == 2 and page.metadata._continue and page.metadata.remaining_item_count == 3
    rest = core.list_namespaced_pod("default", limit=10, _continue=page.metadata._continue)
    assert [p.metadata.name for p in page.items + rest.items] == [f"p{i}" for i in range(5)]
    assert rest.metadata._continue is None


def test_merge_json_and_strategic_patches(core: Any, api: Any, server: KubeApiServer) -> None:
    server.add_pod("p1", labels={"a": "1"})
    core.patch_namespaced_pod("p1", "default", {"metadata": {"labels": {"b": "2"}}})
    core.patch_namespaced_pod("p1", "default", [{"op": "remove", "path": "/metadata/labels/a"}])
    assert core.read_namespaced_pod("p1", "default").metadata.labels == {"b": "2"}
    types = [r.content_type for r in server.requests if r.method == "PATCH"]
    assert types == ["application/strategic-merge-patch+json", "application/json-patch+json"]
    custom: Any = client.CustomObjectsApi(api)
    custom.create_cluster_custom_object(
        "cluster.karmada.io",
        "v1alpha1",
        "clusters",
        {"apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "m"}, "spec": {"a": 1}},
    )
    out = custom.patch_cluster_custom_object("cluster.karmada.io", "v1alpha1", "clusters", "m", {"spec": {"a": None}})
    assert out["spec"] == {} and out["metadata"]["generation"] == 2
    with pytest.raises(client.ApiException) as bad:
        core.patch_namespaced_pod("p1", "default", [{"op": "replace", "path": "/spec/missing/x", "value": 1}])
    assert bad.value.status == 422


def test_status_subresource_is_isolated(api: Any, server: KubeApiServer) -> None:
    custom = client.CustomObjectsApi(api)
    args = ("core.kubefed.io", "v1beta1", "kube-system", "kubefedclusters")
    custom.create_namespaced_custom_object(
        *args,
        {
            "apiVersion": "core.kubefed.io/v1beta1",
            "kind": "KubeFedCluster",
            "metadata": {"name": "m"},
            "spec": {"apiEndpoint": "https://m"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        },
    )
    assert server.get("core.kubefed.io/v1beta1", "kubefedclusters", "m", "kube-system")["status"] == {}
    custom.patch_namespaced_custom_object(*args, "m", {"status": {"x": 1}, "spec": {"apiEndpoint": "https://n"}})
    obj = server.get("core.kubefed.io/v1beta1", "kubefedclusters", "m", "kube-system")
    assert obj["status"] == {} and obj["spec"]["apiEndpoint"] == "https://n"
    custom.patch_namespaced_custom_object_status(*args, "m", {"status": {"x": 1}, "spec": {"apiEndpoint": "https://o"}})
    obj = server.get("core.kubefed.io/v1beta1", "kubefedclusters", "m", "kube-system")
    assert obj["status"] == {"x": 1} and obj["spec"]["apiEndpoint"] == "https://n"


def test_wrong_or_expired_token_is_401(server: KubeApiServer, core: Any) -> None:
    wrong = api_client(server, token="not-the-token")
    with pytest.raises(client.ApiException) as denied:
        client.CoreV1Api(wrong).list_node()
    assert denied.value.status == 401 and _status(denied.value)["reason"] == "Unauthorized"
    core.list_node()
    server.expire_token()
    with pytest.raises(client.ApiException) as expired:
        core.list_node()
    assert expired.value.status == 401


def test_token_controller_fills_and_revokes_service_account_tokens(core: Any, server: KubeApiServer) -> None:
    core.create_namespaced_service_account("default", {"metadata": {"name": "robot"}})
    core.create_namespaced_secret(
        "default",
        {
            "metadata": {"name": "robot-token", "annotations": {"kubernetes.io/service-account.name": "robot"}},
            "type": "kubernetes.io/service-account-token",
        },
    )
    data = core.read_namespaced_secret("robot-token", "default").data
    token = base64.b64decode(data["token"]).decode()
    assert base64.b64decode(data["namespace"]) == b"default" and data["ca.crt"] == server.ca_data
    robot = client.CoreV1Api(api_client(server, token=token))
    assert robot.list_namespace().items
    core.delete_namespaced_service_account("robot", "default")
    assert server.find("v1", "secrets", "robot-token", "default") is None
    with pytest.raises(client.ApiException) as revoked:
        robot.list_namespace()
    assert revoked.value.status == 401


def test_deleting_a_namespace_deletes_its_objects(core: Any, server: KubeApiServer) -> None:
    core.create_namespace({"metadata": {"name": "work"}})
    server.add_pod("p", namespace="work")
    assert ("v1", "serviceaccounts", "work", "default") in server.object_keys()
    core.delete_namespace("work")
    assert not {k for k in server.object_keys() if k[2] == "work"}


def test_watch_streams_changes_until_timeout(core: Any, server: KubeApiServer) -> None:
    server.add_pod("before")
    timer = threading.Timer(0.2, lambda: server.set_pod_phase("default", "before", "Running", node="n1"))
    timer.start()
    events = [
        (e["type"], e["object"].metadata.name, e["object"].status.phase)
        for e in watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=1)  # type: ignore[no-untyped-call]
    ]
    timer.join()
    assert events[0] == ("ADDED", "before", "Pending")
    assert ("MODIFIED", "before", "Running") in events


def test_stopped_server_is_unreachable(clock: SimClock) -> None:
    srv = KubeApiServer(clock=clock.now)
    srv.start()
    c = api_client(srv)
    core = client.CoreV1Api(c)
    core.list_node()  # a pooled keep-alive connection now exists
    srv.stop()
    with pytest.raises(urllib3.exceptions.HTTPError):
        core.list_node(_request_timeout=2)


def test_names_with_colons_survive_url_encoding(api: Any, server: KubeApiServer) -> None:
    rbac: Any = client.RbacAuthorizationV1Api(api)
    rbac.create_cluster_role({"metadata": {"name": "kubefed-controller-manager:m1"}, "rules": []})
    assert rbac.read_cluster_role("kubefed-controller-manager:m1").metadata.name == "kubefed-controller-manager:m1"
    rbac.delete_cluster_role("kubefed-controller-manager:m1")
    assert server.find("rbac.authorization.k8s.io/v1", "clusterroles", "kubefed-controller-manager:m1") is None
    assert any("%3A" in r.path or ":" in r.path for r in server.requests if r.method == "DELETE")


def test_injected_fault_answers_once_with_a_status(core: Any, server: KubeApiServer) -> None:
    server.inject_fault("GET", "/api/v1/nodes", 500, "InternalError")
    with pytest.raises(client.ApiException) as failed:
        core.list_node()
    assert failed.value.status == 500 and _status(failed.value)["reason"] == "InternalError"
    assert core.list_node().items == []


def test_a_request_hook_runs_just_before_the_matching_request(core: Any, server: KubeApiServer) -> None:
    server.add_node("n1")
    server.on_request("PATCH", "/api/v1/nodes/n1", lambda: server.add_pod("raced", node="n1"))
    assert core.list_namespaced_pod("default").items == []  # not a matching request
    core.patch_node("n1", {"spec": {"unschedulable": True}})
    pods = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1").items
    assert [p.metadata.name for p in pods] == ["raced"]
    core.patch_node("n1", {"spec": {"unschedulable": None}})  # once only
    assert len(core.list_pod_for_all_namespaces().items) == 1


def test_ready_members_stands_in_for_the_federation_controllers(clock: SimClock) -> None:
    with KubeApiServer(clock=clock.now, ready_members=True) as srv:
        srv.create({"apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "m"}})
        cond = srv.get("cluster.karmada.io/v1alpha1", "clusters", "m")["status"]["conditions"][0]
        assert (cond["type"], cond["status"]) == ("Ready", "True")


def test_runs_as_a_subprocess_until_sigterm(tmp_path: Any) -> None:
    kubeconfig = tmp_path / "kc.yaml"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "burst.testing.kube_server",
            "--kubeconfig",
            str(kubeconfig),
            "--nodes",
            "2",
            "--namespace",
            "kube-federation-system",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        api = config.new_client_from_config_dict(yaml.safe_load(kubeconfig.read_text()), persist_config=False)  # type: ignore[no-untyped-call]
        assert len(client.CoreV1Api(api).list_node().items) == 2
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_listing_a_missing_namespace_is_an_empty_list(core: Any) -> None:
    assert core.list_namespaced_pod("does-not-exist").items == []
