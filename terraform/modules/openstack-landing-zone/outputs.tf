output "cluster_template" {
  description = "Magnum cluster template name: burst's `cluster_template`."
  value       = openstack_containerinfra_clustertemplate_v1.this.name
}

output "keypair" {
  description = "Nova key pair name: burst's `keypair`."
  value       = openstack_compute_keypair_v2.this.name
}

output "network" {
  description = "Network id of the clusters: burst's `fixed_network` (also set in the template)."
  value       = local.network_id
}

output "subnet" {
  description = "Subnet id of the clusters: burst's `fixed_subnet` (also set in the template)."
  value       = local.subnet_id
}

output "floating_ip_enabled" {
  description = "Whether the template gives nodes floating IPs: burst's `floating_ip_enabled`."
  value       = var.floating_ip_enabled
}
