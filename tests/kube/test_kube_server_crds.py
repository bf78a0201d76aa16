"""The test API server serves CustomResourceDefinitions as a real one does: create → served."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from burst.testing import kueue as kt
from burst.testing.kube_server import KubeApiServer


def test_a_created_crd_is_established_and_its_kind_served(server: KubeApiServer, api: Any) -> None:
    co = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as err:
        co.list_cluster_custom_object("kueue.x-k8s.io", "v1beta1", "workloads")
    assert err.value.status == 404

    ext = client.ApiextensionsV1Api(api)
    for crd in kt.crds():
        ext.create_custom_resource_definition(crd)
    crd = ext.read_custom_resource_definition("workloads.kueue.x-k8s.io")
    assert {c.type: c.status for c in crd.status.conditions} == {"NamesAccepted": "True", "Established": "True"}

    resources = {r.name: r.namespaced for r in co.get_api_resources("kueue.x-k8s.io", "v1beta1").resources}
    assert resources["workloads"] is True and resources["workloads/status"] is True
    assert resources["clusterqueues"] is False and "resourceflavors/status" not in resources
    co.create_namespaced_custom_object("kueue.x-k8s.io", "v1beta1", "default", "workloads", kt.workload("w"))
    co.patch_namespaced_custom_object_status(
        "kueue.x-k8s.io", "v1beta1", "default", "workloads", "w", {"status": {"conditions": [{"type": "Admitted"}]}}
    )
    got = co.get_namespaced_custom_object("kueue.x-k8s.io", "v1beta1", "default", "workloads", "w")
    assert got["status"]["conditions"] == [{"type": "Admitted"}]

    ext.delete_custom_resource_definition("workloads.kueue.x-k8s.io")
    assert not [k for k in server.object_keys() if k[1] == "workloads"]
    with pytest.raises(ApiException) as err:
        co.list_cluster_custom_object("kueue.x-k8s.io", "v1beta1", "workloads")
    assert err.value.status == 404
