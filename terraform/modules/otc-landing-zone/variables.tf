variable "name" {
  description = "Prefix of the VPC, subnet, key pair, security group, IAM group and user names."
  type        = string
  default     = "burst"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9_-]{0,31}$", var.name))
    error_message = "name must be 1-32 letters, digits, '_' or '-', starting with a letter."
  }
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the VPC: burst's `vpc_id` is this VPC (the CCE cluster's router)."
  type        = string
  default     = "192.168.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be an IPv4 CIDR."
  }
}

variable "subnet_cidr" {
  description = "IPv4 CIDR of the subnet the CCE control planes and nodes live in; inside vpc_cidr and apart from burst's container_cidr (default 172.16.0.0/16)."
  type        = string
  default     = "192.168.0.0/20"

  validation {
    condition     = can(cidrhost(var.subnet_cidr, 0)) && tonumber(split("/", var.subnet_cidr)[1]) <= 28
    error_message = "subnet_cidr must be an IPv4 CIDR of size /28 or larger (OTC's limit)."
  }
}

variable "dns_servers" {
  description = "DNS servers of the subnet. The default are OTC's internal resolvers in eu-de/eu-nl, which nodes need to resolve OTC service endpoints."
  type        = list(string)
  default     = ["100.125.4.25", "100.125.129.199"]

  validation {
    condition     = length(var.dns_servers) >= 1 && alltrue([for ip in var.dns_servers : can(cidrhost("${ip}/32", 0))])
    error_message = "dns_servers must hold at least one IPv4 address."
  }
}

variable "public_key" {
  description = "OpenSSH public key of the ECS key pair CCE nodes get (CCE needs a login method for every node): burst's `keypair`."
  type        = string

  validation {
    condition     = can(regex("^(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+", var.public_key))
    error_message = "public_key must be an OpenSSH public key (ssh-rsa, ssh-ed25519 or ecdsa-sha2-*)."
  }
}

variable "create_security_group" {
  description = "Create a security group for operator-managed extras in the VPC (a bastion, an on-prem VPN endpoint). CCE makes and attaches its own cluster and node groups; burst's config has no key for this one."
  type        = bool
  default     = false
}

variable "admin_cidrs" {
  description = "CIDRs allowed SSH (22) and Kubernetes API (5443) into the optional security group."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.admin_cidrs : can(cidrhost(c, 0))])
    error_message = "every admin_cidrs entry must be an IPv4 CIDR."
  }
}

variable "burst_roles" {
  description = "System roles (Terraform role name => console policy name, for reading) granted to burst's IAM group in the project: CCE FullAccess plus read access to what CCE references, as providers/tsystems/README.md says. Role names from the opentelekomcloud provider's identity_role_v3 docs; check them with `openstack role list` if OTC renames policies."
  type        = map(string)
  default = {
    system_all_27 = "CCE FullAccess"
    system_all_6  = "VPC Viewer"
    system_all_2  = "ECS Viewer"
    system_all_33 = "EVS ReadOnlyAccess"
  }

  validation {
    condition     = length(var.burst_roles) >= 1
    error_message = "burst_roles must grant at least one role (CCE FullAccess)."
  }
}

variable "create_burst_user" {
  description = "Create an IAM user in burst's group. No password or AK/SK is set here (it would sit in the Terraform state): set them out of band and put them in burst's clouds.yaml."
  type        = bool
  default     = true
}

variable "create_cce_agency" {
  description = "Create CCE's service agency cce_admin_trust (op_svc_cce, Tenant Administrator in the project). It exists once per account; the CCE console creates it on first use, so leave this false unless the account has never used CCE."
  type        = bool
  default     = false
}

variable "project_name" {
  description = "OTC project (e.g. eu-de or eu-de_burst) the IAM grants apply to; must be the project the provider is configured for."
  type        = string

  validation {
    condition     = can(regex("^(eu-de|eu-nl|eu-ch2)(_[A-Za-z0-9_-]+)?$", var.project_name))
    error_message = "project_name must be an OTC project name: <region> or <region>_<name> (regions eu-de, eu-nl, eu-ch2)."
  }
}

variable "tags" {
  description = "Tags on the VPC and subnet."
  type        = map(string)
  default     = {}
}
