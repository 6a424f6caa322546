"""The data plane inside `troupe up`: triggers made live through the API, sources, and a
scaled-to-zero function woken by an event. Real Tansu, real gunicorn."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kafka import KafkaProducer
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from support.polling import wait_until
from troupe.events import DATA_ARRIVED, PING, make_event, to_http_binary
from troupe.local.controlplane.manifests import ManifestError
from troupe.local.runtime import Runtime, RuntimeOptions

from .conftest import RECORDER, StartRuntime, service, service_status, write_project

pytestmark = pytest.mark.kafka
RETENTION = "autoscaling.knative.dev/scale-to-zero-pod-retention-period"
BROKER = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
          "metadata": {"name": "default"}}


def recorder(name: str, record_file: Path, retention: str = "30s") -> dict[str, Any]:
    return service(name, image="recorder", annotations={RETENTION: retention},
                   env=[{"name": "RECORD_FILE", "value": str(record_file)}])


def trigger(name: str, subscriber: str, event_type: str | None = None,
            cesql: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"broker": "default", "subscriber": {"ref": {
        "apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": subscriber}}}
    if event_type:
        spec["filter"] = {"attributes": {"type": event_type}}
    if cesql is not None:
        spec["filters"] = [{"cesql": cesql}]
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


def test_a_cesql_trigger_through_the_api_delivers_the_matching_events_and_counts_errors(
        start_runtime: StartRuntime, tmp_path: Path) -> None:
    seen = tmp_path / "seen.jsonl"
    runtime = start_runtime([recorder("recorder", seen)], [BROKER], data_plane=True)
    api = client.CustomObjectsApi(config.new_client_from_config(str(runtime.kubeconfig)))
    # 'drop-1' fails both tests, and int('drop-1') is a cast error: no match, counted.
    api.create_namespaced_custom_object("eventing.knative.dev", "v1", "troupe", "triggers",
                                        trigger("wanted", "recorder", cesql=(
                                            "type = 'dev.troupe.data.arrived' AND "
                                            "(id LIKE 'keep-%' OR int(id) > 100)")))
    wait_until(lambda: _trigger_ready(api, "wanted"), 30, "the cesql trigger to be ready")
    broker_url = runtime.broker_urls()[0]
    for event_id in ("drop-1", "keep-1", "200"):
        publish(broker_url, event_id)

    wait_until(lambda: _filter_errors(runtime) == 1, 30, "the cast error to be counted")
    wait_until(lambda: len(received(seen)) == 2, 30, "delivery of keep-1 and 200")
    assert sorted(e["id"] for e in received(seen)) == ["200", "keep-1"]
    [wanted] = [t for t in runtime.status()["triggers"] if t["name"] == "wanted"]
    assert wanted["filter_errors"] == 1  # what `troupe status --json` shows


def test_an_invalid_cesql_expression_gets_422_naming_the_field_and_the_parse_error(
        start_runtime: StartRuntime, tmp_path: Path) -> None:
    runtime = start_runtime([recorder("recorder", tmp_path / "seen.jsonl")], [BROKER],
                            data_plane=True)
    api = client.CustomObjectsApi(config.new_client_from_config(str(runtime.kubeconfig)))
    triggers = ("eventing.knative.dev", "v1", "troupe", "triggers")
    with pytest.raises(ApiException) as created:
        api.create_namespaced_custom_object(*triggers, trigger("bad", "recorder",
                                                               cesql="type = "))
    api.create_namespaced_custom_object(*triggers, trigger("good", "recorder", cesql="true"))
    with pytest.raises(ApiException) as patched:
        api.patch_namespaced_custom_object(*triggers, "good", {"spec": {"filters": [
            {"any": [{"exact": {"type": "x"}}, {"cesql": "subject LIKE 3"}]}]}})

    for raised, field, problem in (
            (created, "spec.filters[0].cesql", "invalid CESQL at column 7: expected an "
                                               "expression"),
            (patched, "spec.filters[0].any[1].cesql", "invalid CESQL at column 14: expected "
                                                      "a string literal, found '3'")):
        body = json.loads(raised.value.body)
        assert (raised.value.status, body["reason"]) == (422, "Invalid")
        assert body["details"]["causes"][0]["field"] == field
        assert body["details"]["causes"][0]["message"].startswith(problem)
        assert f"{field}: {problem}" in body["message"]
    good = api.get_namespaced_custom_object(*triggers, "good")
    assert good["spec"]["filters"] == [{"cesql": "true"}]  # the refused patch changed nothing
    with pytest.raises(ApiException) as missing:
        api.get_namespaced_custom_object(*triggers, "bad")
    assert missing.value.status == 404


def test_a_trigger_in_eventing_with_an_invalid_expression_stops_troupe_up(tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", [service("recorder", image="recorder")],
                            [BROKER, trigger("bad", "recorder", cesql="source IN ('/a',)")],
                            functions={"recorder": RECORDER})

    with pytest.raises(ManifestError) as refused:
        Runtime(RuntimeOptions(project, data_plane=True, prometheus=False),
                say=lambda _: None).start()

    assert refused.value.field == "spec.filters[0].cesql"
    assert "Trigger/bad: spec.filters[0].cesql: invalid CESQL at column 17: expected an " \
           "expression" in str(refused.value)


def _filter_errors(runtime: Runtime) -> float:
    """troupe_runtime_events_filter_errors_total, read from the API port's /metrics."""
    kubeconfig = yaml.safe_load(runtime.kubeconfig.read_text())
    token = kubeconfig["users"][0]["user"]["token"]
    text = requests.get(f"{runtime.api_url}/metrics", timeout=10, verify=runtime.api_ca_file,
                        headers={"Authorization": f"Bearer {token}"}).text
    for line in text.splitlines():
        if line.startswith("troupe_runtime_events_filter_errors_total "):
            return float(line.split()[1])
    return -1.0
