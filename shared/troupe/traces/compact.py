"""The data plane's spans as compact entries: one flat JSON array per hop step, made into
span records only when someone reads them.

The data plane leaves three or four spans per event (its ingress, the wait in Kafka, each
delivery attempt), thousands a second under load, and almost none of them is ever looked
at. Building a SpanRecord for each and encoding it as a JSON object cost it a fifth of its
throughput; a flat array of the same facts costs a fraction of that to make and to encode,
and one entry holds both the wait in Kafka and the attempt that ended it. The span file
holds entries and records side by side: a line is a record (a JSON object) or a batch of
entries (an array of arrays, one line per flush, encoded in one call), and
`spans_of_entry` turns an entry into the records it stands for.

Each entry starts with its kind and the service that recorded it:
- `["ingress", service, trace, span, parent|null, start, end, broker, type, id,
  runid|null, error|null]`
- `["delivery", service, trace, parent, span, attempt, start, end, status|null,
  error|null, trigger, subscriber, type, id, arrived|null]`: the attempt, and when
  `arrived` (the broker's knativearrivaltime, as it wrote it) is set, the wait in Kafka
  from then until the attempt's start; that span's id is derived from the attempt's.
- `["dead-letter", service, trace, parent, span, start, end, status|null, error|null,
  trigger, id]`
Times are Unix epoch nanoseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from .records import (
    ATTEMPT,
    BROKER,
    EVENT_ID,
    EVENT_TYPE,
    ROLE,
    RUNID,
    SERVICE,
    STATUS_CODE,
    TRIGGER,
    AttributeValue,
    Role,
    SpanRecord,
)

INGRESS: Final = "ingress"
DELIVERY: Final = "delivery"
DEAD_LETTER: Final = "dead-letter"
# Role's values as plain strings: read once, not per span.
_INGRESS_ROLE: Final = Role.INGRESS.value
_QUEUE_ROLE: Final = Role.QUEUE.value
_DELIVERY_ROLE: Final = Role.DELIVERY.value
_DEAD_LETTER_ROLE: Final = Role.DEAD_LETTER.value

Entry = Sequence[Any]


def spans_of_entry(entry: Entry) -> list[SpanRecord]:
    """The span records an entry stands for; ValueError or TypeError for what is not one."""
    kind = entry[0] if entry else None
    if kind == INGRESS:
        return [_ingress(*entry[1:])]
    if kind == DELIVERY:
        return _delivery(*entry[1:])
    if kind == DEAD_LETTER:
        return [_dead_letter(*entry[1:])]
    raise ValueError(f"not a span entry: {str(entry)[:80]}")


def trace_of_entry(entry: Entry) -> str:
    return str(entry[2])


def runid_of_entry(entry: Entry) -> str | None:
    """Only the ingress knows the run: the rest of the hop shares its trace."""
    return entry[10] if entry[0] == INGRESS and entry[10] else None


def _ingress(service: str, trace_id: str, span_id: str, parent_id: str | None, start: int,
             end: int, broker: str, event_type: str, event_id: str, runid: str | None,
             error: str | None) -> SpanRecord:
    attributes: dict[str, AttributeValue] = {ROLE: _INGRESS_ROLE, BROKER: broker,
                                             EVENT_TYPE: event_type, EVENT_ID: event_id}
    if runid:
        attributes[RUNID] = runid
    return SpanRecord(trace_id, span_id, parent_id, f"ingress {broker}", service, int(start),
                      int(end), error, attributes)


def _delivery(service: str, trace_id: str, parent_id: str, span_id: str, attempt: int,
              start: int, end: int, status: int | None, error: str | None, trigger: str,
              subscriber: str, event_type: str, event_id: str,
              arrived: str | None) -> list[SpanRecord]:
    spans = []
    arrived_ns = _arrival_ns(arrived)
    if arrived_ns is not None:
        spans.append(SpanRecord(trace_id, queue_span_id(span_id), parent_id, f"queue {trigger}",
                                service, arrived_ns, int(start), None,
                                {ROLE: _QUEUE_ROLE, TRIGGER: trigger, EVENT_ID: event_id}))
    attributes: dict[str, AttributeValue] = {
        ROLE: _DELIVERY_ROLE, ATTEMPT: int(attempt), TRIGGER: trigger, SERVICE: subscriber,
        EVENT_TYPE: event_type, EVENT_ID: event_id}
    if status is not None:
        attributes[STATUS_CODE] = int(status)
    failed = error or (f"HTTP {status}" if status is not None and status >= 300 else None)
    spans.append(SpanRecord(trace_id, span_id, parent_id, f"deliver {trigger}", service,
                            int(start), int(end), failed, attributes))
    return spans


def _dead_letter(service: str, trace_id: str, parent_id: str, span_id: str, start: int,
                 end: int, status: int | None, error: str | None, trigger: str,
                 event_id: str) -> SpanRecord:
    attributes: dict[str, AttributeValue] = {ROLE: _DEAD_LETTER_ROLE, TRIGGER: trigger,
                                             EVENT_ID: event_id}
    if status is not None:
        attributes[STATUS_CODE] = int(status)
    return SpanRecord(trace_id, span_id, parent_id, f"dead-letter {trigger}", service,
                      int(start), int(end), error, attributes)


# The wait in Kafka's span id, from its attempt's: one to one, so ids stay unique in a trace.
_QUEUE_MASK: Final = 0x7175657565000000


def queue_span_id(attempt_span_id: str) -> str:
    return f"{(int(attempt_span_id, 16) ^ _QUEUE_MASK) or 1:016x}"


def _arrival_ns(stamp: str | None) -> int | None:
    if not stamp:
        return None
    try:
        return int(datetime.fromisoformat(stamp).timestamp() * 1_000_000) * 1000
    except ValueError:
        return None
