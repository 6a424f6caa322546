"""Delivery keeps each event's meaning: every case of the CloudEvents conformance data
(../shared/conformance) goes through the ingress, Kafka and a Trigger, and the delivery,
decoded by the CloudEvents SDK's own `from_http`, has the data that was sent. A structured
event without `datacontenttype` carries JSON by the JSON format: it is delivered with
`Content-Type: application/json`, so that every SDK reads it as JSON."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from support.conformance import STRUCTURED, format_cases, http_cases, http_request, is_json
from support.polling import wait_until
from troupe.local.eventing.broker import DataPlane

from .conftest import NAMESPACE, broker_resource, trigger_resource, unique
from .sink import Received, RecordingSink

pytestmark = pytest.mark.kafka


def _http_data(case: dict[str, Any]) -> Any:
    data = case.get("Data")
    content_type = case["ContextAttributes"].get("datacontenttype")
    if data is None:
        return None
    if is_json(content_type):
        return json.loads(data)
    return data if content_type.startswith("text/") else data.encode("utf-8")


def _same(received: Any, sent: Any) -> bool:
    """Equal data; text and the bytes it is are the same data (the SDK reads a body whose
    content type it does not know as text)."""
    if isinstance(received, str) and isinstance(sent, bytes):
        return received.encode("utf-8") == sent
    return bool(received == sent)


def _cases(conformance: Path) -> list[tuple[str, dict[str, str], bytes, Any, bool]]:
    """(label, headers, body, the data a receiver must see, whether that data is JSON
    without a datacontenttype)."""
    cases = []
    for label, case in http_cases(conformance):
        headers, body, _ = http_request(case)
        untyped = case.get("Mode") == "structured" and case.get("Data") is not None and \
            "datacontenttype" not in case["ContextAttributes"]
        cases.append((label, headers, body, _http_data(case), untyped))
    for case in format_cases(conformance, "valid-events.json"):
        event = case["event"]
        if "data_base64" in event:
            data: Any = base64.b64decode(event["data_base64"])
        else:
            data = event.get("data")
        untyped = "data" in event and event["data"] is not None and \
            "datacontenttype" not in event
        cases.append((case["id"], {"Content-Type": STRUCTURED}, json.dumps(event).encode(),
                      data, untyped))
    return cases


def test_every_conformance_case_is_delivered_with_its_meaning(
        conformance: Path, plane: DataPlane, fresh_sink: RecordingSink) -> None:
    broker = unique("meaning")
    plane.add_broker(broker_resource(broker))
    plane.add_trigger(trigger_resource(f"{broker}-t", broker, f"{fresh_sink.url}/{broker}"))
    assert plane.wait_ready(30)
    cases = _cases(conformance)
    assert len(cases) >= 10
    for number, (label, headers, body, data, untyped) in enumerate(cases):
        answer = requests.post(plane.broker_url(NAMESPACE, broker), headers=headers,
                               data=body, timeout=10)
        assert answer.status_code == 202, f"{label}: {answer.status_code} {answer.text}"
        delivered: Received = wait_until(
            lambda n=number: len(fresh_sink.paths(f"/{broker}")) > n and
            fresh_sink.paths(f"/{broker}")[n], 15, f"the delivery of {label}")
        event = from_http(HTTPMessage(delivered.headers, delivered.body), JSONFormat())
        assert _same(event.get_data(), data), f"{label}: {event.get_data()!r} != {data!r}"
        if untyped:
            assert delivered.headers.get("content-type") == "application/json", label
