"""One Trigger's dispatcher: its consumer group's progress, a filter, and bounded delivery.

Records come from the Broker topic's shared reader (reader.py). Unordered by default: up
to `max_in_flight` deliveries at once, across partitions; records taken while that many
are out wait in order, up to WAITING_PER_DELIVERY times as many, before the Trigger stops
accepting. (A Trigger that stops accepting misses the records offered on acknowledgement
and must fetch them back, so a short burst is better queued here.) With the annotation
`kafka.eventing.knative.dev/delivery.order: ordered`, one delivery at a time per partition.
Either way an offset is committed only when every earlier event of its partition is
finished, so killing the process can duplicate events but never lose one.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Final

from kafka import TopicPartition

from troupe.local.delivery import Attempt, DeliveryAborted
from troupe.local.eventing.broker.filters import Attributes, header_attributes
from troupe.local.eventing.broker.progress import PartitionProgress
from troupe.local.eventing.broker.reader import ConsumerSettings, TopicReader
from troupe.local.eventing.broker.spec import BrokerSpec, KafkaRecord, TriggerSpec
from troupe.local.eventing.broker.workers import WorkerPool

WAITING_PER_DELIVERY = 4
# After an unexpected error, delivery starts over after this pause, doubled each time.
_FAILURE_BACKOFF_S: Final = 1.0
_FAILURE_BACKOFF_MAX_S: Final = 30.0

log = logging.getLogger(__name__)

# Delivers one Kafka record for a trigger, given the outcome of a first attempt if one was
# made; returns normally once the event is finished (delivered, dead-lettered or dropped);
# raises DeliveryAborted to leave it uncommitted.
Deliver = Callable[[TriggerSpec, KafkaRecord, Attempt | None], None]
# Then: called with True once the event is finished, or with False and the first attempt
# (None if none was made) when `Deliver` has to carry on.
Then = Callable[[bool, Attempt | None], None]
# Makes a record's first attempt without blocking; calls `then` when it has landed.
DeliverFirst = Callable[[TriggerSpec, KafkaRecord, Then], None]


class TriggerDispatcher:
    def __init__(self, trigger: TriggerSpec, broker: BrokerSpec, settings: ConsumerSettings,
                 deliver: Deliver, reader: TopicReader,
                 deliver_first: DeliverFirst | None = None) -> None:
        self.trigger = trigger
        self.broker = broker
        self._settings = settings
        self._deliver = deliver
        self._deliver_first = deliver_first
        self._reader = reader
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self.progress: dict[TopicPartition, PartitionProgress] = {}
        self._lanes: dict[TopicPartition, deque[KafkaRecord]] = {}
        self._busy_lanes: set[TopicPartition] = set()
        self._in_flight = 0  # taken and not finished: running or waiting
        self._running = 0
        self._waiting: deque[tuple[TopicPartition, PartitionProgress, KafkaRecord]] = deque()
        self._max_pending = settings.max_in_flight * (1 + WAITING_PER_DELIVERY)
        self._accepting = True
        self._workers = WorkerPool(f"trigger-{trigger.name}", settings.max_in_flight)
        self.lag = 0
        self.seen = 0  # records consumed, matching or not
        self.filtered_out = 0
        self.error: str | None = None  # set by the reader: Kafka cannot be read
        # An unexpected error of its own, until a delivery goes through again; counted with
        # the reader's in `failures`.
        self.failure: str | None = None
        self.failures = 0

    # lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._reader.attach(self)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._workers.stop()
        self._reader.detach(self, timeout)

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

    # what the reader calls ---------------------------------------------------------------
    @property
    def consumer_group(self) -> str:
        return self.trigger.consumer_group

    @property
    def accepting(self) -> bool:
        """False once the deliveries out and waiting reach their bound, until half finished."""
        return self._accepting and not self._stopping.is_set()

    def joined(self) -> None:
        self._ready.set()

    def accept(self, partition: TopicPartition, record: KafkaRecord,
               attributes: Attributes) -> None:
        progress = self.progress[partition]
        self.seen += 1
        if not self.trigger.event_filter(attributes):
            self.filtered_out += 1
            progress.seen(record.offset, finished=True)
            return
        progress.seen(record.offset)
        with self._lock:
            self._in_flight += 1
            if self._in_flight >= self._max_pending:
                self._accepting = False
            wait = not self.trigger.ordered and self._running >= self._settings.max_in_flight
            if wait:
                self._waiting.append((partition, progress, record))
            else:
                self._running += 1
        if wait:
            return
        if not self.trigger.ordered:
            self._start(partition, progress, record)
            return
        with self._lock:
            self._lanes.setdefault(partition, deque()).append(record)
            if partition in self._busy_lanes:
                return
            self._busy_lanes.add(partition)
        self._workers.submit(lambda: self._drain_lane(partition, progress))

    # delivery ----------------------------------------------------------------------------
    def _start(self, partition: TopicPartition, progress: PartitionProgress,
               record: KafkaRecord) -> None:
        """Begin an unordered delivery: its first attempt, then a worker if need be."""
        if self._deliver_first is None:
            self._workers.submit(lambda: self._deliver_one(partition, progress, record))
            return

        def then(finished: bool, first: Attempt | None) -> None:
            if finished:
                self._finish(progress, record)
            else:
                self._workers.submit(lambda: self._deliver_one(partition, progress, record, first))

        try:
            self._deliver_first(self.trigger, record, then)
        except Exception as error:  # a bug: a worker delivers it instead, and it is counted
            self._failed(error, record, partition)
            self._workers.submit(lambda: self._deliver_one(partition, progress, record))

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
                     record: KafkaRecord, first: Attempt | None = None) -> bool:
        backoff = _FAILURE_BACKOFF_S
        while True:
            try:
                self._deliver(self.trigger, record, first)
                break
            except DeliveryAborted:
                return False
            except Exception as error:
                # Delivery counts an unexpected error in an attempt as a failed attempt, so
                # this is a bug around the attempts: the event is neither lost nor
                # committed. The Trigger is not Ready while it lasts, and delivery starts
                # over after a growing pause.
                self._failed(error, record, partition)
                first = None
                if self._stopping.wait(backoff):
                    return False
                backoff = min(2 * backoff, _FAILURE_BACKOFF_MAX_S)
        self.failure = None
        self._finish(progress, record)
        return True

    def _failed(self, error: Exception, record: KafkaRecord, partition: TopicPartition) -> None:
        self.failures += 1
        self.failure = f"delivering offset {record.offset} of partition {partition.partition} " \
                       f"failed unexpectedly: {type(error).__name__}: {error}"
        log.error("trigger %s/%s: %s", *self.trigger.key, self.failure, exc_info=error)

    def _finish(self, progress: PartitionProgress, record: KafkaRecord) -> None:
        progress.finish(record.offset)
        with self._lock:
            self._in_flight -= 1
            self._running -= 1
            following = self._waiting.popleft() if self._waiting else None
            if following is not None:
                self._running += 1
            room = not self._accepting and self._in_flight < max(1, self._max_pending // 2)
            if room:
                self._accepting = True
        if following is not None:
            self._start(*following)
        if room:
            self._reader.room()


__all__ = ["ConsumerSettings", "Deliver", "DeliverFirst", "Then", "TriggerDispatcher",
           "header_attributes"]
