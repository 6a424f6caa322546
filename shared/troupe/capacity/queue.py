"""How long requests wait for one of `c` servers: Erlang C, and Allen-Cunneen beyond it.

A revision with `c` free slots (instances x containerConcurrency) in front of which the
activator holds requests is a multi-server queue. With Poisson arrivals and exponential
service times it is M/M/c, which Erlang C solves exactly. Real service times are rarely
exponential, so for other squared coefficients of variation (SCV) the Allen-Cunneen
approximation scales the M/M/c wait:

    Wq(G/G/c) ~= Wq(M/M/c) * (ca^2 + cs^2) / 2

where ca^2 and cs^2 are the SCVs of the inter-arrival and service times. For c = 1 and
Poisson arrivals it is exactly the Pollaczek-Khinchine mean of M/G/1.

The wait's tail: in M/M/c, P(W > t) = C * exp(-(c*mu - lambda) * t), with C the Erlang C
probability of waiting. For G/G/c the prediction keeps C and stretches the exponential so
that its mean is Allen-Cunneen's: P(W > t) ~= C * exp(-(c*mu - lambda) * t / k) with
k = (ca^2 + cs^2) / 2 -- the exponential shape that Kingman's heavy-traffic limit gives.
Quantiles come from inverting that tail.

Pure functions of their inputs: no I/O, no clocks. Questions outside the model's range
raise a CapacityError instead of returning a number that means nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._checks import non_negative, positive, quantile_in_range, server_count
from .errors import UnstableQueueError


@dataclass(frozen=True)
class Workload:
    """What arrives and what it costs: the model's inputs apart from the number of servers."""

    arrival_rate: float  # lambda, requests per second
    service_time: float  # mean seconds one request holds a server (1 / mu)
    service_scv: float = 1.0  # cs^2 = variance / mean^2 of the service time; 1 = exponential
    arrival_scv: float = 1.0  # ca^2 of the inter-arrival times; 1 = Poisson

    def __post_init__(self) -> None:
        positive("the arrival rate", self.arrival_rate)
        positive("the service time", self.service_time)
        non_negative("the service time's SCV", self.service_scv)
        non_negative("the arrival SCV", self.arrival_scv)

    @property
    def offered_load(self) -> float:
        """a = lambda * s, in Erlangs: how many servers the work keeps busy on average."""
        return self.arrival_rate * self.service_time

    @property
    def is_markovian(self) -> bool:
        return self.service_scv == 1.0 and self.arrival_scv == 1.0

    @property
    def variability(self) -> float:
        """Allen-Cunneen's factor k = (ca^2 + cs^2) / 2; 1 for M/M/c."""
        return (self.arrival_scv + self.service_scv) / 2

    def fewest_stable_servers(self) -> int:
        """The smallest c with rho = a / c < 1."""
        return math.floor(self.offered_load) + 1


@dataclass(frozen=True)
class WaitPrediction:
    """The predicted wait in the queue (before service starts) with `servers` servers."""

    servers: int
    utilization: float  # rho = lambda * s / c, in [0, 1)
    p_wait: float  # probability that a request waits at all (Erlang C)
    mean_wait: float  # seconds, over all requests (those that do not wait count as 0)
    decay_rate: float  # per second: the tail is p_wait * exp(-decay_rate * t)
    model: str  # "M/M/c (Erlang C)" or "G/G/c (Allen-Cunneen)"

    def tail(self, seconds: float) -> float:
        """P(W > t): the share of requests that wait longer than `seconds`."""
        t = non_negative("the wait", seconds)
        if t == 0:
            return self.p_wait
        if math.isinf(self.decay_rate):
            return 0.0
        return self.p_wait * math.exp(-self.decay_rate * t)

    def quantile(self, q: float) -> float:
        """The wait that a share `q` of requests does not exceed, in seconds."""
        q = quantile_in_range(q)
        if self.p_wait <= 1 - q or math.isinf(self.decay_rate):
            return 0.0  # at least a share q of requests starts at once
        return math.log(self.p_wait / (1 - q)) / self.decay_rate


def erlang_c(servers: int, offered_load: float) -> float:
    """The probability that a request must wait in M/M/c with offered load a = lambda/mu.

    Computed through Erlang B's recursion B(k) = a*B(k-1) / (k + a*B(k-1)), which stays
    within floating point for thousands of servers, then C = B / (1 - rho * (1 - B)).
    """
    c = server_count(servers)
    a = positive("the offered load", offered_load)
    if a >= c:
        raise _unstable(a, c)
    blocking = 1.0
    for k in range(1, c + 1):
        blocking = a * blocking / (k + a * blocking)
    rho = a / c
    return blocking / (1 - rho * (1 - blocking))


def predict_wait(workload: Workload, servers: int) -> WaitPrediction:
    """The wait that `workload` meets with `servers` servers (slots), or UnstableQueueError."""
    c = server_count(servers)
    a = workload.offered_load
    p_wait = erlang_c(c, a)
    # c*mu - lambda: how fast a busy system drains, in requests per second.
    drain_rate = (c - a) / workload.service_time
    k = workload.variability
    decay_rate = drain_rate / k if k > 0 else math.inf
    return WaitPrediction(
        servers=c,
        utilization=a / c,
        p_wait=p_wait,
        mean_wait=p_wait * k / drain_rate,
        decay_rate=decay_rate,
        model="M/M/c (Erlang C)" if workload.is_markovian else "G/G/c (Allen-Cunneen)",
    )


def empty_probability(servers: int, offered_load: float) -> float:
    """P0 of M/M/c: the chance that no request is in the system.

    From P(N < c) = 1 - C and P(N = k) = P0 * a^k / k! for k < c, summed in log space so
    that large loads underflow to 0 rather than overflow.
    """
    c = server_count(servers)
    a = positive("the offered load", offered_load)
    p_wait = erlang_c(c, a)
    logs = [k * math.log(a) - math.lgamma(k + 1) for k in range(c)]
    peak = max(logs)
    log_sum = peak + math.log(sum(math.exp(x - peak) for x in logs))
    return (1 - p_wait) * math.exp(-log_sum)


def _unstable(offered_load: float, servers: int) -> UnstableQueueError:
    needed = math.floor(offered_load) + 1
    rho = offered_load / servers
    return UnstableQueueError(
        f"utilisation rho = {rho:.3g} >= 1: {servers} server(s) cannot keep up with "
        f"{offered_load:.3g} Erlangs of work, so the queue grows without bound and no wait "
        f"can be predicted; at least {needed} server(s) are needed for rho < 1",
        utilization=rho, servers_needed=needed)
