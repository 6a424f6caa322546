"""What a revision's activator has seen lately: arrivals by priority, and service times.

The queue-aware autoscaler needs the arrival rate lambda and the service time's mean and
SCV; priorities need the rate of the classes above a request; `troupe status` shows rho.
All are read from one sliding window of time buckets rather than from EWMAs:

- Knative's autoscaler already averages over windows (`window`, and the panic window as a
  percentage of it), so a window makes those annotations mean here what users tuned them
  to mean there, and the same buckets answer both spans.
- A window forgets a burst exactly `window` seconds after it ends, so how long the
  autoscaler holds capacity is known in advance; an EWMA never quite forgets, and its
  time constant would be a third knob beside the two windows.
- Counts, sums and sums of squares per bucket give the rate, the mean and the variance
  (hence the SCV that Allen-Cunneen needs) over any span without keeping every request.

A rate over a span longer than the window's life so far divides by that life (at least
one second), so that the first seconds after a start are not diluted by time before it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

PRIORITY_LEVELS = 3  # high, normal, low (priority.py)
_BUCKETS = 240  # per window: 0.25 s buckets for Knative's default 60 s window


@dataclass
class _Bucket:
    start: float
    arrivals: list[int]  # per priority level
    served: int = 0
    service_sum: float = 0.0
    service_squares: float = 0.0


@dataclass(frozen=True)
class ServiceTime:
    mean: float  # seconds
    scv: float  # squared coefficient of variation (1 when too few to tell)
    count: int


class LoadWindow:
    """Not thread-safe: the pool calls it under its own lock."""

    def __init__(self, window: float, now: float) -> None:
        self._window = window
        self._width = max(window / _BUCKETS, 0.05)
        self._born = now
        self._buckets: deque[_Bucket] = deque()
        # Every service time ever measured: the answer when the window holds none.
        self._lifetime = _Bucket(now, [0] * PRIORITY_LEVELS)

    def arrived(self, now: float, level: int = 1) -> None:
        self._bucket(now).arrivals[level] += 1

    def served(self, now: float, seconds: float) -> None:
        for bucket in (self._bucket(now), self._lifetime):
            bucket.served += 1
            bucket.service_sum += seconds
            bucket.service_squares += seconds * seconds

    def rate(self, now: float, span: float, *, levels: range = range(PRIORITY_LEVELS)) -> float:
        """Arrivals per second over the last `span` seconds, at the given priority levels."""
        self._expire(now)
        since = now - span
        count = sum(sum(b.arrivals[i] for i in levels)
                    for b in self._buckets if b.start + self._width > since)
        return count / max(min(span, now - self._born), 1.0)

    def service_time(self, now: float, span: float) -> ServiceTime | None:
        """The service time over the last `span` seconds, else over the window's whole life:
        a service time belongs to the code, so it outlives the traffic that measured it."""
        self._expire(now)
        since = now - span
        recent = [b for b in self._buckets if b.start + self._width > since and b.served]
        if not recent:
            recent = [self._lifetime] if self._lifetime.served else []
        count = sum(b.served for b in recent)
        if count == 0:
            return None
        mean = sum(b.service_sum for b in recent) / count
        scv = 1.0  # one observation says nothing about variability: assume exponential
        if count >= 2 and mean > 0:
            squares = sum(b.service_squares for b in recent)
            variance = max(squares / count - mean * mean, 0.0) * count / (count - 1)
            scv = variance / (mean * mean)
        return ServiceTime(mean, scv, count)

    def _bucket(self, now: float) -> _Bucket:
        start = math.floor(now / self._width) * self._width
        if not self._buckets or self._buckets[-1].start < start:
            self._buckets.append(_Bucket(start, [0] * PRIORITY_LEVELS))
            self._expire(now)
        return self._buckets[-1]

    def _expire(self, now: float) -> None:
        while self._buckets and self._buckets[0].start + self._width <= now - self._window:
            self._buckets.popleft()
