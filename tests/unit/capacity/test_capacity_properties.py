"""Properties every queue must have, checked over many random queues with hypothesis.

More traffic never shortens a wait; more servers never lengthen one. The inverse searches
rely on exactly these, so they are checked here rather than assumed.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from troupe.capacity import (
    WaitSLO,
    Workload,
    cold_start_probability,
    max_arrival_rate,
    meets,
    predict_wait,
    servers_for_slo,
)

servers = st.integers(min_value=1, max_value=60)
utilizations = st.floats(min_value=0.01, max_value=0.98)
service_times = st.floats(min_value=1e-3, max_value=10.0)
scvs = st.floats(min_value=0.0, max_value=4.0)
quantiles = st.sampled_from([0.5, 0.9, 0.95, 0.99, 0.999])


def not_less(later: float, earlier: float) -> bool:
    """later >= earlier, forgiving the last bits of floating point."""
    return later >= earlier * (1 - 1e-9) - 1e-12


@settings(max_examples=300, deadline=None)
@given(servers, utilizations, utilizations, service_times, scvs, quantiles)
def test_waits_grow_with_the_arrival_rate(c: int, rho_a: float, rho_b: float, s: float,
                                          scv: float, q: float) -> None:
    low, high = sorted((rho_a, rho_b))
    before = predict_wait(Workload(low * c / s, s, service_scv=scv), c)
    after = predict_wait(Workload(high * c / s, s, service_scv=scv), c)
    assert not_less(after.p_wait, before.p_wait)
    assert not_less(after.mean_wait, before.mean_wait)
    assert not_less(after.quantile(q), before.quantile(q))


@settings(max_examples=300, deadline=None)
@given(servers, st.integers(min_value=1, max_value=20), utilizations, service_times, scvs,
       quantiles)
def test_waits_shrink_with_more_servers(c: int, more: int, rho: float, s: float, scv: float,
                                        q: float) -> None:
    workload = Workload(rho * c / s, s, service_scv=scv)
    fewer, plenty = predict_wait(workload, c), predict_wait(workload, c + more)
    assert not_less(fewer.p_wait, plenty.p_wait)
    assert not_less(fewer.mean_wait, plenty.mean_wait)
    assert not_less(fewer.quantile(q), plenty.quantile(q))
    assert plenty.utilization < fewer.utilization


@settings(max_examples=200, deadline=None)
@given(servers, utilizations, service_times, scvs)
def test_a_prediction_is_a_distribution(c: int, rho: float, s: float, scv: float) -> None:
    prediction = predict_wait(Workload(rho * c / s, s, service_scv=scv), c)
    assert 0 <= prediction.p_wait <= 1
    assert prediction.mean_wait >= 0
    waits = [prediction.quantile(q) for q in (0.5, 0.9, 0.99)]
    assert waits == sorted(waits)
    tails = [prediction.tail(t * s) for t in (0, 0.5, 1, 5)]
    assert all(not_less(a, b) for a, b in itertools.pairwise(tails))


@settings(max_examples=150, deadline=None)
@given(utilizations, service_times, scvs, st.floats(min_value=0, max_value=5), quantiles,
       st.integers(min_value=1, max_value=30))
def test_servers_for_slo_is_the_smallest_that_meets(rho: float, s: float, scv: float,
                                                    wait_in_services: float, q: float,
                                                    load: int) -> None:
    workload = Workload(rho * load / s, s, service_scv=scv)
    slo = WaitSLO(wait=wait_in_services * s, quantile=q)
    c = servers_for_slo(workload, slo)
    assert meets(workload, c, slo)
    assert c == 1 or not meets(workload, c - 1, slo)


@settings(max_examples=150, deadline=None)
@given(utilizations, utilizations, service_times, st.floats(min_value=0, max_value=5),
       quantiles)
def test_servers_for_slo_grows_with_the_arrival_rate(rho_a: float, rho_b: float, s: float,
                                                     wait_in_services: float, q: float) -> None:
    low, high = sorted((rho_a, rho_b))
    slo = WaitSLO(wait=wait_in_services * s, quantile=q)
    assert (servers_for_slo(Workload(low * 8 / s, s), slo)
            <= servers_for_slo(Workload(high * 8 / s, s), slo))


@settings(max_examples=150, deadline=None)
@given(servers, service_times, scvs, st.floats(min_value=0, max_value=5), quantiles)
def test_max_arrival_rate_is_the_edge_of_the_slo(c: int, s: float, scv: float,
                                                 wait_in_services: float, q: float) -> None:
    slo = WaitSLO(wait=wait_in_services * s, quantile=q)
    rate = max_arrival_rate(s, c, slo, service_scv=scv)
    assert 0 < rate < c / s
    assert meets(Workload(rate, s, service_scv=scv), c, slo)
    beyond = rate + 3e-9 * c / s
    assume(beyond < c / s)
    assert not meets(Workload(beyond, s, service_scv=scv), c, slo)


@settings(max_examples=150, deadline=None)
@given(servers, utilizations, utilizations, service_times,
       st.floats(min_value=0, max_value=600))
def test_cold_starts_get_rarer_with_more_traffic(c: int, rho_a: float, rho_b: float, s: float,
                                                 grace: float) -> None:
    low, high = sorted((rho_a, rho_b))
    quiet = cold_start_probability(Workload(low * c / s, s), servers=c, min_scale=0,
                                   grace_period=grace)
    busy = cold_start_probability(Workload(high * c / s, s), servers=c, min_scale=0,
                                  grace_period=grace)
    assert 0 <= busy <= 1 and 0 <= quiet <= 1
    assert not_less(quiet, busy)


@pytest.mark.parametrize("min_scale", [1, 2, 5])
def test_min_scale_keeps_every_request_warm(min_scale: int) -> None:
    assert cold_start_probability(Workload(0.001, 0.1), servers=1, min_scale=min_scale,
                                  grace_period=0) == 0.0
