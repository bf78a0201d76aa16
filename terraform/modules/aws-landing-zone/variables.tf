variable "installation" {
  description = "burst's installation id (`installation:` in burst.yaml). burst tags every EKS cluster and node group burst.owner=<installation>; the burst policy only lets burst create, change and delete resources carrying that tag."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.installation))
    error_message = "installation must match burst's own rule: ^[a-z][a-z0-9-]{0,19}$."
  }
}

variable "name" {
  description = "Prefix of every resource name (VPC, roles, policy, security group)."
  type        = string
  default     = "burst"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9-]{0,31}$", var.name))
    error_message = "name must be 1-32 letters, digits or '-', starting with a letter (IAM role names derive from it)."
  }
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the VPC. Private and public subnets are carved from it (/20 and /24 per availability zone with the default /16)."
  type        = string
  default     = "10.80.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 18
    error_message = "vpc_cidr must be an IPv4 CIDR of size /18 or larger (EKS nodes take one VPC address per pod)."
  }
}

variable "az_count" {
  description = "Number of availability zones to spread the private subnets over. EKS requires subnets in at least two."
  type        = number
  default     = 3

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 6 && floor(var.az_count) == var.az_count
    error_message = "az_count must be a whole number from 2 to 6."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all private subnets (cheaper) instead of one per availability zone (survives the loss of a zone)."
  type        = bool
  default     = true
}

variable "api_ingress_cidrs" {
  description = "CIDRs (e.g. the on-prem federation host) allowed to reach the EKS API on 443 through the extra control-plane security group, in addition to the VPC itself."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.api_ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "every api_ingress_cidrs entry must be an IPv4 CIDR."
  }
}

variable "burst_role_trusted_principals" {
  description = "IAM principal ARNs allowed to assume the role burst runs as (e.g. the instance role of the host running `burst run`, or an account root ARN). Empty: no role is created."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for p in var.burst_role_trusted_principals : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:", p))])
    error_message = "every burst_role_trusted_principals entry must be an IAM ARN (arn:aws:iam::<12 digits>:...)."
  }
}

variable "create_burst_user" {
  description = "Create an IAM user with the burst policy attached. No access key is made here (it would land in the Terraform state): create one out of band and hand it to burst through the boto3 credential chain."
  type        = bool
  default     = false
}

variable "allow_create_service_linked_role" {
  description = "Let burst create the EKS and EKS node group service-linked roles. Needed only in an account that has never used EKS managed node groups."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Extra tags on every resource this module creates."
  type        = map(string)
  default     = {}
}
