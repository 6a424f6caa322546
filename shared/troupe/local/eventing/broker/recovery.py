"""What the data plane does when Kafka goes and comes back (a mixin of DataPlane).

Gone: the ingress refuses events at once with 503 (the publisher is `unavailable`), and
the Brokers are not Ready, with the reason. Back: a Kafka that kept its memory (a durable
one after a network cut) only gets the topics it lacks; one that lost it (the embedded
Tansu, restarted) gets every topic made again, a new producer (it forgot the old one's
producer id), and Triggers that start over at offset 0 of the new topics, their old
readers abandoned without committing, so that nothing stored since is skipped.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from troupe.local.eventing.broker.reader import TopicReader
from troupe.local.eventing.broker.spec import BrokerSpec, TriggerSpec

if TYPE_CHECKING:
    from troupe.local.eventing.broker.kafka_watch import KafkaWatch
    from troupe.local.eventing.broker.publish import Publisher
    from troupe.local.eventing.broker.reader import ConsumerSettings

log = logging.getLogger(__name__)


class KafkaRecovery:
    # What DataPlane has, and this uses.
    bootstrap_servers: str
    kafka_problem: str | None
    kafka_outages: int
    _memory_lost: bool
    _lock: threading.RLock
    _admin: KafkaAdminClient | None
    _watch: KafkaWatch | None
    _publisher: Publisher | None
    _settings: ConsumerSettings
    _brokers: dict[tuple[str, str], BrokerSpec]
    _triggers: dict[tuple[str, str], TriggerSpec]
    _readers: dict[str, TopicReader]

    def _create_topic(self, broker: BrokerSpec) -> None:
        raise NotImplementedError

    def _start_dispatcher(self, key: tuple[str, str]) -> None:
        raise NotImplementedError

    def _stop_dispatcher(self, key: tuple[str, str]) -> None:
        raise NotImplementedError

    def kafka_lost(self, problem: str) -> None:
        """Kafka is gone and will come back without its memory (the embedded one died and
        is being restarted): refuse events now, and put its topics back once it answers."""
        self._memory_lost = True
        if self._watch is not None:
            self._watch.lost(problem)

    def _kafka_down(self, problem: str) -> None:
        log.error("%s: the ingress answers 503 until it is back", problem)
        if self.kafka_problem is None:
            self.kafka_outages += 1
        self.kafka_problem = problem
        if self._publisher is not None:
            self._publisher.unavailable = problem

    def _kafka_up(self) -> bool:
        """Kafka answers again. A Kafka that lost its memory (the embedded one, restarted)
        has no topics and no offsets: each topic is created again (a client may have had
        it created meanwhile) and its Triggers start over from its beginning, so that
        nothing stored since is skipped. A Kafka that kept its memory only gets the topics
        it lacks. True once the data plane takes events again."""
        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers,
                                     client_id="troupe-broker-admin")
            existing = set(admin.list_topics())
        except KafkaError as error:
            log.warning("Kafka answers but cannot be used yet (%s): trying again", error)
            return False
        with self._lock:
            old, self._admin = self._admin, admin
            forgotten = self._memory_lost
            brokers = [b for b in self._brokers.values()
                       if forgotten or b.topic not in existing]
            for broker in brokers:
                self._renew_topic(broker)
        if old is not None:
            with contextlib.suppress(Exception):  # its connections went with the old Kafka
                old.close()
        if brokers and self._publisher is not None:
            self._publisher.renew()
        self._memory_lost = False
        if brokers:
            log.warning("Kafka is back without what it held for %s: topics created again, "
                        "Triggers start over on them", ", ".join(f"{b.namespace}/{b.name}"
                                                     for b in brokers))
        self.kafka_problem = None
        if self._publisher is not None:
            self._publisher.unavailable = None
        log.info("Kafka at %s answers again: the ingress takes events", self.bootstrap_servers)
        return True

    def _renew_topic(self, broker: BrokerSpec) -> None:
        """The topic again, and a reader and dispatchers for it that start at offset 0."""
        keys = [key for key, trigger in self._triggers.items()
                if trigger.broker_key == broker.key]
        reader = self._readers.pop(broker.topic, None)
        if reader is not None:
            reader.abandon()
        for key in keys:
            self._stop_dispatcher(key)
        self._create_topic(broker)
        self._readers[broker.topic] = TopicReader(
            broker.topic, self._settings,
            restart_groups=[self._triggers[key].consumer_group for key in keys]).start()
        for key in keys:
            self._start_dispatcher(key)
