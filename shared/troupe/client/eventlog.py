"""Reading the broker's event log from Kafka without joining a group or committing offsets,
so that watching the lifecycle never disturbs the Triggers' consumer groups."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from troupe.events import EventError
from troupe.events.codec import from_kafka


class EventLogError(Exception):
    """The event log cannot be read; the message says why and what to do."""


@dataclass(frozen=True)
class LoggedEvent:
    event: CloudEvent
    partition: int
    offset: int
    timestamp_ms: int  # when the broker appended it
    # The context attributes as the record carries them, which is what a Trigger's filter
    # reads: decoding fills in what the record lacks (the SDK adds a `time`).
    attributes: Mapping[str, object] = field(default_factory=dict)


def _consumer(bootstrap_servers: str) -> KafkaConsumer:
    try:
        return KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            consumer_timeout_ms=500,
            request_timeout_ms=10_000,
        )
    except KafkaError as error:
        raise EventLogError(
            f"cannot connect to Kafka at {bootstrap_servers} ({error}): is the runtime up "
            "(`troupe status`)?"
        ) from None


def read_events(
    bootstrap_servers: str,
    topic: str,
    *,
    since: datetime | None = None,
    follow: bool = False,
    stop: Callable[[], bool] | None = None,
) -> Iterator[LoggedEvent]:
    """Events in the topic, oldest first per partition; with follow, wait for new ones
    until `stop()` says so (checked at least twice a second)."""
    consumer = _consumer(bootstrap_servers)
    try:
        partitions = _partitions(consumer, topic)
        consumer.assign(partitions)
        if since is None:
            consumer.seek_to_beginning(*partitions)
        else:
            wanted = {p: int(since.timestamp() * 1000) for p in partitions}
            for partition, found in consumer.offsets_for_times(wanted).items():
                if found is None:
                    consumer.seek_to_end(partition)
                else:
                    consumer.seek(partition, found.offset)
        end = consumer.end_offsets(partitions)
        # A broker may answer offsets_for_times coarsely (Tansu starts at the beginning),
        # so records older than `since` are skipped here too.
        since_ms = int(since.timestamp() * 1000) if since is not None else None
        while True:
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if since_ms is not None and record.timestamp < since_ms:
                        continue
                    logged = _decode(record)
                    if logged is not None:
                        yield logged
            if not follow and all(consumer.position(p) >= end[p] for p in partitions):
                return
            if stop is not None and stop():
                return
    except KafkaError as error:
        raise EventLogError(f"reading {topic} from {bootstrap_servers} failed: {error}") from None
    finally:
        consumer.close()


def _partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        time.sleep(0.2)  # metadata refresh interval while the topic is created; not a sync
    raise EventLogError(f"the topic {topic} does not exist: has any event been published yet?")


def _decode(record: Any) -> LoggedEvent | None:
    headers = record.headers or []
    try:
        event = from_kafka(headers, record.key, record.value or b"")
    except EventError:
        return None  # not a CloudEvent (someone else wrote to the topic): not ours to show
    attributes: dict[str, object] = {}
    for name, raw in headers:  # decoded above, so UTF-8
        if name.startswith("ce_"):
            attributes[name[3:]] = raw.decode("utf-8")
        elif name == "content-type":
            attributes["datacontenttype"] = raw.decode("utf-8")
    if "specversion" not in attributes:  # structured mode: the attributes are in the value
        attributes = event.get_attributes()
    return LoggedEvent(event, record.partition, record.offset, record.timestamp, attributes)
