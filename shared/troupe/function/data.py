"""An event's data as handlers read it: a JSON object, or a refusal that says so.

Every troupe type's schema makes its data an object, and the app validates it before the
handler runs; this is the one place a handler turns `get_data()` into that object, typed,
so a handler called some other way still refuses a wrong event with 422 instead of a 500.
"""

from __future__ import annotations

from typing import Any

from cloudevents.core.v1.event import CloudEvent

from .errors import PermanentError


def data_object(event: CloudEvent) -> dict[str, Any]:
    """The event's data, a JSON object; anything else raises PermanentError (422)."""
    data = event.get_data()
    if not isinstance(data, dict):
        raise PermanentError(
            f"{event.get_type()} must carry a JSON object as data, not "
            f"{type(data).__name__}: see the schema of its type"
        )
    return data
