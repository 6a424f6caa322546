"""A run's spans read as hops: each delivery of an event to a function, and what it cost.

A hop's time splits into the wait in Kafka until a Trigger dispatched the event (queue
wait), the wait for a function process to start (cold start), and the handler's own time;
between them lie the delivery attempts, retries included. Spans say this directly when the
data plane recorded them (local runs). Where it did not (a cluster without Knative's own
tracing), a hop is a handler span and the cold starts recorded beside it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .records import EVENT_ID, EVENT_TYPE, SERVICE, TRIGGER, Role, SpanRecord


@dataclass(frozen=True)
class Hop:
    service: str  # the function that handled the event, or the Trigger's subscriber
    event_type: str | None
    event_id: str | None
    trigger: str | None
    start_ns: int  # arrival at the broker when known, else the first attempt or handler
    end_ns: int
    queue_wait_s: float | None
    cold_start_s: float | None  # None: no process had to start for this hop
    handler_s: float | None  # None: no handler span (the subscriber is not traced)
    attempts: int  # delivery attempts; 0 when the data plane was not traced
    dead_lettered: bool
    outcome: str  # ok, dead-lettered, or what failed
    trace_id: str
    handler_span: str | None

    @property
    def retries(self) -> int:
        return max(self.attempts - 1, 0)

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "event_type": self.event_type,
                "event_id": self.event_id, "trigger": self.trigger,
                "start_ns": self.start_ns, "end_ns": self.end_ns,
                "queue_wait_s": self.queue_wait_s, "cold_start_s": self.cold_start_s,
                "handler_s": self.handler_s, "attempts": self.attempts,
                "retries": self.retries, "dead_lettered": self.dead_lettered,
                "outcome": self.outcome, "trace_id": self.trace_id,
                "handler_span": self.handler_span}


def hops_of(spans: Iterable[SpanRecord]) -> list[Hop]:
    """The hops among `spans` (the spans of one run's traces), in the order they began."""
    spans = list(spans)
    children: dict[str | None, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        children[span.parent_id].append(span)
    hops: list[Hop] = []
    placed: set[str] = set()
    for (parent, trigger), attempts in _delivery_groups(spans).items():
        hop = _delivered_hop(parent, trigger, attempts, children)
        if hop.handler_span is not None:
            placed.add(hop.handler_span)
        hops.append(hop)
    for span in spans:
        if span.role == Role.HANDLER and span.span_id not in placed:
            hops.append(_handled_hop(span, children))
    return sorted(hops, key=lambda hop: (hop.start_ns, hop.end_ns))


def _delivery_groups(spans: list[SpanRecord]) -> dict[tuple[str | None, str | None],
                                                      list[SpanRecord]]:
    """Delivery attempts of one event to one Trigger: they share a parent and a Trigger."""
    groups: dict[tuple[str | None, str | None], list[SpanRecord]] = defaultdict(list)
    for span in spans:
        if span.role == Role.DELIVERY:
            trigger = span.attributes.get(TRIGGER)
            groups[(span.parent_id, str(trigger) if trigger is not None else None)].append(span)
    for attempts in groups.values():
        attempts.sort(key=lambda span: span.start_ns)
    return groups


def _sibling(children: dict[str | None, list[SpanRecord]], parent: str | None, role: Role,
             trigger: str | None) -> SpanRecord | None:
    return next((span for span in children[parent] if span.role == role
                 and span.attributes.get(TRIGGER) == trigger), None)


def _delivered_hop(parent: str | None, trigger: str | None, attempts: list[SpanRecord],
                   children: dict[str | None, list[SpanRecord]]) -> Hop:
    under = [child for attempt in attempts for child in children[attempt.span_id]]
    handlers = [span for span in under if span.role == Role.HANDLER]
    handler = handlers[-1] if handlers else None
    colds = [span for span in under if span.role == Role.COLD_START]
    queue = _sibling(children, parent, Role.QUEUE, trigger)
    dead = _sibling(children, parent, Role.DEAD_LETTER, trigger)
    last = attempts[-1]
    if dead is not None:
        outcome = "dead-lettered"
    elif handler is not None and handler.error:
        outcome = handler.error
    elif last.error:
        outcome = last.error
    else:
        outcome = "ok"
    first = queue or attempts[0]
    ends = [span.end_ns for span in (*attempts, *(s for s in (dead,) if s))]
    return Hop(
        service=handler.service if handler else str(last.attributes.get(SERVICE, trigger)),
        event_type=_text(last.attributes.get(EVENT_TYPE)),
        event_id=_text(last.attributes.get(EVENT_ID)),
        trigger=trigger,
        start_ns=first.start_ns,
        end_ns=max(ends),
        queue_wait_s=queue.duration_s if queue else None,
        cold_start_s=sum(span.duration_s for span in colds) if colds else None,
        handler_s=handler.duration_s if handler else None,
        attempts=len(attempts),
        dead_lettered=dead is not None,
        outcome=outcome,
        trace_id=last.trace_id,
        handler_span=handler.span_id if handler else None,
    )


def _handled_hop(handler: SpanRecord, children: dict[str | None, list[SpanRecord]]) -> Hop:
    """A handler span with no delivery span above it: the data plane was not traced."""
    colds = [span for span in children[handler.parent_id] if span.role == Role.COLD_START
             and span.attributes.get(SERVICE) == handler.service]
    start = min([handler.start_ns, *(span.start_ns for span in colds)])
    return Hop(
        service=handler.service,
        event_type=_text(handler.attributes.get(EVENT_TYPE)),
        event_id=_text(handler.attributes.get(EVENT_ID)),
        trigger=None,
        start_ns=start,
        end_ns=handler.end_ns,
        queue_wait_s=None,
        cold_start_s=sum(span.duration_s for span in colds) if colds else None,
        handler_s=handler.duration_s,
        attempts=0,
        dead_lettered=False,
        outcome=handler.error or "ok",
        trace_id=handler.trace_id,
        handler_span=handler.span_id,
    )


def _text(value: object) -> str | None:
    return str(value) if value is not None else None

