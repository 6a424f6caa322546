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
from troupe.local.eventing.broker.dispatcher import Then, TriggerDispatcher
from troupe.local.eventing.broker.errors import RejectedEventError
from troupe.local.eventing.broker.first_attempt import FirstAttempts
from troupe.local.eventing.broker.publish import Publisher, ttl_of
from troupe.local.eventing.broker.retries import (
    Attempt,
    HttpSender,
    Response,
    dead_letter,
    http_binary_of_record,
    reply_of,
    send_with_retries,
    timeout_of,
)
from troupe.local.eventing.broker.spec import (
    BrokerSpec,
    DeliverySpec,
    Destination,
    KafkaRecord,
    TriggerSpec,
)
from troupe.local.eventing.broker.tracing import DataPlaneTracing, DeliveryTrace

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
    dropped: int = 0
    in_flight: int = 0
    lag: int = 0


class TriggerDelivery:
    """Delivery for the data plane's Triggers (see the module docstring)."""

    def __init__(self, resolve: ResolveSubscriber,
                 brokers: Mapping[tuple[str, str], BrokerSpec],
                 stats: Mapping[tuple[str, str], TriggerStatus],
                 dispatchers: Mapping[tuple[str, str], TriggerDispatcher],
                 sender: HttpSender, tracing: DataPlaneTracing | None = None) -> None:
        self._resolve = resolve
        self._tracing = tracing
        self._brokers = brokers
        self._stats = stats
        self._dispatchers = dispatchers
        self._sender = sender
        self._first_attempts: FirstAttempts | None = None
        self._publisher: Publisher | None = None
        # By Trigger: the Trigger and Broker a delivery was worked out for, it, and its
        # timeout.
        self._deliveries: dict[tuple[str, str],
                               tuple[TriggerSpec, BrokerSpec, DeliverySpec, float]] = {}

    def attach(self, first_attempts: FirstAttempts, publisher: Publisher) -> None:
        """What the running data plane delivers and re-publishes with."""
        self._first_attempts, self._publisher = first_attempts, publisher

    def detach(self) -> None:
        self._first_attempts = self._publisher = None

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

    def _prepare(self, trigger: TriggerSpec, record: KafkaRecord) -> _Outgoing | None:
        """The request a record becomes for the trigger's subscriber; None if undeliverable."""
        stats = self._stats.get(trigger.key) or TriggerStatus(*trigger.key, trigger.broker,
                                                              False, "", "")
        transcoded = http_binary_of_record(record.headers, record.value)
        try:
            event = None if transcoded else self._event_of(record)
        except EventError as error:  # not written by us and not a CloudEvent: cannot deliver
            log.error("trigger %s/%s: offset %s is not a CloudEvent (%s); skipped",
                      *trigger.key, record.offset, error)
            stats.dropped += 1
            return None
        broker = self._brokers.get(trigger.broker_key) or BrokerSpec(*trigger.broker_key)
        delivery, timeout = self._delivery_of(trigger, broker)
        if transcoded is None:
            assert event is not None
            message = codec.to_http_binary(event)
            transcoded = dict(message.headers), message.body
        headers = {**transcoded[0], "Prefer": "reply", "Kn-Namespace": trigger.namespace}
        trace = self._tracing.delivery(trigger.name, _subscriber_name(trigger), headers) \
            if self._tracing else None
        return _Outgoing(stats, event, broker, delivery, timeout, headers, transcoded[1], trace)

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
        if outgoing is None:
            then(True, None)
            return
        first_attempts = self._first_attempts
        try:
            url = self._url_of(trigger.namespace, trigger.subscriber)
        except LookupError:
            first_attempts = None  # the worker's attempts report it, retry and dead-letter it
        if first_attempts is None:
            then(False, None)
            return

        headers, span = outgoing.headers, ""
        if outgoing.trace is not None and self._tracing is not None:
            headers, span = self._tracing.attempt(outgoing.trace, outgoing.headers)

        def landed(response: Response | None, error: str | None) -> None:
            if outgoing.trace is not None and self._tracing is not None:
                self._tracing.attempt_done(outgoing.trace, span,
                                           response.status if response else None, error)
            attempt = Attempt(response, error)
            if attempt.ok and response is not None and reply_of(response) is None:
                outgoing.stats.delivered += 1
                then(True, None)
            else:  # a reply to re-publish, a retry or a dead letter: a worker carries on
                then(False, attempt)

        first_attempts.post(url, headers, outgoing.body, outgoing.timeout, landed)

    def deliver(self, trigger: TriggerSpec, record: KafkaRecord,
                first: Attempt | None = None) -> None:
        """Deliver one Kafka record to the trigger's subscriber; see delivery.py."""
        outgoing = self._prepare(trigger, record)
        if outgoing is None:
            return
        stats, event, broker, delivery = (outgoing.stats, outgoing.event, outgoing.broker,
                                          outgoing.delivery)
        dispatcher = self._dispatchers.get(trigger.key)
        stopping = dispatcher.stopping if dispatcher else threading.Event()
        subscriber = trigger.subscriber

        def send() -> Any:
            return self._sender.post(self._url_of(trigger.namespace, subscriber),
                                     outgoing.headers, outgoing.body, outgoing.timeout)

        trace = outgoing.trace
        if trace is not None and self._tracing is not None:
            if first is not None:
                trace.queued, trace.attempts = True, 1  # made and recorded by deliver_first
            send = self._traced(trace, lambda headers: self._sender.post(
                self._url_of(trigger.namespace, subscriber), headers, outgoing.body,
                outgoing.timeout), outgoing.headers)

        def count_retry() -> None:
            stats.retries += 1

        attempt = send_with_retries(send, delivery, stopping, count_retry, first)
        if attempt.ok:
            stats.delivered += 1
            assert attempt.response is not None
            reply = reply_of(attempt.response)
            if reply is None:
                return
        try:  # only replies and dead letters need the event itself
            event = event or self._event_of(record)
        except EventError as error:
            log.error("trigger %s/%s: offset %s was delivered as it is, but is not a valid "
                      "CloudEvent (%s); its reply or dead letter is dropped",
                      *trigger.key, record.offset, error)
            stats.dropped += 1
            return
        if attempt.ok:
            assert reply is not None
            self._republish(trigger, broker, event, reply)
            return
        self._dead_letter(trigger, event, attempt, delivery, stopping, stats, trace)

    def _traced(self, trace: DeliveryTrace, post: Callable[[dict[str, str]], Response],
                headers: dict[str, str]) -> Callable[[], Response]:
        """`post` as one delivery attempt, each in a span of its own."""
        tracing = self._tracing
        assert tracing is not None

        def send() -> Response:
            sent, span = tracing.attempt(trace, headers)
            try:
                response = post(sent)
            except Exception as error:
                tracing.attempt_done(trace, span, None, f"{type(error).__name__}: {error}")
                raise
            tracing.attempt_done(trace, span, response.status)
            return response

        return send

    @staticmethod
    def _event_of(record: KafkaRecord) -> CloudEvent:
        return codec.from_kafka(record.headers, record.key, record.value or b"")

    def _republish(self, trigger: TriggerSpec, broker: BrokerSpec, cause: CloudEvent,
                   reply: CloudEvent) -> None:
        try:
            ttl = ttl_of(cause) - 1
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

    def _dead_letter(self, trigger: TriggerSpec, event: CloudEvent, attempt: Attempt,
                     delivery: DeliverySpec, stopping: threading.Event,
                     stats: TriggerStatus, trace: DeliveryTrace | None = None) -> None:
        try:
            destination = self._url_of(trigger.namespace, trigger.subscriber)
        except LookupError:
            destination = trigger.subscriber.describe()
        sink = delivery.dead_letter_sink
        if sink is None:
            stats.dropped += 1
            log.warning("trigger %s/%s: event %s dropped after %s (no deadLetterSink)",
                        *trigger.key, event.get_id(), _describe(attempt))
            return
        letter = codec.to_http_binary(dead_letter(event, destination, attempt))
        headers = {**letter.headers, "Kn-Namespace": trigger.namespace}
        span, started = "", 0
        if trace is not None and self._tracing is not None:
            headers, span, started = self._tracing.dead_letter_started(trace, headers)
        result = send_with_retries(
            lambda: self._sender.post(self._url_of(trigger.namespace, sink), headers,
                                      letter.body, timeout_of(delivery)),
            delivery, stopping)
        if trace is not None and self._tracing is not None:
            status = result.response.status if result.response else None
            self._tracing.dead_lettered(trace, span, started, status,
                                        None if result.ok else _describe(result))
        if result.ok:
            stats.dead_lettered += 1
        else:
            stats.dropped += 1
            log.error("trigger %s/%s: event %s lost: the deadLetterSink failed too (%s)",
                      *trigger.key, event.get_id(), _describe(result))

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
    trace: DeliveryTrace | None = None  # when the data plane is traced


def _subscriber_name(trigger: TriggerSpec) -> str:
    """The Service a Trigger delivers to, as a span names it: the ref's name, or the URI."""
    subscriber = trigger.subscriber
    return str((subscriber.ref or {}).get("name") or subscriber.uri or "?")


def _describe(attempt: Attempt) -> str:
    if attempt.response is not None:
        return f"HTTP {attempt.response.status}"
    return attempt.error or "a connection error"
