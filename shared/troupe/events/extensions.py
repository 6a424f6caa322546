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

_NAME = re.compile(r"^[a-z0-9]+$")
MAX_NAME_LENGTH: Final = 20


def check_extension_name(name: str, *, max_length: int | None = MAX_NAME_LENGTH) -> None:
    """Raise InvalidExtensionError unless `name` is a legal CloudEvents extension name.

    `max_length=None` drops the length limit, which CloudEvents 1.0 states as a SHOULD:
    decoders accept longer names from other producers, make_event does not produce them.
    """
    if name in CORE_ATTRIBUTES or name in ("data", "data_base64"):
        raise InvalidExtensionError(name, "it is a reserved CloudEvents attribute name")
    if not _NAME.match(name) or (max_length is not None and len(name) > max_length):
        limit = f"1 to {max_length}" if max_length is not None else "one or more"
        raise InvalidExtensionError(
            name, f"names must be {limit} lowercase letters or digits (CloudEvents 1.0)"
        )


def check_extension_value(name: str, value: object) -> None:
    """Extensions hold strings, integers or booleans; anything else is an error."""
    if isinstance(value, bool | str):
        return
    if isinstance(value, int) and -(2**31) <= value < 2**31:
        return
    raise InvalidExtensionError(
        name, f"values must be a string, a 32-bit integer or a boolean, not {value!r}"
    )
