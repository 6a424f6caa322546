"""A Trigger's consumer group offsets: where it starts, what it commits, how far behind it is.

The shared reader (reader.py) fetches without a group; each Trigger's progress is read
and committed under its own group id through the admin API, so the usual Kafka tools show
per-Trigger offsets and lag as they would with one consumer per Trigger.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.structs import OffsetAndMetadata

if TYPE_CHECKING:
    from troupe.local.eventing.broker.reader import Follower

log = logging.getLogger(__name__)
_NO_OFFSET: Final = -1  # what OffsetFetch answers for a partition the group never committed


def start_offsets(admin: KafkaAdminClient, consumer: KafkaConsumer, group: str,
                  partitions: list[TopicPartition], initial_offset: str, *,
                  forget_committed: bool = False) -> dict[TopicPartition, int]:
    """Where `group` starts on each partition: its committed offset, or for a new group the
    beginning or end of the partition (`initial_offset`), committed at once.
    `forget_committed` treats the group as new: its offsets belong to a topic that is gone
    (a Kafka that lost its memory), whatever was committed since."""
    committed = {} if forget_committed else \
        admin.list_group_offsets({group: partitions}).get(group, {})
    missing = [p for p in partitions
               if committed.get(p) is None or committed[p].offset == _NO_OFFSET]
    anchors: dict[TopicPartition, int] = {}
    if missing:
        # Anchor a new group where it starts, so events published while the runtime is
        # down are delivered after a restart instead of skipped.
        anchors = (consumer.beginning_offsets(missing) if initial_offset == "earliest"
                   else consumer.end_offsets(missing))
        admin.alter_group_offsets(group, {
            p: OffsetAndMetadata(offset, "", -1) for p, offset in anchors.items()})
    return {p: anchors[p] if p in anchors else committed[p].offset for p in partitions}


def commit(admin: KafkaAdminClient, followers: Iterable[Follower]) -> None:
    """Commit each follower's finished prefix of every partition, where it moved."""
    for follower in followers:
        offsets = {}
        for partition, progress in list(follower.progress.items()):
            position = progress.commit_position()
            if position != progress.committed:
                offsets[partition] = position
        if not offsets:
            continue
        errors = admin.alter_group_offsets(follower.consumer_group, {
            p: OffsetAndMetadata(offset, "", -1) for p, offset in offsets.items()})
        for partition, offset in offsets.items():
            error = errors.get(partition)
            if error is None or error.errno == 0:
                follower.progress[partition].committed = offset
            else:
                log.warning("group %s: committing %s at %s failed: %s",
                            follower.consumer_group, partition, offset, error.__name__)


def measure_lag(consumer: KafkaConsumer, followers: Iterable[Follower]) -> None:
    """Each follower's lag: records between its committed offsets and the partitions' ends."""
    for follower in followers:
        lag = 0
        for partition, progress in list(follower.progress.items()):
            highwater = consumer.highwater(partition)
            if highwater is not None:
                lag += max(0, highwater - progress.committed)
        follower.lag = lag


__all__ = ["commit", "measure_lag", "start_offsets"]
