"""Errors a handler raises to say what should happen to the event next.

The names follow kopf: a PermanentError means retrying is useless (the event goes to the
dead-letter sink), a TemporaryError means try again after `delay` seconds.
"""

from __future__ import annotations


class FunctionError(Exception):
    """Root of the errors a handler raises on purpose. `status_code` is the HTTP answer."""

    status_code = 500


class PermanentError(FunctionError):
    """Retrying will not help: answered 422, so the broker dead-letters the event."""

    status_code = 422


class TemporaryError(FunctionError):
    """Retry later: answered 503 with Retry-After, so the broker redelivers the event."""

    status_code = 503

    def __init__(self, message: str, *, delay: float = 5.0) -> None:
        super().__init__(message)
        self.delay = delay
