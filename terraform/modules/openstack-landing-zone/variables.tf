variable "name" {
  description = "Prefix of the network, subnet, router, key pair and cluster template names."
  type        = string
  default     = "burst"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9_-]{0,31}$", var.name))
    error_message = "name must be 1-32 letters, digits, '_' or '-', starting with a letter."
  }
}

variable "external_network" {
  description = "Name of the external (provider) network the router's gateway and floating IPs come from. Null: no router and no external network in the template (only for sites whose Magnum driver and network need none)."
  type        = string
  default     = null

  validation {
    condition     = var.external_network == null ? true : length(var.external_network) > 0
    error_message = "external_network must be null or a network name."
  }
}

variable "create_network" {
  description = "Create a tenant network, subnet and router for burst's clusters. false: the clusters use existing_network/existing_subnet (e.g. CERN's provider network, where tenants cannot make networks)."
  type        = bool
  default     = true
}

variable "existing_network" {
  description = "Name of an existing network, used when create_network is false."
  type        = string
  default     = null

  validation {
    condition     = var.existing_network == null ? true : length(var.existing_network) > 0
    error_message = "existing_network must be null or a network name."
  }
}

variable "existing_subnet" {
  description = "Name of an existing subnet of existing_network, used when create_network is false."
  type        = string
  default     = null

  validation {
    condition     = var.existing_subnet == null ? true : length(var.existing_subnet) > 0
    error_message = "existing_subnet must be null or a subnet name."
  }
}

variable "subnet_cidr" {
  description = "IPv4 CIDR of the created subnet."
  type        = string
  default     = "10.110.0.0/20"

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0))
    error_message = "subnet_cidr must be an IPv4 CIDR."
  }
}

variable "dns_nameservers" {
  description = "DNS servers of the created subnet and of the cluster template."
  type        = list(string)
  default     = ["8.8.8.8"]

  validation {
    condition     = length(var.dns_nameservers) >= 1 && alltrue([for ip in var.dns_nameservers : can(cidrhost("${ip}/32", 0))])
    error_message = "dns_nameservers must hold at least one IPv4 address."
  }
}

variable "public_key" {
  description = "OpenSSH public key of the Nova key pair the cluster nodes get: burst's `keypair`."
  type        = string

  validation {
    condition     = can(regex("^(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+", var.public_key))
    error_message = "public_key must be an OpenSSH public key (ssh-rsa, ssh-ed25519 or ecdsa-sha2-*)."
  }
}

variable "image" {
  description = "Glance image of the Magnum template (Fedora CoreOS for the k8s_fedora_coreos driver, e.g. fedora-coreos-38)."
  type        = string

  validation {
    condition     = length(var.image) > 0
    error_message = "image must name a Glance image."
  }
}

variable "worker_flavor" {
  description = "Default worker flavor of the template; burst overrides it per cluster with the flavor it chose."
  type        = string
  default     = "m2.xlarge"

  validation {
    condition     = length(var.worker_flavor) > 0
    error_message = "worker_flavor must name a Nova flavor."
  }
}

variable "master_flavor" {
  description = "Flavor of the control-plane nodes."
  type        = string
  default     = "m2.medium"

  validation {
    condition     = length(var.master_flavor) > 0
    error_message = "master_flavor must name a Nova flavor."
  }
}

variable "network_driver" {
  description = "Magnum network driver of the template."
  type        = string
  default     = "calico"

  validation {
    condition     = contains(["calico", "flannel"], var.network_driver)
    error_message = "network_driver must be calico or flannel."
  }
}

variable "floating_ip_enabled" {
  description = "Floating IPs on the nodes. Needed for the API server to be reachable from outside the tenant network unless master_lb_enabled is set with a floating IP on the load balancer."
  type        = bool
  default     = false
}

variable "master_lb_enabled" {
  description = "An Octavia load balancer in front of the API servers (needed for more than one master)."
  type        = bool
  default     = true
}

variable "labels" {
  description = "Magnum labels of the template (kube_tag, container_runtime, …). burst merges its ownership labels over these when it creates a cluster, so they are kept."
  type        = map(string)
  default     = {}
}
