"""Records a Trigger cannot read never stop its Broker: they are dead-lettered with the
reason and their offsets move on; an unexpected error in the reader is counted, shown and
survived. Records are written straight to the Broker's topic, as any Kafka producer can."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator

import pytest
import requests
from kafka import KafkaProducer, TopicPartition
from support.polling import wait_until
from support.raw_kafka import produce_raw
from troupe.events import KAFKA_RECORD
from troupe.local.eventing.broker import DataPlane
from troupe.local.eventing.broker.progress import PartitionProgress
from troupe.local.eventing.broker.reader import ConsumerSettings, TopicReader

from .conftest import NAMESPACE, binary_headers, broker_resource, broker_with_dead_letters, unique
from .sink import RecordingSink

pytestmark = pytest.mark.kafka

GOOD_HEADERS = [("ce_specversion", b"1.0"), ("ce_type", b"dev.example.test"),
                ("ce_source", b"/tests/poison"), ("content-type", b"application/json")]
# Each is something Kafka accepts and a CloudEvent is not.
POISON: dict[str, tuple[list[tuple[str, bytes | None]], bytes | None]] = {
    "null header": ([*GOOD_HEADERS, ("ce_id", None)], b"{}"),
    "non-UTF-8 header": ([("ce_specversion", b"1.0"), ("ce_id", b"p-2"),
                          ("ce_type", b"dev.example.test"), ("ce_source", b"/\xff\xfe")], b"{}"),
    "empty structured value": ([("content-type", b"application/cloudevents+json")], b""),
    "not a CloudEvent": ([], b"hello"),
    "null value, no headers": ([], None),
}


@pytest.fixture
def producer(kafka_servers: str) -> Iterator[KafkaProducer]:
    made = KafkaProducer(bootstrap_servers=kafka_servers, acks="all")
    yield made
    made.close()


def test_unreadable_records_are_dead_lettered_with_a_reason_and_passed(
        plane: DataPlane, fresh_sink: RecordingSink, kafka_servers: str) -> None:
    broker = broker_with_dead_letters(plane, fresh_sink, "poison")
    trigger = f"{broker}-t"
    topic = f"knative-broker-{NAMESPACE}-{broker}"

    produce_raw(kafka_servers, topic, 0, [(value, headers) for headers, value in POISON.values()])
    answer = requests.post(plane.broker_url(NAMESPACE, broker), data=b"{}", timeout=10,
                           headers=binary_headers("after-poison"))
    assert answer.status_code == 202

    wait_until(lambda: "after-poison" in fresh_sink.ids(f"/{broker}"), 30,
               "the event after the unreadable records")
    wait_until(lambda: len(fresh_sink.paths(f"/{broker}-dead")) == len(POISON), 30,
               "a dead letter for each unreadable record")
    letters = fresh_sink.paths(f"/{broker}-dead")
    assert {letter.headers["ce-type"] for letter in letters} == {KAFKA_RECORD}
    reasons = [base64.b64decode(letter.headers["ce-knativeerrordata"]).decode()
               for letter in letters]
    assert all(reason.startswith("the record is not a CloudEvent: ") for reason in reasons)
    assert any("null" in reason for reason in reasons)
    not_an_event = next(letter for letter in letters if letter.body == b"hello")
    assert not_an_event.headers["ce-id"].startswith("partition:0/offset:")
    assert not_an_event.headers["ce-knativeerrordest"] == f"{fresh_sink.url}/{broker}"
    # Nothing but the good event reached the subscriber, and every offset was committed.
    assert fresh_sink.ids(f"/{broker}") == ["after-poison"]
    # The sink records a letter before its sender counts it: wait for the counts to settle.
    def counts() -> tuple[bool, int, int, int, int]:
        status = plane.trigger_status(NAMESPACE, trigger)
        return status.ready, status.unreadable, status.dead_lettered, status.dropped, status.lag

    expected = (True, len(POISON), len(POISON), 0, 0)
    wait_until(lambda: counts() == expected, 15,
               lambda: f"the counts {expected} (ready, unreadable, dead-lettered, dropped, "
                       f"lag); they are {counts()}")


class _FailingOnceFollower:
    """A Trigger whose first hand-over fails with an error nobody expected."""

    def __init__(self) -> None:
        self.consumer_group = f"poison-follower-{unique('g')}"
        self.accepting = True
        self.progress: dict[TopicPartition, PartitionProgress] = {}
        self.errors_seen: list[str] = []
        self._error: str | None = None
        self.failures = 0
        self.lag = 0
        self.taken: list[bytes | None] = []
        self.has_joined = threading.Event()
        self._failed = False

    @property
    def error(self) -> str | None:
        return self._error

    @error.setter
    def error(self, value: str | None) -> None:
        self._error = value
        if value is not None:
            self.errors_seen.append(value)

    def joined(self) -> None:
        self.has_joined.set()

    def accept(self, partition: TopicPartition, record: object, attributes: object) -> None:
        if not self._failed:
            self._failed = True
            raise RuntimeError("a bug in a Trigger")
        progress = self.progress[partition]
        progress.seen(record.offset, finished=True)  # type: ignore[attr-defined]
        self.taken.append(record.value)  # type: ignore[attr-defined]


def test_an_unexpected_error_in_the_reader_is_counted_shown_and_survived(
        plane: DataPlane, kafka_servers: str, producer: KafkaProducer) -> None:
    broker = unique("reader-bug")
    plane.add_broker(broker_resource(broker))  # creates the topic
    topic = f"knative-broker-{NAMESPACE}-{broker}"
    reader = TopicReader(topic, ConsumerSettings(kafka_servers)).start()
    follower = _FailingOnceFollower()
    try:
        reader.attach(follower)
        assert follower.has_joined.wait(30)
        producer.send(topic, value=b"first", headers=GOOD_HEADERS).get(timeout=10)

        wait_until(lambda: follower.taken == [b"first"], 30,
                   lambda: f"the record after the restart (errors: {follower.errors_seen})")
        assert follower.failures == 1
        assert follower.errors_seen and "RuntimeError: a bug in a Trigger" in \
            follower.errors_seen[0]
        wait_until(lambda: follower.error is None, 10, "the error to clear once reading works")
    finally:
        reader.stop()
