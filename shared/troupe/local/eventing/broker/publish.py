"""The write path shared by the HTTP ingress and by replies: checks, Knative extensions, Kafka.

An event is acknowledged only once Kafka has it (`acks=all`). What a 202 from the ingress
is worth then depends on the Kafka: with KAFKA_BOOTSTRAP_SERVERS pointing at a durable
Kafka, the event survives the runtime being killed; the embedded Tansu keeps it in memory,
so events acknowledged and not yet delivered are lost when Tansu stops or dies (the data
plane surviving is not enough). While Kafka does not answer, writes are refused at once
(`unavailable`) and the ingress answers 503.

Writes are batched by the data plane's loop (loop.py), not by a linger timer. The ingress
writes go to the producer together once the loop has read every request of its turn, so
they share a produce request, and a lone event still goes at once. kafka-python spends
about half a millisecond of CPU on each produce request, and produced in turn with the
reads, one per event or two, it was the data plane's largest cost.

Kafka's acknowledgements arrive on the producer's network thread. They are queued there
and handed to the loop, one wake-up per batch: the loop counts them, answers the ingress
requests waiting on them, and offers the records to the Triggers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from cloudevents.core.v1.event import CloudEvent
from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.partitioner import StickyPartitioner
from kafka.producer.future import FutureRecordMetadata

from troupe.events import codec
from troupe.events.codec import KafkaMessage
from troupe.events.extensions import KNATIVE_ARRIVALTIME, KNATIVE_BROKER_TTL
from troupe.local.eventing.broker.errors import PublishFailedError, RejectedEventError
from troupe.local.eventing.broker.spec import BrokerSpec
from troupe.local.eventing.broker.tracing import DataPlaneTracing, IngressSpan
from troupe.local.host.loop import LoopThread

DEFAULT_TTL: Final = 255
# Kafka's default max.request.size is 1 MiB; the event (headers and value) must fit in it.
DEFAULT_MAX_EVENT_BYTES: Final = 1024 * 1024
ACK_TIMEOUT_S: Final = 10.0
# A turn of the loop's writes fits one batch (Kafka's 16 KiB default holds a dozen 1 KiB
# events); a single larger event still gets a batch of its own.
_BATCH_BYTES: Final = 256 * 1024

# What a writer is told once Kafka settled its write: None, or the error it failed with.
Settled = Callable[[BaseException | None], None]


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record this data plane wrote, once Kafka acknowledged it: what a fetch returns."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(slots=True)
class _Write:
    """A record on its way to Kafka, and what the loop needs once Kafka settled it."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    then: Settled | None = None
    outcome: Any = None  # RecordMetadata, or the exception Kafka failed it with
    span: IngressSpan | None = None  # when the data plane is traced


class _Clock:
    """RFC 3339 UTC timestamps; the date and time of day formatted once a second."""

    second = -1
    prefix = ""

    @classmethod
    def now(cls) -> str:
        now = time.time()
        second = int(now)
        if second != cls.second:
            cls.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            cls.second = second
        return f"{cls.prefix}.{int((now - second) * 1_000_000):06d}Z"


def arrival_time() -> str:
    return _Clock.now()


def ttl_of(event: CloudEvent) -> int:
    """The event's remaining broker hops; an event without the extension gets the default."""
    return hops_of(event.get_extension(KNATIVE_BROKER_TTL))


def hops_of(raw: Any) -> int:
    if raw is None:
        return DEFAULT_TTL
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise RejectedEventError(
            400, f"{KNATIVE_BROKER_TTL} must be an integer, got {raw!r}") from None


class _TurnPartitioner(StickyPartitioner):  # type: ignore[misc]  # kafka has no hints
    """KIP-480's sticky partitioner, kept on its partition for a whole turn of the loop.

    The producer's network thread can take the GIL halfway through a turn (when the OS
    pauses the loop's thread for longer than the interpreter's switch interval) and send
    the part appended so far as a batch of its own. The sticky partitioner then moves the
    rest of the turn to another partition, which splits one turn's events across two.
    While `holding`, the next batch stays on the same partition instead."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = False  # set and cleared on the loop, around a turn's appends

    def on_new_batch(self, topic: str, cluster: Any, prev_partition: int) -> None:
        if not self.holding:
            super().on_new_batch(topic, cluster, prev_partition)


class Publisher:
    """Writes events to their Broker's topic in CloudEvents' Kafka binary mode."""

    def __init__(self, bootstrap_servers: str, loop: LoopThread, *,
                 max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
                 on_stored: Callable[[StoredRecord], None] | None = None,
                 tracing: DataPlaneTracing | None = None) -> None:
        self.max_event_bytes = max_event_bytes
        self._tracing = tracing
        self._loop = loop
        # Called on the loop with each write Kafka acknowledged, in offset order within a
        # partition.
        self._on_stored = on_stored
        self._lock = threading.Lock()
        self._turn: list[_Write] = []  # the loop's writes, until the end of its turn
        self._settled: list[_Write] = []  # settled by Kafka, waiting for the loop
        self._known_topics: set[str] = set()
        # Why Kafka cannot take events now (kafka_watch.py), or None: writes are refused
        # at once with it instead of waiting out the producer's delivery timeout.
        self.unavailable: str | None = None
        # Events Kafka acknowledged, per topic: ingress posts, replies and sources alike.
        self._stored_counts: dict[str, int] = {}
        self._bootstrap_servers = bootstrap_servers
        self._partitioner = _TurnPartitioner()
        self._producer = self._new_producer()

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

    def send_record(self, broker: BrokerSpec, message: KafkaMessage, *,
                    ttl: int | None = None) -> FutureRecordMetadata:
        """`send` for an event already in Kafka binary mode (`codec.http_to_kafka`)."""
        return self._produce(self._checked(broker, message, ttl))

    def write(self, broker: BrokerSpec, message: KafkaMessage, then: Settled) -> None:
        """Store an event from the data plane's loop, once `knows(broker)`.

        The event is checked at once (RejectedEventError). It goes to the producer with
        the loop's other writes at the end of this turn, and `then` is called on the loop
        once Kafka settled it: with None once the loop has counted it, or with the error.
        """
        write = self._checked(broker, message, None)
        write.then = then
        self._turn.append(write)
        if len(self._turn) == 1:
            # Runs after the callbacks already queued: those read the requests that
            # arrived together with this one.
            self._loop.loop.call_soon(self._produce_turn)

    def write_record(self, topic: str, key: bytes, value: bytes,
                     headers: list[tuple[str, bytes]] | None = None, *,
                     wait: bool = True) -> None:
        """Write a record as it is to `topic` (the parking or the lease topic) and, unless
        told not to, wait for Kafka's acknowledgement; PublishFailedError if it does not
        come."""
        if self.unavailable is not None:
            raise PublishFailedError(self.unavailable)
        try:
            future = self._producer.send(topic, value=value, key=key, headers=headers or [])
            if wait:
                future.get(timeout=ACK_TIMEOUT_S)
        except KafkaError as error:
            raise PublishFailedError(f"Kafka did not take the record for {topic}: {error}") \
                from error

    def stored(self, topic: str) -> int:
        """How many events Kafka has acknowledged on `topic` since the publisher started."""
        return self._stored_counts.get(topic, 0)  # written on the loop only

    def _new_producer(self) -> KafkaProducer:
        return KafkaProducer(
            bootstrap_servers=self._bootstrap_servers,
            acks="all",
            # No waiting for company: the loop hands over its writes a turn at a time.
            linger_ms=0,
            batch_size=_BATCH_BYTES,
            # Keyless events stick to one partition per batch (KIP-480), as with the Java
            # client behind Knative's Kafka broker: one batch per request instead of four.
            partitioner=self._partitioner,
            max_request_size=self.max_event_bytes + 64 * 1024,
            # Fail a send instead of hanging when a topic's metadata never comes, and settle
            # every write within ACK_TIMEOUT_S: the ingress waits on it with no timer.
            max_block_ms=int(ACK_TIMEOUT_S * 1000),
            request_timeout_ms=int(ACK_TIMEOUT_S * 1000) - 1000,
            delivery_timeout_ms=int(ACK_TIMEOUT_S * 1000),
            client_id="troupe-broker-ingress",
            # Nobody reads the client's own metrics; recording them costs ~5% per event.
            metrics_enabled=False,
        )

    def renew(self) -> None:
        """A new producer, for a Kafka that lost its memory (the embedded one, restarted):
        the old one's producer id is unknown there, and it would fail every write. What
        the old one still holds is failed, so its writers answer 503."""
        old, self._producer = self._producer, self._new_producer()
        old.close(timeout=1)

    def close(self) -> None:
        self._producer.close(timeout=5)

    # writing -----------------------------------------------------------------------------
    def _checked(self, broker: BrokerSpec, message: KafkaMessage, ttl: int | None) -> _Write:
        """The record `message` is stored as: checked, with the Knative extensions set."""
        unavailable = self.unavailable
        if unavailable is not None:
            raise PublishFailedError(unavailable)
        headers = dict(message.headers)
        ttl_header = f"ce_{KNATIVE_BROKER_TTL}"
        hops = ttl if ttl is not None else hops_of(
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
        # Tracing: the ingress span's context goes into the record's traceparent.
        span = self._tracing.ingress(broker.name, headers) if self._tracing else None
        return _Write(broker.topic, key, message.value, list(headers.items()), span=span)

    def _produce_turn(self) -> None:
        # Appended back to back with no socket call between them, the producer's thread
        # seldom takes the GIL halfway through; when it does, the partition holds.
        turn, self._turn = self._turn, []
        self._partitioner.holding = True
        try:
            for write in turn:
                try:
                    self._produce(write)
                except PublishFailedError as error:
                    if write.span is not None and self._tracing is not None:
                        self._tracing.ingress_settled(write.span, error)
                    assert write.then is not None
                    write.then(error)
        finally:
            self._partitioner.holding = False

    def _produce(self, write: _Write) -> FutureRecordMetadata:
        try:
            future: FutureRecordMetadata = self._producer.send(
                write.topic, value=write.value, key=write.key, headers=write.headers)
        except KafkaError as error:
            raise PublishFailedError(
                f"Kafka did not take the event for {write.topic}: {error}") from error
        future.add_both(self._settle, write)
        return future

    # acknowledgements --------------------------------------------------------------------
    def _settle(self, write: _Write, outcome: Any) -> None:
        # On the producer's network thread: queue, and wake the loop once per batch.
        write.outcome = outcome
        with self._lock:
            first = not self._settled
            self._settled.append(write)
        if first:
            self._loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        with self._lock:
            settled, self._settled = self._settled, []
        # Writers first: each 202 lets a producer send its next event, while offering a
        # record starts a delivery; answered after the offers, the producers waited on
        # the deliveries. Offers still go in offset order.
        stored: list[_Write] = []
        for write in settled:
            if write.span is not None and self._tracing is not None:
                failed = write.outcome if isinstance(write.outcome, BaseException) else None
                self._tracing.ingress_settled(write.span, failed)
            if isinstance(write.outcome, BaseException):
                if write.then is not None:
                    write.then(write.outcome)
                continue
            self._stored_counts[write.topic] = self._stored_counts.get(write.topic, 0) + 1
            self._known_topics.add(write.topic)
            stored.append(write)
            if write.then is not None:
                write.then(None)
        if self._on_stored is None:
            return
        for write in stored:
            self._on_stored(StoredRecord(write.topic, write.outcome.partition,
                                         write.outcome.offset, write.key, write.value,
                                         write.headers))
