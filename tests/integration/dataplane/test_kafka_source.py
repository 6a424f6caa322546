"""KafkaSource commits only what it delivered, record by record and never on stop, and
sends what its sink refuses for good to its dead-letter sink. Real Tansu, a sink on
loopback, the runner as the sources controller runs it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from support.polling import wait_until
from troupe.local.delivery import DeliveryClient
from troupe.local.eventing.sources.kafka_source import KafkaSourceRunner
from troupe.local.host.loop import LoopThread

from .conftest import unique
from .sink import RecordingSink

pytestmark = pytest.mark.kafka
RECORDS = 10


@pytest.fixture
def client() -> Iterator[DeliveryClient]:
    loop = LoopThread("test-kafkasource").start()
    made = DeliveryClient(loop)
    yield made
    made.stop()
    loop.stop()


@pytest.fixture
def admin(kafka_servers: str) -> Iterator[KafkaAdminClient]:
    made = KafkaAdminClient(bootstrap_servers=kafka_servers)
    yield made
    made.close()


def _topic_with_records(kafka_servers: str, admin: KafkaAdminClient, count: int) -> str:
    topic = unique("source")
    admin.create_topics([NewTopic(topic, 1, 1)])
    producer = KafkaProducer(bootstrap_servers=kafka_servers, acks="all")
    for number in range(count):
        producer.send(topic, key=str(number).encode(), value=f'{{"n": {number}}}'.encode())
    producer.flush(10)
    producer.close()
    return topic


def _source(topic: str, group: str, sink: str, dead: str | None = None) -> dict[str, Any]:
    delivery: dict[str, Any] = {"retry": 1, "backoffDelay": "PT0.01S", "timeout": "PT5S"}
    if dead is not None:
        delivery["deadLetterSink"] = {"uri": dead}
    return {"metadata": {"namespace": "troupe", "name": group, "uid": group},
            "spec": {"topics": [topic], "consumerGroup": group, "initialOffset": "earliest",
                     "sink": {"uri": sink}, "delivery": delivery}}


def _committed(admin: KafkaAdminClient, group: str, topic: str) -> int:
    offsets = admin.list_group_offsets({group: [TopicPartition(topic, 0)]}).get(group, {})
    return sum(max(0, meta.offset) for meta in offsets.values())


def _resolve(_: str, destination: dict[str, Any]) -> str | None:
    return destination.get("uri")


@pytest.mark.slow
def test_a_source_updated_then_deleted_while_its_sink_fails_commits_nothing(
        kafka_servers: str, admin: KafkaAdminClient, client: DeliveryClient,
        fresh_sink: RecordingSink) -> None:
    topic = _topic_with_records(kafka_servers, admin, RECORDS)
    group = unique("group")
    source = _source(topic, group, f"{fresh_sink.url}/src")
    fresh_sink.default_status = 503

    for attempts in (3, 6):  # the first version, then the updated one; then deleted
        runner = KafkaSourceRunner(source, _resolve, kafka_servers, client)
        wait_until(lambda n=attempts: len(fresh_sink.paths("/src")) >= n, 30,
                   "attempts at the failing sink")
        runner.stop()
        assert _committed(admin, group, topic) == 0
        assert runner.delivered == runner.committed == 0

    fresh_sink.default_status = 202
    runner = KafkaSourceRunner(source, _resolve, kafka_servers, client)
    try:
        wait_until(lambda: len(fresh_sink.acknowledged("/src")) == RECORDS, 30,
                   "every record once the sink works")
        wait_until(lambda: _committed(admin, group, topic) == RECORDS, 15, "every offset committed")
    finally:
        runner.stop()
    assert runner.delivered == RECORDS


@pytest.mark.parametrize("with_dead_letter_sink", [True, False], ids=["dls", "no-dls"])
def test_a_status_knative_does_not_retry_is_dead_lettered_or_dropped_never_retried(
        kafka_servers: str, admin: KafkaAdminClient, client: DeliveryClient,
        fresh_sink: RecordingSink, with_dead_letter_sink: bool) -> None:
    topic = _topic_with_records(kafka_servers, admin, 1)
    group = unique("group")
    dead = f"{fresh_sink.url}/src-dead" if with_dead_letter_sink else None
    fresh_sink.answer_next(400)
    runner = KafkaSourceRunner(_source(topic, group, f"{fresh_sink.url}/src", dead), _resolve,
                               kafka_servers, client)
    try:
        wait_until(lambda: _committed(admin, group, topic) == 1, 30, "the refused record committed")
    finally:
        runner.stop()
    assert len(fresh_sink.paths("/src")) == 1  # a 400 is not retried
    if with_dead_letter_sink:
        (letter,) = fresh_sink.paths("/src-dead")
        assert letter.headers["ce-knativeerrorcode"] == "400"
        assert base64.b64decode(letter.headers["ce-knativeerrordata"]) == b"scripted 400"
        assert letter.body == b'{"n": 0}'
        assert (runner.dead_lettered, runner.dropped) == (1, 0)
    else:
        assert (runner.dead_lettered, runner.dropped) == (0, 1)
