output "region" {
  description = "Region the landing zone is in: burst's `region`."
  value       = local.region
}

output "cluster_role_arn" {
  description = "IAM role of the EKS control plane: burst's `cluster_role_arn`."
  value       = aws_iam_role.cluster.arn
}

output "node_role_arn" {
  description = "IAM role of the node group's nodes: burst's `node_role_arn`."
  value       = aws_iam_role.node.arn
}

output "subnets" {
  description = "Private subnet ids, one per availability zone: burst's `subnets`."
  value       = aws_subnet.private[*].id
}

output "security_groups" {
  description = "Extra control-plane security group ids: burst's `security_groups`."
  value       = [aws_security_group.control_plane.id]
}

output "burst_policy_arn" {
  description = "The IAM policy of burst's own principal; attach it to whatever burst runs as if not to burst_role_arn / burst_user_name."
  value       = aws_iam_policy.burst.arn
}

output "burst_role_arn" {
  description = "Role burst assumes (AWS_ROLE_ARN / a profile's role_arn), or null when burst_role_trusted_principals is empty."
  value       = one(aws_iam_role.burst[*].arn)
}

output "burst_user_name" {
  description = "IAM user for burst, or null when create_burst_user is false. Create its access key out of band."
  value       = one(aws_iam_user.burst[*].name)
}

output "vpc_id" {
  description = "The VPC (for peering or VPN to the on-prem federation host)."
  value       = aws_vpc.this.id
}
