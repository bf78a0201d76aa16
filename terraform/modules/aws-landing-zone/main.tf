# AWS landing zone for burst's `aws` provider: the network EKS clusters go into, the two roles EKS
# needs, and the policy of the principal burst runs as. burst itself creates and deletes the EKS
# clusters and node groups; nothing here is touched by burst at run time.

data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

data "aws_availability_zones" "available" {
  state = "available"
  # Local Zones and Wavelength Zones cannot host EKS control-plane subnets.
  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

locals {
  partition = data.aws_partition.current.partition
  account   = data.aws_caller_identity.current.account_id
  region    = data.aws_region.current.region
  azs       = slice(data.aws_availability_zones.available.names, 0, var.az_count)
  tags      = merge(var.tags, { "burst.landing-zone" = var.installation })
  # EKS ARNs burst's clusters and node groups get; names are burst cluster ids, so any name.
  eks_cluster_arn   = "arn:${local.partition}:eks:${local.region}:${local.account}:cluster/*"
  eks_nodegroup_arn = "arn:${local.partition}:eks:${local.region}:${local.account}:nodegroup/*/*/*"
  asg_arn           = "arn:${local.partition}:autoscaling:${local.region}:${local.account}:autoScalingGroup:*:autoScalingGroupName/*"
  nat_count         = var.single_nat_gateway ? 1 : var.az_count
}

# ---------------------------------------------------------------------------------------------
# Network: private subnets (nodes, control-plane ENIs) in every AZ, public subnets only for NAT.

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true # EKS nodes register by private DNS name
  tags                 = merge(local.tags, { Name = var.name })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = var.name })
}

resource "aws_subnet" "public" {
  count             = var.az_count
  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, 240 + count.index)
  tags = merge(local.tags, {
    Name                     = "${var.name}-public-${local.azs[count.index]}"
    "kubernetes.io/role/elb" = "1"
  })
}

resource "aws_subnet" "private" {
  count             = var.az_count
  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, count.index)
  tags = merge(local.tags, {
    Name                              = "${var.name}-private-${local.azs[count.index]}"
    "kubernetes.io/role/internal-elb" = "1"
  })
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this.id
  }
  tags = merge(local.tags, { Name = "${var.name}-public" })
}

resource "aws_route_table_association" "public" {
  count          = var.az_count
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_eip" "nat" {
  count  = local.nat_count
  domain = "vpc"
  tags   = merge(local.tags, { Name = "${var.name}-nat-${count.index}" })
}

resource "aws_nat_gateway" "this" {
  count         = local.nat_count
  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id
  tags          = merge(local.tags, { Name = "${var.name}-${local.azs[count.index]}" })
  depends_on    = [aws_internet_gateway.this]
}

# Nodes have no public address: images, the EKS API and AWS APIs are reached through NAT.
resource "aws_route_table" "private" {
  count  = var.az_count
  vpc_id = aws_vpc.this.id
  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.this[var.single_nat_gateway ? 0 : count.index].id
  }
  tags = merge(local.tags, { Name = "${var.name}-private-${local.azs[count.index]}" })
}

resource "aws_route_table_association" "private" {
  count          = var.az_count
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

# burst passes `security_groups` as resourcesVpcConfig.securityGroupIds: extra groups on the EKS
# control plane's network interfaces. Node <-> control plane traffic is governed by the cluster
# security group EKS makes per cluster; this group only adds who may reach the API privately.
resource "aws_security_group" "control_plane" {
  name        = "${var.name}-eks-control-plane"
  description = "Extra EKS control-plane group for burst clusters: API (443) from the VPC and api_ingress_cidrs"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${var.name}-eks-control-plane" })
}

resource "aws_vpc_security_group_ingress_rule" "api" {
  for_each          = toset(concat([var.vpc_cidr], var.api_ingress_cidrs))
  security_group_id = aws_security_group.control_plane.id
  description       = "Kubernetes API"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "vpc" {
  security_group_id = aws_security_group.control_plane.id
  description       = "control plane to nodes (kubelet, webhooks)"
  ip_protocol       = "-1"
  cidr_ipv4         = var.vpc_cidr
}

# ---------------------------------------------------------------------------------------------
# The roles EKS assumes: cluster_role_arn and node_role_arn of burst's config.

data "aws_iam_policy_document" "eks_trust" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "ec2_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name               = "${var.name}-eks-cluster"
  description        = "EKS control plane of burst clusters (${var.installation})"
  assume_role_policy = data.aws_iam_policy_document.eks_trust.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "cluster" {
  for_each   = toset(["AmazonEKSClusterPolicy"])
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

resource "aws_iam_role" "node" {
  name               = "${var.name}-eks-node"
  description        = "Worker nodes of burst's EKS managed node groups (${var.installation})"
  assume_role_policy = data.aws_iam_policy_document.ec2_trust.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each   = toset(["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"])
  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

# ---------------------------------------------------------------------------------------------
# What burst itself may do: exactly the EKS calls burst_aws makes (providers/aws/README.md, "IAM"),
# mutations only on resources tagged burst.owner=<installation>. tests/terraform checks that these
# actions cover every boto3 call in burst_aws.

data "aws_iam_policy_document" "burst" {
  # Create requests must carry the owner tag (burst sends it in CreateCluster/CreateNodegroup).
  statement {
    sid       = "CreateOwnClusters"
    actions   = ["eks:CreateCluster", "eks:CreateNodegroup", "eks:TagResource"]
    resources = [local.eks_cluster_arn, local.eks_nodegroup_arn]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/burst.owner"
      values   = [var.installation]
    }
  }

  # ListClusters has no resource-level permission; burst filters foreign clusters by tag itself.
  statement {
    sid       = "List"
    actions   = ["eks:ListClusters"]
    resources = ["*"]
  }

  # Describes must see foreign clusters too: that is how burst refuses a name that is not its own.
  statement {
    sid       = "Read"
    actions   = ["eks:DescribeCluster", "eks:ListNodegroups", "eks:DescribeNodegroup"]
    resources = [local.eks_cluster_arn, local.eks_nodegroup_arn]
  }

  statement {
    sid       = "ChangeOwnClusters"
    actions   = ["eks:UpdateNodegroupConfig", "eks:DeleteNodegroup", "eks:DeleteCluster"]
    resources = [local.eks_cluster_arn, local.eks_nodegroup_arn]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/burst.owner"
      values   = [var.installation]
    }
  }

  # remove_nodes: node name -> instance (private DNS name) and the node group's Auto Scaling group.
  # Neither call supports resource-level permissions.
  statement {
    sid       = "FindNodeInstances"
    actions   = ["ec2:DescribeInstances", "autoscaling:DescribeAutoScalingGroups"]
    resources = ["*"]
  }

  # remove_nodes terminates named idle nodes with decrement. EKS does not copy node group tags to
  # the Auto Scaling group, so burst.owner cannot scope this; the eks:nodegroup-name tag EKS puts on
  # every managed node group's Auto Scaling group limits it to groups of node groups named like
  # burst's (burst itself only ever terminates instances of its own cluster's group).
  statement {
    sid       = "RemoveIdleNodes"
    actions   = ["autoscaling:TerminateInstanceInAutoScalingGroup"]
    resources = [local.asg_arn]
    condition {
      test     = "StringEquals"
      variable = "autoscaling:ResourceTag/eks:nodegroup-name"
      values   = ["burst-workers"]
    }
  }

  # CreateCluster passes the cluster role, CreateNodegroup the node role; nothing else.
  statement {
    sid       = "PassEksRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.cluster.arn, aws_iam_role.node.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["eks.amazonaws.com"]
    }
  }

  # The kubeconfig token is a presigned GetCallerIdentity. AWS always allows that call; it is
  # listed so this policy names every call burst makes.
  statement {
    sid       = "KubeconfigToken"
    actions   = ["sts:GetCallerIdentity"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = var.allow_create_service_linked_role ? [1] : []
    content {
      sid       = "EksServiceLinkedRolesFirstUseOnly"
      actions   = ["iam:CreateServiceLinkedRole"]
      resources = ["*"]
      condition {
        test     = "StringEquals"
        variable = "iam:AWSServiceName"
        values   = ["eks.amazonaws.com", "eks-nodegroup.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_policy" "burst" {
  name        = "${var.name}-controller"
  description = "burst (${var.installation}): EKS cluster lifecycle limited to clusters tagged burst.owner=${var.installation}"
  policy      = data.aws_iam_policy_document.burst.json
  tags        = local.tags
}

data "aws_iam_policy_document" "burst_trust" {
  count = length(var.burst_role_trusted_principals) > 0 ? 1 : 0
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = var.burst_role_trusted_principals
    }
  }
}

resource "aws_iam_role" "burst" {
  count              = length(var.burst_role_trusted_principals) > 0 ? 1 : 0
  name               = "${var.name}-controller"
  description        = "The principal burst (${var.installation}) runs as"
  assume_role_policy = data.aws_iam_policy_document.burst_trust[0].json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "burst" {
  count      = length(aws_iam_role.burst)
  role       = aws_iam_role.burst[0].name
  policy_arn = aws_iam_policy.burst.arn
}

resource "aws_iam_user" "burst" {
  count = var.create_burst_user ? 1 : 0
  name  = "${var.name}-controller"
  tags  = local.tags
}

resource "aws_iam_user_policy_attachment" "burst" {
  count      = length(aws_iam_user.burst)
  user       = aws_iam_user.burst[0].name
  policy_arn = aws_iam_policy.burst.arn
}
