# PostgreSQL for the Retain store (database "retain") and the MLflow backend (database
# "mlflow"), in the private subnets only.
#
# - The master password is managed by RDS in Secrets Manager (manage_master_user_password,
#   hashicorp/aws >= 4.66), encrypted with the environment's key and rotated by RDS; it never
#   appears in the Terraform state. It is for administrators and the one-time bootstrap
#   (README.md: create the application roles and databases).
# - The services connect as their own roles (retain_app, mlflow) whose connection URLs live in
#   Secrets Manager (secrets.tf).
# - IAM database authentication is on, so operators connect with short-lived tokens
#   (aws rds generate-db-auth-token) instead of a shared password.
# - TLS is enforced by the parameter group (rds.force_ssl); statements slower than a second are
#   logged; logs go to CloudWatch.

resource "aws_db_subnet_group" "main" {
  name       = local.name
  subnet_ids = local.private_subnet_ids
}

resource "aws_db_parameter_group" "main" {
  name   = "${local.name}-postgres${var.db_engine_major_version}"
  family = "postgres${var.db_engine_major_version}"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
  parameter {
    name  = "log_connections"
    value = "1"
  }
  parameter {
    name  = "log_disconnections"
    value = "1"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_db_instance" "main" {
  identifier     = local.name
  engine         = "postgres"
  engine_version = var.db_engine_major_version
  instance_class = var.db_instance_class

  allocated_storage     = var.db_allocated_storage_gb
  max_allocated_storage = var.db_max_allocated_storage_gb
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.main.arn

  db_name                             = "retain"
  username                            = "retain_admin"
  manage_master_user_password         = true
  master_user_secret_kms_key_id       = aws_kms_key.main.arn
  iam_database_authentication_enabled = true

  db_subnet_group_name   = aws_db_subnet_group.main.name
  vpc_security_group_ids = [aws_security_group.rds.id]
  publicly_accessible    = false
  parameter_group_name   = aws_db_parameter_group.main.name
  multi_az               = var.db_multi_az

  backup_retention_period   = var.db_backup_retention_days
  backup_window             = "02:00-03:00"
  maintenance_window        = "sun:03:30-sun:04:30"
  copy_tags_to_snapshot     = true
  deletion_protection       = var.db_deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${local.name}-final"

  auto_minor_version_upgrade      = true
  enabled_cloudwatch_logs_exports = ["postgresql", "upgrade"]

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.main.arn
  performance_insights_retention_period = 7

  monitoring_interval = 30
  monitoring_role_arn = aws_iam_role.rds_monitoring.arn
}
