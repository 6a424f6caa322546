"""One Trigger's dispatcher: a Kafka consumer group, a filter, and bounded parallel delivery.

Unordered by default: up to `max_in_flight` deliveries at once, across partitions. With the
annotation `kafka.eventing.knative.dev/delivery.order: ordered`, one delivery at a time per
partition. Either way an offset is committed only when every earlier event of its
partition is finished, so killing the process can duplicate events but never lose one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from .delivery import DeliveryAborted
from .filters import Attributes
from .progress import PartitionProgress
from .spec import BrokerSpec, TriggerSpec
from .workers import WorkerPool

log = logging.getLogger(__name__)
_COMMIT_INTERVAL_S: Final = 0.2
_POLL_TIMEOUT_MS: Final = 50

# Delivers one Kafka record for a trigger; returns normally once the event is finished
# (delivered, dead-lettered or dropped); raises DeliveryAborted to leave it uncommitted.
Deliver = Callable[[TriggerSpec, Any], None]


@dataclass(frozen=True)
class ConsumerSettings:
    bootstrap_servers: str
    max_in_flight: int = 64
    initial_offset: str = "latest"
    # Tansu answers a fetch only after this wait, so it bounds latency and idle CPU alike.
    fetch_max_wait_ms: int = 10


def header_attributes(headers: list[tuple[str, bytes]]) -> Attributes:
    """Context attributes straight from Kafka binary-mode headers: enough to filter on."""
    attributes: dict[str, str] = {}
    for name, raw in headers:
        if name.startswith("ce_"):
            attributes[name[3:]] = raw.decode("utf-8", "replace")
        elif name == "content-type":
            attributes["datacontenttype"] = raw.decode("utf-8", "replace")
    return attributes


class TriggerDispatcher:
    def __init__(self, trigger: TriggerSpec, broker: BrokerSpec, settings: ConsumerSettings,
                 deliver: Deliver) -> None:
        self.trigger = trigger
        self.broker = broker
        self._settings = settings
        self._deliver = deliver
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._progress: dict[TopicPartition, PartitionProgress] = {}
        self._lanes: dict[TopicPartition, deque[Any]] = {}
        self._busy_lanes: set[TopicPartition] = set()
        self._newly_assigned: list[TopicPartition] = []
        self._in_flight = 0
        self._workers = WorkerPool(f"trigger-{trigger.name}", settings.max_in_flight)
        self._thread = threading.Thread(
            target=self._run, name=f"trigger-{trigger.namespace}-{trigger.name}", daemon=True)
        self.lag = 0
        self.seen = 0  # records consumed, matching or not
        self.filtered_out = 0
        self.error: str | None = None

    # lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._workers.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def stopping(self) -> threading.Event:
        return self._stopping

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    # the poll loop -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._consume()
            except KafkaError as error:  # a broken connection: start a fresh consumer
                self.error = f"{type(error).__name__}: {error}"
                log.warning("trigger %s/%s: %s; reconnecting", *self.trigger.key, self.error)
                self._ready.clear()
                self._stopping.wait(1.0)

    def _consume(self) -> None:
        settings = self._settings
        consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=self.trigger.consumer_group,
            client_id=self.trigger.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset=settings.initial_offset,
            # Joins take ~3 s with these; the defaults make a group wait ~23 s.
            heartbeat_interval_ms=1000,
            session_timeout_ms=6000,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            max_poll_records=max(settings.max_in_flight, 16),
        )
        consumer.subscribe([self.broker.topic], listener=_Rebalance(self))
        last_commit = time.monotonic()
        try:
            while not self._stopping.is_set():
                batches = consumer.poll(timeout_ms=_POLL_TIMEOUT_MS)
                self._take_assigned(consumer)
                for partition, records in batches.items():
                    progress = self._progress.get(partition)
                    if progress is None:
                        continue  # revoked during this poll
                    for record in records:
                        self._accept(partition, progress, record)
                self._flow_control(consumer)
                if time.monotonic() - last_commit >= _COMMIT_INTERVAL_S:
                    self._commit(consumer)
                    self._measure_lag(consumer)
                    last_commit = time.monotonic()
            self._commit(consumer)
        finally:
            consumer.close(autocommit=False)

    def _accept(self, partition: TopicPartition, progress: PartitionProgress, record: Any) -> None:
        self.seen += 1
        if not self.trigger.event_filter(header_attributes(record.headers)):
            self.filtered_out += 1
            progress.seen(record.offset, finished=True)
            return
        progress.seen(record.offset)
        with self._lock:
            self._in_flight += 1
        if not self.trigger.ordered:
            self._workers.submit(lambda: self._deliver_one(partition, progress, record))
            return
        with self._lock:
            self._lanes.setdefault(partition, deque()).append(record)
            if partition in self._busy_lanes:
                return
            self._busy_lanes.add(partition)
        self._workers.submit(lambda: self._drain_lane(partition, progress))

    def _drain_lane(self, partition: TopicPartition, progress: PartitionProgress) -> None:
        # Ordered delivery: one partition's events one after the other, in offset order.
        # Different partitions share the pool, so each lane gets its own thread here.
        while not self._stopping.is_set():
            with self._lock:
                lane = self._lanes.get(partition)
                if not lane:
                    self._busy_lanes.discard(partition)
                    return
                record = lane[0]
            if not self._deliver_one(partition, progress, record):
                return
            with self._lock:
                lane.popleft()

    def _deliver_one(self, partition: TopicPartition, progress: PartitionProgress,
                     record: Any) -> bool:
        while True:
            try:
                self._deliver(self.trigger, record)
                break
            except DeliveryAborted:
                return False
            except Exception:  # a bug must not lose the event: log it and try again
                log.exception("trigger %s/%s: delivering offset %s of %s failed",
                              *self.trigger.key, record.offset, partition)
                if self._stopping.wait(1.0):
                    return False
        progress.finish(record.offset)
        with self._lock:
            self._in_flight -= 1
        return True

    def _flow_control(self, consumer: KafkaConsumer) -> None:
        # Pausing keeps the consumer polling (so it stays in the group) without fetching.
        limit = self._settings.max_in_flight
        paused = consumer.paused()
        if self.in_flight >= limit and not paused:
            consumer.pause(*consumer.assignment())
        elif paused and self.in_flight < max(1, limit // 2):
            consumer.resume(*paused)

    def _commit(self, consumer: KafkaConsumer) -> None:
        offsets = {}
        for partition, progress in list(self._progress.items()):
            position = progress.commit_position()
            if position != progress.committed:
                offsets[partition] = OffsetAndMetadata(position, "", -1)
        if not offsets:
            return
        consumer.commit(offsets)
        for partition, meta in offsets.items():
            if partition in self._progress:
                self._progress[partition].committed = meta.offset

    def _measure_lag(self, consumer: KafkaConsumer) -> None:
        lag = 0
        for partition, progress in list(self._progress.items()):
            highwater = consumer.highwater(partition)
            if highwater is not None:
                lag += max(0, highwater - progress.committed)
        self.lag = lag

    # rebalancing -------------------------------------------------------------------------
    # kafka-python runs rebalance callbacks on its IO thread, where nothing may block, so
    # they only note the change; the poll loop does the work right after poll() returns.
    def _take_assigned(self, consumer: KafkaConsumer) -> None:
        with self._lock:
            assigned, self._newly_assigned = self._newly_assigned, []
        if not assigned:
            return
        anchors = {}
        for partition in assigned:
            position = consumer.position(partition)
            committed = consumer.committed(partition)
            progress = self._progress[partition] = PartitionProgress(position)
            if committed is None:
                # Anchor a new group where it starts, so events published while the runtime
                # is down are delivered after a restart instead of skipped by "latest".
                anchors[partition] = OffsetAndMetadata(position, "", -1)
            else:
                progress.committed = committed
        if anchors:
            consumer.commit(anchors)
        self.error = None
        self._ready.set()

    def _revoked(self, partitions: list[TopicPartition]) -> None:
        # Unfinished work of a revoked partition is redelivered by its next owner.
        for partition in partitions:
            self._progress.pop(partition, None)
            with self._lock:
                self._lanes.pop(partition, None)

    def _assigned(self, partitions: list[TopicPartition]) -> None:
        with self._lock:
            self._newly_assigned.extend(partitions)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, dispatcher: TriggerDispatcher) -> None:
        self._dispatcher = dispatcher

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._dispatcher._revoked(list(revoked))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._dispatcher._assigned(list(assigned))


__all__ = ["ConsumerSettings", "Deliver", "TriggerDispatcher", "header_attributes"]
