"""The identities the landing zones create give burst what its provider code calls, no more,
and keep mutations to resources tagged with burst's owner.

The list of calls is read from the provider source (``ast``), and AWS operation names come from
botocore's own service model, so a new boto3 call in burst_aws without its IAM action fails here.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import burst_aws
import burst_gce
from tf_tree import ROOT, module

_OWNER_CONDITIONS = {"aws:RequestTag/burst.owner", "aws:ResourceTag/burst.owner"}
#: The boto3 clients of burst_aws, by the attribute suffix it keeps them under (``self._eks``…).
_AWS_SERVICES = ("eks", "sts", "ec2", "autoscaling")


def _source(mod: Any) -> ast.Module:
    return ast.parse(Path(mod.__file__).read_text(encoding="utf-8"))


def _is_self_attr(node: ast.expr, attr: str) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == attr
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def boto3_calls() -> set[tuple[str, str]]:
    """(service, boto3 method) for every ``self._<service>.<m>(…)`` in burst_aws (EKS, STS, and the
    EC2 and Auto Scaling calls of ``remove_nodes``);
    ``get_paginator("x")`` and ``generate_presigned_url("x")`` count as the operation x."""
    calls: set[tuple[str, str]] = set()
    for node in ast.walk(_source(burst_aws)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        for service in _AWS_SERVICES:
            if _is_self_attr(node.func.value, f"_{service}"):
                method = node.func.attr
                if method in ("get_paginator", "generate_presigned_url"):
                    first = node.args[0]
                    assert isinstance(first, ast.Constant) and isinstance(first.value, str)
                    method = first.value
                calls.add((service, method))
    return calls


def iam_actions_burst_aws_needs() -> set[str]:
    """IAM action names of burst_aws's calls: ``<service>:<API operation>`` from botocore's model
    (IAM names EKS, STS, EC2 and Auto Scaling actions after their API operations)."""
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x")
    actions = set()
    for service, method in boto3_calls():
        client = session.client(service, region_name="eu-central-1")
        operation = client.meta.method_to_api_mapping[method]
        actions.add(f"{service}:{operation}")
    return actions


def _statements() -> list[dict[str, Any]]:
    doc = module("aws").data[("aws_iam_policy_document", "burst")]
    statements = list(doc["statement"])
    for dyn in doc.get("dynamic", []):
        statements.extend(c for c in dyn["statement"]["content"])
    return statements


def _conditions(statement: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from statement.get("condition", [])


def test_the_call_extraction_sees_burst_aws_calls() -> None:
    """Guards the extraction itself: the calls the aws README documents are all found."""
    needed = iam_actions_burst_aws_needs()
    for action in (
        "eks:CreateCluster",
        "eks:CreateNodegroup",
        "eks:DescribeCluster",
        "eks:ListClusters",
        "eks:ListNodegroups",
        "eks:DescribeNodegroup",
        "eks:UpdateNodegroupConfig",
        "eks:DeleteNodegroup",
        "eks:DeleteCluster",
        "sts:GetCallerIdentity",
        "ec2:DescribeInstances",
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
    ):
        assert action in needed, f"{action} not found in burst_aws: extraction broken or call removed"


def test_burst_policy_allows_every_call_burst_aws_makes() -> None:
    allowed = {a for s in _statements() for a in s["actions"]}
    missing = iam_actions_burst_aws_needs() - allowed
    assert not missing, f"burst_aws calls these but the policy does not allow them: {sorted(missing)}"


def test_burst_policy_allows_nothing_beyond_the_calls_and_their_side_grants() -> None:
    """Exactly the calls, plus what AWS checks on their behalf: TagResource (tags sent on create),
    PassRole (the two EKS roles) and, on first use of EKS, CreateServiceLinkedRole."""
    side_grants = {"eks:TagResource", "iam:PassRole", "iam:CreateServiceLinkedRole"}
    allowed = {a for s in _statements() for a in s["actions"]}
    assert not any("*" in a for a in allowed), "wildcard action"
    extra = allowed - iam_actions_burst_aws_needs() - side_grants
    assert not extra, f"the policy grants more than burst calls: {sorted(extra)}"
    assert all(s.get("effect", "Allow") == "Allow" for s in _statements())


def test_every_eks_mutation_requires_burst_owner_tag() -> None:
    mutating = re.compile(r"^eks:(Create|Update|Delete|Tag)")
    seen = set()
    for statement in _statements():
        changes = [a for a in statement["actions"] if mutating.match(a)]
        if not changes:
            continue
        seen.update(changes)
        owner = [c for c in _conditions(statement) if c["variable"] in _OWNER_CONDITIONS]
        assert owner, f"statement {statement.get('sid')} lets burst change untagged resources: {changes}"
        for cond in owner:
            assert cond["test"] == "StringEquals"
            assert cond["values"] == ["${var.installation}"]
    assert {"eks:CreateCluster", "eks:DeleteCluster", "eks:UpdateNodegroupConfig"} <= seen


def test_node_terminations_are_limited_to_burst_node_groups() -> None:
    """EKS does not copy node group tags to the Auto Scaling group, so burst.owner cannot scope the
    terminate; the tag EKS puts on every managed node group's group (``eks:nodegroup-name``) can:
    only groups of node groups named like burst's."""
    (statement,) = [s for s in _statements() if "autoscaling:TerminateInstanceInAutoScalingGroup" in s["actions"]]
    assert statement["actions"] == ["autoscaling:TerminateInstanceInAutoScalingGroup"]
    (cond,) = list(_conditions(statement))
    assert (cond["test"], cond["variable"]) == ("StringEquals", "autoscaling:ResourceTag/eks:nodegroup-name")
    assert cond["values"] == [burst_aws.NODEGROUP]


def test_pass_role_is_limited_to_the_two_eks_roles() -> None:
    (statement,) = [s for s in _statements() if "iam:PassRole" in s["actions"]]
    assert statement["actions"] == ["iam:PassRole"]
    assert sorted(statement["resources"]) == ["${aws_iam_role.cluster.arn}", "${aws_iam_role.node.arn}"]
    (cond,) = list(_conditions(statement))
    assert (cond["variable"], cond["values"]) == ("iam:PassedToService", ["eks.amazonaws.com"])


def test_policy_covers_the_aws_readme_policy() -> None:
    """The README's IAM JSON (what operators copy by hand) and the module agree on the actions."""
    readme = (ROOT / "providers" / "aws" / "README.md").read_text(encoding="utf-8")
    m = re.search(r"## IAM.*?```json\n(.*?)```", readme, re.S)
    assert m, "providers/aws/README.md has no IAM policy block"
    documented: set[str] = set()
    for statement in json.loads(m.group(1))["Statement"]:
        actions = statement["Action"]
        documented.update([actions] if isinstance(actions, str) else actions)
    allowed = {a for s in _statements() for a in s["actions"]}
    assert documented <= allowed, f"README grants {sorted(documented - allowed)} the module lacks"


def _trust_service(doc: dict[str, Any]) -> list[str]:
    (statement,) = doc["statement"]
    (principal,) = statement["principals"]
    assert principal["type"] == "Service"
    assert "sts:AssumeRole" in statement["actions"]
    return list(principal["identifiers"])


def test_eks_roles_trust_the_right_services_and_carry_the_managed_policies() -> None:
    mod = module("aws")
    roles = mod.resources
    assert roles[("aws_iam_role", "cluster")]["assume_role_policy"] == (
        "${data.aws_iam_policy_document.eks_trust.json}"
    )
    assert roles[("aws_iam_role", "node")]["assume_role_policy"] == "${data.aws_iam_policy_document.ec2_trust.json}"
    assert _trust_service(mod.data[("aws_iam_policy_document", "eks_trust")]) == ["eks.amazonaws.com"]
    assert _trust_service(mod.data[("aws_iam_policy_document", "ec2_trust")]) == ["ec2.amazonaws.com"]
    cluster = roles[("aws_iam_role_policy_attachment", "cluster")]["for_each"]
    node = roles[("aws_iam_role_policy_attachment", "node")]["for_each"]
    assert "AmazonEKSClusterPolicy" in cluster
    for policy in ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"):
        assert policy in node


# -- GCP --------------------------------------------------------------------------------------

#: ClusterManagerClient method → the IAM permission GKE checks (GKE "access control" reference).
_GKE_PERMISSION = {
    "create_cluster": "container.clusters.create",
    "get_cluster": "container.clusters.get",
    "list_clusters": "container.clusters.list",
    "delete_cluster": "container.clusters.delete",
    "update_cluster": "container.clusters.update",
    "set_node_pool_size": "container.clusters.update",
    "get_node_pool": "container.clusters.get",
    "list_node_pools": "container.clusters.get",
    "get_operation": "container.operations.get",
    "list_operations": "container.operations.list",
}


def gce_calls(client: str) -> set[str]:
    """Every ``self.<client>().<method>(…)`` in burst_gce: ``_api`` is the GKE client, ``_migs`` the
    Compute Engine instance-group-managers client (node release)."""
    calls = set()
    for node in ast.walk(_source(burst_gce)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Call)
            and _is_self_attr(node.func.value.func, client)
        ):
            calls.add(node.func.attr)
    return calls


def gke_calls() -> set[str]:
    """Every ``self._api().<method>(…)`` in burst_gce."""
    return gce_calls("_api")


#: InstanceGroupManagersClient method → the IAM permission Compute Engine checks (its REST reference).
_COMPUTE_PERMISSION = {
    "get": "compute.instanceGroupManagers.get",
    "list_managed_instances": "compute.instanceGroupManagers.get",
    "delete_instances": "compute.instanceGroupManagers.update",
    "delete_instances_unary": "compute.instanceGroupManagers.update",
}


def test_gce_node_release_role_has_the_permissions_of_every_compute_call() -> None:
    calls = gce_calls("_migs")
    assert {"list_managed_instances", "delete_instances_unary"} <= calls, f"extraction broken: {calls}"
    unknown = calls - set(_COMPUTE_PERMISSION)
    assert not unknown, f"burst_gce calls {unknown}: add their permission to this table and the module"
    needed = {_COMPUTE_PERMISSION[c] for c in calls}
    mod = module("gce")
    granted = set(mod.locals["burst_node_release_permissions"])
    assert needed == granted, f"node release role: missing {sorted(needed - granted)}, extra {sorted(granted - needed)}"
    role = mod.resources[("google_project_iam_custom_role", "burst_node_release")]
    assert "count" not in role, "node release is granted whatever burst_role is"
    assert role["permissions"] == "${local.burst_node_release_permissions}"
    member = mod.resources[("google_project_iam_member", "burst_node_release")]
    assert member["role"] == "${google_project_iam_custom_role.burst_node_release.id}"
    assert member["member"] == "serviceAccount:${google_service_account.burst.email}"


def test_gce_custom_role_has_the_permissions_of_every_gke_call() -> None:
    calls = gke_calls()
    assert {"create_cluster", "delete_cluster", "get_operation"} <= calls, f"extraction broken: {calls}"
    unknown = calls - set(_GKE_PERMISSION)
    assert not unknown, f"burst_gce calls {unknown}: add their permission to this table and the module"
    needed = {_GKE_PERMISSION[c] for c in calls}
    local = module("gce").locals["burst_permissions"]
    assert needed <= set(local), f"custom role lacks {sorted(needed - set(local))}"
    assert set(local) <= set(_GKE_PERMISSION.values()), "custom role grants permissions no call needs"


def test_gce_burst_account_may_act_as_the_node_account_only() -> None:
    resources = module("gce").resources
    acts_as = resources[("google_service_account_iam_member", "burst_acts_as_nodes")]
    assert acts_as["role"] == "roles/iam.serviceAccountUser"
    assert acts_as["service_account_id"] == "${google_service_account.nodes.name}"
    assert acts_as["member"] == "serviceAccount:${google_service_account.burst.email}"
    # No project-wide serviceAccountUser: that would let burst act as every account in the project.
    for (rtype, _), body in resources.items():
        if rtype == "google_project_iam_member":
            assert body["role"] != "roles/iam.serviceAccountUser"


def test_otc_group_gets_cce_full_access_in_the_project() -> None:
    mod = module("otc")
    roles = mod.variables["burst_roles"]["default"]
    assert "CCE FullAccess" in roles.values()
    assignment = mod.resources[("opentelekomcloud_identity_role_assignment_v3", "burst")]
    assert assignment["project_id"] == "${data.opentelekomcloud_identity_project_v3.this.id}"
    assert "domain_id" not in assignment, "burst's grants are per project, never account-wide"
