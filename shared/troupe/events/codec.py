"""CloudEvents on the wire: HTTP (binary and structured) and Kafka (binary), strictly.

The SDK is lenient where a broker or a function must not be: it fills in a missing id
and accepts any `time`. Here every message is checked against the CloudEvents 1.0 rules
first, so a malformed event is refused at the edge (400) instead of travelling on.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final
from urllib.parse import unquote

from cloudevents.core.bindings import http as http_binding
from cloudevents.core.bindings import kafka as kafka_binding
from cloudevents.core.bindings.http import HTTPMessage
from cloudevents.core.bindings.kafka import KafkaMessage
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from .errors import (
    InvalidExtensionError,
    MalformedEventError,
    UnsupportedMediaTypeError,
)
from .extensions import CORE_ATTRIBUTES, check_extension_name

STRUCTURED_JSON: Final = "application/cloudevents+json"
BATCH_JSON: Final = "application/cloudevents-batch+json"
SPECVERSION: Final = "1.0"
_FORMAT: Final = JSONFormat()
_REQUIRED: Final = ("id", "source", "type")
_OPTIONAL_STRINGS: Final = ("datacontenttype", "dataschema", "subject")
# RFC 3339 date-time: seconds are required, the offset is Z or +hh:mm.
_RFC3339: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))$"
)
# RFC 2046 media type: type "/" subtype, optional parameters.
_MEDIA_TYPE: Final = re.compile(r"^[\w.+-]+/[\w.+-]+(\s*;.*)?$")
_INT32: Final = (-(2**31), 2**31 - 1)


def check_attributes(attributes: Mapping[str, Any]) -> None:
    """Raise MalformedEventError unless the context attributes obey CloudEvents 1.0."""
    specversion = attributes.get("specversion")
    if specversion != SPECVERSION:
        raise MalformedEventError(
            f"specversion must be {SPECVERSION!r}, got {specversion!r}"
            if specversion is not None
            else "specversion is missing: this is not a CloudEvent"
        )
    for name in _REQUIRED:
        value = attributes.get(name)
        if value is None or value == "":
            raise MalformedEventError(
                f"required attribute {name!r} is missing or empty: every CloudEvent needs "
                "a non-empty id, source and type"
            )
        if not isinstance(value, str):
            raise MalformedEventError(
                f"attribute {name!r} must be a string, not {type(value).__name__}"
            )
    for name in _OPTIONAL_STRINGS:
        if name in attributes and (
            not isinstance(attributes[name], str) or not attributes[name]
        ):
            raise MalformedEventError(
                f"attribute {name!r} must be a non-empty string (or be left out)"
            )
    content_type = attributes.get("datacontenttype")
    if content_type is not None and not _MEDIA_TYPE.match(content_type):
        raise MalformedEventError(
            f"datacontenttype {content_type!r} is not a media type such as application/json"
        )
    if "time" in attributes:
        _check_time(attributes["time"])
    for name, value in attributes.items():
        if name not in CORE_ATTRIBUTES:
            _check_extension(name, value)


def _check_extension(name: str, value: Any) -> None:
    try:
        # The 20-character limit is a SHOULD in CloudEvents 1.0: troupe keeps it for the
        # events it makes, but accepts longer names from other producers.
        check_extension_name(name, max_length=None)
    except InvalidExtensionError as error:
        raise MalformedEventError(str(error)) from None
    if isinstance(value, bool | str):
        return
    if isinstance(value, int) and _INT32[0] <= value <= _INT32[1]:
        return
    raise MalformedEventError(
        f"extension {name!r} must be a string, a 32-bit integer or a boolean, "
        f"not {value!r}"
    )


def _check_time(value: Any) -> None:
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if not match or (match.group(3) and (int(match.group(3)) > 23 or int(match.group(4)) > 59)):
        raise MalformedEventError(
            f"time {value!r} is not an RFC 3339 timestamp such as 2024-05-01T12:00:00Z"
        )


def _build(attributes: dict[str, Any], data: Any) -> CloudEvent:
    check_attributes(attributes)
    try:
        if isinstance(attributes.get("time"), str):
            # The regex admits only RFC 3339; fromisoformat reads it (digits past µs dropped).
            attributes["time"] = datetime.fromisoformat(attributes["time"].upper())
        return CloudEvent(attributes, data)
    except (BaseCloudEventException, ValueError, TypeError) as error:
        raise MalformedEventError(f"not a valid CloudEvent: {error}") from None


def _content_type(headers: Mapping[str, str]) -> str | None:
    """The Content-Type header as sent (None when absent, "" when sent empty)."""
    for name, value in headers.items():
        if name.lower() == "content-type":
            return value.strip()
    return None


def from_http(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Decode an HTTP request or response in either content mode."""
    content_type = _content_type(headers)
    media_type = _media_type(content_type)
    if media_type == STRUCTURED_JSON:
        return from_structured_json(body)
    attributes = _binary_attributes(headers, content_type, media_type)
    return _build(attributes, _read_data(body, attributes.get("datacontenttype")))


def http_to_kafka(headers: Mapping[str, str], body: bytes) -> KafkaMessage:
    """An HTTP event as a Kafka binary-mode record, checked exactly as `from_http` checks it.

    A broker moves events without looking into them, so, as Knative's ingress does, a
    binary-mode request is transcoded attribute by attribute (`ce-x` becomes `ce_x`) and
    its body kept byte for byte, instead of being decoded into an event and encoded again:
    that round trip was a fifth of the ingress's CPU. Structured mode is decoded.
    """
    content_type = _content_type(headers)
    media_type = _media_type(content_type)
    if media_type == STRUCTURED_JSON:
        return to_kafka(from_structured_json(body))
    attributes = _binary_attributes(headers, content_type, media_type)
    check_attributes(attributes)
    if content_type is not None:
        _read_data(body, content_type)  # refuses a body its content type says it is not
    record_headers: dict[str, bytes] = {}
    for name, value in attributes.items():
        if name == "datacontenttype":
            record_headers["content-type"] = value.encode("utf-8")
        else:
            record_headers[kafka_binding.CE_PREFIX + name] = value.encode("utf-8")
    key = attributes.get(kafka_binding.PARTITIONKEY_ATTR)
    return KafkaMessage(headers=record_headers, key=key, value=body)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _binary_attributes(headers: Mapping[str, str], content_type: str | None,
                       media_type: str) -> dict[str, Any]:
    """The attributes of a binary-mode message, its Content-Type as `datacontenttype`."""
    if media_type == BATCH_JSON or media_type.startswith("application/cloudevents"):
        raise UnsupportedMediaTypeError(
            f"{media_type} is not supported: send one event in binary mode or as "
            f"{STRUCTURED_JSON}"
        )
    attributes: dict[str, Any] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith(http_binding.CE_PREFIX):
            attributes[lowered[len(http_binding.CE_PREFIX):]] = (
                unquote(value) if "%" in value else value)
    if not attributes:
        if media_type:
            raise UnsupportedMediaTypeError(
                f"{media_type} without ce-* headers is not a CloudEvent: send binary mode "
                f"(ce-specversion, ce-id, ce-source, ce-type headers) or {STRUCTURED_JSON}"
            )
        raise MalformedEventError(
            "no CloudEvent in this request: send binary mode (ce-* headers) or "
            f"structured mode ({STRUCTURED_JSON})"
        )
    if "datacontenttype" in attributes:
        raise MalformedEventError(
            "ce-datacontenttype is not a binary-mode header: send the Content-Type header"
        )
    if content_type is not None:
        # Even an empty Content-Type is the event's datacontenttype (and so refused).
        attributes["datacontenttype"] = content_type
    return attributes


def _read_data(body: bytes, content_type: str | None) -> Any:
    if not body:
        return None
    if content_type is None:
        # No content type: JSON by the CloudEvents default, else opaque bytes.
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return body
    if JSONFormat.JSON_CONTENT_TYPE_PATTERN.match(content_type):
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise MalformedEventError(
                f"the body is not valid JSON, as its content type {content_type!r} says: "
                "fix the body or send the right Content-Type"
            ) from None
    try:
        return body.decode("utf-8") if content_type.startswith("text/") else body
    except UnicodeDecodeError:
        raise MalformedEventError("a text/* body must be UTF-8") from None


def from_structured_json(body: bytes) -> CloudEvent:
    """Decode the JSON event format (application/cloudevents+json)."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedEventError(
            f"the body is not valid JSON, as {STRUCTURED_JSON} requires"
        ) from None
    if not isinstance(parsed, dict):
        raise MalformedEventError(
            "a structured event must be one JSON object (batches are not supported)"
        )
    # In the JSON format an attribute set to null is an absent attribute.
    document = {name: value for name, value in parsed.items() if value is not None}
    if "data" in document and "data_base64" in document:
        raise MalformedEventError("an event may carry data or data_base64, not both")
    data = document.pop("data", None)
    if "data_base64" in document:
        encoded = document.pop("data_base64")
        try:
            data = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else None
        except (binascii.Error, ValueError):
            raise MalformedEventError("data_base64 is not valid base64") from None
        if data is None:
            raise MalformedEventError("data_base64 must be a string")
    return _build(document, data)


def _json_body(event: CloudEvent, body: bytes) -> bytes:
    """The SDK writes a str as raw text even when the content type is JSON; decoding gives
    parsed JSON values, so a str there is a JSON string and must be written as one."""
    data = event.get_data()
    content_type = event.get_datacontenttype()
    if isinstance(data, bytes | bytearray) or data is None or isinstance(data, dict):
        return body
    if content_type is None or JSONFormat.JSON_CONTENT_TYPE_PATTERN.match(content_type):
        return json.dumps(data).encode("utf-8")
    return body


def _json_by_default(event: CloudEvent, headers: dict[str, Any], name: str,
                     value: Any) -> None:
    """An event without `datacontenttype` whose data is not bytes came from the JSON format,
    where such data is JSON: binary mode says so with a Content-Type, as the Go and Java
    SDKs do, or a receiver reads the body as a string instead of the JSON it was."""
    data = event.get_data()
    if data is not None and not isinstance(data, bytes | bytearray) and \
            event.get_datacontenttype() is None:
        headers[name] = value


def to_http_binary(event: CloudEvent) -> HTTPMessage:
    message = http_binding.to_binary(event, _FORMAT)
    # The SDK writes booleans as Python does ("True"); CloudEvents spells them lowercase.
    headers = dict(message.headers)
    _json_by_default(event, headers, "content-type", "application/json")
    for name, value in event.get_attributes().items():
        if isinstance(value, bool):
            headers[f"{http_binding.CE_PREFIX}{name}"] = "true" if value else "false"
    return HTTPMessage(headers=headers, body=_json_body(event, message.body))


def to_http_structured(event: CloudEvent) -> HTTPMessage:
    return http_binding.to_structured(event, _FORMAT)


def to_kafka(event: CloudEvent) -> KafkaMessage:
    """Kafka binary content mode; `partitionkey`, when present, becomes the record key."""
    record = kafka_binding.to_binary(event, _FORMAT)
    value = _json_body(event, record.value)
    # As in HTTP: the SDK writes booleans as Python does ("True"); CloudEvents, lowercase.
    headers = dict(record.headers)
    _json_by_default(event, headers, "content-type", b"application/json")
    for name, attribute in event.get_attributes().items():
        if isinstance(attribute, bool):
            headers[f"{kafka_binding.CE_PREFIX}{name}"] = b"true" if attribute else b"false"
    return KafkaMessage(headers=headers, key=record.key, value=value)


def from_kafka(headers: Iterable[tuple[str, bytes | None]], key: bytes | None,
               value: bytes | None) -> CloudEvent:
    """Decode a record written by `to_kafka` (or by any CloudEvents Kafka producer).

    Kafka allows a header without a value (null) and a record without one (a tombstone):
    a null header is malformed here, a null value is an event without data.
    """
    header_map: dict[str, bytes] = {}
    for name, raw in headers:
        if raw is None:
            raise MalformedEventError(f"Kafka header {name!r} has no value (null)")
        header_map[name] = raw
    value = value or b""
    if header_map.get("content-type", b"").startswith(STRUCTURED_JSON.encode()):
        return from_structured_json(value)
    attributes: dict[str, Any] = {}
    for name, raw in header_map.items():
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedEventError(f"Kafka header {name!r} is not UTF-8") from None
        if name.startswith("ce_"):
            attributes[name[3:]] = text
        elif name == "content-type":
            attributes["datacontenttype"] = text
    return _build(attributes, _read_data(value, attributes.get("datacontenttype")))


__all__ = [
    "HTTPMessage",
    "KafkaMessage",
    "check_attributes",
    "from_http",
    "from_kafka",
    "from_structured_json",
    "http_to_kafka",
    "to_http_binary",
    "to_http_structured",
    "to_kafka",
]
