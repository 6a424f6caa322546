"""Prometheus metrics of a function app: events by type and outcome, handler duration.

`register_metrics` serves a registry at /metrics, for event apps and the predictor alike.
Each app has its own CollectorRegistry, so several apps in one process (tests, the local
runtime) do not collide. Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR
(prometheus-client's own switch) to an empty directory: every worker then writes its
samples there and /metrics aggregates them across workers.
"""

from __future__ import annotations

import os
from typing import Final

from flask import Flask, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH: Final = "/metrics"
# Handlers range from milliseconds (policy) to minutes (trainer).
DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
)


class FunctionMetrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self._events = Counter(
            "troupe_events",
            "CloudEvents delivered to this function, by type and outcome.",
            ["service", "type", "outcome"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "troupe_handler_duration_seconds",
            "Time spent in the handler, by event type.",
            ["service", "type"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )

    def count_event(self, event_type: str, outcome: str) -> None:
        self._events.labels(self.service, event_type, outcome).inc()

    def observe_handler(self, event_type: str, seconds: float) -> None:
        self._duration.labels(self.service, event_type).observe(seconds)



def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The text exposition format, aggregated over workers in multiprocess mode."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def register_metrics(app: Flask, registry: CollectorRegistry) -> None:
    """Serve `registry` at GET /metrics."""

    def serve_metrics() -> Response:
        payload, content_type = exposition(registry)
        return Response(payload, 200, {"Content-Type": content_type})

    app.add_url_rule(METRICS_PATH, "metrics", serve_metrics, methods=["GET"])
