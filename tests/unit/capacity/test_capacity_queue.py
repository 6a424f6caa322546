"""troupe.capacity's forward model against published figures and independent derivations."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from troupe.capacity import (
    CapacityError,
    OutOfRangeError,
    UnstableQueueError,
    Workload,
    empty_probability,
    erlang_c,
    predict_wait,
)

# (servers, P(wait), P(W <= 20 s), mean wait in s, occupancy) for 100 calls per 30 min
# of 180 s each (a = 10 Erlangs).
CRAN_ERLANGC_TABLE = [
    (11, 0.6821182, 0.3896138, 122.78127684408, 0.9090909),
    (12, 0.4493882, 0.640158, 40.4449401868444, 0.8333333),
    (13, 0.2852705, 0.7955948, 17.1162271821896, 0.7692308),
    (14, 0.1741319, 0.88835, 7.83593701177724, 0.7142857),
]


@pytest.mark.parametrize(("servers", "p_wait", "within_20s", "mean_wait", "occupancy"),
                         CRAN_ERLANGC_TABLE)
def test_matches_the_published_erlang_c_table(servers: int, p_wait: float, within_20s: float,
                                              mean_wait: float, occupancy: float) -> None:
    """The table printed by `calculate_agents(...)` in the README of the CRAN package
    ErlangC 0.1.0 (https://CRAN.R-project.org/package=ErlangC): 100 calls per 30 minutes,
    180 s handle time, a 20 s answer target, 11 to 14 agents. A = 10, N = 11 giving
    P(wait) = 0.6821 is also the classic Erlang C table entry."""
    prediction = predict_wait(Workload(arrival_rate=100 / 1800, service_time=180), servers)
    assert prediction.p_wait == pytest.approx(p_wait, abs=1e-7)
    assert 1 - prediction.tail(20) == pytest.approx(within_20s, abs=1e-6)
    assert prediction.mean_wait == pytest.approx(mean_wait, rel=1e-9)
    assert prediction.utilization == pytest.approx(occupancy, abs=1e-7)


@pytest.mark.parametrize(("servers", "queue_length", "response_time"),
                         [(2, 7.674, 1.053), (4, 0.105, 0.212)])
def test_matches_the_published_mmc_example(servers: int, queue_length: float,
                                           response_time: float) -> None:
    """ETH Zurich, Advanced Systems Lab 2017, slides on M/M/m queues (lambda = 9/s,
    mu = 5/s), as quoted by the GNU Octave `queueing` package's qsmmm tests: the mean
    number waiting and the mean response time, to three decimals."""
    prediction = predict_wait(Workload(arrival_rate=9, service_time=1 / 5), servers)
    assert 9 * prediction.mean_wait == pytest.approx(queue_length, abs=5e-4)
    assert prediction.mean_wait + 1 / 5 == pytest.approx(response_time, abs=5e-4)


def _erlang_c_textbook(servers: int, load: Fraction) -> Fraction:
    """C(c, a) = (a^c/c! * c/(c-a)) / (sum_{k<c} a^k/k! + a^c/c! * c/(c-a)), in exact
    rationals: the sum formula, not the Erlang B recursion the library uses."""
    top = load**servers / math.factorial(servers) * Fraction(servers) / (servers - load)
    return top / (sum(load**k / math.factorial(k) for k in range(servers)) + top)


@pytest.mark.parametrize("servers", [1, 2, 3, 5, 8, 13, 40])
@pytest.mark.parametrize("utilization", [Fraction(1, 10), Fraction(1, 2), Fraction(4, 5),
                                         Fraction(19, 20), Fraction(99, 100)])
def test_erlang_c_agrees_with_the_textbook_sum(servers: int, utilization: Fraction) -> None:
    load = utilization * servers
    assert erlang_c(servers, float(load)) == pytest.approx(
        float(_erlang_c_textbook(servers, load)), rel=1e-12)


def test_erlang_c_of_one_server_is_its_utilization() -> None:
    # M/M/1: an arrival waits exactly when the server is busy, i.e. with probability rho.
    assert erlang_c(1, 0.37) == pytest.approx(0.37, rel=1e-15)


@pytest.mark.parametrize(("servers", "rho"), [(1, 0.6), (3, 0.8), (10, 0.9)])
@pytest.mark.parametrize("t", [0.0, 0.05, 0.3, 1.5])
def test_tail_agrees_with_the_state_distribution(servers: int, rho: float, t: float) -> None:
    """P(W > t) summed over what an arrival sees: with n >= c in the system it waits for
    n - c + 1 departures at rate c*mu, an Erlang(n - c + 1, c*mu) time (PASTA)."""
    service_time = 0.2
    mu = 1 / service_time
    load = rho * servers
    p0 = 1 / (sum(load**k / math.factorial(k) for k in range(servers))
              + load**servers / math.factorial(servers) / (1 - rho))
    # P(Erlang(k, r) > t) = P(Poisson(r*t) <= k - 1), accumulated term by term.
    rate_t = servers * mu * t
    term, below = math.exp(-rate_t), 0.0
    total = 0.0
    for extra in range(2000):  # n = servers + extra; rho**2000 is far below 1e-15
        below += term  # P(Poisson(rate_t) <= extra)
        term *= rate_t / (extra + 1)
        p_n = p0 * load**servers / math.factorial(servers) * rho**extra
        total += p_n * below
    prediction = predict_wait(Workload(rho * servers / service_time, service_time), servers)
    assert prediction.tail(t) == pytest.approx(total, rel=1e-9)


def test_quantile_inverts_the_tail() -> None:
    prediction = predict_wait(Workload(arrival_rate=8, service_time=0.2), 2)
    p95 = prediction.quantile(0.95)
    assert p95 > 0
    assert prediction.tail(p95) == pytest.approx(0.05, rel=1e-12)
    # Fewer than 5% wait at all with many servers: the p95 wait is then 0.
    assert predict_wait(Workload(arrival_rate=8, service_time=0.2), 6).quantile(0.95) == 0


@pytest.mark.parametrize("scv", [0.0, 0.25, 1.0, 2.0, 4.0])
@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_allen_cunneen_on_one_server_is_pollaczek_khinchine(scv: float, rho: float) -> None:
    """M/G/1 has an exact mean wait, Wq = rho * s * (1 + cs^2) / (2 * (1 - rho)); the
    approximation must reproduce it for Poisson arrivals and one server."""
    s = 0.1
    prediction = predict_wait(Workload(rho / s, s, service_scv=scv), 1)
    assert prediction.mean_wait == pytest.approx(rho * s * (1 + scv) / (2 * (1 - rho)),
                                                 rel=1e-12)
    assert prediction.model == ("M/M/c (Erlang C)" if scv == 1 else "G/G/c (Allen-Cunneen)")


def test_allen_cunneen_scales_the_erlang_c_wait_and_keeps_its_tail_mean() -> None:
    exponential = predict_wait(Workload(8, 0.2), 2)
    general = predict_wait(Workload(8, 0.2, service_scv=0.5, arrival_scv=1.5), 2)
    assert general.mean_wait == pytest.approx(exponential.mean_wait * (0.5 + 1.5) / 2)
    # The tail's integral is the mean wait.
    assert general.p_wait / general.decay_rate == pytest.approx(general.mean_wait)


def test_deterministic_arrivals_and_service_never_wait() -> None:
    prediction = predict_wait(Workload(8, 0.2, service_scv=0, arrival_scv=0), 2)
    assert prediction.mean_wait == 0
    assert prediction.quantile(0.99) == 0
    assert prediction.tail(0.001) == 0


def test_empty_probability_of_one_server_is_one_minus_rho() -> None:
    assert empty_probability(1, 0.3) == pytest.approx(0.7, rel=1e-12)


def test_empty_probability_survives_loads_that_overflow_factorials() -> None:
    # a^c / c! overflows a float at these sizes; the log-space sum must not.
    p0 = empty_probability(2000, 1500.0)
    assert 0 <= p0 < 1e-300 or p0 == 0.0
    assert erlang_c(2000, 1500.0) < 1e-20


@pytest.mark.parametrize(("rate", "servers"), [(10, 2), (15, 3), (5, 1)])
def test_refuses_a_utilization_of_one_or_more(rate: float, servers: int) -> None:
    with pytest.raises(UnstableQueueError) as caught:
        predict_wait(Workload(arrival_rate=rate, service_time=0.2), servers)
    assert caught.value.utilization >= 1
    assert caught.value.servers_needed == math.floor(rate * 0.2) + 1
    assert "rho" in str(caught.value) and "at least" in str(caught.value)


@pytest.mark.parametrize("bad", [0, -1, math.inf, math.nan])
def test_refuses_rates_and_times_that_are_not_positive(bad: float) -> None:
    with pytest.raises(OutOfRangeError, match="arrival rate"):
        Workload(arrival_rate=bad, service_time=0.2)
    with pytest.raises(OutOfRangeError, match="service time"):
        Workload(arrival_rate=1, service_time=bad)


def test_refuses_other_inputs_outside_the_model() -> None:
    with pytest.raises(OutOfRangeError, match="SCV"):
        Workload(1, 0.1, service_scv=-0.5)
    with pytest.raises(OutOfRangeError, match="servers"):
        predict_wait(Workload(1, 0.1), 0)
    with pytest.raises(OutOfRangeError, match="servers"):
        predict_wait(Workload(1, 0.1), 2.5)  # type: ignore[arg-type]
    prediction = predict_wait(Workload(1, 0.1), 1)
    for q in (0, 1, 1.5, -0.1):
        with pytest.raises(OutOfRangeError, match="quantile"):
            prediction.quantile(q)
    with pytest.raises(OutOfRangeError, match="wait"):
        prediction.tail(-1)
    # One root: callers can catch every refusal as a CapacityError, or as a ValueError.
    assert issubclass(UnstableQueueError, CapacityError)
    assert issubclass(CapacityError, ValueError)
