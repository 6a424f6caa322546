"""The time a function acts on is its own, not the one an event claims.

An event's `time` attribute is whatever its sender wrote. Cooldowns, debounces and rate
limits that went by it could be steered from outside: a `metric-degraded` dated in the year
2100 made every earlier retraining look more than an hour old, and left a debounce mark
that never aged out. So a function acts on `Context.received_at`, when it took the event
in by its own clock, and refuses for good (422) an event dated further in the future than
clocks can plausibly disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from .context import Context
from .errors import PermanentError

# How far ahead of this service's clock an event's `time` may be: clocks disagree by
# seconds when NTP works, so five minutes leaves room without letting a date steer anything.
DEFAULT_MAX_CLOCK_SKEW_SECONDS: Final = 300.0


class EventFromTheFutureError(PermanentError):
    """The event is dated later than its receipt plus the allowed clock skew (422)."""

    def __init__(self, event_time: datetime, received_at: float, max_skew_seconds: float) -> None:
        received = datetime.fromtimestamp(received_at, UTC)
        ahead = event_time.timestamp() - received_at
        super().__init__(
            f"the event is dated {event_time.isoformat()}, {ahead:.0f} s after this service "
            f"received it ({received.isoformat()}), beyond the {max_skew_seconds:.0f} s of "
            "clock skew allowed (TROUPE_MAX_CLOCK_SKEW_SECONDS); fix the sender's clock or "
            "the event's `time`"
        )
        self.event_time = event_time
        self.received_at = received_at


def received_time(ctx: Context[Any], *, max_skew_seconds: float) -> float:
    """When the function received `ctx.event`, in Unix seconds by its own clock, once the
    event's own `time` (if any) is no more than `max_skew_seconds` ahead of it."""
    event_time = ctx.event.get_time()
    if event_time is not None and event_time.timestamp() - ctx.received_at > max_skew_seconds:
        raise EventFromTheFutureError(event_time, ctx.received_at, max_skew_seconds)
    return ctx.received_at
