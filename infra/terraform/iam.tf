# IAM roles, least privilege:
# - task execution role (ECS agent): pull images from the environment's repositories, write the
#   services' log streams, read the services' secrets; nothing else.
# - task roles (the application): one per service; only MLflow has AWS permissions (its artifact
#   bucket). The API and dashboard reach models through MLflow, not S3.
# - Lambda role: read the input stream, write the output and dead-letter streams, send to the
#   failure queue, write its own log group, X-Ray segments, and the ENIs Lambda needs in the VPC.
# - flow-log role and RDS enhanced-monitoring role.
# No statement allows "*" actions, and "*" resources appear only for actions that have no
# resource-level permissions (ecr:GetAuthorizationToken, xray:PutTraceSegments).

data "aws_iam_policy_document" "assume" {
  for_each = {
    ecs_tasks  = "ecs-tasks.amazonaws.com"
    lambda     = "lambda.amazonaws.com"
    flow_logs  = "vpc-flow-logs.amazonaws.com"
    monitoring = "monitoring.rds.amazonaws.com"
  }
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = [each.value]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# ------------------------------------------------------------------ ECS

resource "aws_iam_role" "task_execution" {
  name               = "${local.name}-task-execution"
  assume_role_policy = data.aws_iam_policy_document.assume["ecs_tasks"].json
}

resource "aws_iam_role_policy" "task_execution" {
  name   = "pull-log-secrets"
  role   = aws_iam_role.task_execution.id
  policy = data.aws_iam_policy_document.task_execution.json
}

data "aws_iam_policy_document" "task_execution" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # no resource-level permissions for this action
  }
  statement {
    sid       = "PullServiceImages"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [for name in ["retain-api", "retain-dashboard", "retain-mlflow"] : aws_ecr_repository.main[name].arn]
  }
  statement {
    sid       = "WriteServiceLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for g in aws_cloudwatch_log_group.service : "${g.arn}:*"]
  }
  statement {
    sid       = "ReadServiceSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [for s in aws_secretsmanager_secret.app : s.arn]
  }
  statement {
    sid       = "DecryptImagesAndSecrets"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.main.arn]
  }
}

resource "aws_iam_role" "task" {
  for_each           = local.services
  name               = "${local.name}-${each.key}-task"
  assume_role_policy = data.aws_iam_policy_document.assume["ecs_tasks"].json
}

resource "aws_iam_role_policy" "mlflow_artifacts" {
  name   = "mlflow-artifacts"
  role   = aws_iam_role.task["mlflow"].id
  policy = data.aws_iam_policy_document.mlflow_artifacts.json
}

data "aws_iam_policy_document" "mlflow_artifacts" {
  statement {
    sid       = "ListArtifactBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.artifacts.arn]
  }
  statement {
    sid       = "ReadWriteArtifacts"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.artifacts.arn}/artifacts/*"]
  }
  statement {
    sid       = "ArtifactEncryption"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.main.arn]
  }
}

# ------------------------------------------------------------------ Lambda

resource "aws_iam_role" "lambda" {
  name               = "${local.name}-stream-lambda"
  assume_role_policy = data.aws_iam_policy_document.assume["lambda"].json
}

resource "aws_iam_role_policy" "lambda" {
  name   = "streams-logs-traces"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.lambda.json
}

# ENIs in the private subnets (AWS managed: ec2:CreateNetworkInterface and friends, which need
# "*" for Describe calls; nothing else).
resource "aws_iam_role_policy_attachment" "lambda_vpc" {
  role       = aws_iam_role.lambda.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

data "aws_iam_policy_document" "lambda" {
  statement {
    sid = "ReadInputStream"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
    ]
    resources = [aws_kinesis_stream.main["input"].arn]
  }
  statement {
    sid       = "WriteOutputAndDeadLetterStreams"
    actions   = ["kinesis:PutRecord", "kinesis:PutRecords"]
    resources = [aws_kinesis_stream.main["output"].arn, aws_kinesis_stream.main["dead_letter"].arn]
  }
  statement {
    sid       = "StreamEncryption"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.main.arn]
  }
  statement {
    sid       = "OnFailureDestination"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.stream_failures.arn]
  }
  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda.arn}:*"]
  }
  statement {
    sid       = "XRayTraces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"] # no resource-level permissions for these actions
  }
  statement {
    sid       = "PullOwnImage"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [aws_ecr_repository.main["retain-lambda"].arn]
  }
}

# ------------------------------------------------------------------ flow logs, RDS monitoring

resource "aws_iam_role" "flow_logs" {
  name               = "${local.name}-flow-logs"
  assume_role_policy = data.aws_iam_policy_document.assume["flow_logs"].json
}

resource "aws_iam_role_policy" "flow_logs" {
  name   = "write-flow-logs"
  role   = aws_iam_role.flow_logs.id
  policy = data.aws_iam_policy_document.flow_logs.json
}

data "aws_iam_policy_document" "flow_logs" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.flow_logs.arn}:*"]
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${local.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.assume["monitoring"].json
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}
