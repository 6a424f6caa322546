"""The wire codecs: strict on input, faithful on round trips."""

from __future__ import annotations

import json
from typing import Any

import pytest
from troupe.events import (
    DATA_ARRIVED,
    MalformedEventError,
    UnsupportedMediaTypeError,
    from_http,
    from_kafka,
    make_event,
    to_http_binary,
    to_http_structured,
    to_kafka,
)

ARRIVED = {"uri": "datasets/iris.csv", "target": "species"}
MINIMAL = {"specversion": "1.0", "id": "e-1", "source": "/s", "type": "com.example.t"}


def structured(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def test_binary_round_trip_keeps_attributes_extensions_and_data() -> None:
    event = make_event("data-arrived", ARRIVED, extensions={"modelversion": "v2"})
    message = to_http_binary(event)
    assert message.headers["ce-type"] == DATA_ARRIVED
    back = from_http(message.headers, message.body)
    assert back.get_attributes() == event.get_attributes()
    assert back.get_data() == ARRIVED


def test_structured_round_trip_keeps_attributes_and_data() -> None:
    event = make_event("data-arrived", ARRIVED)
    message = to_http_structured(event)
    back = from_http(message.headers, message.body)
    assert back.get_attributes() == event.get_attributes()
    assert back.get_data() == ARRIVED


def test_kafka_round_trip() -> None:
    event = make_event("data-arrived", ARRIVED, extensions={"partitionkey": "k1"})
    record = to_kafka(event)
    back = from_kafka(record.headers.items(), record.key, record.value)
    assert back.get_attributes() == event.get_attributes()
    assert back.get_data() == ARRIVED


def test_binary_booleans_are_written_lowercase() -> None:
    event = make_event("data-arrived", ARRIVED, extensions={"replay": True, "dry": False})
    assert to_http_binary(event).headers["ce-replay"] == "true"
    assert to_kafka(event).headers["ce_replay"] == b"true"
    assert to_kafka(event).headers["ce_dry"] == b"false"


def test_percent_encoded_binary_headers_are_decoded() -> None:
    headers = {**{f"ce-{k}": v for k, v in MINIMAL.items()}, "ce-note": "a%20b%25c%22"}
    assert from_http(headers, b"").get_extension("note") == 'a b%c"'


@pytest.mark.parametrize(
    ("document", "needle"),
    [
        ({**MINIMAL, "specversion": "0.3"}, "specversion"),
        ({k: v for k, v in MINIMAL.items() if k != "id"}, "'id'"),
        ({**MINIMAL, "id": 7}, "'id' must be a string"),
        ({**MINIMAL, "time": "yesterday"}, "RFC 3339"),
        ({**MINIMAL, "time": "2024-02-30T10:00:00Z"}, "day is out of range"),
        ({**MINIMAL, "datacontenttype": "json"}, "media type"),
        ({**MINIMAL, "Bad_Name": "x"}, "'Bad_Name'"),
        ({**MINIMAL, "ratio": 1.5}, "'ratio'"),
        ({**MINIMAL, "data": 1, "data_base64": "AA=="}, "not both"),
        ({**MINIMAL, "data_base64": "***"}, "base64"),
    ],
)
def test_structured_decoding_is_strict(document: dict[str, Any], needle: str) -> None:
    with pytest.raises(MalformedEventError, match=None) as caught:
        from_http({"Content-Type": "application/cloudevents+json"}, structured(document))
    assert needle in str(caught.value)


def test_structured_null_attributes_count_as_absent() -> None:
    event = from_http(
        {"content-type": "application/cloudevents+json; charset=utf-8"},
        structured({**MINIMAL, "subject": None, "dataschema": None}),
    )
    assert event.get_subject() is None and event.get_dataschema() is None


def test_structured_data_base64_becomes_bytes() -> None:
    event = from_http(
        {"content-type": "application/cloudevents+json"},
        structured({**MINIMAL, "datacontenttype": "application/octet-stream",
                    "data_base64": "AAEC"}),
    )
    assert event.get_data() == b"\x00\x01\x02"


def test_a_structured_body_that_is_not_json_is_malformed() -> None:
    with pytest.raises(MalformedEventError, match="not valid JSON"):
        from_http({"content-type": "application/cloudevents+json"}, b"{nope")
    with pytest.raises(MalformedEventError, match="one JSON object"):
        from_http({"content-type": "application/cloudevents+json"}, b"[1, 2]")


def test_binary_json_body_must_be_json() -> None:
    headers = {**{f"ce-{k}": v for k, v in MINIMAL.items()}, "Content-Type": "application/json"}
    with pytest.raises(MalformedEventError, match="not valid JSON"):
        from_http(headers, b"{nope")


def test_binary_text_and_opaque_bodies() -> None:
    ce = {f"ce-{k}": v for k, v in MINIMAL.items()}
    assert from_http({**ce, "Content-Type": "text/plain"}, "héllo".encode()).get_data() == "héllo"
    blob = from_http({**ce, "Content-Type": "application/octet-stream"}, b"\xff\x00")
    assert blob.get_data() == b"\xff\x00"


def test_binary_without_specversion_is_malformed() -> None:
    with pytest.raises(MalformedEventError, match="specversion"):
        from_http({"ce-id": "1", "ce-source": "/s", "ce-type": "t"}, b"")


def test_no_cloudevent_at_all_is_malformed() -> None:
    with pytest.raises(MalformedEventError, match="binary mode"):
        from_http({}, b"")


@pytest.mark.parametrize(
    "content_type",
    ["application/cloudevents-batch+json", "application/cloudevents+xml", "text/plain",
     "application/json"],
)
def test_unsupported_media_types(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaTypeError) as caught:
        from_http({"Content-Type": content_type}, b"[]")
    assert content_type.split(";")[0] in str(caught.value)


def test_long_foreign_extension_names_are_accepted_on_decode() -> None:
    name = "averyveryverylongextensionname"
    event = from_http({"content-type": "application/cloudevents+json"},
                      structured({**MINIMAL, name: "x"}))
    assert event.get_extension(name) == "x"


def test_a_json_string_value_is_written_as_json_in_binary_mode() -> None:
    ce = {f"ce-{k}": v for k, v in MINIMAL.items()}
    event = from_http({**ce, "Content-Type": "application/json"}, b'"hello"')
    assert event.get_data() == "hello"
    message = to_http_binary(event)
    assert json.loads(message.body) == "hello"
    assert from_http(message.headers, message.body).get_data() == "hello"


def test_binary_mode_takes_datacontenttype_from_content_type_only() -> None:
    headers = {**{f"ce-{k}": v for k, v in MINIMAL.items()}, "ce-datacontenttype": "text/plain"}
    with pytest.raises(MalformedEventError, match="Content-Type"):
        from_http(headers, b"x")
