# Example: the AWS landing zone for one burst installation, printing burst's provider section.
#
#   terraform init && terraform apply -var installation=atlas
#   terraform output -raw burst_provider_yaml >> burst.yaml

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
  }
}

variable "region" {
  description = "AWS region of the landing zone and of burst's EKS clusters."
  type        = string
  default     = "eu-central-1"
}

variable "installation" {
  description = "burst's installation id (`installation:` in burst.yaml)."
  type        = string
  default     = "burst"
}

variable "instance_types" {
  description = "Catalog instance types burst may offer (see providers/aws/README.md)."
  type        = list(string)
  default     = ["m5.2xlarge", "c5.4xlarge"]
}

variable "spot" {
  description = "Run burst's node groups on SPOT capacity."
  type        = bool
  default     = true
}

variable "max_nodes" {
  description = "Most nodes burst may run in this account."
  type        = number
  default     = 400
}

provider "aws" {
  region = var.region
}

module "landing_zone" {
  source = "../../modules/aws-landing-zone"

  installation = var.installation
  az_count     = 3
  # The host running `burst run` assumes this role; here: anyone in this account allowed to.
  burst_role_trusted_principals = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
}

data "aws_caller_identity" "current" {}

output "burst_role_arn" {
  description = "Role burst runs as: set AWS_ROLE_ARN, or role_arn in the profile named by `profile`."
  value       = module.landing_zone.burst_role_arn
}

output "burst_provider_yaml" {
  description = "burst.yaml's providers section for this landing zone (append it, or merge it by hand if the file already has providers)."
  # Every value goes through jsonencode: JSON strings and lists are valid YAML flow scalars, so
  # no value can break the YAML whatever characters it holds.
  value = <<-EOT
    providers:
      aws:
        kind: aws
        region: ${jsonencode(module.landing_zone.region)}
        cluster_role_arn: ${jsonencode(module.landing_zone.cluster_role_arn)}
        node_role_arn: ${jsonencode(module.landing_zone.node_role_arn)}
        subnets: ${jsonencode(module.landing_zone.subnets)}
        security_groups: ${jsonencode(module.landing_zone.security_groups)}
        instance_types: ${jsonencode(var.instance_types)}
        spot: ${jsonencode(var.spot)}
        max_nodes: ${jsonencode(var.max_nodes)}
  EOT
}
