"""Scale from zero as a setup time: how often a request meets a revision with no instance.

The model
---------
A revision with `min-scale` >= 1 always keeps an instance, so no request waits for one to
start from zero: the probability is 0. (Instances added above min-scale under load also
start cold, but a request then waits for a busy slot, which the queue's wait covers.)

With `min-scale` 0 the last instance stops once it has been idle for the grace period G
(locally `scale-to-zero-pod-retention-period`, else the runtime's grace period; on a
cluster roughly the autoscaler's stable window plus that retention period). A request
meets a cold revision exactly when it ends an idle period longer than G:

1. An idle period starts when a departure leaves the revision with no request.
2. With Poisson arrivals at rate lambda, the time from then to the next arrival is
   exponential with mean 1/lambda, whatever came before (memorylessness), so that idle
   period outlasts G with probability exp(-lambda * G).
3. The share of requests that end an idle period is the share that arrive to an empty
   system, which by PASTA (Poisson arrivals see time averages) is the M/M/c probability
   P0 that the system is empty, at the workload's offered load and `servers` slots.

So P(cold) = P0 * exp(-lambda * G).

What it leaves out: the setup time itself is taken as short beside the idle periods, so
P0 is the M/M/c value without setup; for non-Poisson arrivals (arrival SCV != 1) step 2
no longer holds exactly and the figure is an estimate.
"""

from __future__ import annotations

import math

from ._checks import non_negative, server_count
from .errors import OutOfRangeError
from .queue import Workload, empty_probability


def cold_start_probability(workload: Workload, *, servers: int, min_scale: int,
                           grace_period: float) -> float:
    """The share of requests that find the revision scaled to zero (see the module's model).

    Raises UnstableQueueError when `servers` cannot keep up: a revision that never empties
    never scales to zero, but its waits are then unbounded, which is the answer that matters.
    """
    if isinstance(min_scale, bool) or not isinstance(min_scale, int) or min_scale < 0:
        raise OutOfRangeError(f"min-scale must be a whole number >= 0, not {min_scale!r}")
    grace = non_negative("the grace period", grace_period)
    p_empty = empty_probability(server_count(servers), workload.offered_load)
    if min_scale >= 1:
        return 0.0
    return p_empty * math.exp(-workload.arrival_rate * grace)
