"""What a Broker topic's reader (reader.py) and the Triggers it feeds agree on: the
consumer settings they share, and what the reader needs from a Trigger's dispatcher."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kafka import TopicPartition

from troupe.local.eventing.broker.filters import Attributes
from troupe.local.eventing.broker.progress import PartitionProgress
from troupe.local.eventing.broker.spec import KafkaRecord


@dataclass(frozen=True)
class ConsumerSettings:
    bootstrap_servers: str
    max_in_flight: int = 64
    initial_offset: str = "latest"
    # Tansu gathers records for a fetch until this wait is spent: with 2 ms a fetch brought
    # back one to five small batches, and a Trigger catching up on a backlog (after a
    # restart, or after being full) crawled at ~200 events/s instead of ~20,000. Latency
    # does not depend on it: this data plane's own writes are offered on acknowledgement.
    fetch_max_wait_ms: int = 100
    max_poll_records: int = 500


class Follower(Protocol):
    """What the reader needs from a Trigger's dispatcher."""

    @property
    def consumer_group(self) -> str: ...
    @property
    def accepting(self) -> bool: ...  # False while all its deliveries are in flight
    progress: dict[TopicPartition, PartitionProgress]
    error: str | None  # why its records cannot be read now, if they cannot
    failures: int  # unexpected errors, counted
    lag: int

    def accept(self, partition: TopicPartition, record: KafkaRecord,
               attributes: Attributes) -> None: ...
    def joined(self) -> None: ...
