"""The extension attributes troupe relies on, and the CloudEvents naming rule for them."""

from __future__ import annotations

import re
from typing import Final

from .errors import InvalidExtensionError

# The id of the event that started a run; copied from cause to effect so a whole run can
# be rebuilt from the event log.
RUNID: Final = "runid"
# The model version an event is about.
MODELVERSION: Final = "modelversion"
# W3C trace context (CloudEvents distributed-tracing extension).
TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
# Kafka record key (CloudEvents partitioning extension).
PARTITIONKEY: Final = "partitionkey"

# Copied from the event that caused an event, by make_event(cause=...) and the app factory.
LINEAGE: Final = (RUNID, MODELVERSION, TRACEPARENT, TRACESTATE)

# Knative's broker extensions.
KNATIVE_ARRIVALTIME: Final = "knativearrivaltime"
KNATIVE_BROKER_TTL: Final = "knativebrokerttl"
KNATIVE_ERROR_DEST: Final = "knativeerrordest"
KNATIVE_ERROR_CODE: Final = "knativeerrorcode"
KNATIVE_ERROR_DATA: Final = "knativeerrordata"

CORE_ATTRIBUTES: Final = frozenset(
    {"id", "source", "type", "specversion", "datacontenttype", "dataschema", "subject", "time"}
)

_NAME = re.compile(r"^[a-z0-9]{1,20}$")


def check_extension_name(name: str) -> None:
    """Raise InvalidExtensionError unless `name` is a legal CloudEvents extension name."""
    if name in CORE_ATTRIBUTES or name == "data":
        raise InvalidExtensionError(name, "it is a reserved CloudEvents attribute name")
    if not _NAME.match(name):
        raise InvalidExtensionError(
            name, "names must be 1 to 20 lowercase letters or digits (CloudEvents 1.0)"
        )


def check_extension_value(name: str, value: object) -> None:
    """Extensions hold strings, integers or booleans; anything else is an error."""
    if isinstance(value, bool | int | str):
        return
    raise InvalidExtensionError(
        name, f"values must be a string, an integer or a boolean, not {type(value).__name__}"
    )
