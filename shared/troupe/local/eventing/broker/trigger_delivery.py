"""Taking a Trigger's records to its subscriber: first attempts, retries, replies, dead letters.

The `DataPlane` owns one `TriggerDelivery` and hands it, at construction, read-only views
of what it needs (Brokers, per-Trigger status, dispatchers) and the HTTP client; the
first-attempt client and the publisher arrive with `attach` once the data plane runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from cloudevents.core.v1.event import CloudEvent

from troupe.events import codec
from troupe.events.errors import EventError
from troupe.events.extensions import KNATIVE_BROKER_TTL
from troupe.local.delivery import (
    Attempt,
    DeliveryAborted,
    DeliveryClient,
    Response,
    send_with_retries,
)
from troupe.local.eventing.broker.dispatcher import Then, TriggerDispatcher
from troupe.local.eventing.broker.errors import (
    ParkingFailedError,
    PublishFailedError,
    RejectedEventError,
)
from troupe.local.eventing.broker.http_messages import (
    dead_letter_headers,
    http_binary_of_record,
    reply_of,
    timeout_of,
)
from troupe.local.eventing.broker.parking import PARKING_TOPIC, ParkedRecord, parked_record
from troupe.local.eventing.broker.publish import Publisher, hops_of
from troupe.local.eventing.broker.spec import (
    BrokerSpec,
    DeliverySpec,
    Destination,
    KafkaRecord,
    TriggerSpec,
)
from troupe.local.eventing.broker.unreadable import unreadable_record_event

log = logging.getLogger(__name__)
# Resolves a Destination's `ref` (a Knative Service, ...) in a namespace to its URL.
ResolveSubscriber = Callable[[str, Mapping[str, Any]], str]


@dataclass
class TriggerStatus:
    namespace: str
    name: str
    broker: str
    ready: bool
    reason: str
    subscriber: str
    seen: int = 0
    filtered_out: int = 0
    filter_errors: int = 0  # of the filtered out: a cesql filter could not evaluate them
    delivered: int = 0
    replies: int = 0
    retries: int = 0
    dead_lettered: int = 0
    parked: int = 0  # its dead-letter sink failed too: kept on the parking topic
    unreadable: int = 0  # records that were not CloudEvents, sent to the dead-letter sink
    dropped: int = 0
    failures: int = 0  # unexpected errors in its reader or dispatcher, each logged
    in_flight: int = 0
    lag: int = 0


class TriggerDelivery:
    """Delivery for the data plane's Triggers (see the module docstring)."""

    def __init__(self, resolve: ResolveSubscriber,
                 brokers: Mapping[tuple[str, str], BrokerSpec],
                 stats: Mapping[tuple[str, str], TriggerStatus],
                 dispatchers: Mapping[tuple[str, str], TriggerDispatcher]) -> None:
        self._resolve = resolve
        self._brokers = brokers
        self._stats = stats
        self._dispatchers = dispatchers
        self._client: DeliveryClient | None = None
        self._publisher: Publisher | None = None
        # By Trigger: the Trigger and Broker a delivery was worked out for, it, and its
        # timeout.
        self._deliveries: dict[tuple[str, str],
                               tuple[TriggerSpec, BrokerSpec, DeliverySpec, float]] = {}

    def attach(self, client: DeliveryClient, publisher: Publisher) -> None:
        """What the running data plane delivers and re-publishes with."""
        self._client, self._publisher = client, publisher

    def detach(self) -> None:
        self._client = self._publisher = None

    def forget(self, key: tuple[str, str]) -> None:
        """A removed Trigger's cached delivery goes with it."""
        self._deliveries.pop(key, None)

    def _url_of(self, namespace: str, destination: Destination) -> str:
        if destination.ref is None:
            assert destination.uri is not None
            return destination.uri
        base = self._resolve(namespace, destination.ref)
        # Knative: with both, the uri is relative to the ref's address.
        return urljoin(base.rstrip("/") + "/", destination.uri) if destination.uri else base

    def _prepare(self, trigger: TriggerSpec, record: KafkaRecord) -> _Outgoing:
        """The request a record becomes for the trigger's subscriber, or why it cannot."""
        stats = self._stats.get(trigger.key) or TriggerStatus(*trigger.key, trigger.broker,
                                                              False, "", "")
        broker = self._brokers.get(trigger.broker_key) or BrokerSpec(*trigger.broker_key)
        delivery, timeout = self._delivery_of(trigger, broker)
        transcoded = http_binary_of_record(record.headers, record.value)
        event, unreadable = None, None
        if transcoded is None:
            try:
                event = self._event_of(record)
                message = codec.to_http_binary(event)
                transcoded = dict(message.headers), message.body
            except EventError as error:  # not a CloudEvent: it goes to the dead-letter sink
                unreadable = str(error) or type(error).__name__
                event = unreadable_record_event(trigger, record)
                message = codec.to_http_binary(event)
                transcoded = dict(message.headers), message.body
        headers = {**transcoded[0], "Prefer": "reply", "Kn-Namespace": trigger.namespace}
        return _Outgoing(stats, event, broker, delivery, timeout, headers, transcoded[1],
                         unreadable)

    def _delivery_of(self, trigger: TriggerSpec, broker: BrokerSpec) -> tuple[DeliverySpec,
                                                                               float]:
        """The Trigger's delivery over its Broker's, and its timeout: worked out once for
        each pair, not for each event."""
        cached = self._deliveries.get(trigger.key)
        if cached is None or cached[0] is not trigger or cached[1] is not broker:
            delivery = trigger.delivery.over(broker.delivery)
            cached = self._deliveries[trigger.key] = (trigger, broker, delivery,
                                                      timeout_of(delivery))
        return cached[2], cached[3]

    def deliver_first(self, trigger: TriggerSpec, record: KafkaRecord, then: Then) -> None:
        """The first attempt without a thread; `then` says whether the event is finished."""
        outgoing = self._prepare(trigger, record)
        client = self._client
        try:
            url = self._url_of(trigger.namespace, trigger.subscriber)
        except Exception:  # unresolved: the worker's attempts report, retry, dead-letter it
            client = None
        if client is None or outgoing.unreadable is not None:
            then(False, None)
            return

        def landed(response: Response | None, error: str | None) -> None:
            attempt = Attempt(response, error)
            if attempt.ok and response is not None and reply_of(response) is None:
                outgoing.stats.delivered += 1
                then(True, None)
            else:  # a reply to re-publish, a retry or a dead letter: a worker carries on
                then(False, attempt)

        client.post(url, outgoing.headers, outgoing.body, outgoing.timeout, landed)

    def deliver(self, trigger: TriggerSpec, record: KafkaRecord,
                first: Attempt | None = None) -> None:
        """Deliver one Kafka record to the trigger's subscriber: retried as Knative retries,
        then its reply re-published or its dead letter sent."""
        outgoing = self._prepare(trigger, record)
        stats, broker, delivery = outgoing.stats, outgoing.broker, outgoing.delivery
        dispatcher = self._dispatchers.get(trigger.key)
        stopping = dispatcher.stopping if dispatcher else threading.Event()
        if outgoing.unreadable is not None:
            stats.unreadable += 1
            log.warning("trigger %s/%s: offset %s of partition %s is not a CloudEvent (%s); "
                        "it goes to the dead-letter sink", *trigger.key, record.offset,
                        record.partition, outgoing.unreadable)
            self._dead_letter(trigger, outgoing, Attempt(
                None, f"the record is not a CloudEvent: {outgoing.unreadable}"), stopping)
            return
        subscriber = trigger.subscriber

        def send() -> Response:
            return self._send(self._url_of(trigger.namespace, subscriber), outgoing.headers,
                              outgoing.body, outgoing.timeout, stopping)

        def count_retry() -> None:
            stats.retries += 1

        attempt = send_with_retries(send, delivery, stopping, count_retry, first)
        if not attempt.ok:
            self._dead_letter(trigger, outgoing, attempt, stopping)
            return
        stats.delivered += 1
        assert attempt.response is not None
        reply = reply_of(attempt.response)
        if reply is not None:
            self._republish(trigger, broker, outgoing.headers, reply)

    def _send(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float,
              stopping: threading.Event) -> Response:
        client = self._client
        if client is None:
            raise DeliveryAborted  # the data plane is stopping
        return client.send(url, headers, body, timeout, stopping=stopping)

    @staticmethod
    def _event_of(record: KafkaRecord) -> CloudEvent:
        return codec.from_kafka(record.headers, record.key, record.value)

    def _republish(self, trigger: TriggerSpec, broker: BrokerSpec, cause: Mapping[str, str],
                   reply: CloudEvent) -> None:
        try:
            ttl = hops_of(cause.get(f"ce-{KNATIVE_BROKER_TTL}")) - 1
        except RejectedEventError:
            ttl = 0
        assert self._publisher is not None
        try:
            self._publisher.publish(broker, reply, ttl=ttl)
        except RejectedEventError as error:
            log.warning("trigger %s/%s: reply %s dropped: %s", *trigger.key, reply.get_id(),
                        error)
            return
        self._stats[trigger.key].replies += 1

    def _dead_letter(self, trigger: TriggerSpec, outgoing: _Outgoing, attempt: Attempt,
                     stopping: threading.Event) -> None:
        stats, delivery = outgoing.stats, outgoing.delivery
        try:
            destination = self._url_of(trigger.namespace, trigger.subscriber)
        except Exception:  # what the attempts failed on: the dead letter names the ref
            destination = trigger.subscriber.describe()
        sink = delivery.dead_letter_sink
        event_id = outgoing.headers.get("ce-id", "?")
        if sink is None:
            stats.dropped += 1
            log.warning("trigger %s/%s: event %s dropped after %s (no deadLetterSink)",
                        *trigger.key, event_id, attempt.describe())
            return
        headers = dead_letter_headers(outgoing.headers, destination, attempt)
        result = send_with_retries(
            lambda: self._send(self._url_of(trigger.namespace, sink), headers, outgoing.body,
                               timeout_of(delivery), stopping),
            delivery, stopping)
        if result.ok:
            stats.dead_lettered += 1
            return
        reason = f"the deadLetterSink {sink.describe()} failed too: {result.describe()}"
        self._park(trigger, parked_record(trigger, headers, outgoing.body, reason))
        stats.parked += 1
        log.error("trigger %s/%s: event %s parked on %s (%s); `troupe dead-letters list` "
                  "shows it", *trigger.key, event_id, PARKING_TOPIC, reason)

    def _park(self, trigger: TriggerSpec, record: ParkedRecord) -> None:
        publisher = self._publisher
        if publisher is None:
            raise DeliveryAborted  # the data plane is stopping: it stays uncommitted
        try:
            publisher.write_record(PARKING_TOPIC, record.key, record.value, record.headers)
        except PublishFailedError as error:
            raise ParkingFailedError(
                f"trigger {trigger.namespace}/{trigger.name}: the event could not be "
                f"parked either ({error}); it stays uncommitted") from error


@dataclass(frozen=True)
class _Outgoing:
    """A record on its way to a subscriber, as binary-mode HTTP."""

    stats: TriggerStatus
    event: CloudEvent | None  # decoded only when the record could not be transcoded
    broker: BrokerSpec
    delivery: DeliverySpec
    timeout: float
    headers: dict[str, str]
    body: bytes
    unreadable: str | None = None  # why the record is not a CloudEvent, if it is not
