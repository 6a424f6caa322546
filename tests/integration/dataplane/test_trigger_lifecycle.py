"""A Trigger's life on Kafka: deleting it deletes its consumer group, so a Trigger made
again under its name starts where a new Trigger starts (the end of the topic), not where
the old one stopped; and a second data plane for the same Brokers on the same Kafka is
refused, because both would deliver everything and overwrite each other's commits."""

from __future__ import annotations

import pytest
import requests
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient
from support.polling import wait_until
from troupe.local.eventing.broker import DataPlane
from troupe.local.eventing.broker.lease import BrokerClaimedError

from .conftest import NAMESPACE, binary_headers, broker_resource, trigger_resource, unique
from .sink import RecordingSink

pytestmark = pytest.mark.kafka


def _publish(plane: DataPlane, broker: str, event_id: str) -> None:
    answer = requests.post(plane.broker_url(NAMESPACE, broker), data=b"{}", timeout=10,
                           headers=binary_headers(event_id))
    assert answer.status_code == 202, answer.text


def test_a_trigger_made_again_under_its_name_starts_anew(
        plane: DataPlane, kafka_servers: str, fresh_sink: RecordingSink) -> None:
    broker = unique("lifecycle")
    plane.add_broker(broker_resource(broker))
    name = f"{broker}-t"
    trigger = trigger_resource(name, broker, f"{fresh_sink.url}/{broker}")
    plane.add_trigger(trigger)
    assert plane.wait_ready(30)
    _publish(plane, broker, "before")
    wait_until(lambda: fresh_sink.ids(f"/{broker}") == ["before"], 15, "the first event")

    assert plane.remove_trigger(NAMESPACE, name)
    admin = KafkaAdminClient(bootstrap_servers=kafka_servers)
    try:
        group = f"knative-trigger-{NAMESPACE}-{name}"
        partitions = [TopicPartition(f"knative-broker-{NAMESPACE}-{broker}", p)
                      for p in range(4)]
        offsets = admin.list_group_offsets({group: partitions}).get(group, {})
        assert all(meta.offset == -1 for meta in offsets.values()), offsets
    finally:
        admin.close()
    _publish(plane, broker, "while-deleted")
    plane.add_trigger(trigger)
    assert plane.wait_ready(30)
    _publish(plane, broker, "after")

    wait_until(lambda: "after" in fresh_sink.ids(f"/{broker}"), 15, "the event after")
    assert "while-deleted" not in fresh_sink.ids(f"/{broker}")


def test_a_second_data_plane_for_the_same_broker_is_refused(kafka_servers: str) -> None:
    broker = unique("owned")
    with DataPlane(kafka_servers, default_namespace=NAMESPACE) as first:
        first.add_broker(broker_resource(broker))
        with DataPlane(kafka_servers, default_namespace=NAMESPACE) as second:
            with pytest.raises(BrokerClaimedError, match="another data plane runs Broker"):
                second.add_broker(broker_resource(broker))
            assert second.brokers() == []
            other = unique("other")
            second.add_broker(broker_resource(other))  # a Broker of its own is fine
            assert [b.name for b in second.brokers()] == [other]
    # Stopped, the first gave the Broker up: a new data plane takes it.
    with DataPlane(kafka_servers, default_namespace=NAMESPACE) as third:
        third.add_broker(broker_resource(broker))
        assert [b.name for b in third.brokers()] == [broker]
