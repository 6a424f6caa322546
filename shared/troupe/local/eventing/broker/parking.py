"""Where an event goes when its dead-letter sink fails too: a parking topic on the same
Kafka, so that nothing the ingress acknowledged is dropped.

Knative's dispatcher drops such an event and logs it. troupe keeps it: the event is
written, as it was delivered (binary mode, with the knativeerror* extensions of its first
failure), to PARKING_TOPIC with headers saying which Trigger parked it and why. Only then
is its offset committed. `troupe dead-letters list` shows parked events beside the dead
letters, and `troupe dead-letters replay parked:<partition>:<offset>` publishes one again.
If the parking topic cannot be written either (Kafka is down), the event stays
uncommitted and is delivered again later.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from kafka import KafkaConsumer, TopicPartition

from troupe.events.extensions import KNATIVE_ARRIVALTIME, KNATIVE_BROKER_TTL
from troupe.local.eventing.broker.spec import TriggerSpec

PARKING_TOPIC: Final = "troupe-parked-events"
REASON: Final = "troupe-parked-reason"
TRIGGER: Final = "troupe-parked-trigger"  # namespace/name
BROKER: Final = "troupe-parked-broker"  # namespace/name
PARKED_AT: Final = "troupe-parked-at"
_OURS: Final = (REASON, TRIGGER, BROKER, PARKED_AT)
# Set by the Broker on the way in and on failure: a replay gets fresh ones.
_NOT_REPLAYED: Final = ("ce_knativeerror", f"ce_{KNATIVE_ARRIVALTIME}",
                        f"ce_{KNATIVE_BROKER_TTL}")


@dataclass(frozen=True)
class ParkedRecord:
    """An event as it is written to the parking topic."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def parked_record(trigger: TriggerSpec, headers: Mapping[str, str], body: bytes,
                  reason: str) -> ParkedRecord:
    """A binary-mode HTTP event (the dead letter that failed) as a Kafka record."""
    kafka_headers: list[tuple[str, bytes]] = []
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith("ce-"):
            kafka_headers.append(("ce_" + lowered[3:], value.encode()))
        elif lowered == "content-type":
            kafka_headers.append(("content-type", value.encode()))
    kafka_headers += [(REASON, reason.encode()), (TRIGGER, "/".join(trigger.key).encode()),
                      (BROKER, "/".join(trigger.broker_key).encode()),
                      (PARKED_AT, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()).encode())]
    return ParkedRecord("/".join(trigger.key).encode(), body, kafka_headers)


@dataclass(frozen=True)
class ParkedEvent:
    """A parked event as `troupe dead-letters` reads it back."""

    partition: int
    offset: int
    headers: dict[str, str]  # every header, decoded
    value: bytes

    @property
    def key(self) -> str:
        return f"parked:{self.partition}:{self.offset}"

    def replay_headers(self) -> list[tuple[str, bytes]]:
        """The event's own Kafka headers, without what the Broker and the parking added."""
        return [(name, value.encode()) for name, value in self.headers.items()
                if name not in _OURS and not name.startswith(_NOT_REPLAYED)]


def read_parked(bootstrap_servers: str, timeout_s: float = 10.0) -> list[ParkedEvent]:
    """Every parked event, oldest first; [] when nothing was ever parked."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None,
                             enable_auto_commit=False)
    try:
        numbers = consumer.partitions_for_topic(PARKING_TOPIC)
        if not numbers:
            return []
        partitions = [TopicPartition(PARKING_TOPIC, n) for n in sorted(numbers)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        parked: list[ParkedEvent] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(p) < ends[p] for p in partitions) and \
                time.monotonic() < deadline:
            for partition, records in consumer.poll(timeout_ms=200).items():
                parked += [ParkedEvent(partition.partition, record.offset,
                                       {name: (value or b"").decode("utf-8", "replace")
                                        for name, value in record.headers or []},
                                       record.value or b"") for record in records]
        return sorted(parked, key=lambda event: (event.headers.get(PARKED_AT, ""),
                                                 event.partition, event.offset))
    finally:
        consumer.close()
