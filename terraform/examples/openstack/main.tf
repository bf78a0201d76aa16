# Example: the OpenStack (Magnum) landing zone for burst's `openstack` provider, printing burst's
# provider section.
#
#   terraform init && terraform apply -var image=fedora-coreos-38 -var "public_key=$(cat ~/.ssh/id_ed25519.pub)"
#   terraform output -raw burst_provider_yaml >> burst.yaml

terraform {
  required_version = ">= 1.5"
  required_providers {
    openstack = {
      source  = "terraform-provider-openstack/openstack"
      version = ">= 2.0, < 4.0"
    }
  }
}

variable "cloud" {
  description = "Entry of clouds.yaml holding the credentials, for this provider block and for burst (`cloud`)."
  type        = string
  default     = "openstack"
}

variable "region" {
  description = "OpenStack region."
  type        = string
  default     = "RegionOne"
}

variable "external_network" {
  description = "External network of the router and floating IPs."
  type        = string
  default     = "public"
}

variable "image" {
  description = "Glance image of the Magnum template (Fedora CoreOS)."
  type        = string
}

variable "public_key" {
  description = "OpenSSH public key for the cluster nodes' key pair."
  type        = string
}

variable "flavor" {
  description = "Worker flavor burst offers (in burst's openstack catalog, or add flavor_sizes)."
  type        = string
  default     = "m2.xlarge"
}

variable "kube_tag" {
  description = "Kubernetes version label of the template."
  type        = string
  default     = "v1.29.6"
}

variable "max_nodes" {
  description = "Most nodes burst may run in this project."
  type        = number
  default     = 500
}

provider "openstack" {
  cloud  = var.cloud
  region = var.region
}

module "landing_zone" {
  source = "../../modules/openstack-landing-zone"

  external_network = var.external_network
  image            = var.image
  public_key       = var.public_key
  worker_flavor    = var.flavor
  labels           = { kube_tag = var.kube_tag }
}

output "burst_provider_yaml" {
  description = "burst.yaml's providers section for this landing zone (append it, or merge it by hand if the file already has providers)."
  value       = <<-EOT
    providers:
      openstack:
        kind: openstack
        cloud: ${jsonencode(var.cloud)}
        region: ${jsonencode(var.region)}
        cluster_template: ${jsonencode(module.landing_zone.cluster_template)}
        keypair: ${jsonencode(module.landing_zone.keypair)}
        fixed_network: ${jsonencode(module.landing_zone.network)}
        fixed_subnet: ${jsonencode(module.landing_zone.subnet)}
        floating_ip_enabled: ${jsonencode(module.landing_zone.floating_ip_enabled)}
        flavor: ${jsonencode(var.flavor)}
        max_nodes: ${jsonencode(var.max_nodes)}
  EOT
}
