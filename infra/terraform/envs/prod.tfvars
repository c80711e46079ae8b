# Prod: one NAT gateway per zone, multi-AZ database with deletion protection, autoscaled API,
# provisioned streams, a year of logs.
environment = "prod"
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
vpc_cidr                    = "10.40.0.0/16"
availability_zones          = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
single_nat_gateway          = false
allowed_ingress_cidrs       = ["0.0.0.0/0"]

certificate_arn         = "arn:aws:acm:eu-west-1:222222222222:certificate/00000000-0000-0000-0000-000000000000"
api_domain              = "api.retain.example.edu"
dashboard_domain        = "retain.example.edu"
alb_deletion_protection = true
waf_rate_limit_per_5min = 2000

kinesis_on_demand           = false
kinesis_shard_count         = 4
kinesis_retention_hours     = 168
dead_letter_retention_hours = 168

lambda_memory_mb               = 2048
lambda_timeout_seconds         = 120
lambda_reserved_concurrency    = 10
lambda_batch_size              = 500
lambda_micro_batch_size        = 500
lambda_batching_window_seconds = 1
lambda_parallelization_factor  = 2
lambda_bisect_on_error         = false
lambda_max_retry_attempts      = 100
lambda_max_record_age_seconds  = 86400

api_cpu                 = 1024
api_memory_mb           = 2048
api_workers             = 1
api_desired_count       = 2
api_min_count           = 2
api_max_count           = 10
api_cpu_target_percent  = 60
api_requests_per_target = 1000
dashboard_cpu           = 512
dashboard_memory_mb     = 1024
dashboard_desired_count = 2
mlflow_cpu              = 512
mlflow_memory_mb        = 1024
mlflow_desired_count    = 2
ecr_keep_images         = 30

db_engine_major_version     = "16"
db_instance_class           = "db.m6g.large"
db_allocated_storage_gb     = 50
db_max_allocated_storage_gb = 500
db_multi_az                 = true
db_deletion_protection      = true
db_backup_retention_days    = 14
artifact_noncurrent_days    = 365
access_log_retention_days   = 365

log_retention_days            = 365
alarm_emails                  = []
iterator_age_alarm_ms         = 60000
dead_letter_alarm_count       = 0
api_5xx_alarm_count           = 5
api_latency_p95_alarm_seconds = 1
rds_cpu_alarm_percent         = 80
rds_free_storage_alarm_gb     = 10

tags = {
  CostCentre = "retain-prod"
}
