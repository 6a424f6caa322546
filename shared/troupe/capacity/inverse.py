"""The questions capacity planning asks backwards: how many servers, and how much traffic.

Both searches lean on two monotonicities of the queue (property-tested): the wait at any
quantile falls as servers are added, and rises with the arrival rate. So the smallest `c`
is found by doubling then bisecting, and the largest rate by bisection; neither guesses.
"""

from __future__ import annotations

from dataclasses import replace

from ._checks import positive, server_count
from .errors import OutOfRangeError, UnreachableSLOError, UnstableQueueError
from .queue import Workload, predict_wait
from .slo import WaitSLO

# A bound on the search, far beyond anything one revision would run.
DEFAULT_MAX_SERVERS = 100_000


def meets(workload: Workload, servers: int, slo: WaitSLO) -> bool:
    """Whether `servers` servers keep the wait at the SLO's quantile within its bound."""
    try:
        prediction = predict_wait(workload, servers)
    except UnstableQueueError:
        return False
    return prediction.quantile(slo.quantile) <= slo.wait


def servers_for_slo(workload: Workload, slo: WaitSLO, *,
                    max_servers: int = DEFAULT_MAX_SERVERS) -> int:
    """The smallest number of servers whose predicted wait meets `slo`."""
    server_count(max_servers)
    low = workload.fewest_stable_servers()  # below this the queue is unstable
    if low > max_servers:
        raise UnreachableSLOError(
            f"{workload.offered_load:.3g} Erlangs of work need more than {max_servers} servers "
            "just to keep the queue stable; raise the bound or reduce the load")
    if meets(workload, low, slo):
        return low
    # Invariant: `low` fails, `high` meets.
    step, high = 1, low + 1
    while not meets(workload, high, slo):
        if high >= max_servers:
            raise UnreachableSLOError(
                f"even {max_servers} servers do not meet {slo} at "
                f"{workload.arrival_rate:g} requests/s; loosen the SLO or raise the bound")
        low, step = high, step * 2
        high = min(high + step, max_servers)
    while high - low > 1:
        middle = (low + high) // 2
        if meets(workload, middle, slo):
            high = middle
        else:
            low = middle
    return high


def max_arrival_rate(service_time: float, servers: int, slo: WaitSLO, *,
                     service_scv: float = 1.0, arrival_scv: float = 1.0,
                     relative_tolerance: float = 1e-9) -> float:
    """The largest arrival rate (requests/s) that `servers` servers sustain within `slo`.

    Without an SLO the only bound is rho < 1, i.e. a rate below servers / service_time,
    which is never reached; a wait objective is what makes the question answerable. The
    answer is the lower end of a bisection, so that rate itself meets the SLO.
    """
    s = positive("the service time", service_time)
    c = server_count(servers)
    if not 0 < relative_tolerance < 1:
        raise OutOfRangeError(f"relative_tolerance must lie in (0, 1), not {relative_tolerance!r}")
    ceiling = c / s  # rho = 1: unstable at and above it
    shape = Workload(arrival_rate=ceiling / 2, service_time=s, service_scv=service_scv,
                     arrival_scv=arrival_scv)
    low, high = 0.0, ceiling  # low meets (no traffic never waits), high does not
    while high - low > relative_tolerance * ceiling:
        middle = (low + high) / 2
        if meets(replace(shape, arrival_rate=middle), c, slo):
            low = middle
        else:
            high = middle
    if low == 0.0:
        raise UnreachableSLOError(
            f"no positive arrival rate meets {slo} with {c} server(s) of {s:g} s")
    return low
