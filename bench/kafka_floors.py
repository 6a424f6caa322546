"""The floors the dispatch benchmark measures the data plane against: what kafka-python
alone does on the same broker (produce and consume back, and produce until acknowledged)."""

from __future__ import annotations

import threading
import time
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic


def raw_kafka_rate(servers: str, count: int, payload: bytes) -> float:
    """Events/s: kafka-python produce (acks=all) while a consumer reads them back."""
    topic = "bench-raw-floor"
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic(topic, 4, 1)])
    admin.close()
    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False,
                             fetch_max_wait_ms=10)
    consumer.assign([TopicPartition(topic, p) for p in range(4)])
    consumer.seek_to_end()
    consumer.poll(timeout_ms=100)
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=0)
    received = [0]

    def consume() -> None:
        while received[0] < count:
            for records in consumer.poll(timeout_ms=50).values():
                received[0] += len(records)

    reader = threading.Thread(target=consume)
    headers = [("ce_specversion", b"1.0"), ("ce_type", b"bench"), ("ce_source", b"/bench")]
    started = time.monotonic()
    reader.start()
    for number in range(count):
        producer.send(topic, payload, headers=[*headers, ("ce_id", str(number).encode())])
    producer.flush()
    reader.join(60)
    elapsed = time.monotonic() - started
    producer.close()
    consumer.close()
    return count / elapsed


def raw_produce_latency(servers: str, rate: float, count: int, payload: bytes) -> list[float]:
    """Seconds from send to acknowledgement (acks=all) at `rate`."""
    topic = "bench-raw-latency"
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic(topic, 4, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=0)
    producer.send(topic, b"warm-up").get(10)
    latencies: list[float] = []

    def acknowledged(sent: float, _metadata: Any) -> None:
        latencies.append(time.monotonic() - sent)

    start = time.monotonic()
    for number in range(count):
        delay = start + number / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing the load, not synchronisation
        producer.send(topic, payload).add_callback(acknowledged, time.monotonic())
    producer.flush()
    producer.close()
    return sorted(latencies)
