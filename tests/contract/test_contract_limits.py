"""Limits before work: a body over TROUPE_MAX_EVENT_BYTES is answered 413 without being
read, let alone parsed or handed to the handler, whether it says its length or streams."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import requests
from cloudevents.core.v1.event import CloudEvent
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from troupe import events
from troupe.function import Context, Settings, create_app

Serve = Callable[[Flask], str]
CONSUMES = [events.DATA_ARRIVED]
MIB = 1024 * 1024


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, event: CloudEvent, ctx: Context[Any]) -> None:
        self.calls += 1


def structured(size: int) -> bytes:
    """A structured-mode data-arrived of exactly `size` bytes (padded in an extension)."""
    event: dict[str, Any] = {
        "specversion": "1.0", "id": "big-1", "source": "/tests", "type": events.DATA_ARRIVED,
        "datacontenttype": "application/json", "padding": "",
        "data": {"uri": "incoming/big.csv", "target": "y"}}
    event["padding"] = "x" * (size - len(json.dumps(event).encode()))
    body = json.dumps(event).encode()
    assert len(body) == size
    return body


HEADERS = {"Content-Type": "application/cloudevents+json"}


def test_the_default_limit_is_the_brokers_one_mebibyte(settings: Settings) -> None:
    assert Settings().max_event_bytes == MIB
    handler = Counting()
    client = create_app(handler, settings, consumes=CONSUMES).test_client()

    refused = client.post("/", data=structured(MIB + 1), headers=HEADERS)
    assert refused.status_code == 413
    assert refused.json["error"] == "event-too-large"
    assert "TROUPE_MAX_EVENT_BYTES" in refused.json["message"]
    assert "store" in refused.json["message"]  # what to do instead
    assert handler.calls == 0

    # Exactly at the limit, it is an event like any other.
    assert client.post("/", data=structured(MIB), headers=HEADERS).status_code == 202
    assert handler.calls == 1


def test_a_streamed_body_is_stopped_at_the_limit(serve: Serve, settings: Settings) -> None:
    handler = Counting()
    limited = Settings.from_env({"K_SERVICE": "echo", "TROUPE_STORE_URL": settings.store_url,
                                 "TROUPE_MAX_EVENT_BYTES": "4096"})
    url = serve(create_app(handler, limited, consumes=CONSUMES))
    body = structured(16 * 1024)

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for start in range(0, len(body), 1024):
            yield body[start:start + 1024]

    refused = requests.post(url, data=chunks(), headers=HEADERS, timeout=10)
    assert refused.status_code == 413
    assert refused.json()["error"] == "event-too-large"
    said = requests.post(url, data=body, headers=HEADERS, timeout=10)  # with Content-Length
    assert said.status_code == 413
    assert handler.calls == 0
    # Counted and logged as a delivery that never became an event.
    metrics = requests.get(f"{url}/metrics", timeout=10).text
    refusals = [s.value for family in text_string_to_metric_families(metrics)
                for s in family.samples if s.name == "troupe_events_total"
                and s.labels.get("outcome") == "event-too-large"]
    assert refusals == [2.0]
