"""The runtime's own metrics, in a registry of its own (served on the API port at /metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

# troupe_runtime_events_<outcome>_total, and what it counts.
_EVENT_COUNTERS = {
    "ingested": "Events ingested by the broker",
    "delivered": "Events delivered by the broker",
    "retried": "Events retried by the broker",
    "dead_lettered": "Events dead-lettered by the broker",
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
        self._events = _DataPlaneCollector()
        self.registry.register(self._events)

    def read_events_from(self, source: Callable[[], dict[str, float]]) -> None:
        self._events.source = source

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
