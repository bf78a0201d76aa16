output "project" {
  description = "GCP project id: burst's `project`."
  value       = var.project
}

output "network" {
  description = "VPC network name: burst's `network`."
  value       = google_compute_network.this.name
}

output "subnetwork" {
  description = "Subnetwork name: burst's `subnetwork`."
  value       = google_compute_subnetwork.this.name
}

output "node_service_account" {
  description = "Email of the node service account: burst's `service_account`."
  value       = google_service_account.nodes.email
}

output "burst_service_account" {
  description = "Email of the service account burst runs as (application-default credentials)."
  value       = google_service_account.burst.email
}

output "pods_range_name" {
  description = "Name of the pods secondary range of the subnetwork."
  value       = "${var.name}-pods"
}

output "services_range_name" {
  description = "Name of the services secondary range of the subnetwork."
  value       = "${var.name}-services"
}
