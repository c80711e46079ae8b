"""Every Prometheus metric Retain exports, in one place (names start with ``retain_``).

The API, the stream worker, the alert rules and the Grafana dashboards all follow this list.
Metrics live in their own registry so tests and multiple apps in one process do not collide.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class ServiceMetrics:
    """The API's metrics, bound to one registry."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "retain_http_requests_total",
            "HTTP requests by route and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "retain_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "retain_predictions_total",
            "Predictions served by model and risk band.",
            ["model", "band"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "retain_model_version_info",
            "Served model versions (value 1 per loaded version).",
            ["model", "version"],
            registry=self.registry,
        )
