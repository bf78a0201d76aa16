terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.x: aws_region exposes `region` (`name` is deprecated), aws_eip takes `domain`.
      version = ">= 6.0, < 7.0"
    }
  }
}
