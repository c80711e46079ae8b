# Staging: one NAT gateway, single-AZ database without deletion protection, small tasks,
# on-demand streams, a month of logs.
environment = "staging"
aws_region  = "eu-west-1"

image_tags = {
  api       = "0.1.0"
  dashboard = "0.1.0"
  mlflow    = "0.1.0"
  lambda    = "0.1.0"
}

existing_vpc_id             = ""
existing_public_subnet_ids  = []
existing_private_subnet_ids = []
vpc_cidr                    = "10.41.0.0/16"
availability_zones          = ["eu-west-1a", "eu-west-1b"]
single_nat_gateway          = true
allowed_ingress_cidrs       = ["0.0.0.0/0"]

certificate_arn         = "arn:aws:acm:eu-west-1:111111111111:certificate/00000000-0000-0000-0000-000000000000"
api_domain              = "api.staging.retain.example.edu"
dashboard_domain        = "staging.retain.example.edu"
alb_deletion_protection = false
waf_rate_limit_per_5min = 2000

kinesis_on_demand           = true
kinesis_shard_count         = 1
kinesis_retention_hours     = 24
dead_letter_retention_hours = 168

lambda_memory_mb               = 2048
lambda_timeout_seconds         = 120
lambda_reserved_concurrency    = 5
lambda_batch_size              = 500
lambda_micro_batch_size        = 500
lambda_batching_window_seconds = 1
lambda_parallelization_factor  = 1
lambda_bisect_on_error         = false
lambda_max_retry_attempts      = 10
lambda_max_record_age_seconds  = 3600

api_cpu                 = 512
api_memory_mb           = 1024
api_workers             = 1
api_desired_count       = 1
api_min_count           = 1
api_max_count           = 2
api_cpu_target_percent  = 70
api_requests_per_target = 1000
dashboard_cpu           = 512
dashboard_memory_mb     = 1024
dashboard_desired_count = 1
mlflow_cpu              = 512
mlflow_memory_mb        = 1024
mlflow_desired_count    = 1
ecr_keep_images         = 10

db_engine_major_version     = "16"
db_instance_class           = "db.t4g.medium"
db_allocated_storage_gb     = 20
db_max_allocated_storage_gb = 100
db_multi_az                 = false
db_deletion_protection      = false
db_backup_retention_days    = 3
artifact_noncurrent_days    = 30
access_log_retention_days   = 30

log_retention_days            = 30
alarm_emails                  = []
iterator_age_alarm_ms         = 300000
dead_letter_alarm_count       = 100
api_5xx_alarm_count           = 20
api_latency_p95_alarm_seconds = 2
rds_cpu_alarm_percent         = 90
rds_free_storage_alarm_gb     = 5

tags = {
  CostCentre = "retain-staging"
}
