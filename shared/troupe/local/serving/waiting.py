"""The activator's queue: requests waiting for a free slot, ranked, and promoted in time.

Each waiting request has a level (priority.py) and a place in line, its sequence; the
best rank is the lowest (level, sequence), so requests of one level are served in order
of arrival, which is also what every request gets when a Service sets no priorities.

Promotion, so that nothing starves. A request below the top level is promoted once its
predicted wait reaches the bound (the Service's `troupe.dev/wait-slo` wait, else the
activation timeout): what it has waited, plus what it would still wait if promoted now,
(k + 1) x s / c, with k the requests waiting at the top level, s the mean service time
and c the slots running. That is the last moment at which promotion can still keep it
within the bound. A promoted request joins the top level as if it arrived at that
moment: the high requests already waiting keep their place, later ones queue behind it.
So it waits at most as long as a high request arriving then would, and a high request is
only ever passed by requests promoted before it arrived.

Why the last moment, and not when its wait at its own level is predicted to pass the
bound: under overload that prediction passes the bound for nearly every low request as it
arrives, so all would be promoted at once and the levels would collapse into arrival
order exactly when they matter.

Not thread-safe: the pool's lock guards it, and each waiter sleeps on a condition of
that lock, so that handing a slot to one request wakes that request alone.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

from troupe.local.serving.instance import Instance
from troupe.local.serving.priority import HIGH

# How often the pool re-checks promotions (its tick): a promotion may come that late.
CHECK_INTERVAL = 0.1


@dataclass(eq=False)
class Waiter:
    level: int
    arrived: float
    sequence: int  # place in line: at arrival, and again on promotion
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
        top = sum(1 for w in self._waiters if w.rank[0] == HIGH)
        below = sorted((w for w in self._waiters if w.rank[0] != HIGH),
                       key=lambda w: w.sequence)
        promoted = 0
        for waiter in below:
            still = (top + 1) * service_time / max(servers, 1) if service_time else 0.0
            if now - waiter.arrived + still + CHECK_INTERVAL >= bound:
                waiter.promoted = True
                waiter.sequence = next(self._sequence)  # in line behind those waiting
                top += 1
                promoted += 1
        self.promotions += promoted
        return promoted
