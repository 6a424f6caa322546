"""The CloudEvents codec over arbitrary input (hypothesis): every decoder either returns an
event or raises one of the errors it documents (MalformedEventError, 400, or
UnsupportedMediaTypeError, 415), never anything else, which a receiver would answer 500
or let escape its loop. An event it accepts survives the trip through Kafka unchanged
(JSON data without a content type gains `application/json`, as the JSON format has it).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from troupe.events import codec
from troupe.events.errors import MalformedEventError, UnsupportedMediaTypeError

DOCUMENTED = (MalformedEventError, UnsupportedMediaTypeError)
EXAMPLES = settings(max_examples=200, deadline=None)

# Names and values near the ones that matter, beside arbitrary ones.
_ATTRIBUTE_NAMES = st.sampled_from([
    "specversion", "id", "source", "type", "time", "subject", "dataschema", "partitionkey",
    "datacontenttype", "data", "data_base64", "runid", "knativebrokerttl", "Bad-Name",
    "x" * 21, ""]) | st.text(max_size=12)
_VALUES = st.sampled_from([
    "1.0", "0.3", "", "/tests", "dev.example.test", "2026-12-01T00:00:00Z", "2026-13-99T",
    "application/json", "text/plain", "application/cloudevents+json", "%zz", "%C3%28",
    "\u00b9", "\x00", "true"]) | st.text(max_size=20)
_CONTENT_TYPES = st.sampled_from([
    "application/json", "application/cloudevents+json", "application/cloudevents+json; x",
    "application/cloudevents-batch+json", "text/plain", "text/plain; charset=latin-1",
    "application/octet-stream", "", "not a media type", "application/xml"]) | st.text(max_size=20)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8)


def _decodes_or_refuses(decode: Any, *args: Any) -> Any:
    try:
        return decode(*args)
    except DOCUMENTED:
        return None


@st.composite
def binary_requests(draw: st.DrawFn) -> tuple[dict[str, str], bytes]:
    headers = {f"ce-{draw(_ATTRIBUTE_NAMES)}": draw(_VALUES)
               for _ in range(draw(st.integers(0, 8)))}
    if draw(st.booleans()):  # usually a complete event, so that decoding gets far
        headers.update({"ce-specversion": "1.0", "ce-id": draw(_VALUES),
                        "ce-source": "/tests", "ce-type": "dev.example.test"})
    if draw(st.booleans()):
        headers["content-type"] = draw(_CONTENT_TYPES)
    body = draw(st.binary(max_size=64) | _JSON.map(lambda data: json.dumps(data).encode()))
    return headers, body


@st.composite
def structured_bodies(draw: st.DrawFn) -> bytes:
    document: dict[str, Any] = draw(st.dictionaries(_ATTRIBUTE_NAMES, _VALUES | _JSON,
                                                    max_size=6))
    if draw(st.booleans()):
        document.update({"specversion": "1.0", "id": draw(_VALUES), "source": "/tests",
                         "type": "dev.example.test"})
    return draw(st.just(json.dumps(document).encode()) | st.binary(max_size=64))


@EXAMPLES
@given(request=binary_requests())
def test_an_http_request_decodes_or_is_refused_with_a_documented_error(
        request: tuple[dict[str, str], bytes]) -> None:
    headers, body = request
    _decodes_or_refuses(codec.from_http, headers, body)
    _decodes_or_refuses(codec.http_to_kafka, headers, body)


@EXAMPLES
@given(body=structured_bodies())
def test_a_structured_body_decodes_or_is_refused_with_a_documented_error(body: bytes) -> None:
    _decodes_or_refuses(codec.from_structured_json, body)
    _decodes_or_refuses(codec.from_http, {"content-type": codec.STRUCTURED_JSON}, body)


@EXAMPLES
@given(headers=st.lists(st.tuples(st.sampled_from(
           ["ce_specversion", "ce_id", "ce_source", "ce_type", "content-type", "ce_time",
            "ce_partitionkey"]) | st.text(max_size=10),
           st.none() | st.binary(max_size=20) | _VALUES.map(str.encode)), max_size=8),
       key=st.none() | st.binary(max_size=8), value=st.none() | st.binary(max_size=64))
def test_a_kafka_record_decodes_or_is_refused_with_a_documented_error(
        headers: list[tuple[str, bytes | None]], key: bytes | None, value: bytes | None) -> None:
    _decodes_or_refuses(codec.from_kafka, headers, key, value)


@EXAMPLES
@given(request=binary_requests())
def test_an_accepted_event_crosses_kafka_unchanged(request: tuple[dict[str, str], bytes]) -> None:
    headers, body = request
    event = _decodes_or_refuses(codec.from_http, headers, body)
    if event is None:
        return
    record = codec.to_kafka(event)
    again = codec.from_kafka(list(record.headers.items()), record.key, record.value)
    expected = dict(event.get_attributes())
    if "datacontenttype" not in expected and again.get_attributes().get("datacontenttype"):
        # JSON data without a type is sent as JSON, saying so (the JSON format's default).
        expected["datacontenttype"] = "application/json"
    assert again.get_attributes() == expected
    assert again.get_data() == event.get_data()
