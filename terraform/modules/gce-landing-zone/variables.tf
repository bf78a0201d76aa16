variable "project" {
  description = "GCP project id the clusters run in: burst's `project`."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a GCP project id: 6-30 lowercase letters, digits or '-', starting with a letter."
  }
}

variable "region" {
  description = "Region of the subnetwork; burst's `location` must be this region or one of its zones."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a GCE region such as europe-west4."
  }
}

variable "name" {
  description = "Prefix of the network, subnetwork, router and service account names."
  type        = string
  default     = "burst"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,17}$", var.name))
    error_message = "name must be 1-18 lowercase letters, digits or '-', starting with a letter (service account ids derive from it)."
  }
}

variable "nodes_cidr" {
  description = "Primary IPv4 range of the subnetwork (node addresses)."
  type        = string
  default     = "10.90.0.0/20"

  validation {
    condition     = can(cidrhost(var.nodes_cidr, 0))
    error_message = "nodes_cidr must be an IPv4 CIDR."
  }
}

variable "pods_cidr" {
  description = "Secondary range `<name>-pods` for pod addresses (VPC-native clusters)."
  type        = string
  default     = "10.96.0.0/14"

  validation {
    condition     = can(cidrhost(var.pods_cidr, 0))
    error_message = "pods_cidr must be an IPv4 CIDR."
  }
}

variable "services_cidr" {
  description = "Secondary range `<name>-services` for ClusterIP services."
  type        = string
  default     = "10.100.0.0/20"

  validation {
    condition     = can(cidrhost(var.services_cidr, 0))
    error_message = "services_cidr must be an IPv4 CIDR."
  }
}

variable "burst_role" {
  description = "What burst's service account may do with GKE: roles/container.admin (cluster lifecycle and Kubernetes API rights in the new clusters, which the federation join needs), roles/container.clusterAdmin (lifecycle only; grant Kubernetes RBAC another way), or \"custom\" (a project role with exactly the container.* permissions burst_gce uses, also lifecycle only)."
  type        = string
  default     = "roles/container.admin"

  validation {
    condition     = contains(["roles/container.admin", "roles/container.clusterAdmin", "custom"], var.burst_role)
    error_message = "burst_role must be roles/container.admin, roles/container.clusterAdmin or custom."
  }
}

variable "enable_nat" {
  description = "Cloud NAT for the subnetwork, so nodes without external addresses can pull images. burst creates nodes with GKE's defaults (external addresses), so this is only needed if you make nodes private."
  type        = bool
  default     = false
}
