"""A run's spans read as hops: queue wait, cold start, handler time and attempts per hop."""

from __future__ import annotations

import itertools
from typing import Any

from troupe.traces import (
    ATTEMPT,
    EVENT_TYPE,
    ROLE,
    SERVICE,
    TRIGGER,
    Role,
    SpanRecord,
    hops_of,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
_ids = itertools.count(1)
MS = 1_000_000


def span(role: Role, parent: SpanRecord | None, start_ms: int, end_ms: int, *,
         service: str = "troupe-broker", error: str | None = None, **attributes: Any
         ) -> SpanRecord:
    return SpanRecord(TRACE, f"{next(_ids):016x}", parent.span_id if parent else None,
                      role.value, service, start_ms * MS, end_ms * MS, error,
                      {ROLE: role.value, **attributes})


def test_a_retried_delivery_is_one_hop_with_each_attempt_its_queue_wait_and_cold_start() -> None:
    ingress = span(Role.INGRESS, None, 0, 3)
    queue = span(Role.QUEUE, ingress, 0, 40, **{TRIGGER: "ingest"})
    failed = span(Role.DELIVERY, ingress, 40, 45, error="503", **{
        TRIGGER: "ingest", ATTEMPT: 1, EVENT_TYPE: "dev.troupe.data.arrived",
        SERVICE: "ingest"})
    retried = span(Role.DELIVERY, ingress, 145, 900, **{
        TRIGGER: "ingest", ATTEMPT: 2, EVENT_TYPE: "dev.troupe.data.arrived",
        SERVICE: "ingest"})
    cold = span(Role.COLD_START, retried, 146, 646, service="troupe-activator",
                **{SERVICE: "ingest"})
    handler = span(Role.HANDLER, retried, 650, 890, service="ingest")

    (hop,) = hops_of([handler, cold, retried, failed, queue, ingress])

    assert hop.service == "ingest" and hop.trigger == "ingest"
    assert hop.event_type == "dev.troupe.data.arrived"
    assert hop.attempts == 2 and hop.retries == 1
    assert hop.queue_wait_s == 0.040
    assert hop.cold_start_s == 0.5
    assert hop.handler_s == 0.24
    assert hop.start_ns == 0 and hop.end_ns == 900 * MS
    assert hop.outcome == "ok" and not hop.dead_lettered
    assert hop.handler_span == handler.span_id


def test_hops_of_a_chain_come_in_the_order_they_began_and_a_dead_letter_is_its_own_outcome(
) -> None:
    first_in = span(Role.INGRESS, None, 0, 1)
    first_try = span(Role.DELIVERY, first_in, 5, 10, **{TRIGGER: "ingest", SERVICE: "ingest"})
    first = span(Role.HANDLER, first_try, 6, 9, service="ingest")
    reply_in = span(Role.INGRESS, first, 9, 10)
    second_try = span(Role.DELIVERY, reply_in, 12, 20, error="422",
                      **{TRIGGER: "trainer", SERVICE: "trainer"})
    refused = span(Role.HANDLER, second_try, 13, 19, service="trainer", error="422 invalid-data")
    dead = span(Role.DEAD_LETTER, reply_in, 20, 22, **{TRIGGER: "trainer"})

    hops = hops_of([dead, refused, second_try, reply_in, first, first_try, first_in])

    assert [hop.service for hop in hops] == ["ingest", "trainer"]
    assert hops[1].dead_lettered and hops[1].outcome == "dead-lettered"
    assert hops[1].queue_wait_s is None  # no queue span recorded for it
    assert hops[0].cold_start_s is None


def test_without_data_plane_spans_a_hop_is_a_handler_and_the_cold_start_beside_it() -> None:
    upstream = span(Role.HANDLER, None, 0, 10, service="ingest")
    cold = span(Role.COLD_START, upstream, 11, 311, service="troupe-activator",
                **{SERVICE: "trainer"})
    other_cold = span(Role.COLD_START, upstream, 11, 211, service="troupe-activator",
                      **{SERVICE: "monitor"})
    trainer = span(Role.HANDLER, upstream, 312, 400, service="trainer")

    hops = hops_of([trainer, other_cold, cold, upstream])

    assert [hop.service for hop in hops] == ["ingest", "trainer"]
    assert hops[1].cold_start_s == 0.3  # its own service's, not the monitor's
    assert hops[1].start_ns == 11 * MS
    assert hops[1].attempts == 0 and hops[1].queue_wait_s is None
