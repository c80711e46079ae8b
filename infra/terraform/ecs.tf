# API, dashboard and MLflow tracking server on ECS Fargate.
#
# Why Fargate and not EC2: there are no container hosts to patch, size or scale (a small team
# runs this), each service scales on its own (the API on CPU and request count), tasks are
# isolated per task at the hypervisor level, and there is nothing to SSH into. The EC2 launch type
# would pay off for GPUs or for a large steady fleet where reserved hosts are cheaper; neither
# applies (scoring is CPU-bound and small).
#
# The public ALB (alb.tf) routes var.api_domain to the API and var.dashboard_domain to the
# dashboard. MLflow is internal only: tasks and the Lambda reach it at mlflow.<namespace>:5000
# through Cloud Map. The dashboard reaches the API at api.<namespace>:8000.

locals {
  api_port       = 8000
  dashboard_port = 8501
  mlflow_port    = 5000
  namespace      = "${local.name}.internal"
  mlflow_url     = "http://mlflow.${local.namespace}:${local.mlflow_port}"
  api_url        = "http://api.${local.namespace}:${local.api_port}"

  services = {
    api = {
      image   = "${aws_ecr_repository.main["retain-api"].repository_url}:${var.image_tags["api"]}"
      port    = local.api_port
      cpu     = var.api_cpu
      memory  = var.api_memory_mb
      count   = var.api_desired_count
      sg      = aws_security_group.api.id
      home    = "/var/lib/retain"
      command = ["retain", "serve"]
      environment = merge(local.common_environment, {
        RETAIN_API_HOST    = "0.0.0.0"
        RETAIN_API_PORT    = tostring(local.api_port)
        RETAIN_API_WORKERS = tostring(var.api_workers)
      })
      secrets = ["RETAIN_DATABASE_URL", "RETAIN_ID_KEY", "RETAIN_ROSTER_KEY"]
    }
    dashboard = {
      image   = "${aws_ecr_repository.main["retain-dashboard"].repository_url}:${var.image_tags["dashboard"]}"
      port    = local.dashboard_port
      cpu     = var.dashboard_cpu
      memory  = var.dashboard_memory_mb
      count   = var.dashboard_desired_count
      sg      = aws_security_group.dashboard.id
      home    = "/var/lib/retain"
      command = null # the image's streamlit command (binds 0.0.0.0:8501)
      environment = merge(local.common_environment, {
        RETAIN_DASHBOARD_PORT    = tostring(local.dashboard_port)
        RETAIN_DASHBOARD_API_URL = local.api_url
      })
      # The dashboard works through the API with the advisor's API key: no database access.
      secrets = ["RETAIN_ID_KEY", "RETAIN_ROSTER_KEY"]
    }
    mlflow = {
      image  = "${aws_ecr_repository.main["retain-mlflow"].repository_url}:${var.image_tags["mlflow"]}"
      port   = local.mlflow_port
      cpu    = var.mlflow_cpu
      memory = var.mlflow_memory_mb
      count  = var.mlflow_desired_count
      sg     = aws_security_group.mlflow.id
      home   = "/var/lib/mlflow"
      # The image runs `mlflow server` (--serve-artifacts: clients never touch S3), configured
      # through MLflow's environment variables (deploy/docker/mlflow.Dockerfile).
      command = null
      environment = {
        MLFLOW_ARTIFACTS_DESTINATION = "s3://${aws_s3_bucket.artifacts.id}/artifacts"
        MLFLOW_SERVE_ARTIFACTS       = "true"
        MLFLOW_SERVER_ALLOWED_HOSTS  = "mlflow.${local.namespace}:${local.mlflow_port},mlflow.${local.namespace}"
        AWS_DEFAULT_REGION           = local.region
        MLFLOW_DISABLE_TELEMETRY     = "true"
      }
      secrets = ["MLFLOW_BACKEND_STORE_URI"]
    }
  }
}

resource "aws_ecs_cluster" "main" {
  name = local.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "main" {
  cluster_name       = aws_ecs_cluster.main.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_service_discovery_private_dns_namespace" "main" {
  name        = local.namespace
  description = "Internal names of the ${local.name} services"
  vpc         = local.vpc_id
}

resource "aws_service_discovery_service" "main" {
  for_each = toset(["api", "mlflow"])
  name     = each.key

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.main.id
    routing_policy = "MULTIVALUE"
    dns_records {
      ttl  = 10
      type = "A"
    }
  }

  health_check_custom_config {
    failure_threshold = 1
  }
}

resource "aws_ecs_task_definition" "main" {
  for_each = local.services

  family                   = "${local.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = aws_iam_role.task_execution.arn
  task_role_arn            = aws_iam_role.task[each.key].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  # Writable scratch on the task's ephemeral storage (the root filesystem is read-only): /tmp and
  # the image's home (RETAIN_HOME, or MLflow's working folder). Fargate copies the image's
  # folder, with its owner, into the volume on start.
  volume {
    name = "tmp"
  }
  volume {
    name = "home"
  }

  # null attributes (the dashboard keeps its image's command) are left out.
  container_definitions = jsonencode([
    { for k, v in {
      name                   = each.key
      image                  = each.value.image
      command                = each.value.command
      essential              = true
      readonlyRootFilesystem = true
      privileged             = false
      portMappings           = [{ containerPort = each.value.port, protocol = "tcp" }]
      environment            = [for k in sort(keys(each.value.environment)) : { name = k, value = each.value.environment[k] }]
      secrets                = [for k in each.value.secrets : { name = k, valueFrom = aws_secretsmanager_secret.app[k].arn }]
      mountPoints = [
        { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
        { sourceVolume = "home", containerPath = each.value.home, readOnly = false },
      ]
      linuxParameters = { initProcessEnabled = true }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.service[each.key].name
          awslogs-region        = local.region
          awslogs-stream-prefix = each.key
        }
      }
    } : k => v if v != null },
  ])
}

resource "aws_ecs_service" "main" {
  for_each = local.services

  name                   = each.key
  cluster                = aws_ecs_cluster.main.id
  task_definition        = aws_ecs_task_definition.main[each.key].arn
  desired_count          = each.value.count
  launch_type            = "FARGATE"
  platform_version       = "LATEST"
  propagate_tags         = "SERVICE"
  enable_execute_command = false

  health_check_grace_period_seconds = contains(["api", "dashboard"], each.key) ? 60 : null

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = local.private_subnet_ids
    security_groups  = [each.value.sg]
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = contains(["api", "dashboard"], each.key) ? [each.key] : []
    content {
      target_group_arn = aws_lb_target_group.main[load_balancer.value].arn
      container_name   = each.key
      container_port   = each.value.port
    }
  }

  dynamic "service_registries" {
    for_each = contains(["api", "mlflow"], each.key) ? [each.key] : []
    content {
      registry_arn = aws_service_discovery_service.main[service_registries.value].arn
    }
  }

  lifecycle {
    # Application Auto Scaling owns every service's task count (below); desired_count only
    # sets the first one.
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.https, aws_lb_listener_rule.api, aws_lb_listener_rule.dashboard]
}

# ------------------------------------------------------------------ autoscaling
# The API scales between api_min_count and api_max_count on CPU and requests per task. The
# dashboard and MLflow have fixed counts (min = max = their *_desired_count), held by the same
# mechanism, so changing a count in the tfvars takes effect although desired_count is ignored.

resource "aws_appautoscaling_target" "service" {
  for_each           = local.services
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.main.name}/${aws_ecs_service.main[each.key].name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = each.key == "api" ? var.api_min_count : each.value.count
  max_capacity       = each.key == "api" ? var.api_max_count : each.value.count
}

locals {
  api_scaling = aws_appautoscaling_target.service["api"]
}

resource "aws_appautoscaling_policy" "api_cpu" {
  name               = "${local.name}-api-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = local.api_scaling.service_namespace
  resource_id        = local.api_scaling.resource_id
  scalable_dimension = local.api_scaling.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.api_cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "api_requests" {
  name               = "${local.name}-api-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = local.api_scaling.service_namespace
  resource_id        = local.api_scaling.resource_id
  scalable_dimension = local.api_scaling.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.api_requests_per_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.main.arn_suffix}/${aws_lb_target_group.main["api"].arn_suffix}"
    }
  }
}
