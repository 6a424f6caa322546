"""The write path shared by the HTTP ingress and by replies: checks, Knative extensions, Kafka.

An event is acknowledged only once Kafka has it (`acks=all`), so a 202 from the ingress
means the event survives the runtime being killed.

Kafka's acknowledgements arrive on the producer's network thread. They are queued there
and handed over to the data plane's loop (loop.py), one wake-up per batch: the loop counts
them, offers the records to the Triggers and answers the ingress requests waiting on them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cloudevents.core.v1.event import CloudEvent
from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata

from troupe.events import codec
from troupe.events.codec import KafkaMessage
from troupe.events.extensions import KNATIVE_ARRIVALTIME, KNATIVE_BROKER_TTL

from .errors import PublishFailedError, RejectedEventError
from .loop import LoopThread
from .spec import BrokerSpec

DEFAULT_TTL: Final = 255
# Kafka's default max.request.size is 1 MiB; the event (headers and value) must fit in it.
DEFAULT_MAX_EVENT_BYTES: Final = 1024 * 1024
ACK_TIMEOUT_S: Final = 10.0
# Under load, a record waits up to _BUSY_LINGER_MS for others to share its produce request,
# which cuts the producer's CPU per event by a third; with fewer than _BUSY_IN_FLIGHT writes
# unacknowledged, records go at once, so a lone event never waits.
_BUSY_IN_FLIGHT: Final = 8
_BUSY_LINGER_MS: Final = 2


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record this data plane wrote, once Kafka acknowledged it: what a fetch returns."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


# What a writer is told once Kafka settled its write: None, or the error it failed with.
Settled = Callable[[BaseException | None], None]


@dataclass(slots=True)
class _Landed:
    """A write on its way: what the loop needs once Kafka has settled it."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    then: Settled | None
    outcome: Any = None  # RecordMetadata, or the exception Kafka failed it with


def arrival_time() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def ttl_of(event: CloudEvent) -> int:
    """The event's remaining broker hops; an event without the extension gets the default."""
    return _hops(event.get_extension(KNATIVE_BROKER_TTL))


def _hops(raw: Any) -> int:
    if raw is None:
        return DEFAULT_TTL
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise RejectedEventError(
            400, f"{KNATIVE_BROKER_TTL} must be an integer, got {raw!r}") from None


class Publisher:
    """Writes events to their Broker's topic in CloudEvents' Kafka binary mode."""

    def __init__(self, bootstrap_servers: str, loop: LoopThread, *,
                 max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
                 on_stored: Callable[[StoredRecord], None] | None = None) -> None:
        self.max_event_bytes = max_event_bytes
        self._loop = loop
        # Called on the loop with each write Kafka acknowledged, in offset order within a
        # partition.
        self._on_stored = on_stored
        # Outcomes waiting for the loop, in the order the producer settled them.
        self._landed_queue: list[_Landed] = []
        self._known_topics: set[str] = set()
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            # Send at once: each ingress request waits for its own acknowledgement, and
            # records that arrive while a request is in flight still share the next batch.
            linger_ms=0,
            max_request_size=max_event_bytes + 64 * 1024,
            # Fail a send instead of hanging when a topic's metadata never comes, and settle
            # every future within ACK_TIMEOUT_S: the ingress waits on it with no timer.
            max_block_ms=int(ACK_TIMEOUT_S * 1000),
            request_timeout_ms=int(ACK_TIMEOUT_S * 1000) - 1000,
            delivery_timeout_ms=int(ACK_TIMEOUT_S * 1000),
            client_id="troupe-broker-ingress",
            # Nobody reads the client's own metrics; recording them costs ~5% per event.
            metrics_enabled=False,
        )
        self._lock = threading.Lock()
        self._in_flight = 0
        # Events Kafka acknowledged, per topic: ingress posts, replies and sources alike.
        self._stored_counts: dict[str, int] = {}
        # kafka-python reads linger_ms from its accumulator's config on every readiness
        # check, so it can change while running. A private attribute: if a later version
        # lacks it, the producer just keeps linger_ms=0.
        accumulator_config = getattr(getattr(self._producer, "_accumulator", None), "config",
                                     None)
        self._linger: dict[str, Any] | None = (
            accumulator_config if isinstance(accumulator_config, dict)
            and "linger_ms" in accumulator_config else None)

    def knows(self, broker: BrokerSpec) -> bool:
        """True once a write to the broker's topic succeeded: `send` will not block on metadata."""
        return broker.topic in self._known_topics

    def publish(self, broker: BrokerSpec, event: CloudEvent, *, ttl: int | None = None) -> None:
        """Store `event` on the broker's topic; `ttl` overrides the event's own hop count."""
        self.publish_record(broker, codec.to_kafka(event), ttl=ttl)

    def publish_record(self, broker: BrokerSpec, message: KafkaMessage, *,
                       ttl: int | None = None) -> None:
        """`publish` for an event already in Kafka binary mode."""
        future = self.send_record(broker, message, ttl=ttl)
        try:
            future.get(timeout=ACK_TIMEOUT_S)
        except KafkaError as error:
            raise PublishFailedError(
                f"Kafka did not acknowledge the event on {broker.topic}: {error}") from error

    def send(self, broker: BrokerSpec, event: CloudEvent, *,
             ttl: int | None = None) -> FutureRecordMetadata:
        """Check `event` and hand it to the producer; the future resolves once Kafka has it.

        Raises RejectedEventError for an event the broker refuses, and PublishFailedError
        when the producer cannot take it. It may block while the topic's metadata is
        fetched, until `knows(broker)`.
        """
        return self.send_record(broker, codec.to_kafka(event), ttl=ttl)

    def send_record(self, broker: BrokerSpec, message: KafkaMessage, *, ttl: int | None = None,
                    then: Settled | None = None) -> FutureRecordMetadata:
        """`send` for an event already in Kafka binary mode (`codec.http_to_kafka`).

        `then` is called on the data plane's loop once the write is settled: with None
        once Kafka has it and the loop has counted it and offered it to the Triggers, or
        with the error Kafka failed it with.
        """
        headers = dict(message.headers)
        ttl_header = f"ce_{KNATIVE_BROKER_TTL}"
        hops = ttl if ttl is not None else _hops(
            headers[ttl_header].decode("utf-8", "replace") if ttl_header in headers else None)
        if hops <= 0:
            raise RejectedEventError(
                400, f"{KNATIVE_BROKER_TTL} is {hops}: the event has been re-published too "
                "often (a reply loop?) and is dropped")
        headers[f"ce_{KNATIVE_ARRIVALTIME}"] = arrival_time().encode()
        headers[ttl_header] = str(hops).encode()
        size = len(message.value) + sum(len(k) + len(v) for k, v in headers.items())
        if size > self.max_event_bytes:
            raise RejectedEventError(
                413, f"the event is {size} bytes; this broker accepts at most "
                f"{self.max_event_bytes}: put large payloads in the store and send a URI")
        key = message.key.encode() if isinstance(message.key, str) else message.key
        record_headers = list(headers.items())
        try:
            future: FutureRecordMetadata = self._producer.send(
                broker.topic, value=message.value, key=key, headers=record_headers)
        except KafkaError as error:
            raise PublishFailedError(
                f"Kafka did not take the event for {broker.topic}: {error}") from error
        self._count_in_flight(+1)
        future.add_both(self._landed, _Landed(broker.topic, key, message.value, record_headers,
                                              then))
        return future

    def _count_in_flight(self, change: int) -> None:
        with self._lock:
            self._in_flight += change
            busy = self._in_flight >= _BUSY_IN_FLIGHT
        if self._linger is not None:
            self._linger["linger_ms"] = _BUSY_LINGER_MS if busy else 0

    def _landed(self, landed: _Landed, outcome: Any) -> None:
        # On the producer's network thread: queue, and wake the loop once per batch.
        self._count_in_flight(-1)
        landed.outcome = outcome
        with self._lock:
            first = not self._landed_queue
            self._landed_queue.append(landed)
        if first:
            self._loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        with self._lock:
            batch, self._landed_queue = self._landed_queue, []
        for landed in batch:
            outcome, then = landed.outcome, landed.then
            if isinstance(outcome, BaseException):
                if then is not None:
                    then(outcome)
                continue
            topic = landed.topic
            self._stored_counts[topic] = self._stored_counts.get(topic, 0) + 1
            self._known_topics.add(topic)
            if self._on_stored is not None:
                self._on_stored(StoredRecord(topic, outcome.partition, outcome.offset,
                                             landed.key, landed.value, landed.headers))
            if then is not None:
                then(None)

    def stored(self, topic: str) -> int:
        """How many events Kafka has acknowledged on `topic` since the publisher started."""
        return self._stored_counts.get(topic, 0)  # written on the loop only

    def close(self) -> None:
        self._producer.close(timeout=5)
