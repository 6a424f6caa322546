"""Event sources: PingSource (a cron tick) and KafkaSource (records from topics), each
delivering CloudEvents over HTTP to its sink as Knative's adapters do.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from cloudevents.core.v1.event import CloudEvent

from troupe.events import KAFKA_RECORD, PING, MalformedEventError, from_kafka, to_http_binary
from troupe.local.controlplane.resources import INTERVAL_ANNOTATION, Obj
from troupe.local.delivery import (
    DEFAULT_TIMEOUT_S,
    Backoff,
    DeliveryAborted,
    DeliveryClient,
    RetryPlan,
    send_with_retries,
)
from troupe.local.errors import LocalError
from troupe.local.eventing.sources.cron import CronSchedule

# Knative's PingSource has no delivery spec: its ticks are retried this way.
PING_RETRIES: Final = Backoff(retry=5, delay_s=0.2)
# A PingSource's attempts; its adapter's default is Knative's per-request one.
PING_TIMEOUT_S: Final = 30.0
_log = logging.getLogger("troupe.local.eventing.sources.runners")

SinkResolver = Callable[[str, Obj], str | None]  # (namespace, destination) -> URL


class SinkUnavailable(LocalError):
    pass


def deliver(client: DeliveryClient, url: str, event: CloudEvent, plan: RetryPlan,
            timeout: float, stopping: threading.Event) -> None:
    """POST `event` in binary mode, retried as the runtime's one policy says; raises
    SinkUnavailable with the last attempt's outcome when it failed for good."""
    message = to_http_binary(event)
    headers = dict(message.headers)
    attempt = send_with_retries(
        lambda: client.send(url, headers, message.body, timeout, stopping=stopping),
        plan, stopping)
    if not attempt.ok:
        raise SinkUnavailable(f"{url}: {attempt.describe()}")


class PingSourceRunner:
    """Ticks on the cron schedule (or every `troupe.dev/interval-seconds`)."""

    def __init__(self, obj: Obj, resolve_sink: SinkResolver, client: DeliveryClient) -> None:
        metadata = obj["metadata"]
        self._client = client
        self.namespace, self.name = metadata["namespace"], metadata["name"]
        self._spec = obj["spec"]
        interval = (metadata.get("annotations") or {}).get(INTERVAL_ANNOTATION)
        self._interval = float(interval) if interval is not None else None
        self._schedule = CronSchedule.parse(self._spec["schedule"], self._spec.get("timezone"))
        self._resolve_sink = resolve_sink
        self._stopping = threading.Event()
        self.ticks = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"ping-{self.name}", daemon=True)
        self._thread.start()

    def _next_wait(self) -> float:
        if self._interval is not None:
            return self._interval
        now = datetime.now(UTC)
        return (self._schedule.next_after(now) - now).total_seconds()

    def _event(self) -> CloudEvent:
        content_type = self._spec.get("contentType") or "application/json"
        data: Any = None
        if self._spec.get("dataBase64"):
            data = base64.b64decode(self._spec["dataBase64"])
        elif self._spec.get("data") is not None:
            raw = str(self._spec["data"])
            data = json.loads(raw) if content_type == "application/json" else raw.encode()
        attributes = {"type": PING, "id": str(uuid.uuid4()), "specversion": "1.0",
                      "source": f"/apis/v1/namespaces/{self.namespace}/pingsources/{self.name}",
                      "time": datetime.now(UTC), "datacontenttype": content_type}
        return CloudEvent(attributes, data)

    def _run(self) -> None:
        while not self._stopping.wait(self._next_wait()):
            url = self._resolve_sink(self.namespace, self._spec["sink"])
            if url is None:
                self.last_error = f"sink {self._spec['sink']} does not resolve"
                continue
            try:
                deliver(self._client, url, self._event(), PING_RETRIES, PING_TIMEOUT_S,
                        self._stopping)
                self.ticks += 1
                self.last_error = None
            except DeliveryAborted:
                return
            except (SinkUnavailable, ValueError) as error:
                self.last_error = str(error)
                _log.warning("pingsource %s/%s: %s", self.namespace, self.name, error)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)


class KafkaSourceRunner:
    """Consumes `spec.topics` and delivers each record; offsets are committed only after
    the sink accepted it, so a crash duplicates rather than loses."""

    def __init__(self, obj: Obj, resolve_sink: SinkResolver, bootstrap_servers: str,
                 client: DeliveryClient) -> None:
        metadata = obj["metadata"]
        self._client = client
        self.namespace, self.name = metadata["namespace"], metadata["name"]
        self._spec = obj["spec"]
        self._group = self._spec.get("consumerGroup") or f"knative-kafkasource-{metadata['uid']}"
        self._bootstrap = bootstrap_servers
        self._resolve_sink = resolve_sink
        self._stopping = threading.Event()
        self.delivered = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"kafkasource-{self.name}",
                                        daemon=True)
        self._thread.start()

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
        from kafka import KafkaConsumer

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
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        self._deliver_record(record)
                    consumer.commit()
        finally:
            if consumer is not None:
                consumer.close()

    def _deliver_record(self, record: Any) -> None:
        while not self._stopping.is_set():
            url = self._resolve_sink(self.namespace, self._spec["sink"])
            try:
                if url is None:
                    raise SinkUnavailable(f"sink {self._spec['sink']} does not resolve")
                deliver(self._client, url, self._event(record), Backoff(),
                        DEFAULT_TIMEOUT_S, self._stopping)
                self.delivered += 1
                self.last_error = None
                return
            except DeliveryAborted:
                return
            except SinkUnavailable as error:
                self.last_error = str(error)
                _log.warning("kafkasource %s/%s: %s; retrying", self.namespace, self.name, error)
                self._stopping.wait(1)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)
