# Example: the GCP landing zone for one burst installation, printing burst's provider section.
#
#   terraform init && terraform apply -var project=cern-burst
#   terraform output -raw burst_provider_yaml >> burst.yaml

terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 8.0"
    }
  }
}

variable "project" {
  description = "GCP project id burst's clusters run in."
  type        = string
}

variable "region" {
  description = "Region of the subnetwork."
  type        = string
  default     = "europe-west4"
}

variable "zone" {
  description = "Zone of burst's zonal GKE clusters (burst's `location`); must be in region."
  type        = string
  default     = "europe-west4-a"
}

variable "machine_types" {
  description = "Catalog machine types burst may offer (see providers/gce/README.md)."
  type        = list(string)
  default     = ["n2-standard-8"]
}

variable "spot" {
  description = "Spot VMs for burst's node pools."
  type        = bool
  default     = true
}

variable "max_nodes" {
  description = "Most nodes burst may run in this project."
  type        = number
  default     = 400
}

provider "google" {
  project = var.project
  region  = var.region
}

module "landing_zone" {
  source = "../../modules/gce-landing-zone"

  project = var.project
  region  = var.region
}

output "burst_service_account" {
  description = "Service account burst runs as (Workload Identity, or a key made out of band as GOOGLE_APPLICATION_CREDENTIALS)."
  value       = module.landing_zone.burst_service_account
}

output "burst_provider_yaml" {
  description = "burst.yaml's providers section for this landing zone (append it, or merge it by hand if the file already has providers)."
  value       = <<-EOT
    providers:
      gce:
        kind: gce
        project: ${jsonencode(module.landing_zone.project)}
        location: ${jsonencode(var.zone)}
        network: ${jsonencode(module.landing_zone.network)}
        subnetwork: ${jsonencode(module.landing_zone.subnetwork)}
        service_account: ${jsonencode(module.landing_zone.node_service_account)}
        machine_types: ${jsonencode(var.machine_types)}
        spot: ${jsonencode(var.spot)}
        max_nodes: ${jsonencode(var.max_nodes)}
  EOT
}
