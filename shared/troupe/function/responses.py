"""What the app answers: an event reply, no reply, or an error body, with its status.

The status decides what the broker does next (Knative's delivery rules): 2xx is done,
400/415/422 go to the dead-letter sink without retries, 5xx are retried.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Final

from cloudevents.core.v1.event import CloudEvent

from troupe.events import (
    InvalidEventDataError,
    MalformedEventError,
    UnknownEventTypeError,
    UnsupportedMediaTypeError,
    to_http_binary,
)

from .errors import PermanentError, TemporaryError

JSON_CONTENT_TYPE: Final = "application/json"
RETRY_AFTER: Final = "Retry-After"

# Outcome labels, shared by the metrics and the log line.
REPLIED: Final = "replied"
ACCEPTED: Final = "accepted"
DUPLICATE: Final = "duplicate"
MALFORMED: Final = "malformed"
UNSUPPORTED: Final = "unsupported"
INVALID: Final = "invalid"
PERMANENT: Final = "permanent"
TEMPORARY: Final = "temporary"
ERROR: Final = "error"


@dataclass(frozen=True)
class Answer:
    """One HTTP answer to one delivery; `outcome` labels it in metrics and logs."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    outcome: str = ACCEPTED
    # For the log line only: what went wrong, never sent beyond the body's message.
    detail: str | None = None


def event_answer(reply: CloudEvent) -> Answer:
    """200 with the reply in binary content mode, which is how Knative takes replies."""
    message = to_http_binary(reply)
    headers = dict(message.headers)
    if isinstance(reply.get_data(), dict | list) and reply.get_datacontenttype() is None:
        # The SDK writes such data as JSON; say so, or HTTP would call it something else.
        headers["content-type"] = JSON_CONTENT_TYPE
    return Answer(200, headers, message.body, REPLIED)


def no_reply() -> Answer:
    """202 with no body: Knative never treats a 202 as a reply."""
    return Answer(202, {}, b"", ACCEPTED)


def error_answer(
    status: int,
    kind: str,
    message: str,
    outcome: str,
    *,
    headers: dict[str, str] | None = None,
    detail: str | None = None,
) -> Answer:
    body = json.dumps({"error": kind, "message": message}).encode("utf-8")
    return Answer(
        status,
        {"Content-Type": JSON_CONTENT_TYPE, **(headers or {})},
        body,
        outcome,
        detail or message,
    )


def retry_after_seconds(delay: float) -> int:
    """Retry-After takes whole seconds; never 0, which would invite a busy loop."""
    if not math.isfinite(delay):
        return 1
    return max(1, math.ceil(delay))


def answer_for_error(error: BaseException, *, detail: str | None = None) -> Answer:
    """Map an exception to its status as DESIGN's table says; anything unknown is a 500."""
    if isinstance(error, MalformedEventError):
        return error_answer(
            400, "malformed-event",
            f"{error}. Fix the event; sending it again unchanged will fail the same way.",
            MALFORMED,
        )
    if isinstance(error, UnsupportedMediaTypeError):
        return error_answer(415, "unsupported-media-type", str(error), UNSUPPORTED)
    if isinstance(error, UnknownEventTypeError):
        return error_answer(422, "unknown-type", str(error), INVALID)
    if isinstance(error, InvalidEventDataError):
        return error_answer(
            422, "invalid-data",
            f"{error}. Send data that matches the schema of {error.event_type}.",
            INVALID,
        )
    if isinstance(error, PermanentError):
        return error_answer(
            422, "permanent-error",
            f"{error}. Retrying will not help; the event goes to the dead-letter sink.",
            PERMANENT,
        )
    if isinstance(error, TemporaryError):
        seconds = retry_after_seconds(error.delay)
        return error_answer(
            503, "temporary-error",
            f"{error}. Deliver the event again after {seconds} s.",
            TEMPORARY,
            headers={RETRY_AFTER: str(seconds)},
        )
    return error_answer(
        500, "internal-error",
        f"the function failed with {type(error).__name__}: {error}. The event will be "
        "retried; if this persists, read the function's log for this event id.",
        ERROR,
        detail=detail,
    )
