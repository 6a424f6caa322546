"""dead-letters: the deadLetterSink of every Trigger and of the Broker.

Each dead letter is kept in the store as `deadletters/<date>/<id>.json`: the event as it
arrived (every attribute, data), plus what the broker says went wrong (the `knativeerror*`
extensions: the subscriber it gave up on, its last status and response body). Nothing is
replied: a sink's reply would be published again. Replaying a record means posting its
`attributes` and `data` back to the broker, without the knativeerror* extensions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import UTC, datetime
from typing import Any, Final

from cloudevents.core.v1.event import CloudEvent
from troupe.events import KNATIVE_ERROR_CODE, KNATIVE_ERROR_DATA, KNATIVE_ERROR_DEST
from troupe.function import Context, Settings

PREFIX: Final = "deadletters"
# Dots too: no "..", and no leading dot (the store hides such names as its own).
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]")


def handle(event: CloudEvent, ctx: Context[Settings]) -> None:
    record = dead_letter_record(event, received=datetime.now(UTC))
    folder = f"{PREFIX}/{record['received'][:10]}"
    key = f"{folder}/{_file_name(event.get_id())}.json"
    if not ctx.store.create_json(key, record):
        if _same_failure(ctx.store.read_json(key), record):
            return None  # the broker delivered the same dead letter twice
        # The same event dead-lettered by another Trigger: keep both, one per destination.
        destination = str(record["error"].get("dest") or "")
        suffix = hashlib.sha256(destination.encode()).hexdigest()[:8]
        key = f"{folder}/{_file_name(event.get_id())}-{suffix}.json"
        ctx.store.create_json(key, record)
    ctx.logger.warning(
        "dead letter %s (%s) from %s: %s answered %s; recorded as %s",
        event.get_id(), event.get_type(), event.get_source(),
        record["error"].get("dest"), record["error"].get("code"), key,
    )
    return None


def dead_letter_record(event: CloudEvent, *, received: datetime) -> dict[str, Any]:
    attributes = {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in event.get_attributes().items()
    }
    record: dict[str, Any] = {
        "received": received.isoformat(),
        "attributes": attributes,
        "error": {
            "dest": attributes.get(KNATIVE_ERROR_DEST),
            "code": _int_or_none(attributes.get(KNATIVE_ERROR_CODE)),
            "data": _decoded(attributes.get(KNATIVE_ERROR_DATA)),
        },
    }
    data = event.get_data()
    if isinstance(data, bytes | bytearray):
        record["data_base64"] = base64.b64encode(bytes(data)).decode("ascii")
    else:
        record["data"] = data
    return record


def _same_failure(existing: Any, record: dict[str, Any]) -> bool:
    if not isinstance(existing, dict):
        return False
    keys = ("source", KNATIVE_ERROR_DEST)
    return all(existing.get("attributes", {}).get(k) == record["attributes"].get(k) for k in keys)


def _file_name(event_id: str) -> str:
    """The id as a file name; ids with other characters get a hash so two never collide."""
    safe = _UNSAFE.sub("_", event_id)[:100]
    if safe != event_id:
        safe += "-" + hashlib.sha256(event_id.encode()).hexdigest()[:12]
    return safe


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _decoded(value: Any) -> str | None:
    """knativeerrordata is the subscriber's response body, base64-encoded."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return value
