"""What the app answers: an event reply, no reply, or an error body, with its status.

The status decides what the broker does next (Knative's delivery rules): 2xx is done,
400/415/422 go to the dead-letter sink without retries, 5xx are retried. An error's status
is its own (`status_code`, see errors.py); what the sender should do next follows from it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cloudevents.core.v1.event import CloudEvent

from troupe.events import to_http_binary

from .errors import RETRY_AFTER, FunctionError, StatusError

JSON_CONTENT_TYPE: Final = "application/json"

# Outcome labels of answers that are not errors (an error's label is its `kind`), shared
# by the metrics and the log line.
REPLIED: Final = "replied"
ACCEPTED: Final = "accepted"
DUPLICATE: Final = "duplicate"
INTERNAL_ERROR: Final = "internal-error"

# What the sender should do next, by status: the broker acts on the status alone.
NEXT_STEP: Final[Mapping[int, str]] = {
    400: "Fix the event; sending it again unchanged will fail the same way.",
    413: "Send a smaller event: put large data in the store and send its URI.",
    422: "Retrying will not help; the event goes to the dead-letter sink.",
    500: "The event will be retried; if this persists, read the function's log for this "
         "event id.",
    503: "Deliver the event again after {retry_after} s.",
}


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


def error_answer(error: BaseException, *, detail: str | None = None) -> Answer:
    """The answer an exception names through its `status_code` and `kind`, as werkzeug's
    do; any other exception is the function's own failure, a retried 500 (`detail`, its
    traceback, goes to the log line only)."""
    if not isinstance(error, StatusError):
        message = f"the function failed with {type(error).__name__}: {error}"
        return _json_error(500, INTERNAL_ERROR, message, detail=detail or message)
    if isinstance(error, FunctionError):
        return _json_error(error.status_code, error.kind, str(error),
                           headers=error.answer_headers(), fields=error.answer_fields())
    return _json_error(error.status_code, error.kind, str(error))


def _json_error(
    status: int,
    kind: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    fields: Mapping[str, Any] | None = None,
    detail: str | None = None,
) -> Answer:
    headers = headers or {}
    step = NEXT_STEP.get(status, "").format(retry_after=headers.get(RETRY_AFTER))
    body = {"error": kind, "message": f"{message}. {step}" if step else message, **(fields or {})}
    return Answer(
        status,
        {"Content-Type": JSON_CONTENT_TYPE, **headers},
        json.dumps(body).encode("utf-8"),
        kind,
        detail or message,
    )
