"""Events written through the ingress are handed to their Triggers as soon as Kafka
acknowledges them; records another producer writes to the topic come through fetches."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from kafka import KafkaProducer
from support.polling import wait_until
from troupe.local.eventing.broker import DataPlane

from .conftest import NAMESPACE, binary_headers, broker_resource, trigger_resource, unique
from .sink import RecordingSink

pytestmark = pytest.mark.kafka
THROUGH_INGRESS = 20
FROM_ELSEWHERE = 5


def _broker_status(plane: DataPlane, name: str) -> dict[str, Any]:
    return next(b for b in plane.status()["brokers"] if b["name"] == name)


def _taken(plane: DataPlane, name: str, handovers: int) -> dict[str, Any] | None:
    """The broker's status once it counts `handovers` records taken in all, else None."""
    status = _broker_status(plane, name)
    counted = status["taken_on_ack"] + status["taken_from_fetch"]
    return status if counted == handovers else None


def test_own_writes_are_taken_on_acknowledgement_and_others_from_fetches(
        kafka_servers: str, plane: DataPlane, fresh_sink: RecordingSink) -> None:
    broker = unique("handover")
    spec = plane.add_broker(broker_resource(broker))
    plane.add_trigger(trigger_resource(f"{broker}-all", broker, f"{fresh_sink.url}/handover"))
    assert plane.wait_ready(30)
    url = plane.broker_url(NAMESPACE, broker)
    for number in range(THROUGH_INGRESS):
        response = requests.post(url, headers=binary_headers(f"in-{number}"), data=b"{}",
                                 timeout=10)
        assert response.status_code == 202
    ingress_ids = {f"in-{n}" for n in range(THROUGH_INGRESS)}
    wait_until(lambda: ingress_ids <= set(fresh_sink.ids("/handover")), 30, "the ingress events")
    # A fetch racing an acknowledgement may take a record first; either way each record
    # is taken exactly once. A handover is counted just after it starts the delivery, so
    # the sink can have an event a moment before its count: wait for the counts.
    before = wait_until(lambda: _taken(plane, broker, THROUGH_INGRESS), 15,
                        lambda: f"{THROUGH_INGRESS} handovers; {_broker_status(plane, broker)}")
    assert before["taken_on_ack"] > 0

    producer = KafkaProducer(bootstrap_servers=kafka_servers, acks="all")
    for number in range(FROM_ELSEWHERE):
        producer.send(spec.topic, value=b"{}", headers=[
            ("ce_specversion", b"1.0"), ("ce_id", f"out-{number}".encode()),
            ("ce_source", b"/elsewhere"), ("ce_type", b"dev.example.test"),
            ("content-type", b"application/json")])
    producer.flush()
    producer.close()
    outside_ids = {f"out-{n}" for n in range(FROM_ELSEWHERE)}
    wait_until(lambda: outside_ids <= set(fresh_sink.ids("/handover")), 30,
               "the events another producer wrote")
    total = THROUGH_INGRESS + FROM_ELSEWHERE
    after = wait_until(lambda: _taken(plane, broker, total), 15,
                       lambda: f"{total} handovers; {_broker_status(plane, broker)}")
    assert after["taken_on_ack"] == before["taken_on_ack"]
    assert after["taken_from_fetch"] == before["taken_from_fetch"] + FROM_ELSEWHERE
    assert sorted(fresh_sink.ids("/handover")) == sorted(ingress_ids | outside_ids)
