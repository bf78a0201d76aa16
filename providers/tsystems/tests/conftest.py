"""A local CCE v3 server (on burst's shared Keystone fake) and the fixtures the tests use.

Shapes follow the CCE API reference (Open Telekom Cloud / Huawei Cloud "Creating a Cluster",
"Creating a Node Pool", "Querying a Job", "Obtaining a Cluster Certificate", "Querying Resource
Quotas", "Deleting a Cluster") and otcextensions' own resource classes (``otcextensions.sdk.cce.v3``):
lists under ``items``, ids in ``metadata.uid``, phases in ``status.phase``, errors as
``{"error_code", "error_msg"}``.  Progress is asynchronous: a cluster, node pool or deletion moves
on after ``polls`` reads, so the tests see Creating → Available the way the provider will.

A node pool's nodes are real node records ("Listing All Nodes in a Cluster", "Deleting a Node"):
named by their private IP (as CCE names them in Kubernetes), annotated
``kubernetes.io/node-pool.id`` with the pool's uid.  The pool converges on its
``spec.initialNodeCount``: it boots nodes while it has fewer (so a deleted node is *replaced* unless
the count was lowered) and deletes nodes of its own choosing while it has more.  Deleting a node
lowers its pool's count unless ``nodepoolScaleDown=NoScaleDown`` is asked for (Huawei's CCE API
reference); :attr:`CceFake.delete_scales_pool` off models a CCE that does not.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from burst.api import ProviderContext, SimClock
from burst.testing.openstack_fake import KeystoneFake, Reply, Request

CA_DATA = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUNmYWtlY2EKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
CLIENT_CERT = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUNmYWtlY2VydAotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg=="
CLIENT_KEY = "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFZmFrZWtleQotLS0tLUVORCBSU0EgUFJJVkFURSBLRVktLS0tLQo="


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def _err(status: int, code: str, msg: str) -> Reply:
    return Reply(status, {"error_code": code, "error_msg": msg})


class CceFake(KeystoneFake):
    """Keystone + CCE v3 under ``/cce/api/v3/projects/{project_id}``."""

    def __init__(self) -> None:
        super().__init__(region="eu-de")
        self.clusters: dict[str, dict[str, Any]] = {}
        self.pools: dict[str, dict[str, dict[str, Any]]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.countdown: dict[str, int] = {}
        #: reads before an asynchronous step completes
        self.polls = 2
        self.cluster_quota = 20
        #: next cluster created fails with this reason (job Failed, cluster Error)
        self.fail_next_cluster: str | None = None
        #: a failed cluster's reason is only in its job (as after some CCE failures)
        self.reason_in_job_only = False
        #: node pools go SoldOut instead of getting nodes
        self.sold_out = False
        #: nodes by cluster uid, then node uid
        self.nodes: dict[str, dict[str, dict[str, Any]]] = {}
        #: deleting a pool's node lowers the pool's initialNodeCount (unless NoScaleDown is asked)
        self.delete_scales_pool = True
        self._ips = 0

    def catalog(self) -> list[dict[str, Any]]:
        return [*super().catalog(), self.service("ccev2.0", "cce", f"{self.base_url}/cce")]

    @property
    def prefix(self) -> str:
        return f"/cce/api/v3/projects/{self.project_id}"

    # ---- asynchronous progress ---------------------------------------------------------------------
    def _tick(self, key: str) -> bool:
        """One read of ``key``; True when its pending step is due."""
        if key not in self.countdown:
            return False
        self.countdown[key] -= 1
        if self.countdown[key] <= 0:
            del self.countdown[key]
            return True
        return False

    def _advance_cluster(self, uid: str) -> None:
        c = self.clusters.get(uid)
        if c is None or not self._tick(uid):
            return
        phase = c["status"]["phase"]
        job = self.jobs[c["status"]["jobID"]]
        if phase == "Creating":
            if c.pop("_fail", None):
                c["status"]["phase"] = "Error"
                job["status"]["reason"] = c.pop("_reason")
                if not self.reason_in_job_only:
                    c["status"]["reason"] = job["status"]["reason"]
                job["status"]["phase"] = "Failed"
            else:
                c["status"]["phase"] = "Available"
                job["status"]["phase"] = "Success"
        elif phase == "Deleting":
            del self.clusters[uid]
            self.pools.pop(uid, None)
            self.nodes.pop(uid, None)
            job["status"]["phase"] = "Success"

    def _advance_pool(self, cid: str, pid: str) -> None:
        p = self.pools.get(cid, {}).get(pid)
        if p is None or not self._tick(pid):
            return
        if p["status"]["phase"] == "Deleting":
            del self.pools[cid][pid]
            for nid in [n for n, node in self.nodes.get(cid, {}).items() if _pool_of(node) == pid]:
                del self.nodes[cid][nid]
            return
        if self.sold_out:
            p["status"]["phase"] = "SoldOut"
            return
        live = [n for n in self.pool_nodes(cid, pid) if n["status"]["phase"] != "Deleting"]
        for node in live[p["spec"]["initialNodeCount"] :]:  # too many: the pool picks (its newest)
            self._start_node_delete(cid, node)
        for _ in range(p["spec"]["initialNodeCount"] - len(live)):
            self.add_node(cid, p)
        p["status"]["phase"] = ""
        p["status"]["currentNode"] = len(self.pool_nodes(cid, pid))

    # ---- nodes -------------------------------------------------------------------------------------------
    def pool_nodes(self, cid: str, pid: str) -> list[dict[str, Any]]:
        """A pool's nodes, oldest first (deleting ones included until they are gone)."""
        return [n for n in self.nodes.get(cid, {}).values() if _pool_of(n) == pid]

    def node_names(self, cid: str) -> list[str]:
        """Kubernetes names (private IPs) of a cluster's nodes that are not being deleted."""
        return [n["status"]["privateIP"] for n in self.nodes.get(cid, {}).values() if n["status"]["phase"] == "Active"]

    def add_node(self, cid: str, pool: dict[str, Any]) -> dict[str, Any]:
        """Boot one node of ``pool`` in cluster ``cid`` (as the pool does when it is short)."""
        self._ips += 1
        nid, ip = str(uuid.uuid4()), f"127.168.{self._ips // 250}.{self._ips % 250 + 4}"
        tmpl = pool["spec"].get("nodeTemplate") or {}
        node = {
            "kind": "Node", "apiVersion": "v3",
            "metadata": {"name": f"{pool['metadata']['name']}-{nid[:5]}", "uid": nid, "creationTimestamp": _now(),
                         "annotations": {"kubernetes.io/node-pool.id": pool["metadata"]["uid"]}},
            "spec": {k: tmpl[k] for k in ("flavor", "az", "os", "login", "rootVolume", "dataVolumes") if k in tmpl},
            "status": {"phase": "Active", "serverId": str(uuid.uuid4()), "privateIP": ip,
                       "jobID": self._new_job("CreateNode", cid, nid)},
        }  # fmt: skip
        self.nodes.setdefault(cid, {})[nid] = node
        return node

    def _start_node_delete(self, cid: str, node: dict[str, Any]) -> None:
        node["status"]["phase"] = "Deleting"
        node["status"]["jobID"] = self._new_job("DeleteNode", cid, node["metadata"]["uid"])
        self.countdown[node["metadata"]["uid"]] = self.polls

    def _advance_nodes(self, cid: str) -> None:
        """Deletions finish after ``polls`` reads; a pool left short boots a replacement."""
        for nid, node in list(self.nodes.get(cid, {}).items()):
            if node["status"]["phase"] != "Deleting" or not self._tick(nid):
                continue
            del self.nodes[cid][nid]
            pool = self.pools.get(cid, {}).get(_pool_of(node))
            if pool is None:
                continue
            pool["status"]["currentNode"] = len(self.pool_nodes(cid, pool["metadata"]["uid"]))
            live = [n for n in self.pool_nodes(cid, pool["metadata"]["uid"]) if n["status"]["phase"] != "Deleting"]
            if len(live) < pool["spec"]["initialNodeCount"] and pool["metadata"]["uid"] not in self.countdown:
                pool["status"]["phase"] = "Synchronizing"
                self.countdown[pool["metadata"]["uid"]] = self.polls

    # ---- routes ------------------------------------------------------------------------------------------
    def handle(self, req: Request) -> Reply:
        if not req.path.startswith(self.prefix):
            return _err(404, "APIGW.0101", "The API does not exist or has not been published in the environment")
        path = req.path[len(self.prefix) :].rstrip("/")
        routes: list[tuple[str, str, Any]] = [
            ("GET", r"/quotas", self._quotas),
            ("GET", r"/jobs/(?P<jid>[^/]+)", self._get_job),
            ("GET", r"/clusters", self._list_clusters),
            ("POST", r"/clusters", self._create_cluster),
            ("GET", r"/clusters/(?P<cid>[^/]+)", self._get_cluster),
            ("DELETE", r"/clusters/(?P<cid>[^/]+)", self._delete_cluster),
            ("POST", r"/clusters/(?P<cid>[^/]+)/clustercert", self._clustercert),
            ("GET", r"/clusters/(?P<cid>[^/]+)/nodepools", self._list_pools),
            ("POST", r"/clusters/(?P<cid>[^/]+)/nodepools", self._create_pool),
            ("GET", r"/clusters/(?P<cid>[^/]+)/nodepools/(?P<pid>[^/]+)", self._get_pool),
            ("PUT", r"/clusters/(?P<cid>[^/]+)/nodepools/(?P<pid>[^/]+)", self._update_pool),
            ("DELETE", r"/clusters/(?P<cid>[^/]+)/nodepools/(?P<pid>[^/]+)", self._delete_pool),
            ("GET", r"/clusters/(?P<cid>[^/]+)/nodes", self._list_nodes),
            ("DELETE", r"/clusters/(?P<cid>[^/]+)/nodes/(?P<nid>[^/]+)", self._delete_node),
        ]
        for method, pattern, fn in routes:
            m = re.fullmatch(pattern, path)
            if m and method == req.method:
                reply: Reply = fn(req, **m.groupdict())
                return reply
        return _err(404, "APIGW.0101", f"no route for {req.method} {path}")

    def _quotas(self, req: Request) -> Reply:
        used = len(self.clusters)
        return Reply(
            200, {"quotas": [{"quotaKey": "cluster", "quotaLimit": self.cluster_quota, "used": used, "unit": "count"}]}
        )

    def _get_job(self, req: Request, jid: str) -> Reply:
        job = self.jobs.get(jid)
        return Reply(200, job) if job else _err(404, "CCE.01404001", "Job not found")

    def _list_clusters(self, req: Request) -> Reply:
        for uid in list(self.clusters):
            self._advance_cluster(uid)
        return Reply(200, {"kind": "Cluster", "apiVersion": "v3", "items": list(self.clusters.values())})

    def _find(self, cid: str) -> dict[str, Any] | None:
        self._advance_cluster(cid)
        return self.clusters.get(cid)

    def _get_cluster(self, req: Request, cid: str) -> Reply:
        c = self._find(cid)
        return Reply(200, c) if c else _err(404, "CCE.01404001", "The cluster does not exist.")

    def _new_job(self, kind: str, cluster_uid: str, name: str) -> str:
        jid = str(uuid.uuid4())
        self.jobs[jid] = {
            "kind": "Job",
            "metadata": {"uid": jid, "creationTimestamp": _now()},
            "spec": {"type": kind, "clusterUID": cluster_uid, "resourceName": name},
            "status": {"phase": "Running", "reason": ""},
        }
        return jid

    def _create_cluster(self, req: Request) -> Reply:
        body = req.body if isinstance(req.body, dict) else {}
        meta, spec = body.get("metadata") or {}, body.get("spec") or {}
        name = meta.get("name")
        missing = [k for k in ("type", "flavor", "hostNetwork", "containerNetwork") if k not in spec]
        if not name or missing:
            return _err(400, "CCE.01400001", f"Invalid request: missing {missing or 'metadata.name'}")
        if any(c["metadata"]["name"] == name for c in self.clusters.values()):
            return _err(409, "CCE.01409001", f"cluster name {name} already exists")
        if len(self.clusters) >= self.cluster_quota:
            return _err(403, "CCE.01403004", "Insufficient quota: the number of clusters exceeds the quota.")
        uid = str(uuid.uuid4())
        jid = self._new_job("CreateCluster", uid, name)
        cluster = {
            "kind": "Cluster",
            "apiVersion": "v3",
            "metadata": {**meta, "uid": uid, "creationTimestamp": _now(), "updateTimestamp": _now()},
            "spec": spec,
            "status": {
                "phase": "Creating",
                "jobID": jid,
                "endpoints": [{"url": "https://127.0.0.10:5443", "type": "Internal"}],
            },
        }
        if self.fail_next_cluster:
            cluster["_fail"], cluster["_reason"] = True, self.fail_next_cluster
            self.fail_next_cluster = None
        self.clusters[uid] = cluster
        self.pools[uid] = {}
        self.countdown[uid] = self.polls
        return Reply(201, {k: v for k, v in cluster.items() if not k.startswith("_")})

    def _delete_cluster(self, req: Request, cid: str) -> Reply:
        c = self.clusters.get(cid)
        if c is None:
            return _err(404, "CCE.01404001", "The cluster does not exist.")
        if c["status"]["phase"] != "Deleting":
            c["status"]["phase"] = "Deleting"
            c["status"]["jobID"] = self._new_job("DeleteCluster", cid, c["metadata"]["name"])
            self.countdown[cid] = self.polls
        return Reply(200, c)

    def _clustercert(self, req: Request, cid: str) -> Reply:
        c = self._find(cid)
        if c is None:
            return _err(404, "CCE.01404001", "The cluster does not exist.")
        if c["status"]["phase"] != "Available":
            return _err(400, "CCE.01400003", "Cluster status is not Available.")
        clusters = [
            {
                "name": "internalCluster",
                "cluster": {"server": "https://127.0.0.10:5443", "certificate-authority-data": CA_DATA},
            },
            {
                "name": "externalCluster",
                "cluster": {"server": "https://127.0.158.2:5443", "insecure-skip-tls-verify": True},
            },
            {
                "name": "externalClusterTLSVerify",
                "cluster": {"server": "https://127.0.158.2:5443", "certificate-authority-data": CA_DATA},
            },
        ]
        ctx = [
            {"name": "internal", "context": {"cluster": "internalCluster", "user": "user"}},
            {"name": "external", "context": {"cluster": "externalCluster", "user": "user"}},
            {"name": "externalTLSVerify", "context": {"cluster": "externalClusterTLSVerify", "user": "user"}},
        ]
        return Reply(
            200,
            {
                "kind": "Config",
                "apiVersion": "v1",
                "preferences": {},
                "clusters": clusters,
                "users": [
                    {"name": "user", "user": {"client-certificate-data": CLIENT_CERT, "client-key-data": CLIENT_KEY}}
                ],
                "contexts": ctx,
                "current-context": "external",
            },
            {"Port-ID": str(uuid.uuid4())},
        )

    def _list_pools(self, req: Request, cid: str) -> Reply:
        if self._find(cid) is None:
            return _err(404, "CCE.01404001", "The cluster does not exist.")
        self._advance_nodes(cid)
        for pid in list(self.pools.get(cid, {})):
            self._advance_pool(cid, pid)
        return Reply(200, {"kind": "List", "apiVersion": "v3", "items": list(self.pools.get(cid, {}).values())})

    def _list_nodes(self, req: Request, cid: str) -> Reply:
        if self._find(cid) is None:
            return _err(404, "CCE.01404001", "The cluster does not exist.")
        self._advance_nodes(cid)
        return Reply(200, {"kind": "List", "apiVersion": "v3", "items": list(self.nodes.get(cid, {}).values())})

    def _delete_node(self, req: Request, cid: str, nid: str) -> Reply:
        if self._find(cid) is None:
            return _err(404, "CCE.01404001", "The cluster does not exist.")
        node = self.nodes.get(cid, {}).get(nid)
        if node is None:
            return _err(404, "CCE.01404001", "The node does not exist.")
        if node["status"]["phase"] != "Deleting":
            self._start_node_delete(cid, node)
            pool = self.pools.get(cid, {}).get(_pool_of(node))
            if pool is not None and self.delete_scales_pool and req.param("nodepoolScaleDown") != "NoScaleDown":
                pool["spec"]["initialNodeCount"] = max(pool["spec"]["initialNodeCount"] - 1, 0)
        return Reply(200, node)

    def _create_pool(self, req: Request, cid: str) -> Reply:
        c = self._find(cid)
        if c is None:
            return _err(404, "CCE.01404001", "The cluster does not exist.")
        if c["status"]["phase"] != "Available":
            return _err(400, "CCE.01400003", "Cluster status is not Available.")
        body = req.body if isinstance(req.body, dict) else {}
        spec = body.get("spec") or {}
        tmpl = spec.get("nodeTemplate") or {}
        missing = [k for k in ("flavor", "os", "login", "rootVolume", "dataVolumes") if k not in tmpl]
        login = tmpl.get("login") or {}
        if not (login.get("sshKey") or login.get("userPassword")):
            missing.append("login.sshKey or login.userPassword")
        if missing or "initialNodeCount" not in spec:
            return _err(400, "CCE.01400001", f"Invalid node pool spec: missing {missing or 'initialNodeCount'}")
        pid = str(uuid.uuid4())
        pool = {
            "kind": "NodePool",
            "apiVersion": "v3",
            "metadata": {**(body.get("metadata") or {}), "uid": pid, "creationTimestamp": _now()},
            "spec": spec,
            "status": {"phase": "Synchronizing", "currentNode": 0},
        }
        self.pools[cid][pid] = pool
        self.countdown[pid] = self.polls
        return Reply(201, pool)

    def _get_pool(self, req: Request, cid: str, pid: str) -> Reply:
        self._advance_pool(cid, pid)
        pool = self.pools.get(cid, {}).get(pid)
        return Reply(200, pool) if pool else _err(404, "CCE.01404001", "The node pool does not exist.")

    def _update_pool(self, req: Request, cid: str, pid: str) -> Reply:
        pool = self.pools.get(cid, {}).get(pid)
        if pool is None:
            return _err(404, "CCE.01404001", "The node pool does not exist.")
        body = req.body if isinstance(req.body, dict) else {}
        spec = body.get("spec") or {}
        if "initialNodeCount" not in spec or "nodeTemplate" not in spec:
            return _err(400, "CCE.01400001", "Invalid node pool spec")
        pool["spec"]["initialNodeCount"] = spec["initialNodeCount"]
        pool["status"]["phase"] = "Synchronizing"
        self.countdown[pid] = self.polls
        return Reply(200, pool)

    def _delete_pool(self, req: Request, cid: str, pid: str) -> Reply:
        pool = self.pools.get(cid, {}).get(pid)
        if pool is None:
            return _err(404, "CCE.01404001", "The node pool does not exist.")
        if pool["status"]["phase"] != "Deleting":
            pool["status"]["phase"] = "Deleting"
            self.countdown[pid] = self.polls
        return Reply(200, pool)


def _pool_of(node: dict[str, Any]) -> str:
    return str(node["metadata"].get("annotations", {}).get("kubernetes.io/node-pool.id", ""))


@pytest.fixture
def cce(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CceFake]:
    """A running CCE fake and a clouds.yaml naming it (cloud ``burst-test``)."""
    with CceFake() as fake:
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(fake.write_clouds_yaml(tmp_path)))
        yield fake


@pytest.fixture
def ctx() -> ProviderContext:
    return ProviderContext(clock=SimClock(datetime(2026, 11, 25, tzinfo=UTC)), owner="cern-burst")
