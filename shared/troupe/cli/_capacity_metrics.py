"""What `troupe capacity plan` asks Prometheus and the Kubernetes API about each Service.

The queries use the metric names and labels that Knative exports (see the README's
observability part), so they read the local runtime's Prometheus and a cluster's alike;
the Service specs come through the kubernetes client, from the local runtime's API or a
cluster. The arithmetic on the answers is troupe.capacity's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import durationpy
import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from troupe.capacity import ServiceMeasurements, TriggerMeasurements, histogram_scv

_SCALE = "autoscaling.knative.dev/"
# Knative's container-concurrency-target-default, and the local runtime's default grace
# period for a revision without a retention annotation.
DEFAULT_TARGET = 100
DEFAULT_GRACE_SECONDS = 30.0
_ARRIVALS = "http_server_request_duration_seconds"
_SERVICE_TIME = "kn_serving_invocation_duration_seconds"
_WAIT = "troupe_revision_request_queue_wait_seconds"
_PODS = "kn_revision_pods_count"
_COLD_START = "troupe_runtime_cold_start_seconds"
_BY = "kn_service_name"
_ORDER = "kafka.eventing.knative.dev/delivery.order"


class MetricsUnavailableError(Exception):
    """Prometheus did not answer, or refused a query; the message says which."""


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class CapacityMetrics:
    """One window's measurements, per Service, from one Prometheus."""

    def __init__(self, url: str, window_seconds: float, *, timeout: float = 10.0) -> None:
        self.url = url
        self._client = PrometheusConnect(url=url, retry=Retry(total=0), timeout=timeout)
        self._window = f"{max(int(window_seconds), 1)}s"
        # The peak rate is the highest rate over a fifth of the window, between 5 s (a few
        # scrapes) and a minute: short enough to see a burst inside the window.
        self._short = f"{min(max(int(window_seconds) // 5, 5), 60)}s"

    def measure(self, namespace: str,
                services: Sequence[Mapping[str, Any]]) -> list[ServiceMeasurements]:
        selector = f'k8s_namespace_name="{_quote(namespace)}"'
        window = self._window
        rate = self._by_service(f"sum by ({_BY}) (rate({_ARRIVALS}_count{{{selector}}}[{window}]))")
        peak = self._by_service(
            f"max_over_time(sum by ({_BY}) (rate({_ARRIVALS}_count{{{selector}}}"
            f"[{self._short}]))[{window}:5s])")
        service_time = self._mean(_SERVICE_TIME, selector)
        wait = self._mean(_WAIT, selector)
        wait_p95 = self._by_service(
            f"histogram_quantile(0.95, sum by ({_BY}, le) "
            f"(rate({_WAIT}_bucket{{{selector}}}[{window}])))")
        instances = self._by_service(
            f"sum by ({_BY}) (max_over_time({_PODS}{{{selector}}}[{window}]))")
        buckets = self._buckets(_SERVICE_TIME, selector)
        # The runtime's own cold-start histogram (absent on a cluster): all time, since a
        # window with traffic may hold no cold start at all.
        cold = {}
        for sample in self._vector(f"sum by (service) ({_COLD_START}_sum) / "
                                   f"sum by (service) ({_COLD_START}_count)"):
            value = float(sample["value"][1])
            if not math.isnan(value):
                cold[sample["metric"].get("service", "")] = value
        measured = []
        for spec in services:
            name = spec["metadata"]["name"]
            concurrency, target, grace = _scaling(spec)
            measured.append(ServiceMeasurements(
                service=name, namespace=namespace, container_concurrency=concurrency,
                target=target, grace_period=grace, arrival_rate=rate.get(name),
                peak_arrival_rate=peak.get(name), service_time=service_time.get(name),
                service_scv=histogram_scv(buckets[name]) if name in buckets else None,
                instances=instances.get(name), measured_mean_wait=wait.get(name),
                measured_p95_wait=wait_p95.get(name), cold_start_time=cold.get(name)))
        return measured

    def measure_triggers(self, namespace: str, triggers: Sequence[Mapping[str, Any]],
                         services: Sequence[ServiceMeasurements]) -> list[TriggerMeasurements]:
        """Each Trigger's deliveries, as its subscriber's front saw them.

        Knative's Kafka broker exports no per-Trigger delivery histogram under the names
        that the fronts use, so a Trigger to a Service is measured by that Service's
        answered requests (2xx): their rate and their response time, which is the delivery
        time a dispatcher waits for. Triggers that share a subscriber share its figures.
        """
        selector = f'k8s_namespace_name="{_quote(namespace)}",http_response_status_code=~"2.."'
        response_time = self._mean(_ARRIVALS, selector)
        buckets = self._buckets(_ARRIVALS, selector)
        by_name = {m.service: m for m in services}
        subscribers = {_trigger_name(t): _subscriber(t) for t in triggers}
        measured = []
        for trigger in triggers:
            name = _trigger_name(trigger)
            subscriber, is_service = subscribers[name]
            service = by_name.get(subscriber) if is_service else None
            annotations = (trigger.get("metadata") or {}).get("annotations") or {}
            measured.append(TriggerMeasurements(
                trigger=name, namespace=namespace,
                broker=str((trigger.get("spec") or {}).get("broker") or "default"),
                subscriber=subscriber, ordered=annotations.get(_ORDER) == "ordered",
                delivery_rate=service.arrival_rate if service else None,
                peak_delivery_rate=service.peak_arrival_rate if service else None,
                delivery_time=response_time.get(subscriber) if service else None,
                delivery_scv=histogram_scv(buckets[subscriber])
                if service and subscriber in buckets else None,
                sharing=tuple(sorted(other for other, (target, _) in subscribers.items()
                                     if target == subscriber and other != name))))
        return measured

    def _buckets(self, histogram: str, selector: str) -> dict[str, list[tuple[float, float]]]:
        buckets: dict[str, list[tuple[float, float]]] = {}
        for sample in self._vector(f"sum by ({_BY}, le) "
                                   f"(increase({histogram}_bucket{{{selector}}}[{self._window}]))"):
            labels, value = sample["metric"], float(sample["value"][1])
            if _BY in labels and not math.isnan(value):
                buckets.setdefault(labels[_BY], []).append((float(labels["le"]), value))
        return buckets

    def _mean(self, histogram: str, selector: str) -> dict[str, float]:
        window = self._window
        return self._by_service(
            f"sum by ({_BY}) (rate({histogram}_sum{{{selector}}}[{window}])) / "
            f"sum by ({_BY}) (rate({histogram}_count{{{selector}}}[{window}]))")

    def _by_service(self, promql: str) -> dict[str, float]:
        values = {}
        for sample in self._vector(promql):
            name, value = sample["metric"].get(_BY), float(sample["value"][1])
            if name is not None and not math.isnan(value):
                values[name] = value
        return values

    def _vector(self, promql: str) -> list[dict[str, Any]]:
        try:
            result: list[dict[str, Any]] = self._client.custom_query(promql)
        except requests.RequestException as error:
            raise MetricsUnavailableError(
                f"Prometheus at {self.url} did not answer ({error}): is the runtime up "
                "(`troupe status`), or is --prometheus right?") from None
        except PrometheusApiClientException as error:
            raise MetricsUnavailableError(
                f"Prometheus at {self.url} refused {promql!r}: {error}") from None
        return result


def _scaling(service: Mapping[str, Any]) -> tuple[int, int, float]:
    """containerConcurrency, target and grace period from a Service's template."""
    template = (service.get("spec") or {}).get("template") or {}
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    concurrency = int((template.get("spec") or {}).get("containerConcurrency") or 0)
    target = int(float(annotations.get(_SCALE + "target") or DEFAULT_TARGET))
    if concurrency:
        target = min(target, concurrency)  # Knative caps the target at the hard limit
    retention = annotations.get(_SCALE + "scale-to-zero-pod-retention-period")
    try:
        grace = durationpy.from_str(str(retention)).total_seconds()
    except ValueError:  # absent or unreadable: the runtime's default applies, as there
        grace = DEFAULT_GRACE_SECONDS
    return concurrency, max(target, 1), grace


def _trigger_name(trigger: Mapping[str, Any]) -> str:
    return str(trigger["metadata"]["name"])


def _subscriber(trigger: Mapping[str, Any]) -> tuple[str, bool]:
    """(the Service's name, True) for a Service reference, else (the URI, False)."""
    subscriber = (trigger.get("spec") or {}).get("subscriber") or {}
    ref = subscriber.get("ref") or {}
    # A ref with a uri is still that Service (the uri is a path on it).
    if ref.get("kind") == "Service" and str(ref.get("apiVersion", "")).startswith(
            "serving.knative.dev/"):
        return str(ref.get("name")), True
    return str(subscriber.get("uri") or ref.get("name") or "?"), False
