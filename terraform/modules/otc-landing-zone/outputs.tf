output "vpc_id" {
  description = "VPC (router) id: burst's `vpc_id`."
  value       = opentelekomcloud_vpc_v1.this.id
}

output "subnet_id" {
  description = "The subnet's network id (the VPC subnet API id, what CCE calls subnet id): burst's `subnet_id`."
  value       = opentelekomcloud_vpc_subnet_v1.this.id
}

output "keypair" {
  description = "ECS key pair name for the nodes: burst's `keypair`."
  value       = opentelekomcloud_compute_keypair_v2.this.name
}

output "burst_group" {
  description = "IAM group holding burst's CCE permissions; put the user burst's clouds.yaml names into it."
  value       = opentelekomcloud_identity_group_v3.burst.name
}

output "burst_user" {
  description = "IAM user for burst, or null when create_burst_user is false."
  value       = one(opentelekomcloud_identity_user_v3.burst[*].name)
}

output "security_group_id" {
  description = "The optional operator security group, or null."
  value       = one(opentelekomcloud_networking_secgroup_v2.extra[*].id)
}
