"""The load window and the queue-aware scaler's decisions, on synthetic arrivals."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from troupe.capacity import WaitSLO, Workload, servers_for_slo
from troupe.local.serving.autoscaling import QUEUEING, ScalingPolicy, scaling_policy
from troupe.local.serving.load import LoadWindow
from troupe.local.serving.scalers import PoolView, QueueingScaler

SLO = "100ms@p95"


def _policy(delay: str = "0s") -> ScalingPolicy:
    return scaling_policy({"autoscaling.knative.dev/class": QUEUEING,
                           "troupe.dev/wait-slo": SLO,
                           "autoscaling.knative.dev/window": "10s",
                           "autoscaling.knative.dev/scale-down-delay": delay}, {"image": "x"})


def _view(max_scale: int = 10, slots: int = 1, waiting: int = 0) -> PoolView:
    return PoolView(ready_pids=(), instances=1, waiting=waiting, in_flight=0, slots=slots,
                    min_scale=0, max_scale=max_scale)


def _steady(load: LoadWindow, start: float, seconds: float, rate: float,
            service: float) -> float:
    """Evenly spaced arrivals, each served in `service` s; returns the end time."""
    step = 1 / rate
    now = start
    while now < start + seconds:
        load.arrived(now)
        load.served(now, service)
        now += step
    return now


def test_the_window_measures_rate_mean_and_scv() -> None:
    load = LoadWindow(10.0, now=0.0)
    for i in range(100):  # 10 per second for 10 s, service times 0.1 and 0.3 alternately
        load.arrived(i / 10)
        load.served(i / 10, 0.1 if i % 2 else 0.3)
    assert load.rate(10.0, 10.0) == pytest.approx(10.0)
    service = load.service_time(10.0, 10.0)
    assert service is not None
    # mean 0.2, sample variance 0.01 * 100/99
    assert service.mean == pytest.approx(0.2)
    assert service.scv == pytest.approx(0.25 * 100 / 99)


def test_the_window_forgets_a_burst_one_window_after_it() -> None:
    load = LoadWindow(10.0, now=0.0)
    _steady(load, 0.0, 5.0, 20.0, 0.05)
    assert load.rate(5.0, 10.0) > 0
    assert load.rate(15.1, 10.0) == 0.0
    # The service time belongs to the code: it is still known with no traffic.
    assert load.service_time(30.0, 10.0) is not None


def test_it_runs_the_fewest_instances_the_model_says_meet_the_slo() -> None:
    load = LoadWindow(10.0, now=0.0)
    scaler = QueueingScaler(_policy(), load)
    end = _steady(load, 0.0, 10.0, 12.0, 0.1)
    service = load.service_time(end, 10.0)
    assert service is not None
    expected = servers_for_slo(Workload(load.rate(end, 10.0), 0.1, service_scv=service.scv),
                               WaitSLO.parse(SLO))
    assert scaler.desired(end, _view()) == expected
    # With two slots per instance, half as many instances (rounded up).
    assert QueueingScaler(_policy(), load).desired(
        end, _view(slots=2)) == math.ceil(expected / 2)


def test_it_stays_within_max_scale_when_the_slo_cannot_be_met() -> None:
    load = LoadWindow(10.0, now=0.0)
    end = _steady(load, 0.0, 10.0, 50.0, 0.1)  # 5 Erlangs
    assert QueueingScaler(_policy(), load).desired(end, _view(max_scale=3)) == 3


def test_before_any_service_time_it_scales_by_the_requests_held() -> None:
    load = LoadWindow(10.0, now=0.0)
    load.arrived(0.0)
    scaler = QueueingScaler(_policy(), load)
    assert scaler.desired(0.5, _view(waiting=7)) == 7


def test_a_lower_need_waits_out_the_scale_down_delay() -> None:
    load = LoadWindow(10.0, now=0.0)
    scaler = QueueingScaler(_policy(delay="5s"), load)
    end = _steady(load, 0.0, 10.0, 12.0, 0.1)
    high = scaler.desired(end, _view())
    assert high >= 2
    # No more arrivals. Ticking as the pool does (every 0.1 s), the stable rate falls as
    # the window empties, and each lower count waits 5 s after the need for it appeared.
    ticks = [end + i / 10 for i in range(1, 200)]
    counts = [scaler.desired(t, _view()) for t in ticks]
    first_drop = next(t for t, count in zip(ticks, counts, strict=True) if count < high)
    assert first_drop >= end + 5.0
    assert all(a >= b for a, b in pairwise(counts))  # never back up
    gone = next(t for t, count in zip(ticks, counts, strict=True) if count == 0)
    assert end + 10.0 + 5.0 - 0.25 <= gone <= end + 10.0 + 5.0 + 0.25


def test_a_burst_is_answered_from_the_panic_window_and_held() -> None:
    load = LoadWindow(10.0, now=0.0)
    scaler = QueueingScaler(_policy(), load)
    end = _steady(load, 0.0, 10.0, 2.0, 0.1)
    calm = scaler.desired(end, _view())
    burst_end = _steady(load, end, 1.0, 40.0, 0.1)  # 4 Erlangs for a second
    answered = scaler.desired(burst_end, _view())
    assert answered >= 2 * max(calm, 1)
    # Held for a stable window after the burst, though the stable rate needs less.
    assert scaler.desired(burst_end + 5.0, _view()) == answered


def test_a_queue_the_ready_instances_cannot_clear_in_time_scales_up_at_once() -> None:
    load = LoadWindow(10.0, now=0.0)
    end = _steady(load, 0.0, 10.0, 12.0, 0.1)
    service = load.service_time(end, 10.0)
    assert service is not None and service.mean == pytest.approx(0.1)
    model = servers_for_slo(Workload(load.rate(end, 10.0), 0.1, service_scv=service.scv),
                            WaitSLO.parse(SLO))
    calm = PoolView(ready_pids=(1,), instances=1, waiting=0, in_flight=1, slots=1,
                    min_scale=0, max_scale=10, start_up=0.5)
    assert QueueingScaler(_policy(), load).desired(end, calm) == model
    # Three waiting, one slot ready, new instances take 0.5 s: over 0.5 + 0.1 s the ready
    # slot serves 6 while 3 + 12 x 0.6 need serving, so 1 + (0.1 x 10.2 - 0.6) / 0.1 = 5.2
    # slots: 6 instances, more than the model's steady answer.
    queued = PoolView(ready_pids=(1,), instances=1, waiting=3, in_flight=1, slots=1,
                      min_scale=0, max_scale=10, start_up=0.5)
    assert QueueingScaler(_policy(), load).desired(end, queued) == 6 > model
