"""Reading the event log from a time on, on real Tansu: what `troupe events --since` and
the demo's watcher rely on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from kafka import KafkaProducer
from support.polling import wait_until
from troupe.client.eventlog import read_events
from troupe.events import DATA_ARRIVED, make_event, to_kafka

pytestmark = pytest.mark.kafka


def _write(producer: KafkaProducer, topic: str, event_id: str) -> None:
    event = make_event(DATA_ARRIVED, {"uri": "x.csv", "target": "label"}, event_id=event_id,
                       source="/tests/eventlog")
    message = to_kafka(event)
    producer.send(topic, value=message.value, key=message.key,
                  headers=list(message.headers.items())).get(timeout=30)


def test_events_before_since_are_left_out(kafka_servers: str) -> None:
    topic = f"eventlog-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=kafka_servers)
    try:
        _write(producer, topic, "old")
        since = datetime.now(UTC)
        # The broker stamps records in milliseconds: the next write must be later than since.
        wait_until(lambda: datetime.now(UTC).timestamp() - since.timestamp() > 0.005)
        _write(producer, topic, "new")
    finally:
        producer.close()
    everything = [e.event.get_id() for e in read_events(kafka_servers, topic)]
    assert sorted(everything) == ["new", "old"]  # partitions interleave
    later = [e.event.get_id() for e in read_events(kafka_servers, topic, since=since)]
    assert later == ["new"]
