# Inputs. Defaults are the production-safe values (multi-AZ, deletion protection, a year of
# logs); envs/staging.tfvars relaxes some of them, envs/prod.tfvars states them explicitly.

# ------------------------------------------------------------------ environment

variable "environment" {
  description = "Environment name: staging or prod (part of every resource name)."
  type        = string
  validation {
    condition     = contains(["staging", "prod"], var.environment)
    error_message = "The environment must be staging or prod."
  }
}

variable "aws_region" {
  description = "AWS region of the environment."
  type        = string
}

variable "tags" {
  description = "Extra tags on every resource (Project, Environment and ManagedBy are always set)."
  type        = map(string)
  default     = {}
}

variable "image_tags" {
  description = "Image tag (immutable: a release) of each service in its ECR repository."
  type = object({
    api       = string
    dashboard = string
    mlflow    = string
    lambda    = string
  })
}

# ------------------------------------------------------------------ network

variable "existing_vpc_id" {
  description = "Use this VPC instead of creating one (empty: create a VPC)."
  type        = string
  default     = ""
}

variable "existing_public_subnet_ids" {
  description = "Public subnets of the existing VPC (ALB); only with existing_vpc_id."
  type        = list(string)
  default     = []
}

variable "existing_private_subnet_ids" {
  description = "Private subnets of the existing VPC (tasks, Lambda, RDS); only with existing_vpc_id."
  type        = list(string)
  default     = []
}

variable "vpc_cidr" {
  description = "CIDR block of the created VPC (/16: public subnets take .0-.N, private .100-.100+N)."
  type        = string
  default     = "10.40.0.0/16"
}

variable "availability_zones" {
  description = "Zones of the created VPC, by name (at least 2: the ALB and the RDS subnet group need two)."
  type        = list(string)
  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "Give at least two availability zones."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper, one zone's outage cuts egress) instead of one per zone."
  type        = bool
  default     = false
}

variable "allowed_ingress_cidrs" {
  description = "Client networks that may reach the ALB (e.g. the institution's ranges)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener (must cover api_domain and dashboard_domain)."
  type        = string
}

variable "api_domain" {
  description = "Host name the ALB routes to the API (e.g. api.retain.example.edu)."
  type        = string
}

variable "dashboard_domain" {
  description = "Host name the ALB routes to the dashboard (e.g. retain.example.edu)."
  type        = string
}

variable "alb_deletion_protection" {
  description = "Refuse to delete the ALB."
  type        = bool
  default     = true
}

variable "waf_rate_limit_per_5min" {
  description = "Requests per client IP and 5 minutes above which the WAF blocks."
  type        = number
  default     = 2000
}

# ------------------------------------------------------------------ streams and Lambda

variable "kinesis_on_demand" {
  description = "On-demand capacity mode for the streams (Kinesis scales shards; kinesis_shard_count is ignored)."
  type        = bool
  default     = false
}

variable "kinesis_shard_count" {
  description = "Shards of the input and output streams in provisioned mode (1 MB/s or 1,000 records/s in each)."
  type        = number
  default     = 2
}

variable "kinesis_retention_hours" {
  description = "Retention of the input and output streams in hours (24 to 8760): how long a stalled consumer can catch up."
  type        = number
  default     = 168
}

variable "dead_letter_retention_hours" {
  description = "Retention of the dead-letter stream in hours."
  type        = number
  default     = 168
}

variable "lambda_memory_mb" {
  description = "Memory of the stream Lambda (the model and its pipeline: 1-2 GB)."
  type        = number
  default     = 2048
}

variable "lambda_timeout_seconds" {
  description = "Timeout of one invocation (the handler stops starting micro-batches 3 s before it)."
  type        = number
  default     = 120
}

variable "lambda_reserved_concurrency" {
  description = "Concurrent executions reserved for (and capping) the stream Lambda; at least shards x parallelization factor."
  type        = number
  default     = 10
}

variable "lambda_batch_size" {
  description = "Records per invocation from the event source mapping (100-1,000 is a good range)."
  type        = number
  default     = 500
}

variable "lambda_micro_batch_size" {
  description = "RETAIN_STREAM_BATCH_SIZE: events per micro-batch inside one invocation."
  type        = number
  default     = 500
}

variable "lambda_batching_window_seconds" {
  description = "Longest the mapping waits to fill a batch."
  type        = number
  default     = 1
}

variable "lambda_parallelization_factor" {
  description = "Concurrent batches per shard (1-10); one student's events stay in order."
  type        = number
  default     = 1
}

variable "lambda_bisect_on_error" {
  description = "Split a failing batch in two (not needed: the handler dead-letters poison events and reports transient failures per record)."
  type        = bool
  default     = false
}

variable "lambda_max_retry_attempts" {
  description = "Retries of a failing batch before its records go to the on-failure queue."
  type        = number
  default     = 100
}

variable "lambda_max_record_age_seconds" {
  description = "Records older than this go to the on-failure queue instead of being retried (-1: until they expire)."
  type        = number
  default     = 86400
}

# ------------------------------------------------------------------ services (ECS Fargate)

variable "api_cpu" {
  description = "CPU units of one API task (1024 = 1 vCPU)."
  type        = number
  default     = 1024
}

variable "api_memory_mb" {
  description = "Memory of one API task."
  type        = number
  default     = 2048
}

variable "api_workers" {
  description = "Uvicorn worker processes per API task (RETAIN_API_WORKERS)."
  type        = number
  default     = 1
}

variable "api_desired_count" {
  description = "API tasks at creation (autoscaling then keeps it between api_min_count and api_max_count)."
  type        = number
  default     = 2
}

variable "api_min_count" {
  description = "Fewest API tasks."
  type        = number
  default     = 2
}

variable "api_max_count" {
  description = "Most API tasks."
  type        = number
  default     = 10
}

variable "api_cpu_target_percent" {
  description = "Average CPU of the API tasks that autoscaling aims for."
  type        = number
  default     = 60
}

variable "api_requests_per_target" {
  description = "ALB requests per API task per minute that autoscaling aims for."
  type        = number
  default     = 1000
}

variable "dashboard_cpu" {
  description = "CPU units of one dashboard task."
  type        = number
  default     = 512
}

variable "dashboard_memory_mb" {
  description = "Memory of one dashboard task."
  type        = number
  default     = 1024
}

variable "dashboard_desired_count" {
  description = "Dashboard tasks."
  type        = number
  default     = 2
}

variable "mlflow_cpu" {
  description = "CPU units of one MLflow tracking server task."
  type        = number
  default     = 512
}

variable "mlflow_memory_mb" {
  description = "Memory of one MLflow tracking server task."
  type        = number
  default     = 1024
}

variable "mlflow_desired_count" {
  description = "MLflow tracking server tasks."
  type        = number
  default     = 2
}

variable "ecr_keep_images" {
  description = "Images kept per ECR repository (older ones expire)."
  type        = number
  default     = 30
}

# ------------------------------------------------------------------ data

variable "db_engine_major_version" {
  description = "PostgreSQL major version (minor versions are upgraded automatically)."
  type        = string
  default     = "16"
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.m6g.large"
}

variable "db_allocated_storage_gb" {
  description = "Initial storage of the database."
  type        = number
  default     = 50
}

variable "db_max_allocated_storage_gb" {
  description = "Storage autoscaling limit of the database."
  type        = number
  default     = 500
}

variable "db_multi_az" {
  description = "A standby in another zone (production)."
  type        = bool
  default     = true
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database (production)."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14
}

variable "artifact_noncurrent_days" {
  description = "Days an overwritten or deleted MLflow artifact version is kept."
  type        = number
  default     = 365
}

variable "access_log_retention_days" {
  description = "Days S3 and ALB access logs are kept."
  type        = number
  default     = 365
}

# ------------------------------------------------------------------ monitoring

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups (a year by default)."
  type        = number
  default     = 365
}

variable "alarm_emails" {
  description = "Addresses subscribed to the alarm topic (each confirms by mail)."
  type        = list(string)
  default     = []
}

variable "iterator_age_alarm_ms" {
  description = "Alarm when the stream consumer reads records older than this (ms)."
  type        = number
  default     = 60000
}

variable "dead_letter_alarm_count" {
  description = "Alarm when more dead letters than this arrive in 5 minutes."
  type        = number
  default     = 0
}

variable "api_5xx_alarm_count" {
  description = "Alarm when the API (or the ALB) answers more 5xx than this in 5 minutes."
  type        = number
  default     = 5
}

variable "api_latency_p95_alarm_seconds" {
  description = "Alarm when the API's p95 response time stays above this."
  type        = number
  default     = 1
}

variable "rds_cpu_alarm_percent" {
  description = "Alarm when the database's average CPU stays above this."
  type        = number
  default     = 80
}

variable "rds_free_storage_alarm_gb" {
  description = "Alarm when the database has less free storage than this."
  type        = number
  default     = 10
}
