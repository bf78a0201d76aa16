"""The kubernetes backlog source against the fake API server, through the official client."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from burst.api import BacklogContext, BacklogUnavailable, Bucket, Shape, SimClock
from burst.backlog.kubernetes import KubernetesBacklog, KubernetesBacklogConfig, job_missing_pods, pod_request
from burst.registry import config_class
from burst.testing.kube_server import KubeApiServer
from tests.kube.conftest import START


def _source(server: KubeApiServer, clock: SimClock, tmp_path: Path, **cfg: Any) -> KubernetesBacklog:
    (tmp_path / "host.kubeconfig").write_text(server.kubeconfig(token=cfg.pop("token", None)))
    config = KubernetesBacklogConfig(kubeconfig="host.kubeconfig", **cfg)
    return config.build(BacklogContext(clock=clock, config_dir=str(tmp_path)))


def _job(
    name: str, *, cpu: str, memory: str, suspend: bool = False, parallelism: int | None = None, **status: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "step", "image": "reana/step", "resources": {"requests": {"cpu": cpu, "memory": memory}}}
                ],
            }
        },
        "suspend": suspend,
    }
    if parallelism is not None:
        spec["parallelism"] = parallelism
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "reana"}},
        "spec": spec,
    }


def test_kind_is_registered_as_an_entry_point() -> None:
    assert config_class("burst.backlogs", "kubernetes") is KubernetesBacklogConfig


def test_pending_unschedulable_pods_become_buckets_with_oldest_wait(
    server: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    server.add_pod("old", cpu="500m", memory="2Gi", unschedulable=True, created=START - timedelta(minutes=30))
    server.add_pod("new", cpu="1", memory="2048Mi", unschedulable=True)
    server.add_pod("gpu", cpu="250m", memory="1.5Gi", gpus=2, unschedulable=True, created=START - timedelta(minutes=5))
    server.add_pod("just-created", cpu="4", memory="1Gi")  # Pending, scheduler has not looked yet
    server.add_pod("bound", cpu="4", memory="1Gi", node="n1")  # Pending but bound: starting
    server.add_pod("done", cpu="4", memory="1Gi", phase="Succeeded", node="n1")
    clock.advance(60)
    demand = _source(server, clock, tmp_path).poll()
    assert demand.pending == (
        Bucket(Shape(1, 1536, 2), 1, 360.0),
        Bucket(Shape(1, 2048, 0), 2, 1860.0),
    )
    assert demand.pending_jobs == 3 and demand.at == clock.now() and not demand.stale


def test_odd_requests(server: KubeApiServer) -> None:
    spec = {
        "initContainers": [{"name": "fetch", "resources": {"requests": {"cpu": "3", "memory": "100Mi"}}}],
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "1.5Gi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "1500m", "memory": "1G", "nvidia.com/gpu": "1"}}},
            {"name": "c"},
        ],
        "overhead": {"cpu": "100m", "memory": "10Mi"},
    }
    req = pod_request(spec)
    assert req.cpu == Decimal("3.1") and req.gpus == 1
    # 1.5Gi + 1G (decimal) + 10Mi overhead, rounded up to MiB
    assert req.shape() == Shape(cpus=4, memory_mb=1536 + 954 + 10, gpus=1)
    assert pod_request({"containers": [{"name": "x"}]}).shape() == Shape(cpus=1, memory_mb=0, gpus=0)
    assert pod_request({"containers": [{"name": "x", "resources": {"requests": {"cpu": "1e3m"}}}]}).shape().cpus == 1


def test_jobs_not_yet_admitted_count_their_pods(server: KubeApiServer, clock: SimClock, tmp_path: Path) -> None:
    server.create(_job("suspended", cpu="2", memory="4Gi", suspend=True, parallelism=3))
    server.create(_job("no-pods-yet", cpu="2", memory="4Gi"))
    server.create(_job("running", cpu="2", memory="4Gi"))
    server.set_status("batch/v1", "jobs", "running", {"active": 1, "startTime": "2026-11-25T12:00:00Z"}, "default")
    server.create(_job("finished", cpu="2", memory="4Gi"))
    server.set_status(
        "batch/v1",
        "jobs",
        "finished",
        {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]},
        "default",
    )
    clock.advance(120)
    demand = _source(server, clock, tmp_path).poll()
    assert demand.pending == (Bucket(Shape(2, 4096, 0), 4, 120.0),)
    assert "2 waiting jobs" in demand.note
    without_jobs = _source(server, clock, tmp_path, jobs=False).poll()
    assert without_jobs.pending == ()


def test_job_missing_pods_rules() -> None:
    assert job_missing_pods({"spec": {"completions": 5, "parallelism": 2}, "status": {"succeeded": 4}}) == 1
    assert job_missing_pods({"spec": {"completions": 5, "parallelism": 2}, "status": {"active": 2}}) == 0
    assert job_missing_pods({"spec": {"suspend": True, "parallelism": 4}, "status": {}}) == 4
    failed = {"type": "Failed", "status": "True"}
    assert job_missing_pods({"spec": {}, "status": {"conditions": [failed]}}) == 0


def test_namespaces_and_label_selector_scope_the_demand(server: KubeApiServer, clock: SimClock, tmp_path: Path) -> None:
    server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "reana"}})
    server.add_pod("in-scope", namespace="reana", cpu="2", labels={"app": "reana"}, unschedulable=True)
    server.add_pod("other-label", namespace="reana", cpu="2", labels={"app": "x"}, unschedulable=True)
    server.add_pod("other-ns", namespace="default", cpu="2", labels={"app": "reana"}, unschedulable=True)
    server.add_node("n1", cpu="8")
    server.add_pod("running-elsewhere", namespace="default", cpu="3", phase="Running", node="n1")
    demand = _source(server, clock, tmp_path, namespaces=["reana"], label_selector="app=reana").poll()
    assert demand.pending_jobs == 1
    # capacity counts what runs on the node whatever its namespace
    assert (demand.onprem_cores, demand.onprem_free_cores, demand.running_cores) == (8, 5, 0)
    sent = {(r.path, r.query.get("labelSelector")) for r in server.requests if r.method == "GET"}
    assert ("/api/v1/namespaces/reana/pods", "app=reana") in sent


def test_running_cores_and_onprem_capacity(server: KubeApiServer, clock: SimClock, tmp_path: Path) -> None:
    server.add_node("n1", cpu="8", memory="32Gi")
    server.add_node("n2", cpu="16", memory="64Gi")
    server.set_node_allocatable("n2", cpu="15890m")
    server.add_node("cordoned", cpu="8", unschedulable=True)
    server.add_node("broken", cpu="8", ready=False)
    server.add_pod("r1", cpu="2500m", phase="Running", node="n1")
    server.add_pod("r2", cpu="6", phase="Running", node="n1")
    server.add_pod("r3", cpu="500m", phase="Running", node="n2")
    server.add_pod("starting", cpu="1", node="n2")
    server.add_pod("finished", cpu="8", phase="Succeeded", node="n2")
    demand = _source(server, clock, tmp_path).poll()
    assert demand.running_cores == 9  # 2.5 + 6 + 0.5
    assert demand.onprem_cores == 8 + 15
    assert demand.onprem_free_cores == 0 + 14  # n1 is over-committed; n2: 15.89 - 1.5
    only_n1 = _source(server, clock, tmp_path, node_selector="kubernetes.io/hostname=n1").poll()
    assert only_n1.onprem_cores == 8


def test_ten_thousand_pods_are_few_buckets(server: KubeApiServer, clock: SimClock, tmp_path: Path) -> None:
    shapes = [("1", "2Gi"), ("500m", "2Gi"), ("4", "8Gi"), ("8", "16Gi")]
    for i in range(10_000):
        cpu, mem = shapes[i % len(shapes)]
        server.add_pod(f"p{i}", cpu=cpu, memory=mem, unschedulable=True)
    started = time.monotonic()
    demand = _source(server, clock, tmp_path).poll()
    elapsed = time.monotonic() - started
    assert [(b.shape, b.count) for b in demand.pending] == [
        (Shape(1, 2048), 5000),
        (Shape(4, 8192), 2500),
        (Shape(8, 16384), 2500),
    ]
    pages = [r for r in server.requests if r.path == "/api/v1/pods"]
    assert len(pages) == 5 and pages[0].query["limit"] == "2000"  # paged lists
    assert elapsed < 20


def test_unreachable_api_is_backlog_unavailable(clock: SimClock, tmp_path: Path) -> None:
    srv = KubeApiServer(clock=clock.now)
    srv.start()
    source = _source(srv, clock, tmp_path)
    srv.stop()
    with pytest.raises(BacklogUnavailable, match=r"cannot reach the API server at http://127\.0\.0\.1:\d+"):
        source.poll()


def test_expired_token_is_backlog_unavailable_without_leaking_it(
    server: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    source = _source(server, clock, tmp_path)
    source.poll()
    server.expire_token()
    with pytest.raises(BacklogUnavailable, match="401 Unauthorized") as err:
        source.poll()
    assert server.token not in str(err.value)


def test_missing_or_broken_kubeconfig_is_backlog_unavailable(clock: SimClock, tmp_path: Path) -> None:
    missing = KubernetesBacklogConfig(kubeconfig="nope.yaml").build(BacklogContext(clock, str(tmp_path)))
    with pytest.raises(BacklogUnavailable, match="cannot read the kubeconfig"):
        missing.poll()
    (tmp_path / "bad.yaml").write_text("clusters: [\n  token: s3cret")
    broken = KubernetesBacklogConfig(kubeconfig="bad.yaml").build(BacklogContext(clock, str(tmp_path)))
    with pytest.raises(BacklogUnavailable, match="not valid YAML") as err:
        broken.poll()
    assert "s3cret" not in str(err.value)
