"""The one error root of troupe.capacity, so that callers can refuse a question cleanly.

The model never answers a question outside its range with a number: it raises one of
these, and the message says what was wrong and what would make the question answerable.
"""

from __future__ import annotations


class CapacityError(ValueError):
    """A question the queueing model cannot answer; the message says why and what to do."""


class OutOfRangeError(CapacityError):
    """An input outside the model's domain: a rate or time <= 0, a quantile outside (0, 1)."""


class UnstableQueueError(CapacityError):
    """Utilisation rho >= 1: the queue grows without bound, so no wait is predictable."""

    def __init__(self, message: str, *, utilization: float, servers_needed: int) -> None:
        super().__init__(message)
        self.utilization = utilization
        # The fewest servers that make the queue stable (rho < 1) at this load.
        self.servers_needed = servers_needed


class UnreachableSLOError(CapacityError):
    """No number of servers up to the search's bound meets the wait SLO."""
