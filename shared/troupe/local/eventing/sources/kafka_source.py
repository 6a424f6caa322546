"""KafkaSource: records from `spec.topics`, delivered to the sink one at a time.

An offset is committed only for a record that was delivered, dead-lettered, or refused
for good with no dead-letter sink to take it, and each one as soon as it is: never a
polled batch, and nothing when the runner stops. A KafkaSource updated or deleted while
its sink fails leaves its undelivered records uncommitted, and the next runner of its
consumer group (the updated one, or the same one after `troupe up`) delivers them.

Delivery follows `spec.delivery` as Knative's KafkaSource does: retried by the runtime's
one policy; what fails for good goes to `deadLetterSink` with the knativeerror*
extensions. Without a dead-letter sink, a status Knative does not retry (a 400, a 422)
drops the record, counted and logged, as Knative does; a failure that may pass (5xx, a
sink that is down) is tried again after a growing pause, so nothing is lost to it.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from cloudevents.core.v1.event import CloudEvent

from troupe.events import KAFKA_RECORD, MalformedEventError, from_kafka, to_http_binary
from troupe.local.controlplane.kinds import Obj
from troupe.local.delivery import (
    DEFAULT_TIMEOUT_S,
    Attempt,
    DeliveryAborted,
    DeliveryClient,
    is_retryable,
    send_with_retries,
)
from troupe.local.delivery.dead_letters import dead_letter
from troupe.local.eventing.sources.runners import SinkResolver

if TYPE_CHECKING:
    from troupe.local.eventing.broker.spec import DeliverySpec

# Pauses between whole rounds of attempts on a record that may yet go through.
_AGAIN_S: Final = 1.0
_AGAIN_MAX_S: Final = 30.0
_log = logging.getLogger(__name__)


class KafkaSourceRunner:
    def __init__(self, obj: Obj, resolve_sink: SinkResolver, bootstrap_servers: str,
                 client: DeliveryClient) -> None:
        # Imported here: the data plane's package pulls in kafka-python, which
        # serving-only runs (no KafkaSource) never need.
        from troupe.local.eventing.broker.spec import DeliverySpec

        metadata = obj["metadata"]
        self._client = client
        self.namespace, self.name = metadata["namespace"], metadata["name"]
        self._spec = obj["spec"]
        self._delivery: DeliverySpec = DeliverySpec.parse(
            self._spec.get("delivery"), f"KafkaSource {self.namespace}/{self.name}")
        self._group = self._spec.get("consumerGroup") or f"knative-kafkasource-{metadata['uid']}"
        self._bootstrap = bootstrap_servers
        self._resolve_sink = resolve_sink
        self._stopping = threading.Event()
        self.delivered = 0
        self.dead_lettered = 0
        self.dropped = 0
        self.committed = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"kafkasource-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)

    def _event(self, record: Any) -> CloudEvent:
        headers = list(record.headers or [])
        if any(name.startswith("ce_") for name, _ in headers):
            try:
                return from_kafka(headers, record.key, record.value)
            except MalformedEventError:
                pass  # not a valid CloudEvent after all: wrap it like any other record
        attributes = {
            "type": KAFKA_RECORD, "specversion": "1.0",
            "id": f"partition:{record.partition}/offset:{record.offset}",
            "source": f"/apis/v1/namespaces/{self.namespace}/kafkasources/{self.name}"
                      f"#{record.topic}",
            "subject": f"partition:{record.partition}#{record.offset}",
            "time": datetime.fromtimestamp(record.timestamp / 1000, UTC),
        }
        if record.key is not None:
            attributes["key"] = record.key.decode(errors="replace")
        return CloudEvent(attributes, record.value)

    def _run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition
        from kafka.structs import OffsetAndMetadata

        consumer = None
        while consumer is None and not self._stopping.is_set():
            try:
                consumer = KafkaConsumer(
                    *self._spec["topics"], bootstrap_servers=self._bootstrap,
                    group_id=self._group, enable_auto_commit=False,
                    auto_offset_reset="earliest" if self._spec.get("initialOffset") == "earliest"
                    else "latest", heartbeat_interval_ms=1000, session_timeout_ms=10000)
            except Exception as error:  # broker not up yet: try again shortly
                self.last_error = f"cannot reach Kafka at {self._bootstrap}: {error}"
                self._stopping.wait(1)
        try:
            while consumer is not None and not self._stopping.is_set():
                for partition, records in consumer.poll(timeout_ms=200).items():
                    for record in records:
                        if not self._finish(record):
                            return  # stopping: this record and the rest stay uncommitted
                        consumer.commit({TopicPartition(partition.topic, partition.partition):
                                         OffsetAndMetadata(record.offset + 1, "", -1)})
                        self.committed += 1
        finally:
            if consumer is not None:
                consumer.close(autocommit=False)

    def _finish(self, record: Any) -> bool:
        """Deliver, dead-letter or (refused for good, no dead-letter sink) drop the record;
        False if the runner is stopping first."""
        pause = _AGAIN_S
        event = self._event(record)
        while True:
            try:
                if self._deliver_once(event):
                    return True
            except DeliveryAborted:
                return False
            if self._stopping.wait(pause):
                return False
            pause = min(2 * pause, _AGAIN_MAX_S)

    def _deliver_once(self, event: CloudEvent) -> bool:
        """One round: the attempts, then the dead letter. True when the record is done."""
        url = self._resolve_sink(self.namespace, self._spec["sink"])
        if url is None:
            self.last_error = f"sink {self._spec['sink']} does not resolve"
            return False
        attempt = self._send(url, event)
        if attempt.ok:
            self.delivered += 1
            self.last_error = None
            return True
        self.last_error = f"{url}: {attempt.describe()}"
        sink = self._delivery.dead_letter_sink
        if sink is None:
            if is_retryable(attempt):
                _log.warning("kafkasource %s/%s: %s; trying again", self.namespace, self.name,
                             self.last_error)
                return False
            self.dropped += 1
            _log.error("kafkasource %s/%s: event %s dropped: %s, which is not retried, and "
                       "there is no deadLetterSink", self.namespace, self.name, event.get_id(),
                       attempt.describe())
            return True
        sink_url = self._resolve_sink(self.namespace, {"uri": sink.uri, "ref": sink.ref})
        letter = self._send(sink_url, dead_letter(event, url, attempt)) if sink_url else \
            Attempt(None, "the deadLetterSink does not resolve")
        if letter.ok:
            self.dead_lettered += 1
            return True
        _log.warning("kafkasource %s/%s: event %s: the deadLetterSink failed too (%s); "
                     "trying again", self.namespace, self.name, event.get_id(),
                     letter.describe())
        return False

    def _send(self, url: str, event: CloudEvent) -> Attempt:
        message = to_http_binary(event)
        headers = dict(message.headers)
        timeout = self._delivery.timeout_s or DEFAULT_TIMEOUT_S
        return send_with_retries(
            lambda: self._client.send(url, headers, message.body, timeout,
                                      stopping=self._stopping),
            self._delivery, self._stopping)
