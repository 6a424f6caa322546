"""One finished span as troupe keeps it, whoever recorded it, and the attributes it reads.

A span's role in a run (`troupe.span`) says which step of a hop it times: the broker's
ingress, the wait in Kafka until dispatch, a delivery attempt, a dead letter, a cold
start in the activator, or a function's handler. Attribute names follow OpenTelemetry's
semantic conventions where they have one (CloudEvents, HTTP), and `troupe.*` otherwise.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# A span's role in a hop: one of Role's values.
ROLE: Final = "troupe.span"
RUNID: Final = "troupe.runid"
MODELVERSION: Final = "troupe.modelversion"
# The Knative Service a span is about (a cold start names the one it started).
SERVICE: Final = "troupe.service"
TRIGGER: Final = "troupe.trigger"
BROKER: Final = "troupe.broker"
ATTEMPT: Final = "troupe.attempt"
INSTANCE: Final = "troupe.instance"
# OpenTelemetry's semantic conventions for CloudEvents and HTTP.
EVENT_ID: Final = "cloudevents.event_id"
EVENT_SOURCE: Final = "cloudevents.event_source"
EVENT_TYPE: Final = "cloudevents.event_type"
STATUS_CODE: Final = "http.response.status_code"

AttributeValue = str | int | float | bool


class Role(enum.StrEnum):
    INGRESS = "ingress"  # the broker took the event and Kafka acknowledged it
    QUEUE = "queue"  # from arrival at the broker until a Trigger dispatched it
    DELIVERY = "delivery"  # one attempt to deliver it to a Trigger's subscriber
    DEAD_LETTER = "dead-letter"  # the event went to the Trigger's deadLetterSink
    COLD_START = "cold-start"  # a request waited for a function process to start
    HANDLER = "handler"  # a function handled the event


@dataclass(frozen=True, slots=True)
class SpanRecord:
    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    parent_id: str | None
    name: str
    service: str  # OpenTelemetry's service.name of whoever recorded it
    start_ns: int  # Unix epoch nanoseconds
    end_ns: int
    error: str | None = None  # the status description of a span that failed
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)

    @property
    def role(self) -> str | None:
        value = self.attributes.get(ROLE)
        return str(value) if value is not None else None

    @property
    def runid(self) -> str | None:
        value = self.attributes.get(RUNID)
        return str(value) if value is not None else None

    @property
    def duration_s(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e9

    def to_json(self) -> dict[str, Any]:
        return {"trace_id": self.trace_id, "span_id": self.span_id,
                "parent_id": self.parent_id, "name": self.name, "service": self.service,
                "start_ns": self.start_ns, "end_ns": self.end_ns, "error": self.error,
                "attributes": dict(self.attributes)}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> SpanRecord:
        """Raises KeyError, TypeError or ValueError for what is not a span record."""
        attributes = value.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise TypeError("attributes must be an object")
        return cls(trace_id=str(value["trace_id"]), span_id=str(value["span_id"]),
                   parent_id=str(value["parent_id"]) if value.get("parent_id") else None,
                   name=str(value["name"]), service=str(value["service"]),
                   start_ns=int(value["start_ns"]), end_ns=int(value["end_ns"]),
                   error=str(value["error"]) if value.get("error") else None,
                   attributes=attributes)
