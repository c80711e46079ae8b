# Image repositories: immutable tags (a tag is a release; deploys name it in var.image_tags),
# scan on push, KMS encryption, and a lifecycle that keeps the last var.ecr_keep_images tagged
# images and drops untagged layers after a week.

locals {
  ecr_repositories = toset(["retain-api", "retain-worker", "retain-dashboard", "retain-mlflow", "retain-lambda"])
}

resource "aws_ecr_repository" "main" {
  for_each = local.ecr_repositories

  name                 = "${var.environment}/${each.key}"
  image_tag_mutability = "IMMUTABLE"
  force_delete         = false

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.main.arn
  }
}

resource "aws_ecr_lifecycle_policy" "main" {
  for_each   = aws_ecr_repository.main
  repository = each.value.name

  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Drop untagged images after 7 days"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 7
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the last ${var.ecr_keep_images} images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.ecr_keep_images
        }
        action = { type = "expire" }
      },
    ]
  })
}

# Lambda pulls its image with the service principal; only this account's stream function may.
resource "aws_ecr_repository_policy" "lambda_pull" {
  repository = aws_ecr_repository.main["retain-lambda"].name
  policy     = data.aws_iam_policy_document.lambda_pull.json
}

data "aws_iam_policy_document" "lambda_pull" {
  statement {
    sid     = "LambdaPullsTheStreamImage"
    actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:sourceArn"
      values   = ["arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.lambda_name}"]
    }
  }
}
