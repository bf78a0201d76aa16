"""A fault-injecting HTTP proxy in front of moto's server, for the EKS REST API.

moto answers every EKS call at once: clusters and node groups are ACTIVE when created and gone when
deleted, and it never throttles or runs out of capacity.  Real EKS takes minutes and fails in ways
burst must understand.  This proxy forwards every request to moto unchanged and, where a test asks,

* answers chosen operations with the error AWS sends for them: status code, header
  ``x-amzn-ErrorType: <Code>:http://internal.amazon.com/coral/com.amazonaws.eks/`` and a JSON body
  ``{"message": ...}`` (EKS is a rest-json service; botocore reads the code from that header);
* makes a created cluster / node group read ``CREATING`` (without endpoint or CA, as EKS does) for
  its next N describe calls, and a deleted one read ``DELETING`` (still listed, and deleting the
  cluster answers ``ResourceInUseException`` while its node groups are deleting) for N describes;
* overrides a node group's status and health issues (CREATE_FAILED with capacity issues, UPDATING);
* holds the answer to one operation after moto has acted on it, so a test can kill the client in
  the window where the cloud did the work but the caller never heard back;
* gives every managed node group what moto's EKS leaves out: a real Auto Scaling group in moto's
  autoscaling/EC2 backends, with running instances whose ``PrivateDnsName`` is the node name, kept
  in step the way EKS keeps it (``UpdateNodegroupConfig`` resizes the group, deleting the node
  group deletes the group and its instances, ``DescribeNodegroup`` reports the group's desired
  capacity as ``desiredSize``, as EKS does after cluster-autoscaler-style terminations);
* answers ``TerminateInstanceInAutoScalingGroup`` with AWS's ``ValidationError`` where AWS refuses
  it and moto does not (decrement below the group's minimum, an instance in no group).

EC2 and Auto Scaling requests (query protocol: ``POST /`` with ``Action=…``) pass through the same
proxy, are recorded under their action name and can be failed like EKS calls, with those services'
XML error bodies.

Every request is recorded (operation, path, JSON body) so tests assert on what the SDK really sent.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

import boto3
from botocore.exceptions import ClientError

from burst.testing.loopback import LoopbackServer

#: The AMI of the fake node groups' launch configurations (moto does not validate AMIs by default).
_NODE_AMI = "ami-0burst0eks0node0"

# (method, path regex) → EKS operation name, from botocore's eks-2017-11-01 service model.
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p), op)
    for m, p, op in [
        ("POST", r"^/clusters$", "CreateCluster"),
        ("GET", r"^/clusters$", "ListClusters"),
        ("GET", r"^/clusters/(?P<c>[^/]+)$", "DescribeCluster"),
        ("DELETE", r"^/clusters/(?P<c>[^/]+)$", "DeleteCluster"),
        ("POST", r"^/clusters/(?P<c>[^/]+)/node-groups$", "CreateNodegroup"),
        ("GET", r"^/clusters/(?P<c>[^/]+)/node-groups$", "ListNodegroups"),
        ("GET", r"^/clusters/(?P<c>[^/]+)/node-groups/(?P<g>[^/]+)$", "DescribeNodegroup"),
        ("DELETE", r"^/clusters/(?P<c>[^/]+)/node-groups/(?P<g>[^/]+)$", "DeleteNodegroup"),
        ("POST", r"^/clusters/(?P<c>[^/]+)/node-groups/(?P<g>[^/]+)/update-config$", "UpdateNodegroupConfig"),
        ("POST", r"^/tags/.+$", "TagResource"),
    ]
]


#: The API server address a created cluster gets (nothing listens there: a client fails fast, locally).
LOOPBACK_ENDPOINT = "https://127.0.0.1:6443"


@dataclass(frozen=True)
class Seen:
    """One request the proxy received, and the status it answered."""

    operation: str
    method: str
    path: str
    cluster: str
    nodegroup: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int


@dataclass
class _Fault:
    operation: str
    cluster: str | None
    status: int
    code: str
    body: dict[str, Any]
    headers: dict[str, str]
    times: int


@dataclass
class _Override:
    status: str
    issues: list[dict[str, Any]]
    times: int | None  # None: until cleared


@dataclass
class _State:
    faults: list[_Fault] = field(default_factory=list)
    creating_describes: int = 0
    deleting_describes: int = 0
    #: ("cluster", name) or ("nodegroup", cluster, name) → describes left that read CREATING.
    creating: dict[tuple[str, ...], int] = field(default_factory=dict)
    #: same keys → (describes left that read DELETING, the last body moto gave).
    deleting: dict[tuple[str, ...], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    nodegroup_overrides: dict[tuple[str, str], _Override] = field(default_factory=dict)
    cluster_overrides: dict[str, _Override] = field(default_factory=dict)
    hold_operation: str | None = None


class FakeAws:
    """The proxy.  ``start()`` binds 127.0.0.1 on a free port; ``url`` is the endpoint to give boto3."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._state = _State()
        self.requests: list[Seen] = []
        #: set when a held operation has been forwarded to moto (the cloud did the work).
        self.held = threading.Event()
        self._release = threading.Event()
        self._server = LoopbackServer(self._handler_class(), "fake-aws")
        self._clients: dict[tuple[str, str], Any] = {}

    # -- control ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> FakeAws:
        self._server.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.stop()

    def fail(
        self,
        operation: str,
        code: str,
        message: str,
        *,
        status: int = 400,
        times: int = 1,
        cluster: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``operation`` (optionally on one cluster) with an AWS error."""
        with self._lock:
            self._state.faults.append(
                _Fault(operation, cluster, status, code, {"message": message, **(extra or {})}, headers or {}, times)
            )

    def lag(self, *, creating: int = 0, deleting: int = 0) -> None:
        """Make resources created/deleted from now on read CREATING/DELETING for that many describes."""
        with self._lock:
            self._state.creating_describes = creating
            self._state.deleting_describes = deleting

    def override_nodegroup(
        self,
        cluster: str,
        nodegroup: str,
        status: str,
        issues: list[dict[str, Any]] | None = None,
        times: int | None = None,
    ) -> None:
        """Make DescribeNodegroup report ``status`` and health ``issues`` (EKS ``Issue`` objects:
        code, message, resourceIds) for ``times`` describes, or until cleared with status ''."""
        with self._lock:
            if not status:
                self._state.nodegroup_overrides.pop((cluster, nodegroup), None)
            else:
                self._state.nodegroup_overrides[(cluster, nodegroup)] = _Override(status, issues or [], times)

    def override_cluster(self, cluster: str, status: str, times: int | None = None) -> None:
        """Make DescribeCluster report ``status`` (e.g. FAILED) for ``times`` describes."""
        with self._lock:
            self._state.cluster_overrides[cluster] = _Override(status, [], times)

    def hold(self, operation: str) -> None:
        """Forward the next ``operation`` to moto, then keep the answer until ``release()``."""
        with self._lock:
            self._state.hold_operation = operation
        self.held.clear()
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def seen(self, operation: str) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.operation == operation]

    def operations(self) -> list[str]:
        with self._lock:
            return [r.operation for r in self.requests]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- the request path -------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, headers, body = fake._handle(self.command, self.path, dict(self.headers.items()), raw)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _safe_serve(self) -> None:
                try:
                    self._serve()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client died (the crash test kills it)

            do_GET = do_POST = do_DELETE = do_PUT = _safe_serve  # noqa: N815 - http.server names

        return Handler

    def _handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        path = urlsplit(raw_path).path
        operation, cluster, nodegroup = _route(method, path)
        try:
            body = json.loads(raw) if raw and raw.lstrip().startswith(b"{") else {}
        except ValueError:
            body = {}
        service = _service(headers)
        if service in _QUERY_SERVICES and method == "POST" and path == "/":
            body = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
            operation = body.get("Action", operation)
        if operation == "CreateCluster":
            cluster = str(body.get("name", ""))
        elif operation == "CreateNodegroup":
            nodegroup = str(body.get("nodegroupName", ""))
        status, out_headers, out, held = self._answer(
            operation=operation,
            method=method,
            raw_path=raw_path,
            cluster=cluster,
            nodegroup=nodegroup,
            headers=headers,
            raw=raw,
        )
        if not path.startswith("/moto-api"):
            with self._lock:
                self.requests.append(Seen(operation, method, path, cluster, nodegroup, body, headers, status))
        if held:  # recorded first, so the test sees the call that reached AWS
            self.held.set()
            self._release.wait(timeout=30)
        return status, out_headers, out

    def _answer(
        self,
        *,
        operation: str,
        method: str,
        raw_path: str,
        cluster: str,
        nodegroup: str,
        headers: dict[str, str],
        raw: bytes,
    ) -> tuple[int, dict[str, str], bytes, bool]:
        """(status, headers, body, whether to hold the answer)."""
        service = _service(headers)
        fault = self._take_fault(operation, cluster)
        if fault is not None:
            return (*_error(fault.status, fault.code, fault.body, fault.headers, service), False)
        faked = self._faked(operation, cluster, nodegroup)
        if faked is None and operation == "TerminateInstanceInAutoScalingGroup":
            faked = self._asg_refusal(headers, raw)
        if faked is not None:
            return (*faked, False)
        status, up_headers, out = self._forward(method, raw_path, headers, raw)
        if status < 300 and service == "eks":
            self._sync_asg(operation, cluster, nodegroup, headers, raw, out)
        out = self._after(operation, cluster, nodegroup, status, out, headers)
        with self._lock:
            hold = self._state.hold_operation == operation
            if hold:
                self._state.hold_operation = None
        return status, up_headers, out, hold

    def _take_fault(self, operation: str, cluster: str) -> _Fault | None:
        with self._lock:
            for fault in self._state.faults:
                if fault.operation == operation and fault.times > 0 and fault.cluster in (None, cluster):
                    fault.times -= 1
                    return fault
        return None

    def _faked(self, operation: str, cluster: str, nodegroup: str) -> tuple[int, dict[str, str], bytes] | None:
        """Answers for resources that moto already deleted but real EKS would still be deleting."""
        with self._lock:
            st = self._state
            if operation == "DescribeCluster":
                return self._deleting_answer(("cluster", cluster), "cluster")
            if operation == "DescribeNodegroup":
                return self._deleting_answer(("nodegroup", cluster, nodegroup), "nodegroup")
            if operation == "DeleteCluster" and any(
                k[0] == "nodegroup" and k[1] == cluster and left > 0 for k, (left, _) in st.deleting.items()
            ):
                return _error(
                    409,
                    "ResourceInUseException",
                    {"message": "Cluster has nodegroups attached", "clusterName": cluster},
                    {},
                )
        return None

    def _deleting_answer(self, key: tuple[str, ...], kind: str) -> tuple[int, dict[str, str], bytes] | None:
        left, last = self._state.deleting.get(key, (0, {}))
        if left <= 0:
            return None
        self._state.deleting[key] = (left - 1, last)
        return 200, {"Content-Type": "application/json"}, json.dumps({kind: {**last, "status": "DELETING"}}).encode()

    def _forward(
        self, method: str, raw_path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            skip = {"host", "content-length", "connection", "transfer-encoding"}
            conn.request(
                method, raw_path, body=raw or None, headers={k: v for k, v in headers.items() if k.lower() not in skip}
            )
            resp = conn.getresponse()
            out = resp.read()
            keep = {k: v for k, v in resp.getheaders() if k.lower() not in skip}
            return resp.status, keep, out
        finally:
            conn.close()

    def _after(
        self, operation: str, cluster: str, nodegroup: str, status: int, out: bytes, headers: dict[str, str]
    ) -> bytes:
        """Rewrite moto's answer to look like EKS in the middle of a long operation."""
        if status >= 300 or not out or _service(headers) != "eks":
            return out
        doc = json.loads(out)
        if operation == "DescribeNodegroup":
            self._follow_asg(doc["nodegroup"], headers)
        with self._lock:
            st = self._state
            if operation == "CreateCluster" and st.creating_describes:
                st.creating[("cluster", cluster)] = st.creating_describes
                _creating(doc["cluster"])
            elif operation == "CreateNodegroup" and st.creating_describes:
                st.creating[("nodegroup", cluster, nodegroup)] = st.creating_describes
                doc["nodegroup"]["status"] = "CREATING"
            elif operation == "DescribeCluster":
                if self._tick(("cluster", cluster)):
                    _creating(doc["cluster"])
                override = st.cluster_overrides.get(cluster)
                if override is not None:
                    doc["cluster"]["status"] = override.status
                    _spend(st.cluster_overrides, cluster, override)
            elif operation == "DescribeNodegroup":
                if self._tick(("nodegroup", cluster, nodegroup)):
                    doc["nodegroup"]["status"] = "CREATING"
                override = st.nodegroup_overrides.get((cluster, nodegroup))
                if override is not None:
                    doc["nodegroup"]["status"] = override.status
                    doc["nodegroup"]["health"] = {"issues": override.issues}
                    _spend(st.nodegroup_overrides, (cluster, nodegroup), override)
            elif operation == "DeleteCluster" and st.deleting_describes:
                st.deleting[("cluster", cluster)] = (st.deleting_describes, doc["cluster"])
                doc["cluster"]["status"] = "DELETING"
            elif operation == "DeleteNodegroup" and st.deleting_describes:
                st.deleting[("nodegroup", cluster, nodegroup)] = (st.deleting_describes, doc["nodegroup"])
                doc["nodegroup"]["status"] = "DELETING"
            elif operation == "ListNodegroups":
                doc["nodegroups"] = list(doc.get("nodegroups", [])) + [
                    k[2] for k, (left, _) in st.deleting.items() if k[0] == "nodegroup" and k[1] == cluster and left > 0
                ]
            elif operation == "ListClusters":
                doc["clusters"] = list(doc.get("clusters", [])) + [
                    k[1] for k, (left, _) in st.deleting.items() if k[0] == "cluster" and left > 0
                ]
        cl = doc.get("cluster")
        if isinstance(cl, dict) and cl.get("endpoint"):
            # moto names a public host (``https://….eks.amazonaws.com``): a test server hands out loopback only.
            cl["endpoint"] = LOOPBACK_ENDPOINT
        return json.dumps(doc).encode()

    # -- the node groups' Auto Scaling groups ------------------------------------------------

    def _client(self, service: str, headers: dict[str, str]) -> Any:
        """A boto3 client straight to moto (not through this proxy), in the caller's region."""
        region = _region(headers)
        key = (service, region)
        with self._lock:
            client = self._clients.get(key)
        if client is None:
            host, port = self._upstream
            client = boto3.client(service, region_name=region, endpoint_url=f"http://{host}:{port}")
            with self._lock:
                self._clients[key] = client
        return client

    def _sync_asg(
        self, operation: str, cluster: str, nodegroup: str, headers: dict[str, str], raw: bytes, out: bytes
    ) -> None:
        """Do to the node group's Auto Scaling group what EKS does to it."""
        if operation == "CreateNodegroup":
            ng = json.loads(out)["nodegroup"]
            name = ng["resources"]["autoScalingGroups"][0]["name"]
            scaling = ng["scalingConfig"]
            region = _region(headers)
            asg = self._client("autoscaling", headers)
            asg.create_launch_configuration(
                LaunchConfigurationName=name,
                ImageId=_NODE_AMI,
                InstanceType=(ng.get("instanceTypes") or ["m5.large"])[0],
            )
            tags = {"eks:cluster-name": cluster, "eks:nodegroup-name": nodegroup}
            asg.create_auto_scaling_group(
                AutoScalingGroupName=name,
                LaunchConfigurationName=name,
                MinSize=scaling["minSize"],
                MaxSize=scaling["maxSize"],
                DesiredCapacity=scaling["desiredSize"],
                AvailabilityZones=[f"{region}a", f"{region}b"],
                Tags=[
                    {
                        "Key": k,
                        "Value": v,
                        "PropagateAtLaunch": True,
                        "ResourceId": name,
                        "ResourceType": "auto-scaling-group",
                    }
                    for k, v in tags.items()
                ],
            )
            _fix_instance_regions(name, region)
        elif operation == "UpdateNodegroupConfig":
            scaling = json.loads(raw or b"{}").get("scalingConfig") or {}
            name = self._asg_name(cluster, nodegroup, headers)
            fields = {"minSize": "MinSize", "maxSize": "MaxSize", "desiredSize": "DesiredCapacity"}
            change = {fields[k]: v for k, v in scaling.items() if k in fields}
            if name and change:
                self._client("autoscaling", headers).update_auto_scaling_group(AutoScalingGroupName=name, **change)
                _fix_instance_regions(name, _region(headers))
        elif operation == "DeleteNodegroup":
            name = json.loads(out)["nodegroup"]["resources"]["autoScalingGroups"][0]["name"]
            asg = self._client("autoscaling", headers)
            if asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]:
                asg.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)

    def _asg_name(self, cluster: str, nodegroup: str, headers: dict[str, str]) -> str | None:
        try:
            ng = self._client("eks", headers).describe_nodegroup(clusterName=cluster, nodegroupName=nodegroup)
        except ClientError:  # the node group is gone: nothing to sync
            return None
        return str(ng["nodegroup"]["resources"]["autoScalingGroups"][0]["name"])

    def _group(self, name: str, headers: dict[str, str]) -> dict[str, Any] | None:
        found = self._client("autoscaling", headers).describe_auto_scaling_groups(AutoScalingGroupNames=[name])
        groups = found["AutoScalingGroups"]
        return dict(groups[0]) if groups else None

    def _follow_asg(self, ng: dict[str, Any], headers: dict[str, str]) -> None:
        """EKS reports the group's desired capacity (cluster-autoscaler changes it behind EKS)."""
        names = [g["name"] for g in ng.get("resources", {}).get("autoScalingGroups", [])]
        group = self._group(names[0], headers) if names else None
        if group is not None:
            ng.setdefault("scalingConfig", {})["desiredSize"] = group["DesiredCapacity"]

    def _asg_refusal(self, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, str], bytes] | None:
        """AWS's answer where it refuses a TerminateInstanceInAutoScalingGroup that moto would do."""
        form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        instance_id = form.get("InstanceId", "")
        found = self._client("autoscaling", headers).describe_auto_scaling_instances(InstanceIds=[instance_id])
        members = found["AutoScalingInstances"]
        if not members:
            message = f"Instance Id not found - No managed instance found for instance ID: {instance_id}"
            return _error(400, "ValidationError", {"message": message}, {}, "autoscaling")
        group = self._group(members[0]["AutoScalingGroupName"], headers)
        decrement = form.get("ShouldDecrementDesiredCapacity") == "true"
        if group is not None and decrement and group["DesiredCapacity"] - 1 < group["MinSize"]:
            message = (
                f"Currently, desiredSize equals minSize ({group['MinSize']}). Terminating instance without "
                "replacement will violate group's min size constraint. Either set shouldDecrementDesiredCapacity "
                "flag to false or lower group's min size."
            )
            return _error(400, "ValidationError", {"message": message}, {}, "autoscaling")
        return None

    def instances(self, region: str = "eu-central-1") -> dict[str, str]:
        """Every EC2 instance in moto: private DNS name → state (for assertions)."""
        ec2 = self._client("ec2", {"Authorization": f"Credential=x/20260101/{region}/ec2/aws4_request"})
        return {
            i["PrivateDnsName"]: i["State"]["Name"]
            for r in ec2.describe_instances()["Reservations"]
            for i in r["Instances"]
        }

    def _tick(self, key: tuple[str, ...]) -> bool:
        left = self._state.creating.get(key, 0)
        if left <= 0:
            return False
        self._state.creating[key] = left - 1
        return True


def _fix_instance_regions(group: str, region: str) -> None:
    """moto 5.2.5 launches an Auto Scaling group's instances without their region, so they get
    us-east-1 DNS names (``ip-….ec2.internal``) wherever they run.  Give them the region the group
    is in, so their ``PrivateDnsName`` is the node name EKS would show (``ip-….<region>.compute.internal``).
    moto runs in this process (``ThreadedMotoServer``); this is the one place the fake reaches into it."""
    from moto.autoscaling.models import autoscaling_backends

    for backend in (autoscaling_backends[account][region] for account in autoscaling_backends):
        asg = backend.autoscaling_groups.get(group)
        if asg is not None:
            for state in asg.instance_states:
                state.instance.region_name = region


def _spend(overrides: dict[Any, _Override], key: object, override: _Override) -> None:
    if override.times is not None:
        override.times -= 1
        if override.times <= 0:
            del overrides[key]


def _creating(cluster: dict[str, Any]) -> None:
    """A cluster as EKS shows it while creating: no endpoint and no CA yet."""
    cluster["status"] = "CREATING"
    cluster.pop("endpoint", None)
    cluster.pop("certificateAuthority", None)


def _route(method: str, path: str) -> tuple[str, str, str]:
    for m, pattern, operation in _ROUTES:
        match = pattern.match(path)
        if m == method and match:
            groups = match.groupdict()
            return operation, unquote(groups.get("c") or ""), unquote(groups.get("g") or "")
    return f"{method} {path}", "", ""


#: Services that speak the query protocol (form-encoded ``POST /`` with ``Action``, XML answers).
_QUERY_SERVICES = frozenset({"ec2", "autoscaling"})
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")


def _service(headers: dict[str, str]) -> str:
    """The signing service of a request (moto dispatches on the same thing); EKS when unsigned."""
    auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    match = _SCOPE.search(auth)
    return match.group("service") if match else "eks"


def _region(headers: dict[str, str]) -> str:
    auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    match = _SCOPE.search(auth)
    return match.group("region") if match else "eu-central-1"


def _error(
    status: int, code: str, body: dict[str, Any], headers: dict[str, str], service: str = "eks"
) -> tuple[int, dict[str, str], bytes]:
    """An error the way the service sends it: EKS rest-json behind AWS's front end, Auto Scaling's
    query ``ErrorResponse`` XML, or EC2's ``Response/Errors`` XML."""
    request_id = str(uuid.uuid4())
    message = escape(str(body.get("message", "")))
    if service == "autoscaling":
        xml = (
            '<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
            f"<Error><Type>Sender</Type><Code>{escape(code)}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return status, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id, **headers}, xml.encode()
    if service == "ec2":
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
        return status, {"Content-Type": "text/xml;charset=UTF-8", **headers}, xml.encode()
    out = {
        "Content-Type": "application/json",
        "x-amzn-RequestId": request_id,
        "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazonaws.eks/",
        **headers,
    }
    return status, out, json.dumps(body).encode()
