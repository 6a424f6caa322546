"""From measurements to a plan row, and the SCV read from histogram buckets."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from troupe.capacity import (
    ServiceMeasurements,
    WaitSLO,
    Workload,
    histogram_scv,
    plan_service,
    predict_wait,
)

INF = math.inf
SLO = WaitSLO.parse("300ms@p95")
BUSY = ServiceMeasurements(
    service="echo", namespace="troupe", container_concurrency=1, target=1, grace_period=30.0,
    arrival_rate=8.0, peak_arrival_rate=8.0, service_time=0.2, service_scv=1.0, instances=2.0,
    measured_mean_wait=0.4, measured_p95_wait=1.2, cold_start_time=0.5)


def test_scv_of_one_bucket_is_zero() -> None:
    assert histogram_scv([(0.1, 0), (0.25, 40), (INF, 40)]) == 0


def test_scv_of_two_buckets_by_hand() -> None:
    # 50 observations at 0.5 (bucket (0, 1]) and 50 at 2 (bucket (1, 3]): mean 1.25,
    # E[S^2] = (0.25 + 4) / 2 = 2.125, variance 0.5625, SCV 0.5625 / 1.5625 = 0.36.
    assert histogram_scv([(1, 50), (3, 100), (INF, 100)]) == pytest.approx(0.36)


def test_scv_counts_the_overflow_bucket_at_its_lower_bound() -> None:
    # 10 at 0.5, 10 beyond 1 taken at 1: mean 0.75, E[S^2] = 0.625, SCV = 0.0625/0.5625.
    assert histogram_scv([(1, 10), (INF, 20)]) == pytest.approx(0.0625 / 0.5625)


def test_scv_of_nothing_is_unknown() -> None:
    assert histogram_scv([]) is None
    assert histogram_scv([(1, 0), (INF, 0)]) is None


def test_a_busy_service_worked_by_hand() -> None:
    plan = plan_service(BUSY, SLO)
    # c = 2 instances x 1 slot; rho = 8 * 0.2 / 2.
    assert plan.servers == 2
    assert plan.utilization == pytest.approx(0.8)
    current = predict_wait(Workload(8, 0.2), 2)
    assert plan.predicted_mean_wait == pytest.approx(current.mean_wait)
    assert plan.predicted_p95_wait == pytest.approx(current.quantile(0.95))
    recommendation = plan.recommendation
    assert recommendation is not None
    # 3 servers meet 300ms@p95 (see test_servers_for_slo_by_hand); one slot each.
    assert (recommendation.servers, recommendation.max_scale) == (3, 3)
    assert recommendation.container_concurrency == 1
    assert recommendation.min_scale == 0  # 8 requests/s never let it scale to zero
    # L = 8 * (Wq + 0.2) = 1.91 requests in the system: target 1 runs only 2 instances,
    # fewer than the 3 the SLO needs, and a note says what to do.
    assert recommendation.target == 1
    assert any("min-scale 3" in note for note in plan.notes)


def test_the_peak_rate_sets_max_scale() -> None:
    plan = plan_service(replace(BUSY, peak_arrival_rate=16.0), SLO)
    assert plan.recommendation is not None
    assert plan.recommendation.max_scale > plan.recommendation.servers


def test_unlimited_concurrency_uses_the_target_as_slots() -> None:
    plan = plan_service(replace(BUSY, container_concurrency=0, target=10, instances=1.0), SLO)
    assert plan.servers == 10
    assert plan.recommendation is not None
    # 3 slots fit in one instance of 10; L = 1.91 in the system: target ceil(1.91) = 2.
    assert (plan.recommendation.max_scale, plan.recommendation.target) == (1, 2)
    assert not any("autoscaler" in note for note in plan.notes)


def test_a_rare_request_with_slow_cold_starts_wants_min_scale_one() -> None:
    quiet = replace(BUSY, arrival_rate=0.01, peak_arrival_rate=0.01, cold_start_time=2.0)
    plan = plan_service(quiet, SLO)
    assert plan.recommendation is not None and plan.recommendation.min_scale == 1
    # A cold start within the SLO's wait costs nothing worth an idle instance.
    fast = plan_service(replace(quiet, cold_start_time=0.1), SLO)
    assert fast.recommendation is not None and fast.recommendation.min_scale == 0


def test_an_overloaded_service_gets_no_predicted_wait_but_a_recommendation() -> None:
    plan = plan_service(replace(BUSY, instances=1.0), SLO)  # rho = 1.6
    assert plan.utilization == pytest.approx(1.6)
    assert plan.predicted_mean_wait is None and plan.predicted_p95_wait is None
    assert any("rho = 1.6 >= 1" in note for note in plan.notes)
    assert plan.recommendation is not None and plan.recommendation.servers == 3


def test_no_traffic_means_no_numbers() -> None:
    plan = plan_service(replace(BUSY, arrival_rate=None, service_time=None), SLO)
    assert plan.servers is None and plan.recommendation is None
    assert any("no requests" in note for note in plan.notes)


def test_no_instance_in_the_window_leaves_utilisation_undefined() -> None:
    plan = plan_service(replace(BUSY, instances=0.0), SLO)
    assert plan.utilization is None and plan.servers is None
    assert plan.recommendation is not None
