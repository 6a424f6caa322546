"""The activator's queue: requests waiting for a free slot, ranked, and promoted in time.

Each waiting request has a level (priority.py) and an arrival sequence; the best rank is
the lowest (level, sequence), so requests of one level are served in order of arrival,
which is also what every request gets when a Service sets no priorities.

Promotion, so that nothing starves. A request below the top level is promoted to it,
keeping its place in the order of arrival, once its predicted wait reaches the bound
(the Service's `troupe.dev/wait-slo` wait, else the activation timeout): what it has
waited plus what it would still wait at the top level, (k + 1) x s / c with k the top
requests that arrived before it, s the mean service time and c the slots. That is the
last moment at which promotion can still keep it within the bound. Predicting its wait
at its own level instead would, under overload, promote every low request as it arrives
and turn the priorities into plain arrival order exactly when they matter; promoting at
the last moment keeps the high level ahead for as long as the bound allows. A promoted
request ranks with the high ones by its arrival, so a later high request does not pass
it, and none waits long past the bound unless the top level alone is overloaded.

Not thread-safe: the pool's lock guards it, and each waiter sleeps on a condition of
that lock, so that handing a slot to one request wakes that request alone.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from dataclasses import dataclass, field

from .instance import Instance
from .priority import HIGH

# How often the pool re-checks promotions (its tick): a promotion may come that late.
CHECK_INTERVAL = 0.1


@dataclass(eq=False)
class Waiter:
    level: int
    arrived: float
    sequence: int
    wake: threading.Condition
    promoted: bool = False
    instance: Instance | None = None  # the slot it was handed
    granted: float = 0.0  # when

    @property
    def rank(self) -> tuple[int, int]:
        return (HIGH if self.promoted else self.level, self.sequence)


@dataclass
class WaitQueue:
    lock: threading.RLock
    _waiters: list[Waiter] = field(default_factory=list)
    _sequence: itertools.count[int] = field(default_factory=itertools.count)
    promotions: int = 0

    def __len__(self) -> int:
        return len(self._waiters)

    def join(self, level: int, now: float) -> Waiter:
        waiter = Waiter(level, now, next(self._sequence), threading.Condition(self.lock))
        self._waiters.append(waiter)
        return waiter

    def leave(self, waiter: Waiter) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    def hand(self, instance: Instance, now: float) -> Waiter | None:
        """Give `instance`'s slot to the best-ranked waiter and wake it; None if none waits."""
        if not self._waiters:
            return None
        best = min(self._waiters, key=lambda w: w.rank)
        self._waiters.remove(best)
        best.instance, best.granted = instance, now
        best.wake.notify()
        return best

    def wake_all(self) -> None:
        """Wake every waiter to look again (the revision closed, or failed to start)."""
        for waiter in self._waiters:
            waiter.wake.notify()

    def promote(self, now: float, bound: float, service_time: float | None,
                servers: int) -> int:
        """Promote the waiters whose predicted wait reaches `bound`; returns how many."""
        top = sorted(w.sequence for w in self._waiters if w.rank[0] == HIGH)
        below = sorted((w for w in self._waiters if w.rank[0] != HIGH),
                       key=lambda w: w.sequence)
        promoted = 0
        for waiter in below:
            ahead = bisect.bisect_left(top, waiter.sequence)
            still = (ahead + 1) * service_time / max(servers, 1) if service_time else 0.0
            if now - waiter.arrived + still + CHECK_INTERVAL >= bound:
                waiter.promoted = True
                bisect.insort(top, waiter.sequence)
                promoted += 1
        self.promotions += promoted
        return promoted
