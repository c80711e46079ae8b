# Application secrets in Secrets Manager, encrypted with the environment's key. ECS tasks get
# them as container secrets (valueFrom: the secret ARN), so they never appear in a task
# definition; the Lambda gets them as KMS-encrypted environment variables (lambda.tf).
#
# Terraform generates the initial values. An institution that already has keys (an id key
# changes every pseudonym, so it must be kept) overwrites them with
# `aws secretsmanager put-secret-value`; Terraform ignores later changes to the values.
#
# The names are the settings the services read (retain.settings.Settings, prefix RETAIN_), plus
# MLflow's own MLFLOW_BACKEND_STORE_URI for the tracking server.

locals {
  db_host = aws_db_instance.main.address
  app_secrets = {
    RETAIN_ID_KEY            = random_password.app["RETAIN_ID_KEY"].result
    RETAIN_ROSTER_KEY        = random_password.app["RETAIN_ROSTER_KEY"].result
    RETAIN_DATABASE_URL      = "postgresql+psycopg://retain_app:${random_password.app["retain_app_db"].result}@${local.db_host}:5432/retain?sslmode=require"
    MLFLOW_BACKEND_STORE_URI = "postgresql+psycopg://mlflow:${random_password.app["mlflow_db"].result}@${local.db_host}:5432/mlflow?sslmode=require"
  }
}

resource "random_password" "app" {
  for_each = toset(["RETAIN_ID_KEY", "RETAIN_ROSTER_KEY", "retain_app_db", "mlflow_db"])
  length   = 48
  special  = false
}

resource "aws_secretsmanager_secret" "app" {
  #checkov:skip=CKV2_AWS_57:Not rotated automatically: a new RETAIN_ID_KEY changes every student pseudonym (stored rows would no longer join) and a new RETAIN_ROSTER_KEY needs the roster re-encrypted; the database URLs follow the roles' passwords, changed in the bootstrap runbook (README.md). The RDS master secret is rotated by RDS.
  for_each = toset(keys(local.app_secrets))

  name                    = "${local.name}/${each.key}"
  description             = "${each.key} for ${local.name}"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = local.is_prod ? 30 : 7
}

resource "aws_secretsmanager_secret_version" "app" {
  for_each      = aws_secretsmanager_secret.app
  secret_id     = each.value.id
  secret_string = local.app_secrets[each.key]

  lifecycle {
    ignore_changes = [secret_string]
  }
}
