"""The data plane inside `troupe up`: triggers made live through the API, sources, and a
scaled-to-zero function woken by an event. Real Tansu, real gunicorn."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from kafka import KafkaProducer
from kubernetes import client, config
from support.polling import wait_until
from troupe.events import DATA_ARRIVED, PING, make_event, to_http_binary

from .conftest import StartRuntime, service, service_status

pytestmark = pytest.mark.kafka
RETENTION = "autoscaling.knative.dev/scale-to-zero-pod-retention-period"
BROKER = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
          "metadata": {"name": "default"}}


def recorder(name: str, record_file: Path, retention: str = "30s") -> dict[str, Any]:
    return service(name, image="recorder", annotations={RETENTION: retention},
                   env=[{"name": "RECORD_FILE", "value": str(record_file)}])


def trigger(name: str, subscriber: str, event_type: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"broker": "default", "subscriber": {"ref": {
        "apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": subscriber}}}
    if event_type:
        spec["filter"] = {"attributes": {"type": event_type}}
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": name}, "spec": spec}


def received(record_file: Path) -> list[dict[str, Any]]:
    if not record_file.exists():
        return []
    return [json.loads(line) for line in record_file.read_text().splitlines()]


def publish(broker_url: str, event_id: str) -> None:
    event = make_event(DATA_ARRIVED, {"uri": "file:///tmp/data.csv", "target": "label"},
                       event_id=event_id,
                       source="/tests/runtime")
    message = to_http_binary(event)
    answer = requests.post(broker_url, data=message.body, headers=dict(message.headers),
                           timeout=30)
    assert answer.status_code == 202, answer.text


def test_a_trigger_created_through_the_api_delivers_to_a_cold_function_until_deleted(
        start_runtime: StartRuntime, tmp_path: Path) -> None:
    seen, control = tmp_path / "seen.jsonl", tmp_path / "control.jsonl"
    runtime = start_runtime([recorder("recorder", seen, retention="1s"),
                             recorder("control", control)],
                            [BROKER, trigger("control", "control")], data_plane=True)
    broker_url = runtime.broker_urls()[0]
    api = client.CustomObjectsApi(config.new_client_from_config(str(runtime.kubeconfig)))
    assert service_status(runtime, "recorder")["instances"] == 0

    api.create_namespaced_custom_object("eventing.knative.dev", "v1", "troupe", "triggers",
                                        trigger("live", "recorder"))
    wait_until(lambda: _trigger_ready(api, "live"), 30, "the new trigger to be ready")
    publish(broker_url, "first")

    wait_until(lambda: [e["id"] for e in received(seen)] == ["first"], 30, "delivery of 'first'")
    wait_until(lambda: service_status(runtime, "recorder")["instances"] == 0, 15,
               "the recorder to scale back to zero")

    api.delete_namespaced_custom_object("eventing.knative.dev", "v1", "troupe", "triggers",
                                        "live")
    publish(broker_url, "second")
    wait_until(lambda: {"first", "second"} <= {e["id"] for e in received(control)}, 30,
               "the control trigger to receive both events")
    assert [e["id"] for e in received(seen)] == ["first"]
    assert service_status(runtime, "recorder")["instances"] == 0


def _trigger_ready(api: client.CustomObjectsApi, name: str) -> bool:
    obj = api.get_namespaced_custom_object("eventing.knative.dev", "v1", "troupe", "triggers",
                                           name)
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in obj.get("status", {}).get("conditions", []))


def test_a_pingsource_ticks_and_a_kafkasource_delivers(
        start_runtime: StartRuntime, tmp_path: Path) -> None:
    pings, records = tmp_path / "pings.jsonl", tmp_path / "records.jsonl"
    topic = f"data-{uuid.uuid4().hex[:8]}"
    ping = {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
            "metadata": {"name": "tick", "annotations": {"troupe.dev/interval-seconds": "0.5"}},
            "spec": {"schedule": "*/1 * * * *", "data": '{"tick": true}', "sink": {"ref": {
                "apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}}}}
    kafka_source = {"apiVersion": "sources.knative.dev/v1beta1", "kind": "KafkaSource",
                    "metadata": {"name": "data"},
                    "spec": {"bootstrapServers": ["my-cluster-kafka-bootstrap.kafka:9092"],
                             "topics": [topic], "initialOffset": "earliest",
                             "sink": {"ref": {"apiVersion": "serving.knative.dev/v1",
                                              "kind": "Service", "name": "records"}}}}
    runtime = start_runtime([recorder("pings", pings), recorder("records", records)],
                            [BROKER, trigger("on-ping", "pings", PING), ping, kafka_source],
                            data_plane=True)

    wait_until(lambda: len(received(pings)) >= 2, 30, "two PingSource ticks")
    producer = KafkaProducer(bootstrap_servers=runtime.data_plane_info()["bootstrap_servers"])
    producer.send(topic, key=b"k1", value=b'{"uri": "file:///tmp/new.csv"}').get(timeout=30)
    producer.close()
    wait_until(lambda: received(records), 30, "the Kafka record at the KafkaSource's sink")

    tick = received(pings)[0]
    assert tick["type"] == PING
    assert tick["source"] == "/apis/v1/namespaces/troupe/pingsources/tick"
    assert json.loads(tick["body"]) == {"tick": True}
    record = received(records)[0]
    assert record["source"] == f"/apis/v1/namespaces/troupe/kafkasources/data#{topic}"
    assert json.loads(record["body"]) == {"uri": "file:///tmp/new.csv"}
