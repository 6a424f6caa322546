"""One data plane per Broker on a Kafka: a lease, renewed by heartbeats on a Kafka topic.

Two data planes running the same Broker on the same Kafka would both deliver every event
(each Trigger's consumer group has no members to split the work) and overwrite each
other's commits. So a data plane claims each of its Brokers before running it: it reads
the latest heartbeat for the Broker's topic on LEASE_TOPIC, and if another data plane
wrote one within EXPIRY_S, it waits for that one to age out (a data plane killed a moment
ago stops renewing; one killed on this machine is seen gone at once) and refuses the
Broker if it does not. It then renews its own every
HEARTBEAT_S, and releases it when it stops or drops the Broker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from troupe.local.eventing.broker.errors import DataPlaneError
from troupe.local.host.processes import process_alive

LEASE_TOPIC: Final = "troupe-data-plane-leases"
HEARTBEAT_S: Final = 2.0
EXPIRY_S: Final = 3 * HEARTBEAT_S
# Heartbeats read back when claiming: the latest of each Broker is among them.
_TAIL: Final = 500
log = logging.getLogger(__name__)

# Writes one record (topic, key, value), waiting for Kafka's acknowledgement if told to.
WriteRecord = Callable[[str, bytes, bytes, bool], None]


class BrokerClaimedError(DataPlaneError):
    """Another data plane runs this Broker on this Kafka."""


class Leases:
    def __init__(self, bootstrap_servers: str, write: WriteRecord) -> None:
        self._bootstrap = bootstrap_servers
        self._write = write
        self.owner = {"id": uuid.uuid4().hex, "pid": os.getpid(),
                      "host": socket.gethostname()}
        self._held: set[str] = set()  # Broker topics
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="broker-leases", daemon=True)

    def start(self) -> Leases:
        self._thread.start()
        return self

    def claim(self, topic: str, broker: str) -> None:
        """Hold `topic` for this data plane; BrokerClaimedError if another one keeps it."""
        with self._lock:
            if topic in self._held:
                return
        deadline = time.monotonic() + EXPIRY_S + HEARTBEAT_S
        while True:
            other = self._current(topic)
            if other is None:
                break
            if time.monotonic() > deadline:
                raise BrokerClaimedError(
                    f"another data plane runs Broker {broker} on Kafka {self._bootstrap} "
                    f"(pid {other.get('pid')} on {other.get('host')}): two would both deliver "
                    "every event; stop it (`troupe down` in its project), or give this one "
                    "its own Kafka (KAFKA_BOOTSTRAP_SERVERS) or namespace")
            time.sleep(HEARTBEAT_S / 2)  # a data plane killed a moment ago stops renewing
        self._beat(topic, alive=True)
        with self._lock:
            self._held.add(topic)

    def release(self, topic: str) -> None:
        with self._lock:
            held = topic in self._held
            self._held.discard(topic)
        if held:
            self._beat(topic, alive=False)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            held, self._held = list(self._held), set()
        for topic in held:
            with contextlib.suppress(KafkaError, DataPlaneError):  # gone: it ages out
                self._beat(topic, alive=False, wait=False)

    def _renew(self) -> None:
        while not self._stopping.wait(HEARTBEAT_S):
            with self._lock:
                held = list(self._held)
            for topic in held:
                try:
                    self._beat(topic, alive=True)
                except Exception as error:  # Kafka is down: the lease is renewed when back
                    log.debug("renewing the lease of %s failed: %s", topic, error)

    def _beat(self, topic: str, *, alive: bool, wait: bool = True) -> None:
        value = {**self.owner, "at": time.time() if alive else 0.0}
        self._write(LEASE_TOPIC, topic.encode(), json.dumps(value).encode(), wait)

    def _current(self, topic: str) -> dict[str, Any] | None:
        """The other data plane holding `topic` now, from its latest heartbeat, or None."""
        latest: dict[str, Any] | None = None
        consumer = KafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None,
                                 enable_auto_commit=False)
        try:
            numbers = consumer.partitions_for_topic(LEASE_TOPIC) or set()
            partitions = [TopicPartition(LEASE_TOPIC, n) for n in sorted(numbers)]
            if not partitions:
                return None
            consumer.assign(partitions)
            ends = consumer.end_offsets(partitions)
            for partition in partitions:
                consumer.seek(partition, max(0, ends[partition] - _TAIL))
            deadline = time.monotonic() + 10
            while any(consumer.position(p) < ends[p] for p in partitions) and \
                    time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        if record.key == topic.encode():
                            latest = json.loads(record.value)
        finally:
            consumer.close()
        if latest is None or latest.get("id") == self.owner["id"]:
            return None
        if latest.get("host") == self.owner["host"] and not _alive(latest.get("pid")):
            return None  # killed on this machine: no need to wait for its lease to age out
        return latest if time.time() - float(latest.get("at", 0)) < EXPIRY_S else None


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return True  # cannot tell: let the heartbeat decide
    return process_alive(pid)
