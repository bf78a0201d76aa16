"""The kueue backlog source against the test API server with Kueue's CRDs installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from burst.api import BacklogContext, BacklogSource, BacklogUnavailable, Bucket, Shape, SimClock
from burst.backlog.kueue import KueueBacklog, KueueBacklogConfig
from burst.registry import config_class
from burst.testing import kueue as kt
from burst.testing.kube_server import KubeApiServer


def _source(server: KubeApiServer, clock: SimClock, tmp_path: Path, **cfg: object) -> KueueBacklog:
    (tmp_path / "manager.kubeconfig").write_text(server.kubeconfig(name="manager"))
    config = KueueBacklogConfig(kubeconfig="manager.kubeconfig", timeout="3s", **cfg)  # type: ignore[arg-type]
    return config.build(BacklogContext(clock=clock, config_dir=str(tmp_path)))


@pytest.fixture
def manager(server: KubeApiServer) -> KubeApiServer:
    kt.manager_setup(server, local_queues=(("default", "user-queue"), ("cms", "cms-queue")))
    # a ClusterQueue that runs work on the manager itself, and one burst does not watch
    server.create(kt.cluster_queue_obj("local", cpu="64"))
    server.create(kt.cluster_queue_obj("other", cpu="32"))
    for ns, lq, cq in (("default", "local-queue", "local"), ("default", "other-queue", "other")):
        server.create(
            {
                "apiVersion": kt.KUEUE,
                "kind": "LocalQueue",
                "metadata": {"name": lq, "namespace": ns},
                "spec": {"clusterQueue": cq},
            }
        )
    return server


def test_kind_is_registered_and_is_a_source(manager: KubeApiServer, clock: SimClock, tmp_path: Path) -> None:
    assert config_class("burst.backlogs", "kueue") is KueueBacklogConfig
    src: BacklogSource = _source(manager, clock, tmp_path)
    assert isinstance(src, BacklogSource) and src.name == "kueue"


def test_pending_workloads_become_shape_buckets_and_admitted_ones_running(
    manager: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    # 10 min old: 4 pods of 2 cores / 3Gi; 5 min old: 2 × (2 cores, 3Gi) again, and 1 GPU pod
    manager.create(kt.workload("old", count=4, cpu="1500m", memory="3Gi", created="2026-11-25T11:50:00Z"))
    manager.create(
        kt.workload(
            "new", namespace="cms", queue="cms-queue", count=2, cpu="2", memory="3Gi", created="2026-11-25T11:55:00Z"
        )
    )
    manager.create(kt.workload("gpu", count=1, cpu="4", memory="16Gi", gpus=1, created="2026-11-25T11:58:00Z"))
    # quota reserved on the manager but the MultiKueue check not passed yet: still waiting for a worker
    manager.create(kt.workload("dispatching", count=1, cpu="8", memory="1Gi", created="2026-11-25T11:59:00Z"))
    kt.reserve(manager, "default", "dispatching", "cluster-queue")
    # admitted (running on a worker) with 3 pods of 2 cores; finished and deactivated ones count nowhere
    manager.create(kt.workload("running", count=3, cpu="2"))
    kt.admit(manager, "default", "running", "cluster-queue")
    manager.create(kt.workload("done", count=5, cpu="2"))
    kt.admit(manager, "default", "done", "cluster-queue")
    kt.finish(manager, "default", "done")
    inactive = kt.workload("parked", count=7, cpu="2")
    inactive["spec"]["active"] = False
    manager.create(inactive)

    demand = _source(manager, clock, tmp_path, cluster_queues=["cluster-queue"]).poll()
    assert demand.pending == (
        Bucket(Shape(cpus=2, memory_mb=3072, gpus=0), 6, 600.0),
        Bucket(Shape(cpus=4, memory_mb=16384, gpus=1), 1, 120.0),
        Bucket(Shape(cpus=8, memory_mb=1024, gpus=0), 1, 60.0),
    )
    assert demand.running_cores == 6
    assert (demand.onprem_cores, demand.onprem_free_cores) == (0, 0)  # a MultiKueue queue is no capacity
    assert not demand.stale and "4 pending and 1 admitted Workloads in cluster-queue" in demand.note


def test_only_the_configured_cluster_queues_count_and_local_quota_is_capacity(
    manager: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    manager.create(kt.workload("mk", count=2, cpu="1"))
    manager.create(kt.workload("loc", queue="local-queue", count=3, cpu="1"))
    manager.create(kt.workload("oth", queue="other-queue", count=5, cpu="1"))
    manager.create(kt.workload("busy", queue="local-queue", count=1, cpu="10"))
    kt.admit(manager, "default", "busy", "local")
    manager.set_status(
        kt.KUEUE,
        "clusterqueues",
        "local",
        {"flavorsReservation": [{"name": "default-flavor", "resources": [{"name": "cpu", "total": "10"}]}]},
    )

    demand = _source(manager, clock, tmp_path, cluster_queues=["cluster-queue", "local"]).poll()
    assert demand.pending_jobs == 5 and demand.running_cores == 10
    assert (demand.onprem_cores, demand.onprem_free_cores) == (64, 54)

    everything = _source(manager, clock, tmp_path).poll()
    assert everything.pending_jobs == 10
    assert (everything.onprem_cores, everything.onprem_free_cores) == (96, 86)


def test_a_partially_admitted_workload_runs_what_was_admitted(
    manager: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    manager.create(kt.workload("elastic", count=8, cpu="1"))
    kt.admit(manager, "default", "elastic", "cluster-queue")
    wl = manager.get(kt.KUEUE, "workloads", "elastic", "default")
    admission = wl["status"]["admission"]
    admission["podSetAssignments"][0]["count"] = 5
    manager.set_status(kt.KUEUE, "workloads", "elastic", {"admission": admission}, "default")
    assert _source(manager, clock, tmp_path).poll().running_cores == 5


def test_unreadable_api_is_unavailable_never_zero(manager: KubeApiServer, clock: SimClock, tmp_path: Path) -> None:
    src = _source(manager, clock, tmp_path)
    manager.inject_fault("GET", "/workloads", 500, "InternalError")
    with pytest.raises(
        BacklogUnavailable, match=r"kueue backlog: reading Workloads and queues: the API server at .* answered 500"
    ):
        src.poll()
    manager.expire_token()
    with pytest.raises(BacklogUnavailable, match="401 Unauthorized"):
        src.poll()
    manager.stop()
    with pytest.raises(BacklogUnavailable, match="cannot reach the API server"):
        src.poll()


def test_a_cluster_without_kueue_is_a_clear_error(server: KubeApiServer, clock: SimClock, tmp_path: Path) -> None:
    with pytest.raises(BacklogUnavailable, match="404"):
        _source(server, clock, tmp_path).poll()
