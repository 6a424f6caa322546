"""The data plane's spans, on the event's trace: the ingress, the wait in Kafka until
dispatch, each delivery attempt (a retried delivery shows every one), the dead letter; and
the context each attempt sends, so the subscriber's span is the attempt's child."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from support.polling import wait_until
from troupe.local.eventing.broker import DataPlane
from troupe.local.observability.span_recorder import SpanRecorder
from troupe.local.observability.span_store import SpanStore
from troupe.traces import (
    ATTEMPT,
    EVENT_ID,
    ROLE,
    STATUS_CODE,
    TRIGGER,
    Role,
    SpanRecord,
    hops_of,
    parse_traceparent,
    read_span_file,
)

from .conftest import NAMESPACE, binary_headers, broker_resource, trigger_resource, unique
from .sink import RecordingSink

pytestmark = pytest.mark.kafka
FAST = {"backoffPolicy": "linear", "backoffDelay": "PT0.01S"}
SENT_CONTEXT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def traced(kafka_servers: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DataPlane, SpanStore]]:
    store = SpanStore(tmp_path_factory.mktemp("spans") / "spans.jsonl").open()
    recorder = SpanRecorder(store, "troupe-broker", interval=0.05).start()
    with DataPlane(kafka_servers, default_namespace=NAMESPACE, spans=recorder) as plane:
        yield plane, store
    recorder.close()
    store.close()


def deliver_one(plane: DataPlane, sink: RecordingSink, path: str, statuses: tuple[int, ...],
                delivery: dict[str, object], **extensions: str) -> tuple[str, str]:
    broker = unique("traced")
    plane.add_broker(broker_resource(broker))
    trigger = f"{broker}-t"
    plane.add_trigger(trigger_resource(trigger, broker, f"{sink.url}/{path}", delivery=delivery))
    assert plane.wait_ready(30)
    sink.answer_next(*statuses)
    event_id = unique("e")
    answer = requests.post(plane.broker_url(NAMESPACE, broker), data=b'{"n": 1}', timeout=5,
                           headers=binary_headers(event_id, **extensions))
    assert answer.status_code == 202, answer.text
    return trigger, event_id


def spans_of(store: SpanStore, event_id: str, roles: set[Role]) -> list[SpanRecord]:
    spans = [span for run in store.runs() for span in store.run(run.runid)]
    found = {span.span_id: span for span in spans
             if span.attributes.get(EVENT_ID) == event_id and span.role in roles}
    return sorted(found.values(), key=lambda span: span.start_ns)


def test_a_retried_delivery_shows_each_attempt_under_the_ingress_on_the_senders_trace(
    traced: tuple[DataPlane, SpanStore], fresh_sink: RecordingSink,
) -> None:
    plane, store = traced
    trigger, event_id = deliver_one(plane, fresh_sink, "retried", (503, 500), {
        "retry": 3, **FAST}, traceparent=SENT_CONTEXT, runid="run-retried")
    wanted = {Role.INGRESS, Role.QUEUE, Role.DELIVERY}
    spans = wait_until(lambda: len(s := spans_of(store, event_id, wanted)) == 5 and s, 15,
                       lambda: f"5 spans, got {spans_of(store, event_id, wanted)}")

    # The wait in Kafka starts at the broker's arrival time, a moment before the ingress
    # span opens: find each by its role.
    (ingress,) = [span for span in spans if span.role == Role.INGRESS]
    rest = [span for span in spans if span is not ingress]
    assert ingress.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert ingress.parent_id == "00f067aa0ba902b7"  # the sender's span
    queue = next(span for span in rest if span.role == Role.QUEUE)
    attempts = [span for span in rest if span.role == Role.DELIVERY]
    assert [span.attributes[ATTEMPT] for span in attempts] == [1, 2, 3]
    assert [span.attributes[STATUS_CODE] for span in attempts] == [503, 500, 202]
    assert [span.error for span in attempts] == ["HTTP 503", "HTTP 500", None]
    assert all(span.parent_id == ingress.span_id for span in [queue, *attempts])
    assert all(span.attributes[TRIGGER] == trigger for span in [queue, *attempts])
    assert queue.end_ns <= attempts[0].start_ns + 1_000_000  # dispatch ends the wait
    # Each attempt sent its own context: the subscriber's span would be its child.
    sent = [parse_traceparent(r.headers["ce-traceparent"]) for r in fresh_sink.paths("/retried")]
    assert sent == [(ingress.trace_id, span.span_id) for span in attempts]
    (hop,) = hops_of(store.run("run-retried"))
    assert (hop.attempts, hop.retries, hop.outcome) == (3, 2, "ok")
    assert hop.queue_wait_s is not None and hop.queue_wait_s >= 0
    # The span file, which `troupe timeline` reads, holds the same spans as memory.
    assert store.path is not None
    kept = [span for span in read_span_file(store.path)
            if span.attributes.get(EVENT_ID) == event_id and span.role in wanted]
    assert sorted(kept, key=lambda span: span.start_ns) == spans


def test_a_dead_letter_has_its_span_and_an_event_without_context_starts_a_trace(
    traced: tuple[DataPlane, SpanStore], fresh_sink: RecordingSink,
) -> None:
    plane, store = traced
    trigger, event_id = deliver_one(plane, fresh_sink, "refused", (422,), {
        "retry": 3, **FAST, "deadLetterSink": {"uri": f"{fresh_sink.url}/dls"}},
        runid="run-refused")
    wanted = {Role.INGRESS, Role.DELIVERY, Role.DEAD_LETTER}
    spans = wait_until(lambda: len(s := spans_of(store, event_id, wanted)) == 3 and s, 15,
                       "3 spans")
    ingress, attempt, dead = (next(s for s in spans if s.role == role)
                              for role in (Role.INGRESS, Role.DELIVERY, Role.DEAD_LETTER))

    assert ingress.parent_id is None  # no traceparent came in: the ingress starts the trace
    assert (attempt.role, attempt.attributes[STATUS_CODE]) == (Role.DELIVERY, 422)
    assert dead.role == Role.DEAD_LETTER and dead.error is None
    assert dead.attributes[STATUS_CODE] == 202
    assert {attempt.parent_id, dead.parent_id} == {ingress.span_id}
    (letter,) = fresh_sink.paths("/dls")
    assert parse_traceparent(letter.headers["ce-traceparent"]) == (ingress.trace_id,
                                                                   dead.span_id)
    assert dead.attributes[ROLE] == "dead-letter" and dead.attributes[TRIGGER] == trigger
    (hop,) = hops_of(store.run("run-refused"))
    assert (hop.attempts, hop.dead_lettered, hop.outcome) == (1, True, "dead-lettered")
