# Remote state for prod: terraform init -reconfigure -backend-config=backend/prod.hcl
bucket         = "retain-terraform-state-prod"
key            = "retain/prod/terraform.tfstate"
region         = "eu-west-1"
dynamodb_table = "retain-terraform-locks-prod"
encrypt        = true
kms_key_id     = "alias/retain-terraform-state-prod"
