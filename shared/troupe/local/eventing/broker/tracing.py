"""The data plane's spans: the ingress, the wait in Kafka until dispatch, each delivery
attempt (retries included), and the dead letter; on the event's trace, so a run is one
trace across the broker as it is across the functions.

The ingress writes its own span's context into the event's `traceparent` (starting a trace
for an event that has none), so what happens to the event after it is stored descends from
the ingress; each attempt sends its own span's context, so the subscriber's span is a child
of the attempt that reached it. Nothing here runs unless the data plane was given a
`SpanSink` (the runtime's SpanRecorder).

Cost: this runs once or twice per event on the data plane's hot path, so it does the least
it can there. It reads the ids it must propagate, stamps the clock, and hands the sink the
compact entry (troupe.traces.compact) the store keeps, a tuple of strings and numbers. The
sink's own thread encodes a batch of them in one call; span records are made of them only
when a trace is read.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from troupe.events.extensions import KNATIVE_ARRIVALTIME, RUNID, TRACEPARENT
from troupe.traces import format_traceparent, parse_traceparent
from troupe.traces.compact import DEAD_LETTER, DELIVERY, INGRESS
from troupe.traces.records import AttributeValue

_KAFKA_TRACEPARENT: Final = f"ce_{TRACEPARENT}"
_KAFKA_RUNID: Final = f"ce_{RUNID}"
_HTTP_TRACEPARENT: Final = f"ce-{TRACEPARENT}"
_HTTP_ARRIVALTIME: Final = f"ce-{KNATIVE_ARRIVALTIME}"

class SpanSink(Protocol):
    service: str  # the service.name of the spans it records

    def record(self, name: str, trace_id: str, span_id: str, parent_id: str | None,
               start_ns: int, end_ns: int, attributes: Mapping[str, AttributeValue],
               error: str | None = None) -> None:
        """A finished span, ready as it is."""

    def add_entry(self, entry: tuple[Any, ...]) -> None:
        """A compact entry (troupe.traces.compact): strings, numbers and None only."""


def _span_id() -> str:
    return f"{random.getrandbits(64) or 1:016x}"


def _trace_id() -> str:
    return f"{random.getrandbits(128) or 1:032x}"


# (trace id, span id, parent span id, start, broker, the event's type, id and runid): a
# tuple, the cheapest thing to make per event.
IngressSpan = tuple[str, str, str | None, int, str, str, str, str | None]


@dataclass(slots=True)
class DeliveryTrace:
    """One event on its way to one Trigger's subscriber: what its hop's spans share."""

    trace_id: str
    parent_id: str  # the ingress span the event came out of
    arrived: str | None  # the knativearrivaltime header, parsed only when a span is made
    trigger: str
    service: str
    event_type: str
    event_id: str
    attempts: int = 0  # made so far; the first one also ends the wait in Kafka


# (span id, attempt number, start, the arrival time when this attempt ended the wait).
AttemptSpan = tuple[str, int, int, str | None]


class DataPlaneTracing:
    def __init__(self, sink: SpanSink) -> None:
        self._sink = sink
        self._service = sink.service

    # ingress -----------------------------------------------------------------------------
    def ingress(self, broker: str, headers: dict[str, bytes]) -> IngressSpan:
        """Open the ingress span of a record about to be written, and put its context in
        the record's traceparent."""
        raw = headers.get(_KAFKA_TRACEPARENT)
        parent = _own_context(raw.decode("ascii", "replace")) if raw is not None else None
        trace_id, parent_id = parent if parent else (_trace_id(), None)
        span_id = _span_id()
        headers[_KAFKA_TRACEPARENT] = f"00-{trace_id}-{span_id}-01".encode()
        runid = headers.get(_KAFKA_RUNID)
        return (trace_id, span_id, parent_id, time.time_ns(), broker,
                _text(headers.get("ce_type")), _text(headers.get("ce_id")),
                runid.decode("utf-8", "replace") if runid else None)

    def ingress_settled(self, span: IngressSpan, error: BaseException | None) -> None:
        """Kafka acknowledged the write, or failed it."""
        trace_id, span_id, parent_id, start_ns, broker, event_type, event_id, runid = span
        self._sink.add_entry((INGRESS, self._service, trace_id, span_id, parent_id, start_ns,
                              time.time_ns(), broker, event_type, event_id, runid,
                              f"{type(error).__name__}: {error}" if error else None))

    # delivery ----------------------------------------------------------------------------
    def delivery(self, trigger: str, service: str,
                 headers: Mapping[str, str]) -> DeliveryTrace | None:
        """The trace of a record's hop to a Trigger's subscriber, from its HTTP headers;
        None for a record that carries no trace context (not written by a traced ingress)."""
        parent = _own_context(headers.get(_HTTP_TRACEPARENT))
        if parent is None:
            return None
        return DeliveryTrace(parent[0], parent[1], headers.get(_HTTP_ARRIVALTIME), trigger,
                             service, headers.get("ce-type", ""), headers.get("ce-id", ""))

    def attempt(self, trace: DeliveryTrace, headers: dict[str, str]) -> AttemptSpan:
        """Open the next attempt's span, and put its context in `headers`, which are about
        to be sent (attempts of one event go one after another, each with its own)."""
        span_id = _span_id()
        headers[_HTTP_TRACEPARENT] = f"00-{trace.trace_id}-{span_id}-01"
        trace.attempts += 1
        return (span_id, trace.attempts, time.time_ns(),
                trace.arrived if trace.attempts == 1 else None)

    def attempt_done(self, trace: DeliveryTrace, attempt: AttemptSpan, status: int | None,
                     error: str | None = None) -> None:
        """The attempt's entry, and with it the wait in Kafka when this attempt ended it."""
        span_id, number, start_ns, arrived = attempt
        self._sink.add_entry((DELIVERY, self._service, trace.trace_id, trace.parent_id, span_id,
                              number, start_ns, time.time_ns(), status, error, trace.trigger,
                              trace.service, trace.event_type, trace.event_id, arrived))

    def dead_letter_started(self, trace: DeliveryTrace, headers: dict[str, str]) -> AttemptSpan:
        """The dead letter's span, its context put in `headers` (the sink's span becomes
        its child)."""
        span_id = _span_id()
        headers[_HTTP_TRACEPARENT] = f"00-{trace.trace_id}-{span_id}-01"
        return span_id, 0, time.time_ns(), None

    def dead_lettered(self, trace: DeliveryTrace, letter: AttemptSpan, status: int | None,
                      error: str | None) -> None:
        self._sink.add_entry((DEAD_LETTER, self._service, trace.trace_id, trace.parent_id,
                              letter[0], letter[2], time.time_ns(), status, error, trace.trigger,
                              trace.event_id))


def _own_context(value: str | None) -> tuple[str, str] | None:
    """(trace id, span id) of a traceparent: read by position when it is one the ingress
    wrote (format_traceparent's own layout; a third of the cost of a full parse, per
    delivery), through the full parser otherwise."""
    if value is not None and len(value) == _OWN_LENGTH and value.startswith("00-") \
            and value[35] == "-" and value[52] == "-" and value.islower():
        return value[3:35], value[36:52]
    return parse_traceparent(value)


_OWN_LENGTH: Final = len(format_traceparent("0" * 32, "0" * 16))


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw is not None else ""


__all__ = [
    "AttemptSpan",
    "DataPlaneTracing",
    "DeliveryTrace",
    "IngressSpan",
    "SpanSink",
]
