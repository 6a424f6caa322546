"""The write path against real Kafka: checks, Knative extensions, and writes batched by turn."""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kafka import KafkaConsumer, TopicPartition
from troupe.events.codec import KafkaMessage
from troupe.local.eventing.broker.dataplane import DataPlane
from troupe.local.eventing.broker.errors import RejectedEventError
from troupe.local.eventing.broker.publish import Publisher, StoredRecord
from troupe.local.eventing.broker.spec import BrokerSpec
from troupe.local.host.loop import LoopThread

from .conftest import NAMESPACE, broker_resource, unique

pytestmark = pytest.mark.kafka
WAIT_S = 10.0
TURN = 25


def message(event_id: str, **headers: bytes) -> KafkaMessage:
    return KafkaMessage(headers={"ce_specversion": b"1.0", "ce_id": event_id.encode(),
                                 "ce_source": b"/tests", "ce_type": b"dev.example.test",
                                 **headers}, key=None, value=b"{}")


@pytest.fixture
def broker(kafka_servers: str) -> Iterator[BrokerSpec]:
    # A data plane only to create the topic (four partitions) the way the runtime does.
    with DataPlane(kafka_servers, default_namespace=NAMESPACE) as plane:
        yield plane.add_broker(broker_resource(unique("publish")))


@dataclass
class Running:
    writer: Publisher
    loop: LoopThread
    stored: queue.Queue[StoredRecord]  # what the writer offered on, in order


@pytest.fixture
def publisher(kafka_servers: str) -> Iterator[Running]:
    loop = LoopThread("test-publish").start()
    stored: queue.Queue[StoredRecord] = queue.Queue()
    writer = Publisher(kafka_servers, loop, on_stored=stored.put)
    yield Running(writer, loop, stored)
    writer.close()
    loop.stop()


def test_writes_of_one_turn_of_the_loop_go_to_kafka_together(
        broker: BrokerSpec, publisher: Running) -> None:
    writer, loop, stored = publisher.writer, publisher.loop, publisher.stored
    writer.publish_record(broker, message("first"))  # learns the topic's partitions
    stored.get(timeout=WAIT_S)
    assert writer.knows(broker)
    settled: queue.Queue[BaseException | None] = queue.Queue()

    def one_turn() -> None:
        for number in range(TURN):
            writer.write(broker, message(f"turn-{number}"), settled.put)
            # The ingress reads sockets between two writes, which lets the producer's
            # thread take the GIL and send what it has; this pause stands for that.
            time.sleep(0.002)

    # The producer's thread may still take the GIL halfway through the turn, as when the
    # OS pauses the loop's thread on a busy machine; a tiny switch interval makes that the
    # rule rather than the exception. Part of the turn then goes as a batch of its own.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        loop.call_soon(one_turn)
        outcomes = [settled.get(timeout=WAIT_S) for _ in range(TURN)]
    finally:
        sys.setswitchinterval(interval)
    assert outcomes == [None] * TURN
    records = [stored.get(timeout=WAIT_S) for _ in range(TURN)]
    # One partition: a produce request per write, or a new batch halfway through the turn,
    # would have moved the sticky partition on.
    assert len({record.partition for record in records}) == 1
    offsets = [record.offset for record in records]
    assert offsets == list(range(offsets[0], offsets[0] + TURN))
    assert [dict(r.headers)["ce_id"] for r in records] == [
        f"turn-{n}".encode() for n in range(TURN)]
    assert writer.stored(broker.topic) == TURN + 1


def test_a_written_record_carries_the_knative_extensions(
        kafka_servers: str, broker: BrokerSpec, publisher: Running) -> None:
    writer, stored = publisher.writer, publisher.stored
    writer.publish_record(broker, message("with-ttl", ce_knativebrokerttl=b"7"))
    record = stored.get(timeout=WAIT_S)
    consumer = KafkaConsumer(bootstrap_servers=kafka_servers, enable_auto_commit=False)
    partition = TopicPartition(broker.topic, record.partition)
    consumer.assign([partition])
    consumer.seek(partition, record.offset)
    fetched = next(r for batch in consumer.poll(timeout_ms=int(WAIT_S * 1000)).values()
                   for r in batch)
    consumer.close()
    headers = dict(fetched.headers)
    assert headers["ce_knativebrokerttl"] == b"7"
    arrival = headers["ce_knativearrivaltime"].decode()
    assert len(arrival) == len("2026-11-30T23:59:59.123456Z") and arrival.endswith("Z")
    assert headers == dict(record.headers)


def test_a_refused_write_raises_at_once_and_reaches_nobody(
        broker: BrokerSpec, publisher: Running) -> None:
    writer, loop, stored = publisher.writer, publisher.loop, publisher.stored
    refused: list[BaseException] = []
    settled: list[BaseException | None] = []
    done = threading.Event()

    def write_expired() -> None:
        try:
            writer.write(broker, message("expired", ce_knativebrokerttl=b"0"), settled.append)
        except RejectedEventError as error:
            refused.append(error)
        done.set()

    loop.call_soon(write_expired)
    assert done.wait(WAIT_S)
    assert len(refused) == 1 and "re-published too often" in str(refused[0])
    assert writer.stored(broker.topic) == 0 and stored.empty() and not settled
