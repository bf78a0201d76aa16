"""FederatedJobs in the KubeFed host: work waiting for a member counts as pending demand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from burst.api import BacklogContext, Shape, SimClock
from burst.backlog.kubernetes import KubernetesBacklogConfig
from burst.testing.kube_server import KubeApiServer, ResourceKind


def federated_job(name: str, *, parallelism: int, clusters: list[str] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "types.kubefed.io/v1beta1",
        "kind": "FederatedJob",
        "metadata": {"name": name, "namespace": "reana"},
        "spec": {
            "template": {
                "spec": {
                    "parallelism": parallelism,
                    "completions": parallelism,
                    "template": {
                        "spec": {
                            "containers": [{"name": "s", "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}]
                        }
                    },
                }
            },
            "placement": {"clusterSelector": {}},
        },
    }
    return obj


def test_unpropagated_federated_jobs_are_pending(server: KubeApiServer, clock: SimClock, tmp_path: Path) -> None:
    server.register_kind(ResourceKind("types.kubefed.io", "v1beta1", "federatedjobs", "FederatedJob", True))
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "reana"}})
    server.create(federated_job("waiting", parallelism=3))
    server.create(federated_job("placed", parallelism=5))
    server.set_status(
        "types.kubefed.io/v1beta1", "federatedjobs", "placed", {"clusters": [{"name": "aws-1"}]}, namespace="reana"
    )
    (tmp_path / "host.kubeconfig").write_text(server.kubeconfig())
    ctx = BacklogContext(clock=clock, config_dir=str(tmp_path))
    with_fed = KubernetesBacklogConfig(kubeconfig="host.kubeconfig", federated=True).build(ctx).poll()
    assert [(b.shape, b.count) for b in with_fed.pending] == [(Shape(2, 4096), 3)]
    without = KubernetesBacklogConfig(kubeconfig="host.kubeconfig").build(ctx).poll()
    assert without.pending == ()
