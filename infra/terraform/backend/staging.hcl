# Remote state for staging: terraform init -reconfigure -backend-config=backend/staging.hcl
bucket         = "retain-terraform-state-staging"
key            = "retain/staging/terraform.tfstate"
region         = "eu-west-1"
dynamodb_table = "retain-terraform-locks-staging"
encrypt        = true
kms_key_id     = "alias/retain-terraform-state-staging"
