"""One fetch loop per Broker topic, feeding every Trigger of that Broker.

A Kafka consumer per Trigger is what the Knative Kafka broker runs, but each idle consumer
costs a fetch loop, and on a laptop-sized machine ten idle Triggers starved the ingress.
So each topic is read once and fanned out; each Trigger still keeps its own consumer group
offsets, read and committed under its own group id (`knative-trigger-<ns>-<name>`), so
`kafka-consumer-groups --describe` shows the same thing as with per-Trigger consumers.

A Trigger that falls behind (its deliveries and the queue behind them are full) stops
taking records; the reader seeks back to it once it has room again, and the others skip
what they already have.
The groups have no members: two data planes running the same Trigger both deliver every
event (at-least-once still holds; Knative's scale-out across replicas is not modelled).

Records this data plane writes itself are handed over as soon as Kafka acknowledges them
(`offer`), without waiting for a fetch to bring them back: on Tansu that wait was 5 ms of
latency per event at p50, and decoding each record again cost a sixth of the data plane's
CPU. A record is only offered to a follower whose next offset it is, so each follower still
sees its partitions in offset order with no holes; whatever is not offered (records from
other writers, a follower that was full) is fetched as before. Offsets are committed the
same way whichever way a record came.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Final

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from troupe.local.eventing.broker.filters import Attributes, header_attributes
from troupe.local.eventing.broker.follower import ConsumerSettings, Follower
from troupe.local.eventing.broker.offsets import commit, measure_lag, start_offsets
from troupe.local.eventing.broker.progress import PartitionProgress
from troupe.local.eventing.broker.spec import KafkaRecord

log = logging.getLogger(__name__)
_COMMIT_INTERVAL_S: Final = 0.2
_POLL_TIMEOUT_MS: Final = 50
# A topic whose fetches bring nothing new is fetched less and less often, down to once per
# _IDLE_WAIT_MAX_S: each fetch costs CPU even when it comes back empty, and a laptop runs
# `troupe up` all day. Events written through this data plane are offered at once
# (`offer`), so only records produced elsewhere wait up to _IDLE_WAIT_MAX_S.
_IDLE_WAIT_MIN_S: Final = 0.005
_IDLE_WAIT_MAX_S: Final = 0.5
# After an error the reader starts over after this pause, doubled while errors repeat.
_RESTART_BACKOFF_S: Final = 1.0
_RESTART_BACKOFF_MAX_S: Final = 10.0


class TopicReader:
    def __init__(self, topic: str, settings: ConsumerSettings,
                 restart_groups: Iterable[str] = ()) -> None:
        self.topic = topic
        self._settings = settings
        # Groups that start at the beginning, whatever they committed, when they first join:
        # the Triggers of a topic made again on a Kafka that lost its memory.
        self._restart_groups = set(restart_groups)
        self._lock = threading.Lock()
        # Held while records are handed to followers, by the fetch loop or by `offer`, so
        # that each follower takes a partition's records one at a time and in order.
        self._handover = threading.Lock()
        self._followers: list[Follower] = []
        self._joining: list[Follower] = []
        self._leaving: dict[int, threading.Event] = {}
        self._wake = threading.Event()  # a follower joined, left, has room, or records came
        self._idle_wait_s = 0.0  # how long to wait before the next fetch; 0 while busy
        # Records handed to a follower, counted once per follower, by the way they came.
        self.taken_on_ack = 0
        self.taken_from_fetch = 0
        # One past the newest offset `offer` saw per partition, and how many offers came.
        self._offered_end: dict[TopicPartition, int] = {}
        self._offers = 0
        self._stopping = threading.Event()
        # True while fetches work: only then is a leaving follower's progress committed
        # (with Kafka gone, waiting for that commit would hold `troupe down`).
        self._reading = False
        self._abandoned = False  # its followers' progress belongs to a topic that is gone
        self._thread = threading.Thread(target=self._run, name=f"reader-{topic}", daemon=True)

    # lifecycle ---------------------------------------------------------------------------
    def start(self) -> TopicReader:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            # Not reading (Kafka is gone): it may be blocked in a client call for long, and
            # has nothing to commit; it is a daemon, and ends once that call returns.
            self._thread.join(timeout if self._reading else 1.0)

    def abandon(self) -> None:
        """Stop without committing anything more: the topic it read is gone (a Kafka that
        lost its memory), and its offsets would be wrong on the topic made again."""
        self._abandoned = True
        self.stop(timeout=1.0)

    def attach(self, follower: Follower) -> None:
        """Start feeding `follower` from its group's committed offsets (or the initial one)."""
        with self._lock:
            self._joining.append(follower)
        self._wake.set()

    def detach(self, follower: Follower, timeout: float = 10.0) -> None:
        """Stop feeding `follower`, after committing what it finished."""
        done = threading.Event()
        with self._lock:
            if follower in self._joining:
                self._joining.remove(follower)
                return
            if follower not in self._followers or not self._thread.is_alive() or \
                    not self._reading or self._stopping.is_set():
                if follower in self._followers:
                    self._followers.remove(follower)
                return
            self._leaving[id(follower)] = done
        self._wake.set()
        done.wait(timeout)

    def room(self) -> None:
        """A follower that stopped accepting can take records again."""
        self._wake.set()

    def offer(self, partition: TopicPartition, record: KafkaRecord) -> None:
        """A record Kafka just acknowledged: hand it to every follower that is up to it.

        Called on the data plane's loop, in offset order within a partition. A follower
        not at this offset (it misses an earlier record) or full gets it from a fetch.
        """
        attributes = header_attributes(record.headers)
        taken = True
        self._offers += 1
        self._offered_end[partition] = record.offset + 1
        with self._lock:
            followers = list(self._followers)
        with self._handover:
            for follower in followers:
                progress = follower.progress.get(partition)
                if progress is None or record.offset < progress.next_offset:
                    continue  # not started yet, or a fetch was first
                if record.offset == progress.next_offset and follower.accepting:
                    follower.accept(partition, record, attributes)
                    self.taken_on_ack += 1
                else:
                    taken = False
        if not taken:
            self._wake.set()

    # the fetch loop ----------------------------------------------------------------------
    def _run(self) -> None:
        backoff = _RESTART_BACKOFF_S
        while not self._stopping.is_set():
            try:
                self._read()
            except KafkaError as error:  # a broken connection: start afresh
                self._reading = False
                message = f"Kafka cannot be read: {type(error).__name__}: {error}"
                log.warning("reader of %s: %s; reconnecting", self.topic, message)
                self._tell_followers(message, failed=False)
                backoff = _RESTART_BACKOFF_S
            except Exception as error:  # a bug must not end the reading for good
                self._reading = False
                message = f"reading {self.topic} failed unexpectedly: " \
                          f"{type(error).__name__}: {error}"
                log.exception("reader of %s: %s; restarting", self.topic, message)
                self._tell_followers(message, failed=True)
            if self._stopping.wait(backoff):
                return
            backoff = min(2 * backoff, _RESTART_BACKOFF_MAX_S)

    def _tell_followers(self, message: str, *, failed: bool) -> None:
        """Every follower shows `message` as its error until the reader reads again."""
        with self._lock:
            followers = self._followers + self._joining
        for follower in followers:
            follower.error = message
            if failed:
                follower.failures += 1

    def _read(self) -> None:
        settings = self._settings
        consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=f"troupe-reader-{self.topic}",
            group_id=None,  # offsets are committed per Trigger group, below
            enable_auto_commit=False,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            max_poll_records=settings.max_poll_records,
            metrics_enabled=False,  # nobody reads them; recording them costs CPU per record
        )
        admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                 client_id=f"troupe-offsets-{self.topic}")
        try:
            partitions = self._partitions(consumer)
            consumer.assign(partitions)
            positions: dict[TopicPartition, int] = {}
            last_commit = last_poll = time.monotonic()
            offers_seen = self._offers
            recovered = False  # errors are cleared once a fetch has worked again
            while not self._stopping.is_set():
                # Waited out before the seek, so that a fetch after a back-off starts from
                # what `offer` handed over meanwhile instead of bringing it back.
                nudged = self._back_off()
                self._admit(consumer, admin, partitions)
                self._release(admin)
                with self._lock:
                    followers = list(self._followers)
                if time.monotonic() - last_commit >= _COMMIT_INTERVAL_S and \
                        not self._abandoned:
                    commit(admin, followers)
                    measure_lag(consumer, followers)
                    last_commit = time.monotonic()
                if self._offers != offers_seen and self._fed_by_offers(followers) and \
                        time.monotonic() - last_poll < _IDLE_WAIT_MAX_S:
                    # Offers keep every Trigger up to date: a fetch would only bring their
                    # records back. Records from other writers are fetched within
                    # _IDLE_WAIT_MAX_S, or at once when they leave a gap before an offer.
                    offers_seen = self._offers
                    self._idle_wait_s = min(max(2 * self._idle_wait_s, _IDLE_WAIT_MIN_S),
                                            _IDLE_WAIT_MAX_S)
                    continue
                offers_seen = self._offers
                last_poll = time.monotonic()
                if not self._seek(consumer, partitions, followers, positions):
                    # Nobody can take records: no fetches until someone has room.
                    self._wake.wait(_POLL_TIMEOUT_MS / 1000)
                    self._wake.clear()
                    continue
                # Nudged: records are there, wait for them. Otherwise a short look, a fetch.
                batches = consumer.poll(timeout_ms=_POLL_TIMEOUT_MS if nudged
                                        else 2 * self._settings.fetch_max_wait_ms + 2)
                if not recovered:
                    self._reading = True
                    with self._lock:
                        for follower in self._followers:
                            follower.error = None
                    recovered = True
                handed = 0
                for partition, records in batches.items():
                    handed += self._fan_out(partition, records,
                                            positions.get(partition, records[0].offset), followers)
                    positions[partition] = records[-1].offset + 1
                # Back off when a fetch brings only what `offer` handed over already, or
                # nothing while every Trigger that can take records has all the topic has;
                # not when it brings nothing because it went out after a seek.
                busy = handed or (not batches and not self._caught_up(consumer, followers))
                self._idle_wait_s = 0.0 if busy else min(
                    max(2 * self._idle_wait_s, _IDLE_WAIT_MIN_S), _IDLE_WAIT_MAX_S)
            with self._lock:
                followers = list(self._followers)
            if not self._abandoned:
                commit(admin, followers)
        finally:
            consumer.close()
            admin.close()

    def _back_off(self) -> bool:
        """Wait out the idle back-off; False if it ran out with nobody nudging."""
        if not self._idle_wait_s:
            return True
        nudged = self._wake.wait(self._idle_wait_s)
        self._wake.clear()
        return nudged

    def _fed_by_offers(self, followers: Iterable[Follower]) -> bool:
        """True if every accepting follower has every record `offer` saw."""
        offered_end = dict(self._offered_end)
        for follower in followers:
            if not follower.accepting:
                continue
            for partition, end in offered_end.items():
                progress = follower.progress.get(partition)
                if progress is not None and progress.next_offset < end:
                    return False
        return True

    @staticmethod
    def _caught_up(consumer: KafkaConsumer, followers: Iterable[Follower]) -> bool:
        """True unless an accepting follower is behind the end of a partition as the last
        fetch saw it."""
        for follower in followers:
            if not follower.accepting:
                continue
            for partition, progress in list(follower.progress.items()):
                highwater = consumer.highwater(partition)
                if highwater is not None and progress.next_offset < highwater:
                    return False
        return True

    def _partitions(self, consumer: KafkaConsumer) -> list[TopicPartition]:
        deadline = time.monotonic() + 30
        while True:
            numbers = consumer.partitions_for_topic(self.topic)
            if numbers:
                return [TopicPartition(self.topic, n) for n in sorted(numbers)]
            if time.monotonic() > deadline or self._stopping.wait(0.2):
                raise KafkaError(f"topic {self.topic} has no partitions (not created?)")

    def _fan_out(self, partition: TopicPartition, records: list[KafkaRecord], fetched_from: int,
                 followers: Iterable[Follower]) -> int:
        """Hand a partition's records, fetched from offset `fetched_from`, to each follower;
        how many handovers there were."""
        attributes: list[Attributes | None] = [None] * len(records)  # read once, if needed
        handed = 0
        with self._handover:
            for follower in followers:
                progress = follower.progress.get(partition)
                if progress is None or progress.next_offset < fetched_from:
                    continue  # it missed records while full: sought back once it has room
                for index, record in enumerate(records):
                    # Others skip what they already have: after a seek back for one of
                    # them, or when `offer` handed the record over first.
                    if record.offset < progress.next_offset:
                        continue
                    if not follower.accepting:
                        break  # the rest waits for the seek back; never hand over a hole
                    its_attributes = attributes[index]
                    if its_attributes is None:
                        its_attributes = attributes[index] = header_attributes(record.headers)
                    follower.accept(partition, record, its_attributes)
                    handed += 1
            self.taken_from_fetch += handed
        return handed

    def _seek(self, consumer: KafkaConsumer, partitions: list[TopicPartition],
              followers: list[Follower], positions: dict[TopicPartition, int]) -> bool:
        """Fetch from the oldest offset any accepting follower needs; False if none accepts."""
        accepting = [f for f in followers if f.accepting]
        if not accepting:
            return False
        for partition in partitions:
            wanted = min((f.progress[partition].next_offset for f in accepting
                          if partition in f.progress), default=None)
            if wanted is not None and positions.get(partition) != wanted:
                consumer.seek(partition, wanted)
                positions[partition] = wanted
        return True

    # joining and leaving -----------------------------------------------------------------
    def _admit(self, consumer: KafkaConsumer, admin: KafkaAdminClient,
               partitions: list[TopicPartition]) -> None:
        with self._lock:
            joining, self._joining = self._joining, []
        try:
            self._admit_each(consumer, admin, partitions, joining)
        except BaseException:
            with self._lock:  # not admitted yet: they join after the reader starts over
                self._joining[:0] = [f for f in joining if f not in self._followers]
            raise

    def _admit_each(self, consumer: KafkaConsumer, admin: KafkaAdminClient,
                    partitions: list[TopicPartition], joining: list[Follower]) -> None:
        for follower in joining:
            group = follower.consumer_group
            if group in self._restart_groups:  # the topic is new: all of it is theirs
                self._restart_groups.discard(group)
                starts = start_offsets(admin, consumer, group, partitions, "earliest",
                                       forget_committed=True)
            else:
                starts = start_offsets(admin, consumer, group, partitions,
                                       self._settings.initial_offset)
            for partition in partitions:
                follower.progress[partition] = PartitionProgress(starts[partition])
            with self._lock:
                self._followers.append(follower)
            follower.error = None
            follower.joined()

    def _release(self, admin: KafkaAdminClient) -> None:
        with self._lock:
            if not self._leaving:
                return
            leaving = [f for f in self._followers if id(f) in self._leaving]
        for follower in leaving:
            try:
                if not self._abandoned:
                    commit(admin, [follower])
            finally:
                with self._lock:
                    self._followers.remove(follower)
                    self._leaving.pop(id(follower)).set()

__all__ = ["ConsumerSettings", "Follower", "TopicReader"]
