"""What is retried, and when: one policy for every request the runtime delivers.

Knative's table: 5xx, 404, 408, 409, 429 and connection errors are retried; other 4xx
are not. A `Retry-After` (seconds or an HTTP date) lengthens the wait, up to
MAX_RETRY_AFTER_S. Anything else that goes wrong in an attempt (a timeout, a response
over the size cap, an error nobody expected) is a failed attempt like a connection error:
retried while retries are left, and then the caller's dead letter. Nothing is retried
forever, and nothing is dropped without the caller being told.

The Broker's first attempts, its retries and dead letters, PingSource, KafkaSource and
the serving fronts all go through `send_with_retries` or `is_retryable`.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from troupe.local.errors import LocalError

RETRYABLE_STATUSES: Final = frozenset({404, 408, 409, 429})
# A Retry-After longer than this is capped: one subscriber must not park a partition for hours.
MAX_RETRY_AFTER_S: Final = 300.0
# Knative's per-attempt default when `delivery.timeout` is unset.
DEFAULT_TIMEOUT_S: Final = 600.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # names lower-cased
    body: bytes


@dataclass(frozen=True)
class Attempt:
    """An attempt's result: a response, or what went wrong instead."""

    response: Response | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.response is not None and 200 <= self.response.status < 300

    def describe(self) -> str:
        if self.response is not None:
            return f"HTTP {self.response.status}"
        return self.error or "a connection error"


class AttemptFailed(LocalError, ConnectionError):
    """An attempt got no usable answer; the message says how (refused, closed, timed out,
    not HTTP, too large)."""


class DeliveryAborted(LocalError):
    """The sender is stopping: the event is left as it was (uncommitted), not failed."""


class RetryPlan(Protocol):
    """How many retries, and the pause before each (Knative's DeliverySpec has both)."""

    @property
    def retry(self) -> int | None: ...

    def backoff_s(self, retry_number: int) -> float: ...


@dataclass(frozen=True)
class Backoff:
    """A RetryPlan of its own, for senders without a DeliverySpec (PingSource)."""

    retry: int | None = 5
    delay_s: float = 0.2

    def backoff_s(self, retry_number: int) -> float:
        return float(self.delay_s * 2**retry_number)


def is_retryable(attempt: Attempt) -> bool:
    """Knative's table; an attempt without a response failed as a connection does."""
    if attempt.response is None:
        return True
    status = attempt.response.status
    return status >= 500 or status in RETRYABLE_STATUSES


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds asked for by a `Retry-After` header (delta seconds or an HTTP date)."""
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), MAX_RETRY_AFTER_S))


def attempt(send: Callable[[], Response]) -> Attempt:
    """One attempt: whatever `send` raises, other than DeliveryAborted, is its failure."""
    try:
        return Attempt(send())
    except DeliveryAborted:
        raise
    except AttemptFailed as error:
        return Attempt(None, str(error))
    except (OSError, LookupError, ValueError) as error:  # unreachable, timed out, not HTTP
        return Attempt(None, f"{type(error).__name__}: {error}")
    except Exception as error:  # nobody expected it: a failed attempt all the same
        log.exception("a delivery attempt failed unexpectedly")
        return Attempt(None, f"unexpected {type(error).__name__}: {error}")


def send_with_retries(
    send: Callable[[], Response],
    plan: RetryPlan,
    stopping: threading.Event,
    on_retry: Callable[[], None] = lambda: None,
    first: Attempt | None = None,
) -> Attempt:
    """Call `send` until it succeeds, fails for good, or `plan.retry` retries are spent;
    the last attempt is returned. DeliveryAborted once `stopping` is set.

    `first` is the outcome of an attempt already made elsewhere (the Broker's first
    attempts, made on its loop).
    """
    retries = plan.retry or 0
    for retry_number in range(retries + 1):
        if stopping.is_set():
            raise DeliveryAborted
        result = first if first is not None and retry_number == 0 else attempt(send)
        if result.ok or not is_retryable(result) or retry_number == retries:
            return result
        on_retry()
        delay = plan.backoff_s(retry_number + 1)
        response = result.response
        asked = retry_after_s(response.headers) if response is not None else None
        if stopping.wait(delay if asked is None else max(delay, asked)):
            raise DeliveryAborted
    raise AssertionError("unreachable")
