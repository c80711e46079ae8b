# One customer-managed key per environment encrypts everything at rest: Kinesis streams, the
# failure queue, ECR, S3 artifacts, RDS (storage, Performance Insights, master secret), Secrets
# Manager, CloudWatch Logs, SNS and the Lambda environment. IAM policies grant kms:Decrypt /
# GenerateDataKey on this key only; the key policy lets the account's IAM decide (root statement)
# and lets the services that encrypt on their own behalf (CloudWatch Logs, CloudWatch alarms
# publishing to the encrypted SNS topic) use it.
resource "aws_kms_key" "main" {
  description             = "${local.name}: data at rest"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "main" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.main.key_id
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_109:A key policy's "Resource: *" means this key only; the root statement delegates to IAM policies, which are scoped.
  #checkov:skip=CKV_AWS_111:A key policy's "Resource: *" means this key only; the root statement delegates to IAM policies, which are scoped.
  #checkov:skip=CKV_AWS_356:A key policy's "Resource: *" means this key only (key policies cannot name other resources).
  statement {
    sid       = "AccountAdministersThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid = "CloudWatchLogs"
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublishToEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}
