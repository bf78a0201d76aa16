# Example: the Open Telekom Cloud landing zone for burst's `tsystems` provider, printing burst's
# provider section.
#
#   terraform init && terraform apply -var project_name=eu-de_burst -var "public_key=$(cat ~/.ssh/id_ed25519.pub)"
#   terraform output -raw burst_provider_yaml >> burst.yaml

terraform {
  required_version = ">= 1.5"
  required_providers {
    opentelekomcloud = {
      source  = "opentelekomcloud/opentelekomcloud"
      version = ">= 1.36, < 2.0"
    }
  }
}

variable "cloud" {
  description = "Entry of clouds.yaml holding the credentials, for this provider block and for burst (`cloud`)."
  type        = string
  default     = "otc"
}

variable "region" {
  description = "OTC region of burst's clusters (eu-de, eu-nl, ...)."
  type        = string
  default     = "eu-de"
}

variable "availability_zone" {
  description = "AZ of burst's CCE control planes and nodes."
  type        = string
  default     = "eu-de-01"
}

variable "project_name" {
  description = "OTC project burst works in (eu-de or eu-de_<name>)."
  type        = string
  default     = "eu-de"
}

variable "public_key" {
  description = "OpenSSH public key for the CCE nodes' key pair."
  type        = string
}

variable "flavor" {
  description = "ECS flavor burst offers (see providers/tsystems/README.md)."
  type        = string
  default     = "s3.2xlarge.4"
}

variable "max_nodes" {
  description = "Most nodes burst may run in this project."
  type        = number
  default     = 200
}

provider "opentelekomcloud" {
  cloud = var.cloud
}

module "landing_zone" {
  source = "../../modules/otc-landing-zone"

  project_name = var.project_name
  public_key   = var.public_key
}

output "burst_user" {
  description = "IAM user for burst's clouds.yaml entry; set its password or AK/SK out of band."
  value       = module.landing_zone.burst_user
}

output "burst_provider_yaml" {
  description = "burst.yaml's providers section for this landing zone (append it, or merge it by hand if the file already has providers)."
  value       = <<-EOT
    providers:
      otc:
        kind: tsystems
        cloud: ${jsonencode(var.cloud)}
        region: ${jsonencode(var.region)}
        availability_zone: ${jsonencode(var.availability_zone)}
        vpc_id: ${jsonencode(module.landing_zone.vpc_id)}
        subnet_id: ${jsonencode(module.landing_zone.subnet_id)}
        keypair: ${jsonencode(module.landing_zone.keypair)}
        flavor: ${jsonencode(var.flavor)}
        max_nodes: ${jsonencode(var.max_nodes)}
  EOT
}
