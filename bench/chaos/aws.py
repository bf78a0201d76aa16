"""The AWS backend of the chaos runs: the real ``aws`` provider (boto3) against moto's EKS server
behind the tests' fault proxy (``providers/aws/tests/fake_aws.py``), all on 127.0.0.1.

What a run sees of EKS comes from the proxy's side: each request's operation, the access key that
signed it (one per replica, so a side effect names its sender), when it arrived and what was
answered.  Faults are injected the way EKS fails: 429 with ``Retry-After``, 5xx, quota and capacity
errors, a slow answer past the client's read timeout (the call is done late, the caller gave up),
a lost answer (done at once, the answer never arrives), "done but gone" (EKS accepted the
cluster, then it is not there), and slow calls (answered late, within the timeout).
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench.chaos.world import CloudView, load_test_module

REGION = "eu-central-1"
ACCOUNT = "123456789012"
MUTATING_OPS = frozenset(
    {
        "CreateCluster",
        "CreateNodegroup",
        "DeleteCluster",
        "DeleteNodegroup",
        "UpdateNodegroupConfig",
        "TagResource",
        "TerminateInstanceInAutoScalingGroup",
        "UpdateAutoScalingGroup",
        "SetDesiredCapacity",
    }
)
_AKID = re.compile(r"Credential=(?P<akid>[^/]+)/")
READ_TIMEOUT_S = 5.0

_moto_lock = threading.Lock()
_moto: dict[str, Any] = {}


def _fake_aws_module() -> Any:
    return load_test_module("burst_chaos_fake_aws", "providers/aws/tests/fake_aws.py")


def moto_url() -> str:
    """One moto server per bench process, never reset: runs are kept apart by their installation
    name (cluster names and ownership tags carry it)."""
    with _moto_lock:
        if "url" not in _moto:
            import logging

            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            _moto["server"] = server
            _moto["url"] = f"http://{host}:{port}"
        return str(_moto["url"])


def stop_moto() -> None:
    with _moto_lock:
        server = _moto.pop("server", None)
        _moto.pop("url", None)
    if server is not None:
        server.stop()


def akid(replica: str) -> str:
    """The access key a replica signs with: the proxy's log names the sender by it."""
    return f"AKIDCHAOS{replica.upper()}"


def replica_of(key: str) -> str:
    return key.removeprefix("AKIDCHAOS").lower() if key.startswith("AKIDCHAOS") else ""


@dataclass(frozen=True)
class AwsCall:
    t: float
    akid: str
    operation: str
    cluster: str
    status: int


class AwsCloud:
    """Moto + the proxy for one run; ``faults`` are drawn from the run's seed."""

    def __init__(self, owner: str, faults: tuple[dict[str, Any], ...], seed: int) -> None:
        import boto3

        fake_mod = _fake_aws_module()
        # the proxy's own clients to moto (it keeps node groups' Auto Scaling groups in step) take
        # credentials from the standard chain: the harness's, never a replica's
        for var, value in (("AWS_ACCESS_KEY_ID", "AKIDCHAOSHARNESS"), ("AWS_SECRET_ACCESS_KEY", "harness")):
            os.environ.setdefault(var, value)
        os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        self.owner = owner
        self.upstream = moto_url()
        self.calls: list[AwsCall] = []
        self.errors: list[str] = []  # the proxy's own failures (a harness problem, not burst's)
        #: called with the signing access key before a mutating call is served
        self.on_call: Any = None
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._faults = [dict(f) for f in faults]  # this run's own counters
        self._gone: set[str] = set()
        cloud = self

        class Proxy(fake_mod.FakeAws):  # type: ignore[misc,name-defined]
            def _handle(self, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> Any:
                arrived = time.time()
                before = len(self.requests)
                cloud._before(self, method, raw_path, headers)
                try:
                    out = super()._handle(method, raw_path, headers, raw)
                except Exception as err:
                    cloud.errors.append(f"{method} {raw_path}: {type(err).__name__}: {err}")
                    raise
                with self._lock:
                    seen = list(self.requests[before:])
                for s in seen:
                    cloud._record(arrived, s)
                return out

        self.proxy = Proxy(self.upstream).start()
        self.proxy.lag(creating=2, deleting=2)
        self.eks = boto3.client(
            "eks",
            region_name=REGION,
            endpoint_url=self.upstream,
            aws_access_key_id="AKIDCHAOSHARNESS",
            aws_secret_access_key="harness",
        )
        self._arm()

    # -- faults --------------------------------------------------------------------------------

    def _arm(self) -> None:
        """Queue the run's injected errors on the proxy (each answered once, on the next call)."""
        for f in self._faults:
            kind = f["kind"]
            op = f.get("operation", "CreateCluster")
            if kind == "throttled":
                self.proxy.fail(op, "ThrottlingException", "Rate exceeded", status=429, headers={"Retry-After": "2"})
            elif kind == "server_error":
                self.proxy.fail(op, "ServerException", "internal error (injected)", status=500)
            elif kind == "unavailable":
                self.proxy.fail(op, "ServiceUnavailableException", "try again (injected)", status=503)
            elif kind == "quota_exceeded":
                self.proxy.fail(op, "ResourceLimitExceededException", "cluster limit reached (injected)", status=400)
            elif kind == "capacity_unavailable":
                self.proxy.fail(
                    "CreateNodegroup",
                    "UnsupportedAvailabilityZoneException",
                    "insufficient capacity in the zone (injected)",
                    status=400,
                )
            elif kind == "lost_answer":
                self.proxy.hold(op)
                threading.Thread(target=self._release_after_timeout, daemon=True).start()

    def _before(self, proxy: Any, method: str, raw_path: str, headers: dict[str, str]) -> None:
        hook = self.on_call
        if hook is not None and method in ("POST", "PUT", "DELETE"):
            auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
            m = _AKID.search(auth)
            if m:
                hook(m.group("akid"))
        self._delay(method, raw_path)

    def _delay(self, method: str, raw_path: str) -> None:
        """A slow answer: the call waits past the client's read timeout before the cloud acts;
        with ``slow_calls`` three calls in ten take a second (under the timeout) to answer."""
        for f in self._faults:
            if f["kind"] == "slow_calls" and self._rng.random() < 0.3:
                time.sleep(1.0)
            due = f["kind"] == "timeout" and f.get("left", 1) > 0 and method == f.get("method", "POST")
            if due and f.get("path", "/clusters") in raw_path:
                f["left"] = f.get("left", 1) - 1
                time.sleep(READ_TIMEOUT_S + 0.5)
                return

    def _record(self, arrived: float, seen: Any) -> None:
        auth = next((v for k, v in seen.headers.items() if k.lower() == "authorization"), "")
        m = _AKID.search(auth)
        call = AwsCall(arrived, m.group("akid") if m else "", seen.operation, seen.cluster, int(seen.status))
        with self._lock:
            self.calls.append(call)
        if call.operation == "CreateCluster" and call.status < 300:
            for f in self._faults:
                if f["kind"] == "done_but_gone" and f.get("left", 1) > 0:
                    f["left"] = 0
                    self._gone.add(call.cluster)
                    threading.Thread(target=self._lose, args=(call.cluster,), daemon=True).start()

    def _release_after_timeout(self) -> None:
        """The held answer goes out only after the caller gave up (its read timeout): lost."""
        if self.proxy.held.wait(timeout=120):
            time.sleep(READ_TIMEOUT_S + 1.0)
            self.proxy.release()

    def _lose(self, cluster: str) -> None:
        """The cloud said yes, then lost the cluster (moto deletes it behind the proxy's back)."""
        time.sleep(0.5)
        try:
            for ng in self.eks.list_nodegroups(clusterName=cluster).get("nodegroups", []):
                self.eks.delete_nodegroup(clusterName=cluster, nodegroupName=ng)
            self.eks.delete_cluster(name=cluster)
        except Exception:
            return

    # -- what burst needs ----------------------------------------------------------------------

    def audit(self) -> list[tuple[float, str, str, str, str]]:
        """Mutating calls as (time, replica, operation, cluster, outcome)."""
        with self._lock:
            calls = list(self.calls)
        return [
            (c.t, replica_of(c.akid), c.operation, c.cluster, "accepted" if c.status < 300 else f"refused: {c.status}")
            for c in calls
            if c.operation in MUTATING_OPS
        ]

    def provider_section(self, replica: str = "a") -> dict[str, Any]:
        return {
            "kind": "aws",
            "region": REGION,
            "cluster_role_arn": f"arn:aws:iam::{ACCOUNT}:role/burst-eks-cluster",
            "node_role_arn": f"arn:aws:iam::{ACCOUNT}:role/burst-eks-node",
            "subnets": ["subnet-0aaa1111", "subnet-0bbb2222"],
            "security_groups": ["sg-0ccc3333"],
            "kubernetes_version": "1.31",
            "instance_types": ["m5.2xlarge"],
            "endpoint_url": self.proxy.url,
            "ec2_endpoint_url": self.proxy.url,
            "autoscaling_endpoint_url": self.proxy.url,
            "read_timeout_s": READ_TIMEOUT_S,
            "connect_timeout_s": READ_TIMEOUT_S,
            "max_nodes": 4,
            "nodes_per_cluster": 2,
        }

    def poll(self, view: CloudView) -> None:
        """The account as moto holds it: this run's clusters (named after its installation)."""
        try:
            names = [n for n in self.eks.list_clusters()["clusters"] if n.startswith(f"{self.owner}-")]
        except Exception:
            return
        view.last = {n: {} for n in names}
        view.max_alive = max(view.max_alive, len(names))
        with self._lock:
            accepted = {c.cluster for c in self.calls if c.operation == "CreateCluster" and c.status < 300}
        view.ever |= accepted

    def stop(self) -> None:
        self.proxy.release()
        self.proxy.stop()


def draw_faults(rng: random.Random) -> tuple[dict[str, Any], ...]:
    kinds = [
        "throttled",
        "server_error",
        "unavailable",
        "quota_exceeded",
        "capacity_unavailable",
        "timeout",
        "lost_answer",
        "done_but_gone",
        "slow_calls",
    ]
    return tuple({"kind": k} for k in rng.sample(kinds, rng.randint(1, 3)))
