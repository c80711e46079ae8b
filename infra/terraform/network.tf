# Network: a VPC with public subnets (ALB, NAT gateways) and private subnets (ECS tasks, Lambda,
# RDS) across var.availability_zones, or an existing VPC (var.existing_vpc_id and its subnet ids).
# Flow logs go to an encrypted CloudWatch log group in both cases.

locals {
  create_vpc         = var.existing_vpc_id == ""
  azs                = sort(data.aws_availability_zones.selected.names)
  az_count           = length(var.availability_zones)
  nat_gateway_count  = local.create_vpc ? (var.single_nat_gateway ? 1 : local.az_count) : 0
  vpc_id             = local.create_vpc ? aws_vpc.main[0].id : var.existing_vpc_id
  public_subnet_ids  = local.create_vpc ? aws_subnet.public[*].id : var.existing_public_subnet_ids
  private_subnet_ids = local.create_vpc ? aws_subnet.private[*].id : var.existing_private_subnet_ids
}

resource "aws_vpc" "main" {
  count                = local.create_vpc ? 1 : 0
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = { Name = local.name }
}

# No rules: nothing may use the default security group.
resource "aws_default_security_group" "main" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.main[0].id
  tags   = { Name = "${local.name}-default-unused" }
}

resource "aws_internet_gateway" "main" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.main[0].id
  tags   = { Name = local.name }
}

resource "aws_subnet" "public" {
  count                   = local.create_vpc ? local.az_count : 0
  vpc_id                  = aws_vpc.main[0].id
  cidr_block              = cidrsubnet(var.vpc_cidr, 8, count.index)
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false
  tags                    = { Name = "${local.name}-public-${local.azs[count.index]}", Tier = "public" }
}

resource "aws_subnet" "private" {
  count             = local.create_vpc ? local.az_count : 0
  vpc_id            = aws_vpc.main[0].id
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, 100 + count.index)
  availability_zone = local.azs[count.index]
  tags              = { Name = "${local.name}-private-${local.azs[count.index]}", Tier = "private" }
}

resource "aws_eip" "nat" {
  count  = local.nat_gateway_count
  domain = "vpc"
  tags   = { Name = "${local.name}-nat-${count.index}" }
}

resource "aws_nat_gateway" "main" {
  count         = local.nat_gateway_count
  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id
  tags          = { Name = "${local.name}-${count.index}" }
  depends_on    = [aws_internet_gateway.main]
}

resource "aws_route_table" "public" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.main[0].id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.main[0].id
  }
  tags = { Name = "${local.name}-public" }
}

resource "aws_route_table_association" "public" {
  count          = local.create_vpc ? local.az_count : 0
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public[0].id
}

resource "aws_route_table" "private" {
  count  = local.create_vpc ? local.az_count : 0
  vpc_id = aws_vpc.main[0].id
  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.main[var.single_nat_gateway ? 0 : count.index].id
  }
  tags = { Name = "${local.name}-private-${local.azs[count.index]}" }
}

resource "aws_route_table_association" "private" {
  count          = local.create_vpc ? local.az_count : 0
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

# S3 traffic (MLflow artifacts, ECR layers) stays off the NAT gateways.
resource "aws_vpc_endpoint" "s3" {
  count             = local.create_vpc ? 1 : 0
  vpc_id            = aws_vpc.main[0].id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id
  tags              = { Name = "${local.name}-s3" }
}

# Flow logs of the whole VPC (created or existing): every accepted and rejected flow.
resource "aws_flow_log" "vpc" {
  vpc_id               = local.vpc_id
  traffic_type         = "ALL"
  log_destination_type = "cloud-watch-logs"
  log_destination      = aws_cloudwatch_log_group.flow_logs.arn
  iam_role_arn         = aws_iam_role.flow_logs.arn
  tags                 = { Name = "${local.name}-flow-logs" }
}

# ------------------------------------------------------------------ security groups
# Least privilege: internet -> ALB (443, and 80 only to redirect) -> API / dashboard tasks;
# dashboard -> API; API, Lambda -> MLflow (5000) and RDS (5432); MLflow -> RDS.
# Egress to the internet is HTTPS only (AWS APIs through the NAT gateways: ECR, Secrets Manager,
# CloudWatch Logs, Kinesis, X-Ray).

resource "aws_security_group" "alb" {
  name        = "${local.name}-alb"
  description = "Public ALB of the API and dashboard"
  vpc_id      = local.vpc_id
  tags        = { Name = "${local.name}-alb" }
}

resource "aws_security_group_rule" "alb_https_in" {
  type              = "ingress"
  description       = "HTTPS from the allowed clients"
  security_group_id = aws_security_group.alb.id
  protocol          = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_blocks       = var.allowed_ingress_cidrs
}

resource "aws_security_group_rule" "alb_http_in" {
  #checkov:skip=CKV_AWS_260:Port 80 only answers a 301 redirect to HTTPS (aws_lb_listener.http); no target is reachable over HTTP.
  type              = "ingress"
  description       = "HTTP from the allowed clients, only to redirect to HTTPS"
  security_group_id = aws_security_group.alb.id
  protocol          = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_blocks       = var.allowed_ingress_cidrs
}

resource "aws_security_group_rule" "alb_to_api" {
  type                     = "egress"
  description              = "ALB to the API tasks"
  security_group_id        = aws_security_group.alb.id
  protocol                 = "tcp"
  from_port                = local.api_port
  to_port                  = local.api_port
  source_security_group_id = aws_security_group.api.id
}

resource "aws_security_group_rule" "alb_to_dashboard" {
  type                     = "egress"
  description              = "ALB to the dashboard tasks"
  security_group_id        = aws_security_group.alb.id
  protocol                 = "tcp"
  from_port                = local.dashboard_port
  to_port                  = local.dashboard_port
  source_security_group_id = aws_security_group.dashboard.id
}

resource "aws_security_group" "api" {
  name        = "${local.name}-api"
  description = "API tasks"
  vpc_id      = local.vpc_id
  tags        = { Name = "${local.name}-api" }
}

resource "aws_security_group_rule" "api_from_alb" {
  type                     = "ingress"
  description              = "From the ALB"
  security_group_id        = aws_security_group.api.id
  protocol                 = "tcp"
  from_port                = local.api_port
  to_port                  = local.api_port
  source_security_group_id = aws_security_group.alb.id
}

resource "aws_security_group_rule" "api_from_dashboard" {
  type                     = "ingress"
  description              = "From the dashboard tasks (the dashboard works through the API)"
  security_group_id        = aws_security_group.api.id
  protocol                 = "tcp"
  from_port                = local.api_port
  to_port                  = local.api_port
  source_security_group_id = aws_security_group.dashboard.id
}

resource "aws_security_group" "dashboard" {
  name        = "${local.name}-dashboard"
  description = "Dashboard tasks"
  vpc_id      = local.vpc_id
  tags        = { Name = "${local.name}-dashboard" }
}

resource "aws_security_group_rule" "dashboard_from_alb" {
  type                     = "ingress"
  description              = "From the ALB"
  security_group_id        = aws_security_group.dashboard.id
  protocol                 = "tcp"
  from_port                = local.dashboard_port
  to_port                  = local.dashboard_port
  source_security_group_id = aws_security_group.alb.id
}

resource "aws_security_group_rule" "dashboard_to_api" {
  type                     = "egress"
  description              = "To the API"
  security_group_id        = aws_security_group.dashboard.id
  protocol                 = "tcp"
  from_port                = local.api_port
  to_port                  = local.api_port
  source_security_group_id = aws_security_group.api.id
}

resource "aws_security_group" "mlflow" {
  name        = "${local.name}-mlflow"
  description = "MLflow tracking server tasks (internal only)"
  vpc_id      = local.vpc_id
  tags        = { Name = "${local.name}-mlflow" }
}

resource "aws_security_group_rule" "mlflow_from_clients" {
  for_each = {
    api    = aws_security_group.api.id
    lambda = aws_security_group.lambda.id
  }
  type                     = "ingress"
  description              = "MLflow registry from the ${each.key}"
  security_group_id        = aws_security_group.mlflow.id
  protocol                 = "tcp"
  from_port                = local.mlflow_port
  to_port                  = local.mlflow_port
  source_security_group_id = each.value
}

resource "aws_security_group" "lambda" {
  name        = "${local.name}-lambda"
  description = "Stream Lambda (no inbound)"
  vpc_id      = local.vpc_id
  tags        = { Name = "${local.name}-lambda" }
}

resource "aws_security_group" "rds" {
  name        = "${local.name}-rds"
  description = "PostgreSQL store and MLflow backend"
  vpc_id      = local.vpc_id
  tags        = { Name = "${local.name}-rds" }
}

resource "aws_security_group_rule" "rds_from_clients" {
  for_each = {
    api    = aws_security_group.api.id
    lambda = aws_security_group.lambda.id
    mlflow = aws_security_group.mlflow.id
  }
  type                     = "ingress"
  description              = "PostgreSQL from the ${each.key}"
  security_group_id        = aws_security_group.rds.id
  protocol                 = "tcp"
  from_port                = 5432
  to_port                  = 5432
  source_security_group_id = each.value
}

resource "aws_security_group_rule" "to_rds" {
  for_each = {
    api    = aws_security_group.api.id
    lambda = aws_security_group.lambda.id
    mlflow = aws_security_group.mlflow.id
  }
  type                     = "egress"
  description              = "PostgreSQL from the ${each.key}"
  security_group_id        = each.value
  protocol                 = "tcp"
  from_port                = 5432
  to_port                  = 5432
  source_security_group_id = aws_security_group.rds.id
}

resource "aws_security_group_rule" "to_mlflow" {
  for_each = {
    api    = aws_security_group.api.id
    lambda = aws_security_group.lambda.id
  }
  type                     = "egress"
  description              = "MLflow registry from the ${each.key}"
  security_group_id        = each.value
  protocol                 = "tcp"
  from_port                = local.mlflow_port
  to_port                  = local.mlflow_port
  source_security_group_id = aws_security_group.mlflow.id
}

resource "aws_security_group_rule" "https_out" {
  for_each = {
    api       = aws_security_group.api.id
    dashboard = aws_security_group.dashboard.id
    mlflow    = aws_security_group.mlflow.id
    lambda    = aws_security_group.lambda.id
  }
  type              = "egress"
  description       = "HTTPS to AWS APIs (ECR, Secrets Manager, Logs, Kinesis, S3, X-Ray) from the ${each.key}"
  security_group_id = each.value
  protocol          = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_blocks       = ["0.0.0.0/0"]
}
