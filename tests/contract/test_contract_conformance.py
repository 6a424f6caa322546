"""The CloudEvents conformance suites against a real function app on loopback.

Valid events are accepted (2xx) and come back intact; every invalid event is refused
with a 4xx, never a 5xx, in structured mode and, where it can be written, in binary mode.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from cloudevents.core.v1.event import CloudEvent
from flask import Flask
from support.conformance import (
    STRUCTURED,
    as_binary,
    format_cases,
    http_cases,
    http_request,
    is_json,
)
from troupe import events
from troupe.function import ANY, Context, Settings, create_app

Serve = Callable[[Flask], str]


def echo_anything(event: CloudEvent, ctx: Context[Any]) -> CloudEvent:
    return event


@pytest.fixture
def url(serve: Serve, settings: Settings) -> str:
    return serve(create_app(echo_anything, settings, consumes=ANY))


# -- cloudevents-http/*.yaml: one HTTP request per YAML document --------------------------

def expected_data(case: dict[str, Any]) -> Any:
    data = case.get("Data")
    content_type = case["ContextAttributes"].get("datacontenttype")
    if data is None:
        return None
    if is_json(content_type):
        return json.loads(data)
    return data if content_type.startswith("text/") else data.encode("utf-8")


def test_http_binding_examples_are_accepted_and_echoed(conformance: Path, url: str) -> None:
    cases = list(http_cases(conformance))
    assert len(cases) >= 8
    for label, case in cases:
        headers, body, attributes = http_request(case)
        response = requests.post(url, headers=headers, data=body, timeout=10)
        assert response.status_code == 200, f"{label}: {response.status_code} {response.text}"
        reply = events.from_http(dict(response.headers), response.content)
        for name, value in attributes.items():
            if name == "time":
                assert reply.get_time() == events.codec.datetime.fromisoformat(value), label
            else:
                assert reply.get_attributes()[name] == value, f"{label}: {name}"
        assert reply.get_data() == expected_data(case), label


# -- cloudevents-format-json: single events, valid and invalid ----------------------------

def test_valid_json_format_events_are_accepted(conformance: Path, url: str) -> None:
    cases = format_cases(conformance, "valid-events.json")
    assert cases
    for case in cases:
        event = case["event"]
        response = requests.post(
            url, headers={"Content-Type": STRUCTURED}, data=json.dumps(event), timeout=10
        )
        assert response.status_code == 200, f"{case['id']}: {response.text}"
        assert response.headers["ce-id"] == event["id"]
        assert response.headers["ce-type"] == event["type"]
        binary = as_binary(event)
        if binary is not None:
            response = requests.post(url, headers=binary[0], data=binary[1], timeout=10)
            assert response.status_code in (200, 202), f"{case['id']} (binary): {response.text}"


def test_invalid_json_format_events_get_a_4xx_never_a_5xx(conformance: Path, url: str) -> None:
    cases = format_cases(conformance, "invalid-events.json")
    assert len(cases) >= 25
    binary_checked = 0
    for case in cases:
        response = requests.post(
            url, headers={"Content-Type": STRUCTURED}, data=json.dumps(case["event"]), timeout=10
        )
        assert 400 <= response.status_code < 500, f"{case['id']}: {response.status_code}"
        assert response.json()["error"] == "malformed-event", case["id"]
        binary = as_binary(case["event"])
        if binary is not None:
            binary_checked += 1
            response = requests.post(url, headers=binary[0], data=binary[1], timeout=10)
            assert 400 <= response.status_code < 500, f"{case['id']} (binary)"
    assert binary_checked >= 15  # most cases can be written in binary mode too


def test_batches_are_refused_as_unsupported_media_type(conformance: Path, url: str) -> None:
    for case in format_cases(conformance, "valid-batches.json"):
        response = requests.post(
            url,
            headers={"Content-Type": "application/cloudevents-batch+json"},
            data=json.dumps(case["batch"]),
            timeout=10,
        )
        assert response.status_code == 415, case["id"]
        assert "application/cloudevents+json" in response.json()["message"]
