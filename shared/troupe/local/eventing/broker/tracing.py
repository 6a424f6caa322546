"""The data plane's spans: the ingress, the wait in Kafka until dispatch, each delivery
attempt (retries included), and the dead letter; on the event's trace, so a run is one
trace across the broker as it is across the functions.

The ingress writes its own span's context into the event's `traceparent` (starting a trace
for an event that has none), so what happens to the event after it is stored descends from
the ingress; each attempt sends its own span's context, so the subscriber's span is a child
of the attempt that reached it. Spans go to a `SpanSink` (the runtime's SpanRecorder),
which records a tuple; nothing here runs unless the data plane was given one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol

from troupe.events.extensions import KNATIVE_ARRIVALTIME, RUNID, TRACEPARENT
from troupe.traces import (
    ATTEMPT,
    BROKER,
    EVENT_ID,
    EVENT_TYPE,
    ROLE,
    SERVICE,
    STATUS_CODE,
    TRIGGER,
    Role,
    format_traceparent,
    parse_traceparent,
)
from troupe.traces import RUNID as RUNID_ATTRIBUTE
from troupe.traces.records import AttributeValue

_KAFKA_TRACEPARENT: Final = f"ce_{TRACEPARENT}"
_HTTP_TRACEPARENT: Final = f"ce-{TRACEPARENT}"


class SpanSink(Protocol):
    def record(self, name: str, trace_id: str, span_id: str, parent_id: str | None,
               start_ns: int, end_ns: int, attributes: Mapping[str, AttributeValue],
               error: str | None = None) -> None: ...


def _span_id() -> str:
    return f"{random.getrandbits(64) or 1:016x}"


def _trace_id() -> str:
    return f"{random.getrandbits(128) or 1:032x}"


@dataclass(slots=True)
class IngressSpan:
    trace_id: str
    span_id: str
    parent_id: str | None
    start_ns: int
    attributes: dict[str, AttributeValue]


@dataclass(slots=True)
class DeliveryTrace:
    """One event on its way to one Trigger's subscriber: the spans of its hop."""

    trace_id: str
    parent_id: str  # the ingress span the event came out of
    arrived_ns: int | None
    attributes: dict[str, AttributeValue]
    attempts: int = 0
    queued: bool = False
    open_attempts: dict[str, tuple[int, int]] = field(default_factory=dict)


class DataPlaneTracing:
    def __init__(self, sink: SpanSink) -> None:
        self._sink = sink

    # ingress -----------------------------------------------------------------------------
    def ingress(self, broker: str, headers: dict[str, bytes]) -> IngressSpan:
        """Open the ingress span of a record about to be written, and put its context in
        the record's traceparent."""
        parent = parse_traceparent(_text(headers.get(_KAFKA_TRACEPARENT)))
        trace_id, parent_id = parent if parent else (_trace_id(), None)
        span = IngressSpan(trace_id, _span_id(), parent_id, time.time_ns(), {
            ROLE: Role.INGRESS.value, BROKER: broker,
            EVENT_TYPE: _text(headers.get("ce_type")) or "",
            EVENT_ID: _text(headers.get("ce_id")) or ""})
        runid = _text(headers.get(f"ce_{RUNID}"))
        if runid:
            span.attributes[RUNID_ATTRIBUTE] = runid
        headers[_KAFKA_TRACEPARENT] = format_traceparent(trace_id, span.span_id).encode()
        return span

    def ingress_settled(self, span: IngressSpan, error: BaseException | None) -> None:
        """Kafka acknowledged the write, or failed it."""
        self._sink.record(f"ingress {span.attributes[BROKER]}", span.trace_id, span.span_id,
                          span.parent_id, span.start_ns, time.time_ns(), span.attributes,
                          f"{type(error).__name__}: {error}" if error else None)

    # delivery ----------------------------------------------------------------------------
    def delivery(self, trigger: str, service: str,
                 headers: Mapping[str, str]) -> DeliveryTrace | None:
        """The trace of a record's hop to a Trigger's subscriber, from its HTTP headers;
        None for a record that carries no trace context (not written by a traced ingress)."""
        parent = _own_context(headers.get(_HTTP_TRACEPARENT))
        if parent is None:
            return None
        return DeliveryTrace(parent[0], parent[1], _arrival_ns(headers), {
            TRIGGER: trigger, SERVICE: service, EVENT_TYPE: headers.get("ce-type", ""),
            EVENT_ID: headers.get("ce-id", "")})

    def attempt(self, trace: DeliveryTrace, headers: Mapping[str, str]) -> tuple[dict[str, str],
                                                                                   str]:
        """Open the next attempt's span: the headers to send (carrying its context) and
        its id. The first attempt also closes the wait in Kafka."""
        now = time.time_ns()
        if not trace.queued:
            trace.queued = True
            if trace.arrived_ns is not None:
                self._sink.record(f"queue {trace.attributes[TRIGGER]}", trace.trace_id,
                                  _span_id(), trace.parent_id, trace.arrived_ns, now, {
                                      ROLE: Role.QUEUE.value, TRIGGER: trace.attributes[TRIGGER],
                                      EVENT_ID: trace.attributes[EVENT_ID]})
        trace.attempts += 1
        span_id = _span_id()
        trace.open_attempts[span_id] = (trace.attempts, now)
        sent = dict(headers)
        sent[_HTTP_TRACEPARENT] = format_traceparent(trace.trace_id, span_id)
        return sent, span_id

    def attempt_done(self, trace: DeliveryTrace, span_id: str, status: int | None,
                     error: str | None = None) -> None:
        number, start = trace.open_attempts.pop(span_id)
        attributes: dict[str, AttributeValue] = {ROLE: Role.DELIVERY.value, ATTEMPT: number,
                                                 **trace.attributes}
        if status is not None:
            attributes[STATUS_CODE] = status
        failed = error or (f"HTTP {status}" if status is not None and status >= 300 else None)
        self._sink.record(f"deliver {trace.attributes[TRIGGER]}", trace.trace_id, span_id,
                          trace.parent_id, start, time.time_ns(), attributes, failed)

    def dead_letter_started(self, trace: DeliveryTrace,
                            headers: Mapping[str, str]) -> tuple[dict[str, str], str, int]:
        """The dead letter's headers (the sink's span becomes its child), span id, start."""
        span_id = _span_id()
        sent = dict(headers)
        sent[_HTTP_TRACEPARENT] = format_traceparent(trace.trace_id, span_id)
        return sent, span_id, time.time_ns()

    def dead_lettered(self, trace: DeliveryTrace, span_id: str, start_ns: int,
                      status: int | None, error: str | None) -> None:
        attributes: dict[str, AttributeValue] = {
            ROLE: Role.DEAD_LETTER.value, TRIGGER: trace.attributes[TRIGGER],
            EVENT_ID: trace.attributes[EVENT_ID]}
        if status is not None:
            attributes[STATUS_CODE] = status
        self._sink.record(f"dead-letter {trace.attributes[TRIGGER]}", trace.trace_id, span_id,
                          trace.parent_id, start_ns, time.time_ns(), attributes, error)


def _own_context(value: str | None) -> tuple[str, str] | None:
    """(trace id, span id) of a traceparent: read by position when it is one the ingress
    wrote (format_traceparent's own layout; a third of the cost of a full parse, per
    delivery), through the full parser otherwise."""
    if value is not None and len(value) == _OWN_LENGTH and value.startswith("00-") \
            and value[35] == "-" and value[52] == "-" and value.islower():
        return value[3:35], value[36:52]
    return parse_traceparent(value)


_OWN_LENGTH: Final = len(format_traceparent("0" * 32, "0" * 16))


def _text(raw: bytes | None) -> str | None:
    return raw.decode("utf-8", "replace") if raw is not None else None


def _arrival_ns(headers: Mapping[str, str]) -> int | None:
    stamp = headers.get(f"ce-{KNATIVE_ARRIVALTIME}")
    if not stamp:
        return None
    try:
        return int(datetime.fromisoformat(stamp).timestamp() * 1_000_000) * 1000
    except ValueError:
        return None


__all__ = ["DataPlaneTracing", "DeliveryTrace", "IngressSpan", "SpanSink"]
