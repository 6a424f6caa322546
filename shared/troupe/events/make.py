"""Building troupe events and checking their data against the vocabulary's schemas."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from cloudevents.core.v1.event import CloudEvent

from .errors import InvalidEventDataError
from .extensions import LINEAGE, RUNID, check_extension_name, check_extension_value
from .vocabulary import VOCABULARY, EventType, resolve

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, ValidationError

DEFAULT_SOURCE: Final = "/troupe"
JSON: Final = "application/json"


@cache
def schema_for(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the data of a type, from package data."""
    event_type = resolve(name)
    text = resources.files(__package__).joinpath("schemas", f"{event_type.short}.json")
    schema: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return schema


@cache
def _validator(short: str) -> Draft202012Validator:
    # jsonschema is a quarter of the lightest functions' start-up: it loads with the first
    # event checked, when that type's validator is built.
    from jsonschema import Draft202012Validator

    schema = schema_for(short)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def compile_validators() -> None:
    """Build every type's validator now rather than with its first event: a process that
    forks others (the local runtime's template) builds them once for all of its children."""
    for event_type in VOCABULARY:
        _validator(event_type.short)


def validate_data(name: str, data: Any) -> None:
    """Raise InvalidEventDataError naming every field of `data` that breaks the schema."""
    event_type = resolve(name)
    errors = sorted(_validator(event_type.short).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        raise InvalidEventDataError(
            event_type.type, [(_field_of(error), error.message) for error in errors]
        )


_MISSING = re.compile(r"^'(?P<name>[^']+)' is a required property$")


def _field_of(error: ValidationError) -> str:
    """The JSON path of the offending field; for a missing one, the path it should be at."""
    missing = _MISSING.match(error.message) if error.validator == "required" else None
    return f"{error.json_path}.{missing['name']}" if missing else error.json_path


def validate(event: CloudEvent) -> None:
    """Check an event's data against the schema of its type (which must be known)."""
    validate_data(event.get_type(), event.get_data())


def make_event(
    name: str,
    data: Mapping[str, Any] | None,
    *,
    cause: CloudEvent | None = None,
    source: str = DEFAULT_SOURCE,
    subject: str | None = None,
    extensions: Mapping[str, Any] | None = None,
    event_id: str | None = None,
) -> CloudEvent:
    """Build a valid event of a vocabulary type.

    With `cause`, the lineage extensions (runid, modelversion, traceparent) are copied
    from it, so that a run can be followed from event to event; explicit `extensions`
    win over inherited ones. An event with no cause starts a run: its runid is its id.
    """
    event_type = resolve(name)
    payload = dict(data) if data is not None else None
    validate_data(event_type.type, payload)
    event_id = event_id or str(uuid.uuid4())
    attributes: dict[str, Any] = {
        "id": event_id,
        "source": source,
        "type": event_type.type,
        "specversion": "1.0",
        "time": datetime.now(UTC),
        "datacontenttype": JSON,
        "dataschema": event_type.schema_uri,
    }
    if subject is not None:
        attributes["subject"] = subject
    inherited = lineage_of(cause) if cause is not None else {}
    merged = {**inherited, **(extensions or {})}
    merged.setdefault(RUNID, event_id)
    for key, value in merged.items():
        check_extension_name(key)
        check_extension_value(key, value)
        attributes[key] = value
    return CloudEvent(attributes, payload)


def lineage_of(event: CloudEvent) -> dict[str, Any]:
    """The lineage extensions an event passes on to the events it causes."""
    found = {}
    for name in LINEAGE:
        value = event.get_extension(name)
        if value is not None:
            found[name] = value
    if RUNID not in found:
        # An event from outside troupe starts a run; its id names it.
        found[RUNID] = event.get_id()
    return found


def with_lineage(reply: CloudEvent, cause: CloudEvent) -> CloudEvent:
    """`reply` carrying the lineage of `cause` wherever the reply does not set its own.

    A reply never starts a run: a runid equal to the reply's own id (what make_event gives
    an event built without a cause) is replaced by the cause's runid.
    """
    attributes = dict(reply.get_attributes())
    changed = False
    for name, value in lineage_of(cause).items():
        current = attributes.get(name)
        inherits = current is None or (name == RUNID and current == reply.get_id())
        if inherits and current != value:
            attributes[name] = value
            changed = True
    return CloudEvent(attributes, reply.get_data()) if changed else reply


def event_type_of(event: CloudEvent) -> EventType:
    return resolve(event.get_type())
