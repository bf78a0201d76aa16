"""The world a chaos run happens in: the on-prem host cluster (backlog, KubeFed, the Lease), the
cloud's own record of what was done to it, and the member clusters jobs run on.

Everything a check needs is read from the servers' side, never from burst: who wrote the Lease and
when (the lease history), which replica sent each mutating request (each replica has its own bearer
token on the host and its own process id in the cloud's audit trail), which clusters the cloud ever
accepted, and whether a job still ran when its cluster went away.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burst.testing.kube_server import JSON, ApiError, KubeApiServer, ResourceKind

KFS = "kube-federation-system"
LEASE = "burst-leader"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


_ROOT = Path(__file__).resolve().parents[2]
_load_lock = threading.Lock()


def load_test_module(name: str, relpath: str) -> Any:
    """A provider's test fake, loaded from its file (it lives with that provider's tests, outside
    any package); once, under a lock: two runs starting side by side must not see a half-loaded
    module."""
    with _load_lock:
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, _ROOT / relpath)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses look their module up while it executes
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
        return sys.modules[name]


@dataclass(frozen=True)
class LeaseWrite:
    """The Lease as one write left it: ``holder`` is None after a release."""

    t: float
    holder: str | None
    renew: float
    duration: float


@dataclass(frozen=True)
class HostWrite:
    """A mutating request on the host, with the replica whose token sent it."""

    t: float
    replica: str
    method: str
    path: str


@dataclass
class Window:
    """A fault on the host's API: requests whose path contains ``path`` (any method in
    ``methods``) answer ``code`` between ``start`` and ``end`` (wall-clock seconds)."""

    path: str
    code: int
    reason: str
    start: float
    end: float
    methods: frozenset[str] = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


class ChaosHost(KubeApiServer):
    """The host cluster, recording who wrote what and serving time-windowed faults.

    The fault and attribution hooks sit where the base server authenticates a request and takes
    an injected fault (same thread, in that order), so nothing of the served API changes.
    """

    def __init__(self) -> None:
        super().__init__(ready_members=True)
        self.lease_writes: list[LeaseWrite] = []
        self.writes: list[HostWrite] = []
        self.windows: list[Window] = []
        self._who: dict[str, str] = {}
        #: called with the sender's replica name before a mutating request is served (a test may
        #: stop the sender right there: in the middle of its tick)
        self.on_write: Callable[[str], None] | None = None
        self._local = threading.local()

    def token_for(self, replica: str, token: str) -> None:
        self.add_token(token)
        self._who[token] = replica

    def token_valid(self, token: str) -> bool:
        self._local.token = token
        return super().token_valid(token)

    def _take_fault(self, method: str, path: str) -> ApiError | None:
        now = time.time()
        replica = self._who.get(getattr(self._local, "token", ""), "")
        if method in MUTATING and replica and "/leases" not in path:
            with self._lock:
                self.writes.append(HostWrite(now, replica, method, path))
            hook = self.on_write
            if hook is not None:
                hook(replica)
        for w in self.windows:
            if w.start <= now < w.end and w.path in path and method in w.methods:
                return ApiError(w.code, w.reason, f"injected fault: {w.reason}")
        return super()._take_fault(method, path)

    def _note_lease(self, rk: ResourceKind, obj: JSON) -> None:
        if rk.plural != "leases" or obj["metadata"]["name"] != LEASE:
            return
        spec = obj.get("spec") or {}
        renew = spec.get("renewTime")
        renew_t = _parse_time(renew) if renew else 0.0
        self.lease_writes.append(
            LeaseWrite(time.time(), spec.get("holderIdentity"), renew_t, float(spec.get("leaseDurationSeconds") or 0))
        )

    def _after_create(self, rk: ResourceKind, obj: JSON) -> None:
        super()._after_create(rk, obj)
        self._note_lease(rk, obj)

    def _after_update(self, rk: ResourceKind, obj: JSON) -> None:
        super()._after_update(rk, obj)
        self._note_lease(rk, obj)

    def holder_at(self, t: float) -> str | None:
        """Who the Lease named at wall time ``t`` (the last write before it)."""
        holder = None
        with self._lock:
            for w in self.lease_writes:
                if w.t > t:
                    break
                holder = w.holder
        return holder


def _parse_time(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def make_host(pending: int, pending_cpu: str) -> ChaosHost:
    """On-prem: one full 4-core node and ``pending`` Unschedulable pods."""
    host = ChaosHost()
    host.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KFS}})
    host.add_node("onprem-1", cpu="4", memory="16Gi")
    host.add_pod("onprem-busy", cpu="4", memory="1Gi", phase="Running", node="onprem-1")
    for i in range(pending):
        host.add_pod(f"job-{i}", cpu=pending_cpu, memory="1Gi", unschedulable=True)
    host.start()
    return host


# --- the cloud's own record ------------------------------------------------------------------


@dataclass(frozen=True)
class CloudCall:
    """One mutating call as the cloud recorded it: wall time, the calling process, the outcome."""

    t: float
    pid: int
    call: str
    cluster: str
    outcome: str


@dataclass
class CloudView:
    """What the cloud account held, polled through the run."""

    ever: set[str] = field(default_factory=set)  # clusters the cloud ever accepted
    max_alive: int = 0  # most healthy, non-deleting clusters at one time
    last: dict[str, dict[str, Any]] = field(default_factory=dict)


def read_local_cloud(path: Path) -> dict[str, dict[str, Any]]:
    """The local cloud's state file (written atomically by the provider)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def read_audit(path: Path) -> list[CloudCall]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue  # a line cut by a SIGKILL mid-write
        out.append(CloudCall(float(d["t"]), int(d["pid"]), str(d["call"]), str(d["cluster"]), str(d["outcome"])))
    return out


def poll_local(view: CloudView, path: Path) -> None:
    now = time.time()
    state = read_local_cloud(path)
    view.last = state
    alive = 0
    for cid, c in state.items():
        view.ever.add(cid)
        gone = c.get("deleting_until") is not None and now >= float(c["deleting_until"])
        if c.get("deleting_until") is None and not c.get("fails") and not gone:
            alive += 1
    view.max_alive = max(view.max_alive, alive)


# --- the member clusters, as the cloud's control planes, KubeFed and the kubelets would run them ---


@dataclass
class Job:
    """One job KubeFed placed on a member: Running on the member's first node until the queue ends."""

    cluster: str
    node: str
    pod: str
    done: bool = False
    killed: str = ""  # why, when the job was killed


class Members:
    """Each cluster's Kubernetes API server, run here rather than inside a daemon process, so every
    replica (and every restart) sees the same member, as it would a real cluster.  The local cloud
    reads the kubeconfigs written to ``directory`` (its ``members_dir``).  Node removals and deletes
    done by the cloud are mirrored; a job whose node or cluster goes away while it runs was killed.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.servers: dict[str, KubeApiServer] = {}
        self.jobs: dict[str, Job] = {}
        self.all_tokens: list[str] = []

    def sync(self, state: dict[str, dict[str, Any]], host: KubeApiServer, place: bool) -> None:
        now = time.time()
        for cid, c in state.items():
            deleting = c.get("deleting_until") is not None
            server = self.servers.get(cid)
            if server is None and not deleting:
                server = KubeApiServer()
                server.start()
                self.all_tokens.append(server.token)
                removed = list(c.get("removed") or [])
                total = int(c.get("desired") or 0) + len(removed)
                for i in range(total):
                    name = f"{cid}-node-{i}"
                    if name not in removed:
                        server.add_node(name, cpu=str(c.get("cpus") or 8), memory="32Gi")
                self.servers[cid] = server
                tmp = self.dir / f".{cid}.tmp"
                tmp.write_text(server.kubeconfig(name=cid), encoding="utf-8")
                tmp.replace(self.dir / f"{cid}.kubeconfig")
            if server is None:
                continue
            for name in c.get("removed") or []:
                if server.find("v1", "nodes", name) is not None:
                    server.delete("v1", "nodes", name)
            job = self.jobs.get(cid)
            if job is not None and not job.done and not job.killed:
                if deleting:
                    job.killed = "cluster deleted while the job ran"
                elif job.node in (c.get("removed") or []):
                    job.killed = f"node {job.node} removed while the job ran"
                elif server.find("v1", "pods", job.pod, "default") is None:
                    job.killed = "pod deleted while it ran"
            ready = now >= float(c.get("ready_at") or 0) and not c.get("fails")
            joined = host.find("core.kubefed.io/v1beta1", "kubefedclusters", cid, KFS) is not None
            if place and job is None and ready and joined and not deleting:
                nodes = server.objects("v1", "nodes")
                if nodes:
                    node = nodes[0]["metadata"]["name"]
                    pod = f"analysis-{cid}"
                    server.add_pod(pod, cpu="4", memory="1Gi", phase="Running", node=node)
                    self.jobs[cid] = Job(cid, node, pod)
        for cid in [c for c in self.servers if c not in state]:
            job = self.jobs.get(cid)
            if job is not None and not job.done and not job.killed:
                job.killed = "cluster deleted while the job ran"
            self.servers.pop(cid).stop()

    def finish_jobs(self) -> None:
        """The queue ends: every job still running completes."""
        for cid, job in self.jobs.items():
            server = self.servers.get(cid)
            if job.done or job.killed or server is None:
                continue
            if server.find("v1", "pods", job.pod, "default") is not None:
                server.set_pod_phase("default", job.pod, "Succeeded")
            job.done = True

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
