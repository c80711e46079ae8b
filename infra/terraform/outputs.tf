output "input_stream_name" {
  description = "Kinesis stream producers send student events to."
  value       = aws_kinesis_stream.main["input"].name
}

output "input_stream_arn" {
  description = "ARN of the input stream."
  value       = aws_kinesis_stream.main["input"].arn
}

output "output_stream_name" {
  description = "Kinesis stream the risk predictions arrive on."
  value       = aws_kinesis_stream.main["output"].name
}

output "output_stream_arn" {
  description = "ARN of the output stream."
  value       = aws_kinesis_stream.main["output"].arn
}

output "dead_letter_stream_name" {
  description = "Kinesis stream of bad events."
  value       = aws_kinesis_stream.main["dead_letter"].name
}

output "dead_letter_stream_arn" {
  description = "ARN of the dead-letter stream."
  value       = aws_kinesis_stream.main["dead_letter"].arn
}

output "stream_failures_queue_url" {
  description = "SQS queue of records the event source mapping gave up on."
  value       = aws_sqs_queue.stream_failures.url
}

output "lambda_function_name" {
  description = "The stream Lambda."
  value       = aws_lambda_function.stream.function_name
}

output "ecr_repository_urls" {
  description = "Repository URL of each image (push IMAGE:TAG, then set image_tags)."
  value       = { for name, repo in aws_ecr_repository.main : name => repo.repository_url }
}

output "alb_dns_name" {
  description = "DNS name of the ALB: point api_domain and dashboard_domain at it (CNAME or alias)."
  value       = aws_lb.main.dns_name
}

output "alb_zone_id" {
  description = "Hosted zone of the ALB (for Route 53 alias records)."
  value       = aws_lb.main.zone_id
}

output "rds_endpoint" {
  description = "host:port of the PostgreSQL instance."
  value       = aws_db_instance.main.endpoint
}

output "rds_master_secret_arn" {
  description = "Secrets Manager secret RDS keeps the master credentials in (bootstrap only)."
  value       = aws_db_instance.main.master_user_secret[0].secret_arn
}

output "mlflow_artifact_bucket" {
  description = "S3 bucket of the MLflow artifacts."
  value       = aws_s3_bucket.artifacts.id
}

output "mlflow_tracking_uri" {
  description = "Internal URL of the MLflow tracking server (inside the VPC)."
  value       = local.mlflow_url
}

output "ecs_cluster_name" {
  description = "ECS cluster of the services."
  value       = aws_ecs_cluster.main.name
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms."
  value       = aws_sns_topic.alarms.arn
}

output "secret_arns" {
  description = "Secrets Manager ARNs of the application secrets."
  value       = { for name, s in aws_secretsmanager_secret.app : name => s.arn }
}

output "vpc_id" {
  description = "VPC of the environment."
  value       = local.vpc_id
}
