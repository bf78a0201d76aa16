"""The world a chaos run happens in: the on-prem host cluster (backlog, KubeFed, the Lease), the
cloud's own record of what was done to it, and the member clusters jobs run on.

Everything a check needs is read from the servers' side, never from burst: who wrote the Lease and
when (the lease history), which replica sent each mutating request (each replica has its own bearer
token on the host and its own process id in the cloud's audit trail), which clusters the cloud ever
accepted, and whether a job still ran when its cluster went away.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burst.testing.kube_server import JSON, ApiError, KubeApiServer, ResourceKind

KFS = "kube-federation-system"
LEASE = "burst-leader"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


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


# --- jobs on the members, as KubeFed and the kubelets would run them -------------------------------


@dataclass
class Job:
    cluster: str
    endpoint: str
    token: str
    pod: str
    done: bool = False
    lost: bool = False  # the member's API server went away with the daemon process (a fake's artefact)
    killed: bool = False


def _req(method: str, url: str, token: str, body: Any = None, ctype: str = "application/json") -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", ctype)
    with urllib.request.urlopen(req, timeout=2) as resp:
        return json.loads(resp.read() or b"null")


def member_of(host: KubeApiServer, cid: str) -> tuple[str, str] | None:
    """(endpoint, token) of a joined member, read the way the KubeFed controller reads them."""
    import base64

    kfc = host.find("core.kubefed.io/v1beta1", "kubefedclusters", cid, KFS)
    if kfc is None:
        return None
    secret = host.find("v1", "secrets", kfc["spec"]["secretRef"]["name"], KFS)
    if secret is None or "token" not in (secret.get("data") or {}):
        return None
    return kfc["spec"]["apiEndpoint"], base64.b64decode(secret["data"]["token"]).decode()


def start_job(host: KubeApiServer, cid: str) -> Job | None:
    """A pod bound to the member's first node and Running; None when the member cannot be reached."""
    found = member_of(host, cid)
    if found is None:
        return None
    endpoint, token = found
    try:
        nodes = _req("GET", f"{endpoint}/api/v1/nodes", token)["items"]
        if not nodes:
            return None
        pod = f"analysis-{cid}"
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod},
            "spec": {
                "nodeName": nodes[0]["metadata"]["name"],
                "containers": [{"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "4"}}}],
            },
        }
        _req("POST", f"{endpoint}/api/v1/namespaces/default/pods", token, body)
        _req(
            "PATCH",
            f"{endpoint}/api/v1/namespaces/default/pods/{pod}/status",
            token,
            {"status": {"phase": "Running"}},
            "application/merge-patch+json",
        )
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return None
    return Job(cid, endpoint, token, pod)


def check_job(job: Job, cloud_alive: bool) -> None:
    """A job still running whose pod is gone, or whose member went away because its cluster was
    deleted, was killed; a member gone with its (killed) daemon process while the cloud still
    holds the cluster is the local cloud's artefact, not burst's doing."""
    if job.done or job.lost or job.killed:
        return
    try:
        _req("GET", f"{job.endpoint}/api/v1/namespaces/default/pods/{job.pod}", job.token)
    except urllib.error.HTTPError as err:
        if err.code == 404:
            job.killed = True
        return
    except (OSError, urllib.error.URLError):
        if cloud_alive:
            job.lost = True
        else:
            job.killed = True


def finish_job(job: Job) -> None:
    if job.done or job.lost or job.killed:
        return
    try:
        _req(
            "PATCH",
            f"{job.endpoint}/api/v1/namespaces/default/pods/{job.pod}/status",
            job.token,
            {"status": {"phase": "Succeeded"}},
            "application/merge-patch+json",
        )
        job.done = True
    except (OSError, urllib.error.URLError):
        job.lost = True
