"""A local Magnum v1 server (on burst's shared Keystone fake) and the fixtures the tests use.

Shapes follow the Magnum API reference (container-infrastructure-management: Manage Cluster,
Manage Cluster Templates, Manage certificates, Manage quotas) and openstacksdk's own resource
classes (``openstack.container_infrastructure_management.v1``): create answers 202 with just the
``uuid``; clusters are found by uuid *or* name (names need not be unique: 409 when ambiguous);
lists are ``{"clusters": [...]}`` summaries; updates are JSON-patch documents; errors are
``{"errors": [{"status", "title", "detail", ...}]}``.  Progress is asynchronous: a stack moves
from ``*_IN_PROGRESS`` to ``*_COMPLETE`` (or ``CREATE_FAILED`` with a ``status_reason``) after
``polls`` reads.  Certificates are really signed by a CA the fake makes, so the kubeconfig the
provider writes can be checked with ``cryptography``.

Each cluster's masters and worker nodes are Nova servers on the base fake's compute endpoint, named
as Magnum's Heat templates name them (``<stack name>-master-<i>``, ``<stack name>-node-<i>``); a
cluster's ``node_addresses`` are its workers' fixed IPs, and its two nodegroups (``default-master``,
``default-worker``, API microversion 1.9+) count them.  The resize action (1.7+; to 0 nodes only
from 1.10) deletes exactly the ``nodes_to_remove`` server ids; a count change without them removes
the highest indices, as a Heat ResourceGroup does.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from burst.api import ProviderContext, SimClock
from burst.testing.openstack_fake import KeystoneFake, Reply, Request

SUMMARY_FIELDS = (
    "uuid", "name", "cluster_template_id", "keypair", "docker_volume_size", "labels", "node_count", "status",
    "master_flavor_id", "flavor_id", "create_timeout", "master_count", "stack_id", "health_status", "links",
)  # fmt: skip


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _microversion(req: Request) -> tuple[int, int]:
    """The ``container-infra`` microversion asked for; Magnum's minimum (1.1) when none is."""
    m = re.fullmatch(r"container-infra (\d+)\.(\d+)", req.headers.get("openstack-api-version", "").strip())
    return (int(m.group(1)), int(m.group(2))) if m else (1, 1)


def _err(status: int, detail: str) -> Reply:
    code = "client" if status < 500 else "server"
    return Reply(status, {"errors": [{"request_id": "", "code": code, "status": status, "title": detail,
                                      "detail": detail, "links": []}]})  # fmt: skip


class FakeCA:
    """The cluster CA Magnum keeps per cluster (one shared here)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "magnum-fake-ca")])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, csr_pem: str) -> str:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        if not csr.is_signature_valid:
            raise ValueError("CSR signature invalid")
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode()


class MagnumFake(KeystoneFake):
    """Keystone + Magnum v1 under ``/magnum/v1``."""

    def __init__(self) -> None:
        super().__init__(region="cern")
        self.ca = FakeCA()
        self.templates: dict[str, dict[str, Any]] = {}
        self.clusters: dict[str, dict[str, Any]] = {}
        self.countdown: dict[str, int] = {}
        self.polls = 2
        self.cluster_quota = 20
        #: the next cluster created fails with this status_reason
        self.fail_next: str | None = None
        #: newer Magnum lists labels in cluster summaries; older releases do not
        self.list_has_labels = True
        self._subnet = 0
        self.add_template("kubernetes-1.29", labels={"kube_tag": "v1.29.1", "cern_enabled": "true"})

    def catalog(self) -> list[dict[str, Any]]:
        return [*super().catalog(), self.service("container-infra", "magnum", f"{self.base_url}/magnum/v1")]

    def add_template(self, name: str, labels: dict[str, str]) -> str:
        tid = str(uuid.uuid4())
        self.templates[tid] = {
            "uuid": tid, "name": name, "coe": "kubernetes", "image_id": "fedora-coreos-38", "keypair_id": None,
            "labels": labels, "tls_disabled": False, "public": True, "hidden": False, "server_type": "vm",
            "network_driver": "calico", "volume_driver": "cinder", "flavor_id": "m2.medium",
            "master_flavor_id": "m2.medium", "external_network_id": "public", "docker_volume_size": None,
            "floating_ip_enabled": False, "master_lb_enabled": False, "created_at": _now(), "updated_at": None,
            "project_id": self.project_id, "links": [],
        }  # fmt: skip
        return tid

    # ---- asynchronous progress ---------------------------------------------------------------------
    def _advance(self, cid: str) -> None:
        c = self.clusters.get(cid)
        if c is None or cid not in self.countdown:
            return
        self.countdown[cid] -= 1
        if self.countdown[cid] > 0:
            return
        del self.countdown[cid]
        status = c["status"]
        if status == "CREATE_IN_PROGRESS":
            reason = c.pop("_fail", None)
            if reason:
                c["status"], c["status_reason"] = "CREATE_FAILED", reason
                c["faults"] = {"kube_masters": reason}
            else:
                c["status"], c["status_reason"] = "CREATE_COMPLETE", "Stack CREATE completed successfully"
                c["api_address"] = "https://127.0.184.10:6443"
                c["_masters"] = [self._boot(c, "master") for _ in range(c["master_count"])]
                c["master_addresses"] = [self._ip(s) for s in c["_masters"]]
                self._converge(c)
                c["health_status"] = "HEALTHY"
        elif status == "UPDATE_IN_PROGRESS":
            c["status"], c["status_reason"] = "UPDATE_COMPLETE", "Stack UPDATE completed successfully"
            self._converge(c)
        elif status == "DELETE_IN_PROGRESS":
            for sid in [*c.get("_masters", []), *c.get("_workers", [])]:
                self.servers.pop(sid, None)
            del self.clusters[cid]

    # ---- the cluster's Nova servers ------------------------------------------------------------------
    def _boot(self, c: dict[str, Any], role: str) -> str:
        index = c["_index"][role]
        c["_index"][role] += 1
        self._subnet += 1
        return self.add_server(
            f"{c['_stack']}-{role}-{index}", f"127.10.{self._subnet // 250}.{self._subnet % 250 + 4}"
        )

    def _ip(self, sid: str) -> str:
        return str(self.servers[sid]["addresses"]["private"][0]["addr"])

    def _converge(self, c: dict[str, Any]) -> None:
        """What Heat does at the end of a stack create/update: delete the servers named for removal,
        then the highest-index ones, or boot new ones, until ``node_count`` workers are left."""
        workers: list[str] = c.setdefault("_workers", [])
        for sid in c.pop("_remove", []):
            workers.remove(sid)
            self.servers.pop(sid, None)
        while len(workers) > c["node_count"]:
            self.servers.pop(workers.pop(), None)
        while len(workers) < c["node_count"]:
            workers.append(self._boot(c, "node"))
        c["node_addresses"] = [self._ip(s) for s in workers]

    def node_names(self, ident: str) -> list[str]:
        """The Kubernetes node names (Nova server names) of a cluster's workers."""
        c = next(c for c in self.clusters.values() if ident in (c["uuid"], c["name"]))
        return [self.servers[s]["name"] for s in c.get("_workers", [])]

    def _lookup(self, ident: str) -> tuple[dict[str, Any] | None, Reply | None]:
        """By uuid, else by name (Magnum's ``uuid_or_name``)."""
        if ident in self.clusters:
            self._advance(ident)
            c = self.clusters.get(ident)
            return (c, None) if c else (None, _err(404, f"Cluster {ident} could not be found."))
        named = [k for k, c in self.clusters.items() if c["name"] == ident]
        if len(named) > 1:
            return None, _err(409, "Multiple clusters exist with same name. Please use the cluster uuid instead.")
        if not named:
            return None, _err(404, f"Cluster {ident} could not be found.")
        return self._lookup(named[0])

    @staticmethod
    def _public(c: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in c.items() if not k.startswith("_")}

    # ---- routes ------------------------------------------------------------------------------------------
    def handle(self, req: Request) -> Reply:
        if not req.path.startswith("/magnum/v1"):
            return _err(404, "The resource could not be found.")
        path = req.path[len("/magnum/v1") :].rstrip("/")
        routes: list[tuple[str, str, Any]] = [
            ("GET", r"/clustertemplates", self._list_templates),
            ("GET", r"/clustertemplates/(?P<ident>[^/]+)", self._get_template),
            ("GET", r"/clusters", self._list_clusters),
            ("GET", r"/clusters/detail", self._list_detail),
            ("POST", r"/clusters", self._create),
            ("GET", r"/clusters/(?P<ident>[^/]+)", self._get),
            ("PATCH", r"/clusters/(?P<ident>[^/]+)", self._patch),
            ("POST", r"/clusters/(?P<ident>[^/]+)/actions/resize", self._resize_action),
            ("GET", r"/clusters/(?P<ident>[^/]+)/nodegroups", self._list_nodegroups),
            ("DELETE", r"/clusters/(?P<ident>[^/]+)", self._delete),
            ("POST", r"/certificates", self._sign),
            ("GET", r"/certificates/(?P<ident>[^/]+)", self._ca),
            ("GET", r"/quotas/(?P<project>[^/]+)/(?P<resource>[^/]+)", self._quota),
        ]
        for method, pattern, fn in routes:
            m = re.fullmatch(pattern, path)
            if m and method == req.method:
                reply: Reply = fn(req, **m.groupdict())
                return reply
        return _err(404, f"no route for {req.method} {path}")

    def _list_templates(self, req: Request) -> Reply:
        return Reply(200, {"clustertemplates": [{"uuid": t["uuid"], "name": t["name"], "links": []}
                                                for t in self.templates.values()]})  # fmt: skip

    def _get_template(self, req: Request, ident: str) -> Reply:
        for t in self.templates.values():
            if ident in (t["uuid"], t["name"]):
                return Reply(200, t)
        return _err(404, f"ClusterTemplate {ident} could not be found.")

    def _list_clusters(self, req: Request) -> Reply:
        for cid in list(self.clusters):
            self._advance(cid)
        fields = [f for f in SUMMARY_FIELDS if f != "labels" or self.list_has_labels]
        return Reply(200, {"clusters": [{f: c.get(f) for f in fields} for c in self.clusters.values()],
                           "next": None})  # fmt: skip

    def _list_detail(self, req: Request) -> Reply:
        for cid in list(self.clusters):
            self._advance(cid)
        return Reply(200, {"clusters": [self._public(c) for c in self.clusters.values()], "next": None})

    def _create(self, req: Request) -> Reply:
        body = req.body if isinstance(req.body, dict) else {}
        tid = body.get("cluster_template_id")
        tpl = next((t for t in self.templates.values() if tid in (t["uuid"], t["name"])), None)
        if tpl is None:
            return _err(404, f"ClusterTemplate {tid} could not be found.")
        if len(self.clusters) >= self.cluster_quota:
            return _err(403, "Resource Limit Exceeded: You have reached the maximum clusters per project, "
                             f"{self.cluster_quota}. You may delete a cluster to make room for a new one.")  # fmt: skip
        cid = str(uuid.uuid4())
        self.clusters[cid] = {
            "uuid": cid, "name": body.get("name") or f"cluster-{cid[:6]}", "cluster_template_id": tpl["uuid"],
            "keypair": body.get("keypair") or tpl["keypair_id"], "flavor_id": body.get("flavor_id") or tpl["flavor_id"],
            "master_flavor_id": body.get("master_flavor_id") or tpl["master_flavor_id"],
            "node_count": int(body.get("node_count", 1)), "master_count": int(body.get("master_count", 1)),
            "docker_volume_size": body.get("docker_volume_size"),
            "labels": body["labels"] if "labels" in body else dict(tpl["labels"]),
            "create_timeout": body.get("create_timeout", 60), "discovery_url": None, "api_address": None,
            "coe_version": None, "container_version": None, "status": "CREATE_IN_PROGRESS",
            "status_reason": None, "health_status": None, "health_status_reason": {},
            "stack_id": str(uuid.uuid4()), "master_addresses": [], "node_addresses": [],
            "fixed_network": body.get("fixed_network"), "fixed_subnet": body.get("fixed_subnet"),
            "floating_ip_enabled": body.get("floating_ip_enabled", tpl["floating_ip_enabled"]),
            "master_lb_enabled": False, "project_id": self.project_id, "user_id": "u-" + self.username,
            "created_at": _now(), "updated_at": None, "faults": {}, "links": [],
            "_stack": f"{(body.get('name') or 'cluster')[:20]}-{uuid.uuid4().hex[:12]}",
            "_index": {"master": 0, "node": 0},
        }  # fmt: skip
        if self.fail_next:
            self.clusters[cid]["_fail"] = self.fail_next
            self.fail_next = None
        self.countdown[cid] = self.polls
        return Reply(202, {"uuid": cid})

    def _get(self, req: Request, ident: str) -> Reply:
        c, err = self._lookup(ident)
        return Reply(200, self._public(c)) if c else err  # type: ignore[return-value]

    def _start_update(self, c: dict[str, Any], node_count: int) -> Reply:
        if c["status"].endswith("_IN_PROGRESS"):
            return _err(400, f'Updating a cluster when status is "{c["status"]}" is not supported')
        c["node_count"] = node_count
        c["status"], c["status_reason"], c["updated_at"] = "UPDATE_IN_PROGRESS", None, _now()
        self.countdown[c["uuid"]] = self.polls
        return Reply(202, {"uuid": c["uuid"]})

    def _patch(self, req: Request, ident: str) -> Reply:
        c, err = self._lookup(ident)
        if c is None:
            return err  # type: ignore[return-value]
        ops = req.body if isinstance(req.body, list) else []
        counts = [op.get("value") for op in ops if op.get("path") == "/node_count" and op.get("op") == "replace"]
        if len(ops) != 1 or not counts:
            return _err(400, f"Unsupported patch {ops!r}")
        return self._start_update(c, int(counts[0]))

    def _resize_action(self, req: Request, ident: str) -> Reply:
        version = _microversion(req)
        if version < (1, 7):
            return _err(406, f"Version {version[0]}.{version[1]} was requested but the resize action needs 1.7")
        c, err = self._lookup(ident)
        if c is None:
            return err  # type: ignore[return-value]
        body = req.body if isinstance(req.body, dict) else {}
        count = int(body["node_count"])
        if count == 0 and version < (1, 10):
            return _err(400, "Resizing a nodegroup to zero is not supported in the requested API version.")
        if body.get("nodegroup") not in (None, "default-worker"):
            return _err(404, f"Nodegroup {body['nodegroup']} could not be found.")
        remove = list(body.get("nodes_to_remove") or [])
        unknown = [sid for sid in remove if sid not in c.get("_workers", [])]
        if unknown:
            return _err(400, f"Nodes {unknown} are not nodes of nodegroup default-worker.")
        reply = self._start_update(c, count)
        if reply.status == 202 and remove:
            c["_remove"] = remove
            for sid in remove:  # Heat starts deleting them at once
                self.servers[sid]["OS-EXT-STS:task_state"] = "deleting"
        return reply

    def _list_nodegroups(self, req: Request, ident: str) -> Reply:
        if _microversion(req) < (1, 9):
            return _err(404, "The resource could not be found.")
        c, err = self._lookup(ident)
        if c is None:
            return err  # type: ignore[return-value]
        groups = [("default-master", "master", c["master_count"], c["master_flavor_id"], 1),
                  ("default-worker", "worker", c["node_count"], c["flavor_id"], 0)]  # fmt: skip
        return Reply(200, {"nodegroups": [
            {"uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, c["uuid"] + name)), "name": name, "flavor_id": flavor,
             "image_id": "fedora-coreos-38", "node_count": count, "role": role, "max_node_count": None,
             "min_node_count": minimum, "is_default": True, "stack_id": c["stack_id"], "status": c["status"],
             "links": []}
            for name, role, count, flavor, minimum in groups
        ]})  # fmt: skip

    def _delete(self, req: Request, ident: str) -> Reply:
        c, err = self._lookup(ident)
        if c is None:
            return err  # type: ignore[return-value]
        if c["status"] != "DELETE_IN_PROGRESS":
            c["status"], c["status_reason"] = "DELETE_IN_PROGRESS", None
            self.countdown[c["uuid"]] = self.polls
        return Reply(204)

    def _sign(self, req: Request) -> Reply:
        body = req.body if isinstance(req.body, dict) else {}
        c, err = self._lookup(str(body.get("cluster_uuid")))
        if c is None:
            return err  # type: ignore[return-value]
        try:
            pem = self.ca.sign(str(body.get("csr")))
        except ValueError as e:
            return _err(400, f"Invalid CSR: {e}")
        return Reply(201, {"cluster_uuid": c["uuid"], "csr": body["csr"], "pem": pem, "links": []})

    def _ca(self, req: Request, ident: str) -> Reply:
        c, err = self._lookup(ident)
        if c is None:
            return err  # type: ignore[return-value]
        return Reply(200, {"cluster_uuid": c["uuid"], "pem": self.ca.pem, "links": []})

    def _quota(self, req: Request, project: str, resource: str) -> Reply:
        if project != self.project_id or resource != "Cluster":
            return _err(404, f"Quota for project {project} resource {resource} could not be found.")
        return Reply(200, {"resource": "Cluster", "hard_limit": self.cluster_quota, "project_id": project,
                           "id": 1, "created_at": _now(), "updated_at": None})  # fmt: skip


@pytest.fixture
def magnum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MagnumFake]:
    """A running Magnum fake and a clouds.yaml naming it (cloud ``burst-test``)."""
    with MagnumFake() as fake:
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(fake.write_clouds_yaml(tmp_path)))
        yield fake


@pytest.fixture
def ctx() -> ProviderContext:
    return ProviderContext(clock=SimClock(datetime(2026, 11, 25, tzinfo=UTC)), owner="cern-burst")
