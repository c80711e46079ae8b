# The stream Lambda: the same core as `retain stream worker`, fed by a Kinesis event source
# mapping (src/retain/streaming/lambda_handler.py, docs/kinesis.md).
#
# - Image from the retain-lambda ECR repository; the image command names the handler
#   retain.streaming.lambda_handler.handler.
# - The handler answers {"batchItemFailures": [...]}: FunctionResponseTypes must be
#   ReportBatchItemFailures, or a partial failure would be retried as a whole batch.
# - Bisect on error is off by default: poison messages are dead-lettered by the handler and never
#   fail the invocation; transient failures are reported record by record.
# - Predictions go to the output stream (RETAIN_STREAM_OUTPUT_URL), bad events to the dead-letter
#   stream (RETAIN_STREAM_DEAD_LETTER_URL); records that keep failing go to the SQS queue
#   (on-failure destination of the mapping).

locals {
  lambda_name    = "${local.name}-stream"
  lambda_handler = "retain.streaming.lambda_handler.handler"

  # Settings every service shares (names are fields of retain.settings.Settings, prefix RETAIN_).
  common_environment = {
    RETAIN_ENVIRONMENT       = "production"
    RETAIN_TRACKING_URI      = local.mlflow_url
    MLFLOW_DISABLE_TELEMETRY = "true"
  }
}

resource "aws_lambda_function" "stream" {
  #checkov:skip=CKV_AWS_272:Code signing applies to .zip packages only; this is a container image from an ECR repository with immutable tags and scan on push.
  function_name = local.lambda_name
  description   = "Scores student events from ${aws_kinesis_stream.main["input"].name}"
  role          = aws_iam_role.lambda.arn
  package_type  = "Image"
  image_uri     = "${aws_ecr_repository.main["retain-lambda"].repository_url}:${var.image_tags["lambda"]}"
  architectures = ["x86_64"]
  memory_size   = var.lambda_memory_mb
  timeout       = var.lambda_timeout_seconds

  # Kinesis invocations per shard are limited by the mapping (parallelization factor); this caps
  # the whole function so a backlog cannot exhaust the database's connections.
  reserved_concurrent_executions = var.lambda_reserved_concurrency

  image_config {
    command = [local.lambda_handler]
  }

  environment {
    variables = merge(local.common_environment, {
      RETAIN_STREAM_OUTPUT_URL      = "kinesis://${aws_kinesis_stream.main["output"].name}?region=${local.region}"
      RETAIN_STREAM_DEAD_LETTER_URL = "kinesis://${aws_kinesis_stream.main["dead_letter"].name}?region=${local.region}"
      RETAIN_STREAM_BATCH_SIZE      = tostring(var.lambda_micro_batch_size)
      RETAIN_HOME                   = "/tmp/retain" # the only writable path in Lambda
      # Lambda has no secret injection: the values are read from Secrets Manager at apply time
      # and kept encrypted with the environment's key (kms_key_arn below).
      RETAIN_DATABASE_URL = data.aws_secretsmanager_secret_version.lambda["RETAIN_DATABASE_URL"].secret_string
      RETAIN_ID_KEY       = data.aws_secretsmanager_secret_version.lambda["RETAIN_ID_KEY"].secret_string
      RETAIN_ROSTER_KEY   = data.aws_secretsmanager_secret_version.lambda["RETAIN_ROSTER_KEY"].secret_string
    })
  }
  kms_key_arn = aws_kms_key.main.arn

  vpc_config {
    subnet_ids         = local.private_subnet_ids
    security_group_ids = [aws_security_group.lambda.id]
  }

  tracing_config {
    mode = "Active"
  }

  # Asynchronous invocations only (e.g. `aws lambda invoke --invocation-type Event`); Kinesis
  # records that keep failing go to the mapping's on-failure destination (the same queue).
  dead_letter_config {
    target_arn = aws_sqs_queue.stream_failures.arn
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.lambda.name
  }

  depends_on = [
    aws_iam_role_policy.lambda,
    aws_iam_role_policy_attachment.lambda_vpc,
    aws_cloudwatch_log_group.lambda,
    aws_ecr_repository_policy.lambda_pull,
  ]
}

data "aws_secretsmanager_secret_version" "lambda" {
  for_each   = toset(["RETAIN_DATABASE_URL", "RETAIN_ID_KEY", "RETAIN_ROSTER_KEY"])
  secret_id  = aws_secretsmanager_secret.app[each.key].id
  depends_on = [aws_secretsmanager_secret_version.app]
}

resource "aws_lambda_event_source_mapping" "stream" {
  function_name                      = aws_lambda_function.stream.arn
  event_source_arn                   = aws_kinesis_stream.main["input"].arn
  starting_position                  = "TRIM_HORIZON"
  batch_size                         = var.lambda_batch_size
  maximum_batching_window_in_seconds = var.lambda_batching_window_seconds
  parallelization_factor             = var.lambda_parallelization_factor
  bisect_batch_on_function_error     = var.lambda_bisect_on_error
  maximum_retry_attempts             = var.lambda_max_retry_attempts
  maximum_record_age_in_seconds      = var.lambda_max_record_age_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.stream_failures.arn
    }
  }
}
