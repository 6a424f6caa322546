"""The Broker ingress answers as Knative's data-plane spec and the CloudEvents webhook spec say."""

from __future__ import annotations

import json

import pytest
import requests
from support.polling import wait_until
from troupe.local.eventing.broker import DataPlane

from .conftest import (
    NAMESPACE,
    binary_headers,
    unique,
)
from .sink import RecordingSink

pytestmark = pytest.mark.kafka


def test_binary_event_is_accepted_with_202_and_delivered_with_broker_extensions(
        plane: DataPlane, ingress_broker: str, fresh_sink: RecordingSink) -> None:
    response = requests.post(plane.broker_url(NAMESPACE, ingress_broker),
                             headers=binary_headers("e-1"), data=b'{"a": 1}', timeout=5)
    assert response.status_code == 202
    received = wait_until(lambda: fresh_sink.paths(f"/{ingress_broker}"), message="delivery")[0]
    event = received.event
    assert (event.get_id(), event.get_data()) == ("e-1", {"a": 1})
    assert event.get_extension("knativearrivaltime").endswith("Z")
    assert event.get_extension("knativebrokerttl") == "255"
    assert received.headers["prefer"] == "reply"
    assert received.headers["kn-namespace"] == NAMESPACE


def test_acknowledged_events_are_counted_per_broker(plane: DataPlane, ingress_broker: str) -> None:
    def ingested() -> int:
        (found,) = [b for b in plane.status()["brokers"] if b["name"] == ingress_broker]
        return int(found["ingested"])

    before = ingested()
    for index in range(3):
        response = requests.post(plane.broker_url(NAMESPACE, ingress_broker),
                                 headers=binary_headers(f"count-{index}"), data=b"{}", timeout=5)
        assert response.status_code == 202
    refused = requests.post(plane.broker_url(NAMESPACE, ingress_broker), data=b"{}",
                            headers={"content-type": "application/json"}, timeout=5)
    assert refused.status_code == 415  # not a CloudEvent: refused, not counted
    # A 202 is answered after Kafka's acknowledgement, so the count is already there.
    assert ingested() == before + 3


def test_structured_event_is_accepted(plane: DataPlane, ingress_broker: str,
                                      fresh_sink: RecordingSink) -> None:
    document = {"specversion": "1.0", "id": "s-1", "type": "dev.example.test",
                "source": "/tests", "data": {"b": 2}}
    response = requests.post(plane.broker_url(NAMESPACE, ingress_broker), data=json.dumps(document),
                             headers={"content-type": "application/cloudevents+json"}, timeout=5)
    assert response.status_code == 202
    # Filtered by id: an earlier test's events may still be on their way to this sink.
    received = wait_until(lambda: [r for r in fresh_sink.paths(f"/{ingress_broker}")
                                   if r.ce_id == "s-1"], message="delivery")[0]
    assert received.event.get_data() == {"b": 2}


@pytest.mark.parametrize(("content_type", "body", "expected"), [
    ("application/json", b'{"x": [1, 2]}', {"x": [1, 2]}),
    ("application/xml", b"<x><y>1</y></x>", b"<x><y>1</y></x>"),
    ("text/plain", "h\u00e9llo".encode(), "h\u00e9llo"),
])
def test_binary_mode_payloads_arrive_unchanged(plane: DataPlane, ingress_broker: str,
                                               fresh_sink: RecordingSink, content_type: str,
                                               body: bytes, expected: object) -> None:
    event_id = unique("payload")
    response = requests.post(plane.broker_url(NAMESPACE, ingress_broker), data=body,
                             headers=binary_headers(event_id, content_type=content_type),
                             timeout=5)
    assert response.status_code == 202
    received = wait_until(lambda: [r for r in fresh_sink.paths(f"/{ingress_broker}")
                                   if r.ce_id == event_id], message="delivery")[0]
    assert received.headers["content-type"] == content_type
    assert received.body == body
    assert received.event.get_data() == expected


@pytest.mark.parametrize("missing", ["ce-id", "ce-source", "ce-type"])
def test_missing_required_attribute_is_400(plane: DataPlane, ingress_broker: str,
                                           missing: str) -> None:
    headers = binary_headers("m-1")
    del headers[missing]
    response = requests.post(plane.broker_url(NAMESPACE, ingress_broker), headers=headers,
                             data=b"{}", timeout=5)
    assert response.status_code == 400
    assert missing[3:] in response.text


def test_unknown_specversion_is_400(plane: DataPlane, ingress_broker: str) -> None:
    headers = binary_headers("v-1")
    headers["ce-specversion"] = "4.0"
    response = requests.post(plane.broker_url(NAMESPACE, ingress_broker), headers=headers,
                             data=b"{}", timeout=5)
    assert response.status_code == 400


def test_batch_mode_is_415(plane: DataPlane, ingress_broker: str) -> None:
    response = requests.post(plane.broker_url(NAMESPACE, ingress_broker), data=b"[]",
                             headers={"content-type": "application/cloudevents-batch+json"},
                             timeout=5)
    assert response.status_code == 415


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_with_allow(plane: DataPlane, ingress_broker: str,
                                          method: str) -> None:
    response = requests.request(method, plane.broker_url(NAMESPACE, ingress_broker), timeout=5)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST, OPTIONS"


def test_options_answers_the_webhook_handshake(plane: DataPlane, ingress_broker: str) -> None:
    response = requests.options(plane.broker_url(NAMESPACE, ingress_broker), timeout=5,
                                headers={"WebHook-Request-Origin": "eventemitter.example.com"})
    assert response.status_code == 200
    assert response.headers["WebHook-Allowed-Origin"] == "eventemitter.example.com"
    assert response.headers["WebHook-Allowed-Rate"] == "*"
    assert "POST" in response.headers["Allow"]


def test_unknown_broker_is_404(plane: DataPlane, ingress_broker: str) -> None:
    response = requests.post(plane.broker_url(NAMESPACE, "no-such-broker"),
                             headers=binary_headers("u-1"), data=b"{}", timeout=5)
    assert response.status_code == 404


def test_too_large_is_413(plane: DataPlane, ingress_broker: str) -> None:
    body = b'"' + b"x" * (1024 * 1024 + 10) + b'"'
    response = requests.post(plane.broker_url(NAMESPACE, ingress_broker), data=body,
                             headers=binary_headers("big-1"), timeout=10)
    assert response.status_code == 413


def test_ttl_zero_is_rejected_and_a_given_ttl_is_kept(plane: DataPlane, ingress_broker: str,
                                                      fresh_sink: RecordingSink) -> None:
    url = plane.broker_url(NAMESPACE, ingress_broker)
    refused = requests.post(url, headers=binary_headers("t-0", knativebrokerttl="0"),
                            data=b"{}", timeout=5)
    assert refused.status_code == 400
    assert "knativebrokerttl" in refused.text
    kept = requests.post(url, headers=binary_headers("t-7", knativebrokerttl="7"), data=b"{}",
                         timeout=5)
    assert kept.status_code == 202
    received = wait_until(lambda: fresh_sink.paths(f"/{ingress_broker}"), message="delivery")
    assert [r.ce_id for r in received] == ["t-7"]
    assert received[0].headers["ce-knativebrokerttl"] == "7"


def test_partitionkey_becomes_the_record_key(plane: DataPlane, ingress_broker: str,
                                             kafka_servers: str) -> None:
    from kafka import KafkaConsumer, TopicPartition

    response = requests.post(plane.broker_url(NAMESPACE, ingress_broker), data=b"{}", timeout=5,
                             headers=binary_headers("k-1", partitionkey="customer-42"))
    assert response.status_code == 202
    topic = f"knative-broker-{NAMESPACE}-{ingress_broker}"
    consumer = KafkaConsumer(bootstrap_servers=kafka_servers, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        keys: dict[str, bytes | None] = {}

        def found() -> bool:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    keys[dict(record.headers)["ce_id"].decode()] = record.key
            return "k-1" in keys

        wait_until(found, message="the record on the broker topic")
        assert keys["k-1"] == b"customer-42"
    finally:
        consumer.close()
