"""`codec.http_to_kafka` transcodes instead of decoding, and must be exactly as strict as
`from_http` followed by `to_kafka`: the same events accepted, the same refused, and the
record it writes must read back as the event `from_http` sees."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent
from support.conformance import as_binary, format_cases, http_cases, http_request
from troupe.events import codec
from troupe.events.errors import EventError

STRUCTURED = {"Content-Type": "application/cloudevents+json"}


def through_kafka(headers: dict[str, str], body: bytes) -> CloudEvent:
    record = codec.http_to_kafka(headers, body)
    return codec.from_kafka(record.headers.items(), record.key, record.value)


def sent_time(headers: dict[str, str], body: bytes) -> bool:
    if headers.get("Content-Type") == STRUCTURED["Content-Type"]:
        return json.loads(body).get("time") is not None
    return "ce-time" in headers


def as_text(attributes: dict[str, Any]) -> dict[str, Any]:
    """Attributes as a binary-mode header carries them: a header has no types."""
    def text(value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value) if isinstance(value, int) else value
    return {name: text(value) for name, value in attributes.items()}


def assert_same_event(headers: dict[str, str], body: bytes, label: str) -> None:
    transcoded, decoded = through_kafka(headers, body), codec.from_http(headers, body)
    left, right = transcoded.get_attributes(), decoded.get_attributes()
    if not sent_time(headers, body):
        # The SDK stamps an event without `time` with the time it was decoded, so the two
        # decodings differ there. A transcoded binary-mode record must not gain a `time`.
        if headers.get("Content-Type") != STRUCTURED["Content-Type"]:
            assert "ce_time" not in dict(codec.http_to_kafka(headers, body).headers), label
        left, right = ({k: v for k, v in a.items() if k != "time"} for a in (left, right))
    data = decoded.get_data()
    structured = headers.get("Content-Type") == STRUCTURED["Content-Type"]
    if structured and data is not None and not isinstance(data, bytes) and \
            "datacontenttype" not in right:
        # JSON data without a datacontenttype (the JSON format's default): binary mode says
        # it is JSON with a Content-Type, which reads back as the attribute.
        assert left.get("datacontenttype") == "application/json", label
        left = {k: v for k, v in left.items() if k != "datacontenttype"}
    assert as_text(left) == as_text(right), label
    assert transcoded.get_data() == data, label


def requests_of(conformance: Path) -> list[tuple[str, dict[str, str], bytes]]:
    cases = [(label, *http_request(case)[:2]) for label, case in http_cases(conformance)]
    for case in format_cases(conformance, "valid-events.json"):
        cases.append((case["id"], STRUCTURED, json.dumps(case["event"]).encode()))
        binary = as_binary(case["event"])
        if binary is not None:
            cases.append((f"{case['id']} (binary)", *binary))
    return cases


def test_valid_events_read_back_as_from_http_sees_them(conformance: Path) -> None:
    cases = requests_of(conformance)
    assert len(cases) >= 20
    for label, headers, body in cases:
        assert_same_event(headers, body, label)


def test_invalid_events_are_refused_with_the_same_error(conformance: Path) -> None:
    checked = 0
    for case in format_cases(conformance, "invalid-events.json"):
        forms = [(STRUCTURED, json.dumps(case["event"]).encode())]
        binary = as_binary(case["event"])
        if binary is not None:
            forms.append(binary)
        for headers, body in forms:
            with pytest.raises(EventError) as expected:
                codec.from_http(headers, body)
            with pytest.raises(type(expected.value)):
                codec.http_to_kafka(headers, body)
            checked += 1
    assert checked >= 40


@pytest.mark.parametrize(("headers", "body"), [
    ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t",
      "Content-Type": "application/json"}, b"{not json"),
    ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t",
      "Content-Type": "text/plain"}, b"\xff\xfe"),
    ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t",
      "ce-time": "yesterday"}, b""),
    ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t",
      "ce-datacontenttype": "application/json"}, b"{}"),
    ({"ce-specversion": "0.3", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}, b""),
    ({"Content-Type": "application/xml"}, b"<a/>"),
    ({"Content-Type": "application/cloudevents-batch+json"}, b"[]"),
])
def test_malformed_binary_requests_are_refused_alike(headers: dict[str, str],
                                                     body: bytes) -> None:
    with pytest.raises(EventError) as expected:
        codec.from_http(headers, body)
    with pytest.raises(type(expected.value)):
        codec.http_to_kafka(headers, body)


def test_the_body_is_kept_byte_for_byte_and_partitionkey_is_the_key() -> None:
    body = b'{ "b": 2,   "a": 1 }'
    record = codec.http_to_kafka(
        {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t",
         "ce-partitionkey": "customer-7", "ce-comment": "50%25 off",
         "Content-Type": "application/json"}, body)
    assert record.value == body
    assert record.key == "customer-7"
    headers: dict[str, Any] = dict(record.headers)
    assert headers["ce_comment"] == b"50% off"
    assert headers["content-type"] == b"application/json"
    assert "ce_datacontenttype" not in headers
