"""A dead letter as Knative writes it: the event unchanged, plus `knativeerrordest` (where
it failed), `knativeerrorcode` (the last HTTP status, if there was one) and
`knativeerrordata` (the last response body, or what went wrong instead, base64, at most
1024 bytes). The Broker's Triggers and the KafkaSource both send them.
"""

from __future__ import annotations

import base64
from typing import Final

from cloudevents.core.v1.event import CloudEvent

from troupe.events.extensions import KNATIVE_ERROR_CODE, KNATIVE_ERROR_DATA, KNATIVE_ERROR_DEST
from troupe.local.delivery.policy import Attempt

ERROR_DATA_MAX_BYTES: Final = 1024


def error_extensions(destination: str, attempt: Attempt) -> dict[str, str]:
    """The knativeerror* extensions saying why an event is dead-lettered."""
    extensions = {KNATIVE_ERROR_DEST: destination}
    if attempt.response is not None:
        extensions[KNATIVE_ERROR_CODE] = str(attempt.response.status)
        body = attempt.response.body[:ERROR_DATA_MAX_BYTES]
    else:
        body = (attempt.error or "connection failed").encode()[:ERROR_DATA_MAX_BYTES]
    if body:
        extensions[KNATIVE_ERROR_DATA] = base64.b64encode(body).decode()
    return extensions


def dead_letter(event: CloudEvent, destination: str, attempt: Attempt) -> CloudEvent:
    """The event as the dead-letter sink gets it: unchanged, plus the knativeerror* extensions."""
    attributes = {**event.get_attributes(), **error_extensions(destination, attempt)}
    return CloudEvent(attributes, event.get_data())
