"""The inverse questions, the SLO spelling, and the scale-from-zero model."""

from __future__ import annotations

import heapq
import math
import random

import pytest
from troupe.capacity import (
    OutOfRangeError,
    UnreachableSLOError,
    WaitSLO,
    Workload,
    cold_start_probability,
    empty_probability,
    max_arrival_rate,
    predict_wait,
    servers_for_slo,
)


def test_servers_for_slo_by_hand() -> None:
    # 8 requests/s of 200 ms: a = 1.6 Erlangs. With 2 servers C = 2*0.8^2/(1+0.8) = 0.7111
    # and the p95 wait is ln(C/0.05)/(2*5 - 8) = 1.33 s; with 3 servers C = 0.2738 and
    # ln(C/0.05)/(3*5 - 8) = 0.24 s, within 300 ms.
    slo = WaitSLO.parse("300ms@p95")
    workload = Workload(arrival_rate=8, service_time=0.2)
    assert predict_wait(workload, 2).quantile(0.95) == pytest.approx(
        math.log((2 * 0.8**2 / 1.8) / 0.05) / 2)
    assert servers_for_slo(workload, slo) == 3


def test_servers_for_slo_starts_from_the_fewest_stable_servers() -> None:
    # A loose SLO is met as soon as the queue is stable: 9.5 Erlangs need 10 servers.
    assert servers_for_slo(Workload(95, 0.1), WaitSLO(wait=3600, quantile=0.5)) == 10


def test_servers_for_slo_says_when_the_bound_is_too_low() -> None:
    with pytest.raises(UnreachableSLOError, match="more than 5 servers"):
        servers_for_slo(Workload(100, 0.1), WaitSLO(0.1, 0.95), max_servers=5)
    with pytest.raises(UnreachableSLOError, match="even 11 servers"):
        servers_for_slo(Workload(100, 0.1), WaitSLO(0.0, 0.999), max_servers=11)


def test_max_arrival_rate_by_hand() -> None:
    # One server, SLO "no wait for 60% of requests": P(wait) = rho <= 0.4, so the largest
    # rate is 0.4 / s.
    rate = max_arrival_rate(0.25, 1, WaitSLO(wait=0.0, quantile=0.6))
    assert rate == pytest.approx(0.4 / 0.25, rel=1e-8)


def test_max_arrival_rate_and_servers_for_slo_agree() -> None:
    slo = WaitSLO.parse("300ms@p95")
    rate = max_arrival_rate(0.2, 3, slo)
    assert servers_for_slo(Workload(rate, 0.2), slo) == 3
    assert servers_for_slo(Workload(rate * 1.001, 0.2), slo) == 4


@pytest.mark.parametrize(("text", "wait", "quantile"),
                         [("200ms@p95", 0.2, 0.95), ("1.5s@p99.9", 1.5, 0.999),
                          ("0s@p50", 0.0, 0.5), ("1m@p90", 60.0, 0.9),
                          (" 250ms @ p75 ", 0.25, 0.75)])
def test_parses_wait_slos(text: str, wait: float, quantile: float) -> None:
    slo = WaitSLO.parse(text)
    assert slo.wait == pytest.approx(wait)
    assert slo.quantile == pytest.approx(quantile)
    assert WaitSLO.parse(str(slo)) == slo


@pytest.mark.parametrize(("text", "problem"),
                         [("5", "is not a wait SLO"), ("200ms", "is not a wait SLO"),
                          ("200ms@p150", "not a percentile"), ("200ms@p100", "not a percentile"),
                          ("200ms@p0", "not a percentile"), ("200ms@95", "not a percentile"),
                          ("fast@p95", "not a duration"), ("-1s@p95", "negative"),
                          ("200@p95", "not a duration")])
def test_refuses_malformed_slos(text: str, problem: str) -> None:
    with pytest.raises(OutOfRangeError, match=problem) as caught:
        WaitSLO.parse(text)
    assert "200ms@p95" in str(caught.value)  # the message shows what to write instead


def _simulated_cold_share(arrival_rate: float, service_time: float, servers: int,
                          grace: float, requests: int, seed: int) -> float:
    """A FIFO c-server queue driven request by request: a request is cold when every
    earlier request had left and the revision then stayed idle longer than `grace`."""
    rng = random.Random(seed)
    free_at = [0.0] * servers  # when each server finishes its current request
    last_departure = 0.0
    now = 0.0
    cold = 0
    for _ in range(requests):
        now += rng.expovariate(arrival_rate)
        if now - last_departure > grace:
            cold += 1
        start = max(now, heapq.heappop(free_at))
        departure = start + rng.expovariate(1 / service_time)
        heapq.heappush(free_at, departure)
        last_departure = max(last_departure, departure)
    return cold / requests


@pytest.mark.parametrize(("arrival_rate", "service_time", "servers", "grace"),
                         [(1.0, 0.5, 1, 1.0), (0.2, 1.0, 1, 5.0), (3.0, 0.5, 2, 0.3)])
def test_cold_start_model_agrees_with_a_simulation(arrival_rate: float, service_time: float,
                                                   servers: int, grace: float) -> None:
    predicted = cold_start_probability(Workload(arrival_rate, service_time), servers=servers,
                                       min_scale=0, grace_period=grace)
    simulated = _simulated_cold_share(arrival_rate, service_time, servers, grace,
                                      requests=200_000, seed=7)
    assert predicted == pytest.approx(simulated, abs=0.01)
    assert predicted > 0.02  # the cases are chosen so that cold starts are common


def test_cold_start_of_one_server_by_hand() -> None:
    # M/M/1: P0 = 1 - rho, so P(cold) = (1 - rho) * exp(-lambda * G).
    p = cold_start_probability(Workload(0.5, 0.4), servers=1, min_scale=0, grace_period=2)
    assert p == pytest.approx((1 - 0.2) * math.exp(-1.0))
    assert empty_probability(1, 0.2) == pytest.approx(0.8)


def test_cold_start_refuses_bad_inputs() -> None:
    with pytest.raises(OutOfRangeError, match="min-scale"):
        cold_start_probability(Workload(1, 0.1), servers=1, min_scale=-1, grace_period=1)
    with pytest.raises(OutOfRangeError, match="grace period"):
        cold_start_probability(Workload(1, 0.1), servers=1, min_scale=0, grace_period=-1)
