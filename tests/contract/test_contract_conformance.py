"""The CloudEvents conformance suites against a real function app on loopback.

Valid events are accepted (2xx) and come back intact; every invalid event is refused
with a 4xx, never a 5xx, in structured mode and, where it can be written, in binary mode.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import yaml
from cloudevents.core.v1.event import CloudEvent
from flask import Flask
from troupe import events
from troupe.function import Context, Settings, create_app

Serve = Callable[[Flask], str]
STRUCTURED = "application/cloudevents+json"
# CloudEvents HTTP binding 3.1.3.2: printable ASCII is sent as is, except space, '"' and '%'.
HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ' "%')


def echo_anything(event: CloudEvent, ctx: Context[Any]) -> CloudEvent:
    return event


@pytest.fixture
def url(serve: Serve, settings: Settings) -> str:
    return serve(create_app(echo_anything, settings, accept_unknown_types=True))


def header_value(value: Any) -> str:
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return quote(text, safe=HEADER_SAFE)


def is_json(content_type: str | None) -> bool:
    return content_type is None or bool(
        events.codec.JSONFormat.JSON_CONTENT_TYPE_PATTERN.match(content_type)
    )


# -- cloudevents-http/*.yaml: one HTTP request per YAML document --------------------------

def http_cases(conformance: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for name in ("v1.yaml", "v1_minimum.yaml"):
        text = (conformance / "cloudevents-http" / name).read_text(encoding="utf-8")
        # BaseLoader keeps every scalar a string: "1.0" and timestamps must stay text.
        for number, case in enumerate(yaml.load_all(text, Loader=yaml.BaseLoader)):
            if case:
                yield f"{name}#{number}", case


def http_request(case: dict[str, Any]) -> tuple[dict[str, str], bytes, dict[str, Any]]:
    """Headers and body for a case, and the attributes the receiver must see."""
    attributes = {k: v for k, v in case["ContextAttributes"].items() if k != "Extensions"}
    extensions = dict(case["ContextAttributes"].get("Extensions") or {})
    data = case.get("Data")
    content_type = attributes.get("datacontenttype")
    headers = dict(case.get("TransportExtensions") or {})
    if case.get("Mode", "binary") == "structured":
        document: dict[str, Any] = {**attributes, **extensions}
        if data is not None:
            document["data"] = json.loads(data) if is_json(content_type) else data
        headers["Content-Type"] = STRUCTURED
        return headers, json.dumps(document).encode(), {**attributes, **extensions}
    for name, value in {**attributes, **extensions}.items():
        if name == "datacontenttype":
            headers["Content-Type"] = value
        else:
            headers[f"ce-{name}"] = header_value(value)
    return headers, (data or "").encode("utf-8"), {**attributes, **extensions}


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

def format_cases(conformance: Path, name: str) -> list[dict[str, Any]]:
    path = conformance / "cloudevents-format-json" / name
    tests: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8-sig"))["tests"]
    return tests


def as_binary(event: dict[str, Any]) -> tuple[dict[str, str], bytes] | None:
    """The binary-mode form of a JSON-format event, or None when binary mode cannot say it:
    non-string values lose their type in a header, header names lose their case, and WSGI
    does not tell an empty Content-Type from a missing one."""
    if "data_base64" in event or event.get("datacontenttype") == "" or any(
        not isinstance(v, str | None) or k != k.lower() for k, v in event.items() if k != "data"
    ):
        return None
    headers: dict[str, str] = {}
    for name, value in event.items():
        if value is None or name == "data":
            continue
        if name == "datacontenttype":
            headers["Content-Type"] = value
        else:
            headers[f"ce-{name}"] = header_value(value)
    data = event.get("data")
    if data is None:
        body = b""
    elif is_json(event.get("datacontenttype")):
        body = json.dumps(data).encode()
    else:
        body = str(data).encode()
    return headers, body


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
