"""The service fronts measure what the queueing model needs, under Knative's metric names.

Requests go through a real front to a real gunicorn instance on loopback; the runtime's
own /metrics (what Prometheus scrapes) is read back and parsed with prometheus_client.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from support.polling import wait_until
from troupe.capacity import Workload, predict_wait
from troupe.local.runtime import Runtime

from .conftest import StartRuntime, service, service_status

REVISION = {"k8s_namespace_name": "troupe", "kn_service_name": "echo",
            "kn_configuration_name": "echo", "kn_revision_name": "echo-00001"}
SHORT = {"k8s_namespace_name": "troupe", "kn_revision_name": "echo-00001"}


def _samples(runtime: Runtime) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = requests.get(f"{runtime.api_url}/metrics", timeout=5).text
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def _value(runtime: Runtime, name: str, **labels: str) -> float:
    """The sum of `name` over the samples whose labels include `labels`."""
    return sum(value for sample_labels, value in _samples(runtime).get(name, [])
               if labels.items() <= sample_labels.items())


def _one_slow_instance(start_runtime: StartRuntime) -> tuple[Runtime, str]:
    runtime = start_runtime([service("echo", concurrency=1, annotations={
        "autoscaling.knative.dev/max-scale": "1"})])
    namespace = service_status(runtime, "echo")["namespace"]
    assert namespace == REVISION["k8s_namespace_name"]
    return runtime, service_status(runtime, "echo")["url"]


def test_arrivals_service_time_and_queue_wait_are_histograms_per_revision(
        start_runtime: StartRuntime) -> None:
    runtime, url = _one_slow_instance(start_runtime)
    requests.get(url, timeout=30)  # start the instance, so the burst below only queues
    before_waits = _value(runtime, "troupe_revision_request_queue_wait_seconds_sum", **REVISION)
    burst, sleep = 4, 0.2
    start = threading.Barrier(burst)

    def call(_: int) -> int:
        start.wait()
        return requests.post(f"{url}/?sleep={sleep}", data=b"x", timeout=30).status_code

    with ThreadPoolExecutor(burst) as pool:
        statuses = list(pool.map(call, range(burst)))

    assert statuses == [200] * burst
    arrivals = _value(runtime, "http_server_request_duration_seconds_count", **REVISION,
                      http_request_method="POST", http_response_status_code="200")
    assert arrivals == burst
    assert _value(runtime, "http_server_request_duration_seconds_count", **REVISION) == burst + 1
    served = _value(runtime, "kn_serving_invocation_duration_seconds_count", **REVISION,
                    http_response_status_code="200")
    assert served == burst + 1
    service_time = _value(runtime, "kn_serving_invocation_duration_seconds_sum", **REVISION)
    assert service_time >= burst * sleep
    # One slot, four requests of 0.2 s arriving together: they wait about 0, 0.2, 0.4 and
    # 0.6 s for it, 1.2 s in all (less the few ms over which they arrived).
    waits = _value(runtime, "troupe_revision_request_queue_wait_seconds_sum", **REVISION)
    assert waits - before_waits >= 1.0
    assert _value(runtime, "troupe_revision_request_queue_wait_seconds_count",
                  **REVISION) == burst + 1
    # Response time at the front covers the wait and the service.
    response_time = _value(runtime, "http_server_request_duration_seconds_sum", **REVISION)
    assert response_time >= waits + burst * sleep
    assert _value(runtime, "kn_revision_pods_count", **REVISION) == 1


def test_in_flight_and_queued_requests_are_gauges(start_runtime: StartRuntime) -> None:
    runtime, url = _one_slow_instance(start_runtime)
    requests.get(url, timeout=30)
    burst = 3

    with ThreadPoolExecutor(burst) as pool:
        # Each request holds the only slot for a second: long enough to be seen waiting.
        futures = [pool.submit(requests.get, f"{url}/?sleep=1", timeout=30)
                   for _ in range(burst)]
        wait_until(lambda: (_value(runtime, "kn_revision_request_active", **SHORT) == 1
                            and _value(runtime, "kn_revision_request_queued", **SHORT) == 2),
                   15, "one request in flight and two queued")
        assert [f.result().status_code for f in futures] == [200] * burst

    assert _value(runtime, "kn_revision_request_active", **SHORT) == 0
    assert _value(runtime, "kn_revision_request_queued", **SHORT) == 0


def test_a_refused_request_still_counts_as_an_arrival(start_runtime: StartRuntime) -> None:
    runtime = start_runtime([service("echo", concurrency=1, annotations={
        "autoscaling.knative.dev/max-scale": "1"})], buffer_size=1)
    url = service_status(runtime, "echo")["url"]
    requests.get(url, timeout=30)

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(requests.get, f"{url}/?sleep=1", timeout=30)
        wait_until(lambda: _value(runtime, "kn_revision_request_active", **SHORT) == 1, 15,
                   "the first request in flight")
        second = pool.submit(requests.get, f"{url}/?sleep=1", timeout=30)
        wait_until(lambda: _value(runtime, "kn_revision_request_queued", **SHORT) == 1, 15,
                   "the second request held in the activator's buffer")
        # The buffer holds one waiting request; the third finds it full.
        third = requests.get(url, timeout=30)
        assert (first.result().status_code, second.result().status_code) == (200, 200)

    assert third.status_code == 503
    assert _value(runtime, "http_server_request_duration_seconds_count", **REVISION,
                  http_response_status_code="503") == 1
    assert _value(runtime, "http_server_request_duration_seconds_count", **REVISION) == 4
    # Only the requests an instance took have a wait and a service time.
    assert _value(runtime, "troupe_revision_request_queue_wait_seconds_count", **REVISION) == 3
    assert _value(runtime, "kn_serving_invocation_duration_seconds_count", **REVISION) == 3


def test_status_shows_each_services_rho_and_predicted_p95_wait(
        start_runtime: StartRuntime) -> None:
    runtime, url = _one_slow_instance(start_runtime)
    assert service_status(runtime, "echo")["utilization"] == 0.0  # no traffic, no wait
    requests.get(url, timeout=30)
    with ThreadPoolExecutor(4) as pool:  # 12 requests of 0.1 s, four at a time
        answers = list(pool.map(lambda _: requests.get(f"{url}/?sleep=0.1", timeout=30),
                                range(12)))
    statuses = [answer.status_code for answer in answers]
    assert statuses == [200] * 12

    echo = service_status(runtime, "echo")
    [revision] = echo["revisions"]
    assert revision["servers"] == 1  # one instance, one slot
    assert 12 * 0.1 / 13 <= revision["service_time_s"] < 0.2  # the warm-up slept 0
    workload = Workload(revision["arrival_rate"], revision["service_time_s"],
                        service_scv=revision["service_scv"])
    assert echo["utilization"] == pytest.approx(workload.offered_load)
    assert 0 < echo["utilization"] < 1
    assert echo["predicted_p95_wait_s"] == pytest.approx(
        predict_wait(workload, 1).quantile(0.95))
