"""Crash safety: a burst process killed with SIGKILL in the middle of a GKE call, then a fresh
provider (no memory of the dead one) finishing the job, never creating a second cluster."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from burst.api import CloudStatus, NotFound

from .fake_gke import FakeGke
from .support import OWNER, PROJECT, ZONE, create_until_ready, provider, spec

# The child is a separate interpreter running the production provider against the fake.
CHILD = """
import sys
from burst_gce import GceProvider, GceProviderConfig
from burst.api import ClusterSpec
endpoint, project, zone, owner, action = sys.argv[1:6]
cfg = GceProviderConfig.model_validate({"kind": "gce", "project": project, "location": zone,
                                        "api_endpoint": endpoint, "credentials": "anonymous"})
p = GceProvider("gce", cfg, owner)
if action == "create":
    p.create_cluster(ClusterSpec(cluster_id="burst-crash", provider="gce", region=zone, flavor="n2-standard-8",
                                 nodes=4, owner=owner, campaign="moriond-2027"))
else:
    p.delete_cluster("burst-crash")
print("returned", flush=True)
"""


def _kill_child_mid_request(gke: FakeGke, action: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, gke.base_url, PROJECT, ZONE, OWNER, action],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        applied = gke.applied.wait(timeout=30)
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert applied, f"the child never got its request through: {err}"
    assert proc.returncode == -signal.SIGKILL
    assert "returned" not in out  # it died before the answer reached it
    gke.release()


def test_killed_mid_create_then_restart_gives_exactly_one_cluster(gke: FakeGke) -> None:
    gke.create_polls = 3
    gke.hold("POST", r"/clusters$")
    _kill_child_mid_request(gke, "create")
    assert len(gke.clusters) == 1  # GKE took the request; the caller never heard back

    fresh = provider(gke)
    answers = create_until_ready(fresh, spec("burst-crash", nodes=4))
    assert answers[0].status is CloudStatus.CREATING
    assert answers[-1].nodes == 4
    assert len(gke.sent("POST", r"/clusters$")) == 1  # the dead child's create, and no other
    assert list(gke.clusters) == [f"projects/{PROJECT}/locations/{ZONE}/clusters/burst-crash"]
    assert [c.cluster_id for c in fresh.list_clusters(OWNER)] == ["burst-crash"]


def test_killed_mid_delete_then_restart_finishes_the_delete(gke: FakeGke) -> None:
    create_until_ready(provider(gke), spec("burst-crash", nodes=2))
    gke.delete_polls = 3
    gke.hold("DELETE", r"/clusters/burst-crash$")
    _kill_child_mid_request(gke, "delete")

    fresh = provider(gke)
    with pytest.raises(NotFound):
        for _ in range(10):
            assert fresh.delete_cluster("burst-crash").status is CloudStatus.DELETING
    assert len(gke.sent("DELETE")) == 1  # the restarted provider only followed the running delete
    assert gke.clusters == {}
