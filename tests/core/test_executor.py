"""The simulated batch system's node release: idle nodes only, fenced until removed, given back on undrain."""

from __future__ import annotations

from dataclasses import replace

from burst.executor import Executor, node_name
from burst.lifecycle import ClusterRecord, ClusterState
from burst.model import Job, Shape
from burst.testing.builders import T0

S = ClusterState


def cluster(nodes: int, state: ClusterState = S.ACTIVE) -> ClusterRecord:
    return ClusterRecord("c1", "aws", "eu", "m5.2xlarge", 8, 32768, 0, nodes, nodes, state, T0, T0, 0.4, 0.1, "EUR")


def busy_executor() -> Executor:
    """No on-prem cores; 4 nodes of 8 cores; two 8-core jobs fill two nodes for an hour."""
    jobs = [Job(i, 0.0, 3600.0, Shape(8, 1000)) for i in range(2)] + [Job(9, 600.0, 60.0, Shape(8, 1000))]
    ex = Executor(0, None, T0, jobs=jobs)
    ex.attach(cluster(4))
    ex.run_until(1)
    assert ex.running_on("c1") == 2
    return ex


def test_release_idle_hands_out_only_idle_nodes_and_fences_them() -> None:
    ex = busy_executor()
    names = ex.release_idle("c1", 4)
    assert sorted(names) == [node_name("c1", 2), node_name("c1", 3)]
    ex.run_until(700)  # a job submitted now finds no node: the idle ones are fenced
    assert ex.pending_jobs == 1
    # a retry (the removal failed) returns the same fenced nodes first
    assert sorted(ex.release_idle("c1", 4)) == sorted(names)
    assert ex.release_idle("c1", 1) == [node_name("c1", 2)]


def test_undrain_takes_fenced_nodes_back() -> None:
    ex = busy_executor()
    ex.release_idle("c1", 4)
    ex.set_schedulable("c1", True)
    ex.run_until(630)
    assert ex.pending_jobs == 0 and ex.running_on("c1") == 3


def test_removed_nodes_stop_counting_and_a_grow_adds_fresh_ones() -> None:
    ex = busy_executor()
    ex.release_idle("c1", 2)
    ex.sync([cluster(2)])  # the cloud deleted both
    ex.set_schedulable("c1", True)  # removed nodes never come back
    ex.run_until(700)
    assert ex.pending_jobs == 1
    ex.sync([replace(cluster(3), desired_nodes=3)])  # grown by one new node
    assert ex.pending_jobs == 0 and ex.running_on("c1") == 3
    assert ex.release_idle("c1", 4) == []  # every live node is busy
    ex.run_until(7200)
    assert ex.killed_jobs == 0 and ex.finished == 3
