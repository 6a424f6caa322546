"""Delivery: retries, backoff, Retry-After, dead letters, replies, ordering, run-time changes."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cloudevents.core.v1.event import CloudEvent
from support.polling import wait_until
from troupe.local.eventing.broker import DataPlane

from .conftest import (
    NAMESPACE,
    binary_headers,
    broker_resource,
    trigger_resource,
    unique,
)
from .sink import RecordingSink

pytestmark = pytest.mark.kafka
FAST = {"backoffPolicy": "linear", "backoffDelay": "PT0.01S"}


@pytest.fixture
def broker(plane: DataPlane) -> Iterator[str]:
    name = unique("delivery")
    plane.add_broker(broker_resource(name))
    yield name
    for trigger in plane.triggers():
        if trigger.broker == name:
            plane.remove_trigger(NAMESPACE, trigger.name)
    plane.remove_broker(NAMESPACE, name)


def add_trigger(plane: DataPlane, broker: str, path: str, **options: Any) -> str:
    name = f"{broker}-{path.rsplit('/', 1)[-1]}"
    plane.add_trigger(trigger_resource(name, broker, path, **options))
    assert plane.wait_ready(30)
    return name


def publish(plane: DataPlane, broker: str, event_id: str, event_type: str = "dev.example.test",
            **extensions: str) -> None:
    response = requests.post(plane.broker_url(NAMESPACE, broker), data=b'{"n": 1}', timeout=5,
                             headers=binary_headers(event_id, event_type, **extensions))
    assert response.status_code == 202, response.text


def test_retry_3_with_3_failures_then_success_is_delivered(
        plane: DataPlane, broker: str, fresh_sink: RecordingSink) -> None:
    dls = f"{fresh_sink.url}/dls"
    add_trigger(plane, broker, f"{fresh_sink.url}/sub",
                delivery={"retry": 3, **FAST, "deadLetterSink": {"uri": dls}})
    fresh_sink.answer_next(500, 503, 404)
    publish(plane, broker, "r-1")
    wait_until(lambda: len(fresh_sink.paths("/sub")) == 4, message="4 attempts")
    status = wait_until(lambda: (s := plane.trigger_status(NAMESPACE, f"{broker}-sub"))
                        .delivered == 1 and s, message="the delivery to be counted")
    assert status.retries == 3
    assert fresh_sink.paths("/dls") == []


def test_exhausted_retries_go_to_the_dead_letter_sink_with_error_extensions(
        plane: DataPlane, broker: str, fresh_sink: RecordingSink) -> None:
    add_trigger(plane, broker, f"{fresh_sink.url}/sub",
                delivery={"retry": 3, **FAST,
                          "deadLetterSink": {"uri": f"{fresh_sink.url}/dls"}})
    fresh_sink.answer_next(500, 500, 502, 503)
    publish(plane, broker, "d-1")
    letter = wait_until(lambda: fresh_sink.paths("/dls"), message="the dead letter")[0]
    assert len(fresh_sink.paths("/sub")) == 4
    event = letter.event
    assert event.get_id() == "d-1"
    assert event.get_data() == {"n": 1}
    assert event.get_extension("knativeerrordest") == f"{fresh_sink.url}/sub"
    assert event.get_extension("knativeerrorcode") == "503"
    assert base64.b64decode(event.get_extension("knativeerrordata")) == b"scripted 503"


def test_422_goes_to_the_dead_letter_sink_without_retry(
        plane: DataPlane, broker: str, fresh_sink: RecordingSink) -> None:
    add_trigger(plane, broker, f"{fresh_sink.url}/sub",
                delivery={"retry": 5, **FAST,
                          "deadLetterSink": {"uri": f"{fresh_sink.url}/dls"}})
    fresh_sink.answer_next(422)
    publish(plane, broker, "p-1")
    letter = wait_until(lambda: fresh_sink.paths("/dls"), message="the dead letter")[0]
    assert letter.event.get_extension("knativeerrorcode") == "422"
    assert len(fresh_sink.paths("/sub")) == 1


def test_connection_errors_are_retried_then_dead_lettered(
        plane: DataPlane, broker: str, fresh_sink: RecordingSink) -> None:
    nobody = "http://127.0.0.1:9/unreachable"  # the discard port: nothing listens there
    add_trigger(plane, broker, nobody,
                delivery={"retry": 2, **FAST, "deadLetterSink": {"uri": f"{fresh_sink.url}/dls"}})
    publish(plane, broker, "c-1")
    letter = wait_until(lambda: fresh_sink.paths("/dls"), message="the dead letter")[0]
    assert letter.event.get_extension("knativeerrordest") == nobody
    assert letter.event.get_extension("knativeerrorcode") is None
    status = plane.trigger_status(NAMESPACE, f"{broker}-unreachable")
    assert status.retries == 2


def test_a_triggers_delivery_overrides_its_brokers(plane: DataPlane,
                                                   fresh_sink: RecordingSink) -> None:
    broker = unique("override")
    plane.add_broker(broker_resource(broker, delivery={
        "retry": 0, "deadLetterSink": {"uri": f"{fresh_sink.url}/broker-dls"}}))
    own = add_trigger(plane, broker, f"{fresh_sink.url}/own", delivery={
        "retry": 2, **FAST, "deadLetterSink": {"uri": f"{fresh_sink.url}/trigger-dls"}})
    fresh_sink.answer_next(500, 500, 500)
    publish(plane, broker, "o-1")
    wait_until(lambda: fresh_sink.paths("/trigger-dls"), message="the trigger's dead letter")
    assert len(fresh_sink.paths("/own")) == 3
    plane.remove_trigger(NAMESPACE, own)
    inherits = add_trigger(plane, broker, f"{fresh_sink.url}/inherits")
    fresh_sink.answer_next(500)
    publish(plane, broker, "o-2")
    wait_until(lambda: fresh_sink.paths("/broker-dls"), message="the broker's dead letter")
    assert fresh_sink.ids("/inherits") == ["o-2"]  # retry: 0 from the Broker
    assert fresh_sink.ids("/trigger-dls") == ["o-1"]
    plane.remove_trigger(NAMESPACE, inherits)
    plane.remove_broker(NAMESPACE, broker)


def test_retry_after_is_honoured(plane: DataPlane, broker: str,
                                 fresh_sink: RecordingSink) -> None:
    add_trigger(plane, broker, f"{fresh_sink.url}/sub", delivery={"retry": 2, **FAST})
    fresh_sink.answer_next(429, headers={"Retry-After": "1"})
    publish(plane, broker, "ra-1")
    attempts = wait_until(lambda: len(fresh_sink.paths("/sub")) == 2 and fresh_sink.paths("/sub"),
                          message="the retry")
    assert attempts[1].at - attempts[0].at >= 0.95


def test_a_reply_is_republished_and_reaches_the_next_trigger(
        plane: DataPlane, broker: str, fresh_sink: RecordingSink) -> None:
    def reply(event: CloudEvent) -> CloudEvent | None:
        if event.get_type() != "dev.example.question":
            return None
        return CloudEvent({"id": f"answer-to-{event.get_id()}", "source": "/answerer",
                           "type": "dev.example.answer", "runid": "run-1"}, {"answer": 42})

    fresh_sink.replier = reply
    add_trigger(plane, broker, f"{fresh_sink.url}/first",
                filter_attributes={"type": "dev.example.question"})
    add_trigger(plane, broker, f"{fresh_sink.url}/second",
                filter_attributes={"type": "dev.example.answer"})
    publish(plane, broker, "q-1", "dev.example.question")
    received = wait_until(lambda: fresh_sink.paths("/second"), message="the reply")[0]
    event = received.event
    assert (event.get_id(), event.get_data()) == ("answer-to-q-1", {"answer": 42})
    assert event.get_extension("runid") == "run-1"
    assert event.get_extension("knativebrokerttl") == "254"


def test_202_is_never_a_reply(plane: DataPlane, broker: str, fresh_sink: RecordingSink) -> None:
    add_trigger(plane, broker, f"{fresh_sink.url}/all")
    fresh_sink.answer_next(202, headers={"ce-id": "x", "ce-type": "dev.example.test",
                                         "ce-source": "/x", "ce-specversion": "1.0"})
    publish(plane, broker, "n-1")
    publish(plane, broker, "n-2")
    wait_until(lambda: len(fresh_sink.paths("/all")) >= 2, message="both deliveries")
    wait_until(lambda: plane.trigger_status(NAMESPACE, f"{broker}-all").delivered == 2,
               message="both deliveries counted")
    assert sorted(fresh_sink.ids("/all")) == ["n-1", "n-2"]
    assert plane.trigger_status(NAMESPACE, f"{broker}-all").replies == 0


def test_the_ttl_stops_a_reply_loop(plane: DataPlane, broker: str,
                                    fresh_sink: RecordingSink) -> None:
    def echo(event: CloudEvent) -> CloudEvent:
        return CloudEvent({"id": f"{event.get_id()}+", "source": "/echo",
                           "type": event.get_type()}, None)

    fresh_sink.replier = echo
    name = add_trigger(plane, broker, f"{fresh_sink.url}/echo")
    publish(plane, broker, "loop", knativebrokerttl="3")
    wait_until(lambda: plane.trigger_status(NAMESPACE, name).delivered == 3,
               message="three hops")
    assert fresh_sink.ids("/echo") == ["loop", "loop+", "loop++"]
    assert [r.headers["ce-knativebrokerttl"] for r in fresh_sink.paths("/echo")] == \
        ["3", "2", "1"]
    assert plane.trigger_status(NAMESPACE, name).replies == 2


def test_ordered_delivery_keeps_the_order_of_one_key(plane: DataPlane, broker: str,
                                                     fresh_sink: RecordingSink) -> None:
    fresh_sink.fail_every = 7  # retries must not reorder
    add_trigger(plane, broker, f"{fresh_sink.url}/ordered", delivery={"retry": 5, **FAST},
                annotations={"kafka.eventing.knative.dev/delivery.order": "ordered"})
    expected = [f"o-{i:03d}" for i in range(200)]
    for event_id in expected:
        publish(plane, broker, event_id, partitionkey="same-key")
    wait_until(lambda: len(set(fresh_sink.ids("/ordered"))) == 200, timeout=60,
               message="200 ordered events")
    first_seen = list(dict.fromkeys(fresh_sink.ids("/ordered")))
    assert first_seen == expected
    # in order means each retry repeats the same event, never skipping ahead
    ids = fresh_sink.ids("/ordered")
    assert all(ids[i] <= ids[i + 1] for i in range(len(ids) - 1))


def test_triggers_can_be_added_and_removed_at_run_time(
        plane: DataPlane, broker: str, fresh_sink: RecordingSink) -> None:
    name = add_trigger(plane, broker, f"{fresh_sink.url}/live")
    publish(plane, broker, "a-1")
    wait_until(lambda: fresh_sink.ids("/live") == ["a-1"], message="the first event")
    assert plane.remove_trigger(NAMESPACE, name)
    keeper = add_trigger(plane, broker, f"{fresh_sink.url}/keeper")
    publish(plane, broker, "a-2")
    wait_until(lambda: fresh_sink.ids("/keeper") == ["a-2"], message="the later trigger")
    assert fresh_sink.ids("/live") == ["a-1"]
    assert not plane.remove_trigger(NAMESPACE, name)
    assert {t.name for t in plane.triggers() if t.broker == broker} == {keeper}
