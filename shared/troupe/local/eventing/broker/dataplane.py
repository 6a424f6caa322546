"""The local data plane: Broker ingress, one Kafka topic per Broker, one dispatcher per Trigger.

Each Broker topic is fetched once (reader.py) and fanned out to its Triggers' dispatchers,
each of which commits under its own consumer group; trigger_delivery.py takes the
records on to the subscribers.

    plane = DataPlane("127.0.0.1:9092", resolve_subscriber=runtime.url_of)
    plane.start()
    plane.add_broker(broker_resource)
    plane.add_trigger(trigger_resource)
    requests.post(plane.broker_url("troupe", "default"), headers=..., data=...)
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final

from cloudevents.core.v1.event import CloudEvent
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from troupe.local.conventions import DEFAULT_NAMESPACE
from troupe.local.delivery import DeliveryClient
from troupe.local.eventing.broker.dispatcher import TriggerDispatcher
from troupe.local.eventing.broker.errors import DataPlaneError, UnknownBrokerError
from troupe.local.eventing.broker.ingress import IngressServer
from troupe.local.eventing.broker.ingress_connection import Timeouts
from troupe.local.eventing.broker.kafka_watch import KafkaWatch
from troupe.local.eventing.broker.lease import LEASE_TOPIC, Leases
from troupe.local.eventing.broker.parking import PARKING_TOPIC
from troupe.local.eventing.broker.publish import DEFAULT_MAX_EVENT_BYTES, Publisher, StoredRecord
from troupe.local.eventing.broker.reader import ConsumerSettings, TopicReader
from troupe.local.eventing.broker.recovery import KafkaRecovery
from troupe.local.eventing.broker.spec import (
    BrokerSpec,
    TriggerSpec,
    parse_broker,
    parse_trigger,
)
from troupe.local.eventing.broker.trigger_delivery import (
    ResolveSubscriber,
    TriggerDelivery,
    TriggerStatus,
)
from troupe.local.host.loop import LoopThread

log = logging.getLogger(__name__)
DEFAULT_PARTITIONS: Final = 4


def _no_refs(namespace: str, ref: Mapping[str, Any]) -> str:
    raise LookupError(
        f"cannot resolve {ref.get('kind', '?')}/{ref.get('name')} in {namespace}: this data "
        "plane was started without resolve_subscriber; use a uri or run it inside `troupe up`")


class DataPlane(KafkaRecovery):
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        port: int = 0,
        resolve_subscriber: ResolveSubscriber | None = None,
        default_namespace: str = DEFAULT_NAMESPACE,
        partitions: int = DEFAULT_PARTITIONS,
        max_in_flight: int = 64,
        initial_offset: str = "latest",
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        ingress_timeouts: Timeouts | None = None,
        max_connections: int | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.default_namespace = default_namespace
        self._port = port
        self._partitions = partitions
        self._max_event_bytes = max_event_bytes
        self._ingress_timeouts = ingress_timeouts
        self._max_connections = max_connections
        self._settings = ConsumerSettings(bootstrap_servers, max_in_flight, initial_offset)
        self._lock = threading.RLock()
        self._brokers: dict[tuple[str, str], BrokerSpec] = {}
        self._triggers: dict[tuple[str, str], TriggerSpec] = {}
        self._dispatchers: dict[tuple[str, str], TriggerDispatcher] = {}
        self._readers: dict[str, TopicReader] = {}  # by topic
        self._stats: dict[tuple[str, str], TriggerStatus] = {}
        self._delivery = TriggerDelivery(resolve_subscriber or _no_refs, self._brokers,
                                         self._stats, self._dispatchers)
        self._loop: LoopThread | None = None
        self._client: DeliveryClient | None = None
        self._publisher: Publisher | None = None
        self._ingress: IngressServer | None = None
        self._admin: KafkaAdminClient | None = None
        self._watch: KafkaWatch | None = None
        self._leases: Leases | None = None
        # Why Kafka cannot take events now (it does not answer), or None; how often it went.
        self.kafka_problem: str | None = None
        self.kafka_outages = 0
        self._memory_lost = False  # set by kafka_lost() until the topics are back

    # lifecycle ---------------------------------------------------------------------------
    def start(self) -> DataPlane:
        self._loop = LoopThread("broker-data-plane").start()
        self._publisher = Publisher(self.bootstrap_servers, self._loop,
                                    max_event_bytes=self._max_event_bytes, on_stored=self._stored)
        self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers,
                                       client_id="troupe-broker-admin")
        publisher = self._publisher
        self._leases = Leases(self.bootstrap_servers, lambda topic, key, value, wait:
                              publisher.write_record(topic, key, value, wait=wait)).start()
        self._ingress = IngressServer(self._port, self._broker_lookup, self._publisher,
                                      self._loop, timeouts=self._ingress_timeouts,
                                      max_connections=self._max_connections)
        self._ingress.start()
        self._client = DeliveryClient(self._loop)
        self._delivery.attach(self._client, self._publisher)
        with self._lock:
            for broker in self._brokers.values():
                self._create_topic(broker)
                self._leases.claim(broker.topic, f"{broker.namespace}/{broker.name}")
            for key in self._triggers:
                self._start_dispatcher(key)
        self._watch = KafkaWatch(self.bootstrap_servers, self._kafka_down,
                                 self._kafka_up).start()
        return self

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        with self._lock:
            dispatchers = list(self._dispatchers.values())
            self._dispatchers.clear()
        for dispatcher in dispatchers:
            dispatcher.stop()
        with self._lock:
            readers = list(self._readers.values())
            self._readers.clear()
        for reader in readers:
            reader.stop()
        self._delivery.detach()
        if self._client is not None:
            self._client.stop()
            self._client = None
        if self._leases is not None:
            self._leases.stop()
            self._leases = None
        if self._ingress is not None:
            self._ingress.stop()
            self._ingress = None
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._loop is not None:
            self._loop.stop()
            self._loop = None

    def __enter__(self) -> DataPlane:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    @property
    def ingress_url(self) -> str:
        if self._ingress is None:
            raise DataPlaneError("the data plane is not running: call start() first")
        return self._ingress.url

    def broker_url(self, namespace: str, name: str) -> str:
        return f"{self.ingress_url}/{namespace}/{name}"

    # resources ---------------------------------------------------------------------------
    def add_broker(self, resource: Mapping[str, Any]) -> BrokerSpec:
        """Create or update a Broker; its topic is created if missing. BrokerClaimedError
        if another data plane runs it on the same Kafka."""
        broker = parse_broker(resource, self.default_namespace)
        with self._lock:
            if self._admin is not None and self._leases is not None:
                self._create_topic(broker)
                self._leases.claim(broker.topic, f"{broker.namespace}/{broker.name}")
            self._brokers[broker.key] = broker
            for key, trigger in self._triggers.items():
                if trigger.broker_key == broker.key:
                    self._start_dispatcher(key)  # picks up the Broker's delivery defaults
        return broker

    def remove_broker(self, namespace: str, name: str) -> bool:
        with self._lock:
            broker = self._brokers.pop((namespace, name), None)
            if broker is None:
                return False
            for key, trigger in self._triggers.items():
                if trigger.broker_key == (namespace, name):
                    self._stop_dispatcher(key)
            reader = self._readers.pop(broker.topic, None)
        if reader is not None:
            reader.stop()
        if self._leases is not None:
            self._leases.release(broker.topic)
        return True

    def add_trigger(self, resource: Mapping[str, Any]) -> TriggerSpec:
        """Create or replace a Trigger; raises InvalidResourceError (e.g. a cesql parse
        error) at once."""
        trigger = parse_trigger(resource, self.default_namespace)
        with self._lock:
            self._triggers[trigger.key] = trigger
            self._stats[trigger.key] = TriggerStatus(
                trigger.namespace, trigger.name, trigger.broker, False, "starting",
                trigger.subscriber.describe())
            if self._publisher is not None:
                self._start_dispatcher(trigger.key)
        return trigger

    def remove_trigger(self, namespace: str, name: str) -> bool:
        """Stop a Trigger and delete its consumer group: a Trigger made again under the
        same name starts where a new one starts, not where this one stopped."""
        with self._lock:
            trigger = self._triggers.pop((namespace, name), None)
            if trigger is None:
                return False
            self._stop_dispatcher((namespace, name))
            self._stats.pop((namespace, name), None)
            self._delivery.forget((namespace, name))
            admin = self._admin
        if admin is not None and self.kafka_problem is None:
            try:
                admin.delete_groups([trigger.consumer_group])
            except KafkaError as error:
                log.warning("trigger %s/%s: deleting its consumer group %s failed (%s); a "
                            "Trigger of the same name would resume from its offsets",
                            namespace, name, trigger.consumer_group, error)
        return True

    def brokers(self) -> list[BrokerSpec]:
        with self._lock:
            return list(self._brokers.values())

    def triggers(self) -> list[TriggerSpec]:
        with self._lock:
            return list(self._triggers.values())

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """True once every Trigger whose Broker exists has joined its consumer group."""
        with self._lock:
            dispatchers = list(self._dispatchers.values())
        return all(d.wait_ready(timeout) for d in dispatchers)

    def trigger_status(self, namespace: str, name: str) -> TriggerStatus:
        with self._lock:
            status = self._stats.get((namespace, name))
            if status is None:
                raise KeyError(f"no trigger {namespace}/{name}")
            dispatcher = self._dispatchers.get((namespace, name))
            trigger = self._triggers[(namespace, name)]
        if dispatcher is None:
            status.ready, status.reason = False, f"broker {trigger.broker} does not exist"
        else:
            problem = dispatcher.error or dispatcher.failure
            status.ready = dispatcher.ready and problem is None
            status.reason = problem or ("ready" if dispatcher.ready else "joining")
            status.failures = dispatcher.failures
            status.in_flight, status.lag = dispatcher.in_flight, dispatcher.lag
            status.seen, status.filtered_out = dispatcher.seen, dispatcher.filtered_out
            status.filter_errors = trigger.filter_errors.count
        return status

    def status(self) -> dict[str, Any]:
        """Everything `troupe status` shows about the data plane."""
        running = self._ingress is not None
        with self._lock:
            brokers, keys = list(self._brokers.values()), list(self._triggers)
        return {
            "ingress": self.ingress_url if running else None,
            "bootstrap_servers": self.bootstrap_servers,
            "brokers": [self._broker_status(b, running) for b in brokers],
            "triggers": [vars(self.trigger_status(*key)).copy() for key in keys],
        }

    def _broker_status(self, broker: BrokerSpec, running: bool) -> dict[str, Any]:
        reader = self._readers.get(broker.topic)
        problem = self.kafka_problem if running else "the data plane is not running"
        return {"namespace": broker.namespace, "name": broker.name, "topic": broker.topic,
                "ready": problem is None, "reason": problem or "ready",
                "url": self.broker_url(*broker.key) if running else None,
                "ingested": self._publisher.stored(broker.topic) if self._publisher else 0,
                # How the Triggers got their records: straight from Kafka's acknowledgement
                # of this data plane's writes, or from fetching the topic (reader.py).
                "taken_on_ack": reader.taken_on_ack if reader else 0,
                "taken_from_fetch": reader.taken_from_fetch if reader else 0}

    # publishing --------------------------------------------------------------------------
    def publish(self, namespace: str, broker: str, event: CloudEvent, *,
                ttl: int | None = None) -> None:
        """Put an event on a Broker as the ingress would (for sources inside the runtime)."""
        spec = self._broker_lookup(namespace, broker)
        if spec is None:
            raise UnknownBrokerError(f"no broker {namespace}/{broker}: add_broker() it first")
        if self._publisher is None:
            raise DataPlaneError("the data plane is not running: call start() first")
        self._publisher.publish(spec, event, ttl=ttl)

    # internals ---------------------------------------------------------------------------
    def _broker_lookup(self, namespace: str, name: str) -> BrokerSpec | None:
        return self._brokers.get((namespace, name))

    def _stored(self, record: StoredRecord) -> None:
        # Called on the loop with each acknowledged write: the topic's Triggers get it now
        # instead of from their next fetch (reader.py).
        reader = self._readers.get(record.topic)
        if reader is not None:
            reader.offer(TopicPartition(record.topic, record.partition), record)

    def _create_topic(self, broker: BrokerSpec) -> None:
        assert self._admin is not None
        with contextlib.suppress(TopicAlreadyExistsError):
            self._admin.create_topics([NewTopic(broker.topic, self._partitions, 1)])
        for shared in (PARKING_TOPIC, LEASE_TOPIC):  # one each for every Broker
            with contextlib.suppress(TopicAlreadyExistsError):
                self._admin.create_topics([NewTopic(shared, 1, 1)])

    def _start_dispatcher(self, key: tuple[str, str]) -> None:
        self._stop_dispatcher(key)
        trigger = self._triggers[key]
        broker = self._brokers.get(trigger.broker_key)
        if broker is None or self._publisher is None:
            return  # started by add_broker() / start()
        reader = self._readers.get(broker.topic)
        if reader is None:
            reader = self._readers[broker.topic] = TopicReader(broker.topic,
                                                               self._settings).start()
        dispatcher = TriggerDispatcher(trigger, broker, self._settings, self._delivery.deliver,
                                       reader, self._delivery.deliver_first)
        self._dispatchers[key] = dispatcher
        dispatcher.start()

    def _stop_dispatcher(self, key: tuple[str, str]) -> None:
        dispatcher = self._dispatchers.pop(key, None)
        if dispatcher is not None:
            dispatcher.stop()


__all__ = ["DataPlane", "ResolveSubscriber", "TriggerStatus"]
