"""Every Prometheus metric Retain exports, in one place (names start with ``retain_``).

The API, the stream worker, the alert rules and the Grafana dashboards all follow this list.
Metrics live in their own registry so tests and multiple apps in one process do not collide.

An API served by several worker processes (``retain serve --workers N``) keeps its metrics in
prometheus_client's multiprocess mode: ``retain serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
fresh folder before the workers start, each worker writes its values there, and whichever worker
answers ``GET /metrics`` reports the sum over all of them (``ServiceMetrics.exposition``), so a
scrape never sees one worker's share as the whole. Gauges say how they combine across workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The folder the workers of a multi-process server share their metrics through, if any."""
    return os.environ.get(MULTIPROCESS_ENV) or None


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
            multiprocess_mode="max",  # served by any worker
        )
        self.drift_share = Gauge(
            "retain_drift_share",
            "Share of judged features drifted in the latest drift check (NaN: not enough data).",
            ["model"],
            registry=self.registry,
            multiprocess_mode="mostrecent",  # the latest check, whichever worker ran it
        )
        self.feature_drift = Gauge(
            "retain_feature_drift",
            "1 when the feature drifted in the latest drift check, 0 when not.",
            ["model", "feature"],
            registry=self.registry,
            multiprocess_mode="mostrecent",  # the latest check, whichever worker ran it
        )
        self.prediction_drift = Gauge(
            "retain_prediction_drift",
            "1 when the model's outputs drifted in the latest drift check.",
            ["model"],
            registry=self.registry,
            multiprocess_mode="mostrecent",  # the latest check, whichever worker ran it
        )
        self.live_metric = Gauge(
            "retain_live_metric",
            "Metrics on recorded outcomes, latest judged period, by model version.",
            ["dataset", "task", "version", "metric"],
            registry=self.registry,
            multiprocess_mode="mostrecent",  # the latest check, whichever worker ran it
        )
        self.alerts = Gauge(
            "retain_monitoring_alerts",
            "Alerts raised by the latest performance check (floor, fairness gap).",
            ["dataset", "task"],
            registry=self.registry,
            multiprocess_mode="mostrecent",  # the latest check, whichever worker ran it
        )
        self.gate_decisions = Counter(
            "retain_gate_decisions_total",
            "Promotion gate decisions made through the service (retrain jobs, promotions, overrides).",
            ["model", "kind", "promoted"],
            registry=self.registry,
        )
        self.jobs = Counter(
            "retain_jobs_total",
            "Background jobs that ended, by kind and status.",
            ["kind", "status"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The text a Prometheus scrape gets: this registry, or, under a multi-process server,
        every worker's values combined."""
        path = multiprocess_dir()
        if path is None:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        MultiProcessCollector(combined, path=path)
        return generate_latest(combined)

    def count_predictions(self, model: str, version: int | None, bands: Iterable[str]) -> None:
        """Count served predictions by band and mark the model version as served.

        The labelled children are looked up once per model and band, not on every request
        (``labels`` takes a lock and builds a key each time).
        """
        children = self.__dict__.setdefault("_prediction_children", {})
        counts: dict[str, int] = {}
        for band in bands:
            counts[band] = counts.get(band, 0) + 1
        for band, count in counts.items():
            child = children.get((model, band))
            if child is None:
                child = children[(model, band)] = self.predictions.labels(model, band)
            child.inc(count)
        served = self.__dict__.setdefault("_served_versions", set())
        if (model, version) not in served:
            self.model_info.labels(model, str(version)).set(1)
            served.add((model, version))


@dataclass
class StreamMetrics:
    """The stream worker's metrics, bound to one registry (served with ``--metrics-port``)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.events_in = Counter(
            "retain_stream_events_in_total", "Events read from the source.", registry=self.registry
        )
        self.events_out = Counter(
            "retain_stream_events_out_total", "Predictions sent to the output stream.", registry=self.registry
        )
        self.duplicates = Counter(
            "retain_stream_duplicates_total",
            "Redelivered events whose prediction had been stored before (nothing new stored).",
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "retain_stream_dead_letters_total",
            "Events sent to the dead-letter stream, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.batches = Counter(
            "retain_stream_batches_total", "Micro-batches processed and acknowledged.", registry=self.registry
        )
        self.retries = Counter(
            "retain_stream_retries_total",
            "Failed attempts retried (database or stream unavailable), by step.",
            ["step"],
            registry=self.registry,
        )
        self.batch_latency = Histogram(
            "retain_stream_batch_duration_seconds",
            "Time to score, store, send and acknowledge one micro-batch.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "retain_stream_batch_size",
            "Events per micro-batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=self.registry,
        )
        self.end_to_end_latency = Histogram(
            "retain_stream_end_to_end_latency_seconds",
            "From an event's sent_at to its stored prediction.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.lag = Gauge(
            "retain_stream_lag",
            "Entries in the source not yet delivered to this consumer group (where the source can tell).",
            registry=self.registry,
        )
        self.pending = Gauge(
            "retain_stream_pending",
            "Entries delivered but not yet acknowledged (where the source can tell).",
            registry=self.registry,
        )
        self.queued_batches = Gauge(
            "retain_stream_queued_batches",
            "Micro-batches read and waiting to be processed.",
            registry=self.registry,
        )
