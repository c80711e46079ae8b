# Terraform and provider versions.
#
# Terraform 1.0 is the oldest release this configuration supports (the pinned checker in
# .venv-infra is 1.0.3), so nothing newer is used: no optional() object attributes, no moved,
# import or check blocks.
#
# hashicorp/aws 5.x: manage_master_user_password on aws_db_instance (RDS keeps the master password
# in Secrets Manager and rotates it; added in 4.66 / 5.0), logging_config on aws_lambda_function
# (5.26) and the ECS deployment circuit breaker are all available from 5.31 on.
terraform {
  required_version = ">= 1.0.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.31"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.5"
    }
  }

  # Partial configuration: bucket, key, region, DynamoDB lock table and KMS key come from
  # backend/<environment>.hcl (terraform init -backend-config=backend/staging.hcl).
  backend "s3" {}
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge(var.tags, {
      Project     = "retain"
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}
# The zones are named (var.availability_zones), so the set cannot grow when AWS adds a zone;
# the data source checks that they exist and are available.
data "aws_availability_zones" "selected" {
  state = "available"
  filter {
    name   = "zone-name"
    values = var.availability_zones
  }
}

locals {
  name       = "retain-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  is_prod    = var.environment == "prod"
}
