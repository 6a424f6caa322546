"""Dead letters as the dead-letter sink records them in the store, and the event a replay
publishes again: for `troupe dead-letters` and the dashboard alike."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from cloudevents.core.v1.event import CloudEvent

from troupe.events.codec import check_attributes
from troupe.events.extensions import KNATIVE_ARRIVALTIME, KNATIVE_BROKER_TTL

if TYPE_CHECKING:
    from troupe.store import Store

PREFIX: Final = "deadletters"
# Set by the broker on the way in; a replay must get fresh ones, not the exhausted ones.
_BROKER_OWNED: Final = (KNATIVE_ARRIVALTIME, KNATIVE_BROKER_TTL)


def dead_letter_records(store: Store) -> list[tuple[str, dict[str, Any]]]:
    """(key, record) of every dead letter, oldest first."""
    return [(key, store.read_json(key)) for key in store.list(PREFIX) if key.endswith(".json")]


def replayable(record: dict[str, Any], new_id: bool = False) -> CloudEvent:
    """The event as it was before the broker gave up on it; EventError if the record
    does not hold a valid one."""
    attributes = {name: value for name, value in record["attributes"].items()
                  if not name.startswith("knativeerror") and name not in _BROKER_OWNED}
    if new_id:
        attributes["id"] = str(uuid.uuid4())
    if isinstance(attributes.get("time"), str):
        attributes["time"] = datetime.fromisoformat(attributes["time"])
    if "data_base64" in record:
        data: Any = base64.b64decode(record["data_base64"])
    else:
        data = record.get("data")
    check_attributes({**attributes, "time": record["attributes"].get("time")})
    return CloudEvent(attributes, data)
