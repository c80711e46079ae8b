# Streams: student events in, risk predictions out, bad events to the dead-letter stream
# (docs/kinesis.md). All three are KMS-encrypted with the environment's key. Provisioned mode
# (var.kinesis_shard_count shards each) or on demand (var.kinesis_on_demand: Kinesis scales the
# shards; shard_count must then be unset).

locals {
  streams = {
    input       = "${local.name}-student-events"
    output      = "${local.name}-risk-predictions"
    dead_letter = "${local.name}-student-events-dead-letter"
  }
}

resource "aws_kinesis_stream" "main" {
  for_each = local.streams

  name             = each.value
  shard_count      = var.kinesis_on_demand ? null : (each.key == "dead_letter" ? 1 : var.kinesis_shard_count)
  retention_period = each.key == "dead_letter" ? var.dead_letter_retention_hours : var.kinesis_retention_hours
  encryption_type  = "KMS"
  kms_key_id       = aws_kms_key.main.arn

  stream_mode_details {
    stream_mode = var.kinesis_on_demand ? "ON_DEMAND" : "PROVISIONED"
  }

  shard_level_metrics = ["IncomingRecords", "IteratorAgeMilliseconds", "ReadProvisionedThroughputExceeded", "WriteProvisionedThroughputExceeded"]

  tags = { Name = each.value, Role = each.key }
}

# Where the event source mapping sets aside records that still fail after the retries
# (var.lambda_max_retry_attempts) or grow older than var.lambda_max_record_age_seconds: a message
# with the shard and sequence-number range, so they can be read again from the stream.
resource "aws_sqs_queue" "stream_failures" {
  name                      = "${local.name}-stream-failures"
  kms_master_key_id         = aws_kms_key.main.arn
  message_retention_seconds = 1209600
}
