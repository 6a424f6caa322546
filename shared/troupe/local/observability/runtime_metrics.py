"""The runtime's own metrics, in a registry of its own (served on the API port at /metrics).

The service fronts (activator and router) export what a queueing model of each revision
needs, under the names and labels that Knative's activator, queue-proxy and autoscaler
export since Knative 1.19 (OpenTelemetry, as their Prometheus exporter spells them), so
that the same queries work against a cluster's Prometheus. Knative has no histogram of
the time a request waits for a free instance; that one is troupe's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

# troupe_runtime_events_<outcome>_total, and what it counts.
_EVENT_COUNTERS = {
    "ingested": "Events ingested by the broker",
    "delivered": "Events delivered by the broker",
    "retried": "Events retried by the broker",
    "dead_lettered": "Events dead-lettered by the broker",
    # An event not delivered is dead-lettered, parked or dropped: counted once, under one.
    "parked": "Events whose dead-letter sink failed too, kept on the parking topic",
    "dropped": "Events given up on with no dead-letter sink to send them to",
    # Of the dead-lettered and parked, the records that were not CloudEvents.
    "unreadable": "Records that were not CloudEvents, sent to the dead-letter sink",
    "filter_errors": "Events a Trigger's cesql filter could not evaluate (each is no match)",
}


class _DataPlaneCollector(Collector):
    """Event counters read from the data plane on each scrape, so they are never stale."""

    def __init__(self) -> None:
        self.source: Callable[[], dict[str, float]] | None = None

    def collect(self) -> Iterable[CounterMetricFamily]:
        counts = self.source() if self.source else {}
        for outcome, description in _EVENT_COUNTERS.items():
            if outcome not in counts:
                continue  # the data plane does not count it: absent beats a false zero
            family = CounterMetricFamily(f"troupe_runtime_events_{outcome}", description)
            family.add_metric([], float(counts.get(outcome, 0)))
            yield family


# Knative's queue-proxy buckets (pkg/queue/request_metric.go), also OpenTelemetry's
# defaults for http.server.request.duration.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
# Waits start far below a service time and end at the activation timeout.
_WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Knative's attribute keys (pkg/metrics/key.go) with the exporter's dots as underscores.
_REVISION_LABELS = ("k8s_namespace_name", "kn_service_name", "kn_configuration_name",
                    "kn_revision_name")


@dataclass(frozen=True)
class RevisionMeter:
    """One revision's serving metrics with its labels bound, for its pool and its fronts."""

    queued: Gauge  # requests held by the activator, waiting for a free instance
    active: Gauge  # requests being proxied to an instance
    queue_wait: Histogram  # seconds from arrival until an instance took the request
    pods: Gauge  # ready instances
    _requests: Histogram
    _invocations: Histogram
    _labels: tuple[str, str, str, str]

    def request_finished(self, method: str, status: int, seconds: float) -> None:
        """A request answered by the front, whatever its outcome: arrivals and response time."""
        self._requests.labels(*self._labels, method, str(status)).observe(seconds)

    def service_finished(self, status: int, seconds: float) -> None:
        """An instance answered: the service time, from sending the request to its answer."""
        self._invocations.labels(*self._labels, str(status)).observe(seconds)


class RuntimeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.cold_starts = Counter("troupe_runtime_cold_starts", "Function processes started",
                                   ["service", "revision"], registry=self.registry)
        self.cold_start_seconds = Histogram(
            "troupe_runtime_cold_start_seconds", "From process launch until it accepts requests",
            ["service"], registry=self.registry,
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10))
        self.active_instances = Gauge("troupe_runtime_active_instances",
                                      "Running function processes", ["service", "revision"],
                                      registry=self.registry)
        self.activator_rejected = Counter(
            "troupe_runtime_activator_rejected", "Requests answered 503 by the activator",
            ["service", "reason"], registry=self.registry)
        # Knative's activator: otelhttp's http.server.request.duration with kn.* attributes;
        # its count is the arrivals.
        self.request_duration = Histogram(
            "http_server_request_duration_seconds",
            "Time from a request's arrival at the front until its answer",
            [*_REVISION_LABELS, "http_request_method", "http_response_status_code"],
            registry=self.registry, buckets=_LATENCY_BUCKETS)
        # Knative's queue-proxy: kn.serving.invocation.duration (1.21; before, named
        # kn.queueproxy.app.duration), the user container's time.
        self.invocation_duration = Histogram(
            "kn_serving_invocation_duration_seconds",
            "The duration of task execution: from handing a request to an instance until "
            "its answer", [*_REVISION_LABELS, "http_response_status_code"],
            registry=self.registry, buckets=_LATENCY_BUCKETS)
        self.queue_wait = Histogram(
            "troupe_revision_request_queue_wait_seconds",
            "Time a request waited in the activator for a free instance (Knative has no "
            "such histogram)", list(_REVISION_LABELS), registry=self.registry,
            buckets=_WAIT_BUCKETS)
        # Knative's activator: kn.revision.request.queued / .active (Knative 1.22), labelled
        # by namespace and revision only, as there.
        self.requests_queued = Gauge(
            "kn_revision_request_queued",
            "Number of requests currently queued in the activator waiting for capacity",
            ["k8s_namespace_name", "kn_revision_name"], registry=self.registry)
        self.requests_active = Gauge(
            "kn_revision_request_active",
            "Number of requests currently being proxied by the activator",
            ["k8s_namespace_name", "kn_revision_name"], registry=self.registry)
        # Knative's autoscaler: kn.revision.pods.count.
        self.pods = Gauge("kn_revision_pods_count",
                          "Number of pods that are allocated currently",
                          list(_REVISION_LABELS), registry=self.registry)
        self._events = _DataPlaneCollector()
        self.registry.register(self._events)

    def revision_meter(self, namespace: str, service: str, revision: str) -> RevisionMeter:
        # Knative names a Service's Configuration after the Service.
        labels = (namespace, service, service, revision)
        short = (namespace, revision)
        return RevisionMeter(
            queued=self.requests_queued.labels(*short), active=self.requests_active.labels(*short),
            queue_wait=self.queue_wait.labels(*labels), pods=self.pods.labels(*labels),
            _requests=self.request_duration, _invocations=self.invocation_duration,
            _labels=labels)

    def read_events_from(self, source: Callable[[], dict[str, float]]) -> None:
        self._events.source = source

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
