"""Errors that say what should happen to the event next, and how they are answered.

The names follow kopf: a PermanentError means retrying is useless (the event goes to the
dead-letter sink), a TemporaryError means try again after `delay` seconds. Each error
names its own HTTP answer, as werkzeug's exceptions do with `code`: its `status_code`, and
its `kind` for the JSON body. troupe.events' errors about an event (malformed, unknown
type, invalid data...) name theirs the same way, so one rule answers both.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Final, Protocol, runtime_checkable

RETRY_AFTER: Final = "Retry-After"


@runtime_checkable
class StatusError(Protocol):
    """An error that names its HTTP answer; any other exception is the function's bug."""

    status_code: ClassVar[int]
    # The `error` field of the answer's JSON body, and the outcome label of the event.
    kind: ClassVar[str]


class FunctionError(Exception):
    """Root of the errors a handler raises on purpose. `status_code` is the HTTP answer."""

    status_code: ClassVar[int] = 500
    kind: ClassVar[str] = "internal-error"

    def answer_headers(self) -> dict[str, str]:
        """Headers the answer carries besides Content-Type."""
        return {}

    def answer_fields(self) -> dict[str, Any]:
        """Fields the answer's JSON body carries besides `error` and `message`."""
        return {}


class PermanentError(FunctionError):
    """Retrying will not help: answered 422, so the broker dead-letters the event."""

    status_code = 422
    kind = "permanent-error"


class TemporaryError(FunctionError):
    """Retry later: answered 503 with Retry-After, so the broker redelivers the event."""

    status_code = 503
    kind = "temporary-error"

    def __init__(self, message: str, *, delay: float = 5.0) -> None:
        super().__init__(message)
        self.delay = delay

    def answer_headers(self) -> dict[str, str]:
        return {RETRY_AFTER: str(retry_after_seconds(self.delay))}


def retry_after_seconds(delay: float) -> int:
    """Retry-After takes whole seconds; never 0, which would invite a busy loop."""
    if not math.isfinite(delay):
        return 1
    return max(1, math.ceil(delay))


class EventTooLargeError(Exception):
    """A request body over TROUPE_MAX_EVENT_BYTES, refused (413) before it is read."""

    status_code: ClassVar[int] = 413
    kind: ClassVar[str] = "event-too-large"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the request body is larger than {limit} bytes (TROUPE_MAX_EVENT_BYTES), the "
            "Broker's own limit on an event"
        )
        self.limit = limit
