"""What a Trigger sends and reads over HTTP: a record as a binary-mode request, a reply,
and a dead letter.

Dead letters carry `knativeerrordest`, `knativeerrorcode` and `knativeerrordata` (the
response body, or what went wrong instead, base64, at most 1024 bytes, as Knative encodes
it). What is retried, and the client that sends, are `troupe.local.delivery`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote

from cloudevents.core.v1.event import CloudEvent

from troupe.events import codec
from troupe.events.errors import EventError
from troupe.local.delivery import DEFAULT_TIMEOUT_S, Attempt, Response
from troupe.local.delivery.dead_letters import error_extensions
from troupe.local.eventing.broker.spec import DeliverySpec

# Header values a binary-mode HTTP event may carry as they are: printable ASCII but space,
# '"' and '%'; anything else must be percent-encoded, which the CloudEvents SDK does for us.
# A content type may also hold spaces ("application/json; charset=utf-8").
_VERBATIM: Final = re.compile(rb'[!#$&-~]+')
_VERBATIM_CONTENT_TYPE: Final = re.compile(rb'[ !#$&-~]+')
_REQUIRED: Final = ("ce_specversion", "ce_id", "ce_source", "ce_type")
# What percent-encoding leaves as it is in a binary-mode header (HTTP binding 3.1.3.2).
_HEADER_SAFE: Final = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')


def http_binary_of_record(headers: list[tuple[str, bytes | None]],
                          value: bytes | None) -> tuple[dict[str, str], bytes] | None:
    """A binary-mode Kafka record as binary-mode HTTP headers and body, without decoding it.

    Both bindings carry the same attributes (`ce_x` becomes `ce-x`), so, like Knative's
    dispatcher, we transcode instead of parsing the event and writing it again. Returns
    None when a value needs encoding or the record is not a binary-mode 1.0 event: the
    caller then goes through the codec, which encodes or rejects it.
    """
    names = {name for name, _ in headers}
    if not names.issuperset(_REQUIRED):
        return None
    http_headers: dict[str, str] = {}
    for name, raw in headers:
        if raw is None:
            return None  # a null header: the codec says what is wrong with it
        if name.startswith("ce_"):
            if not _VERBATIM.fullmatch(raw):
                return None
            http_headers["ce-" + name[3:]] = raw.decode("ascii")
        elif name == "content-type":
            if raw.startswith(b"application/cloudevents") or \
                    not _VERBATIM_CONTENT_TYPE.fullmatch(raw):
                return None
            http_headers["content-type"] = raw.decode("ascii")
    if http_headers["ce-specversion"] != "1.0":
        return None
    return http_headers, value or b""


def timeout_of(delivery: DeliverySpec) -> float:
    return delivery.timeout_s if delivery.timeout_s is not None else DEFAULT_TIMEOUT_S


def reply_of(response: Response) -> CloudEvent | None:
    """A 200 carrying a CloudEvent is a reply; 202, 204 and event-less bodies are not."""
    if response.status != 200:
        return None
    carries_event = any(name.startswith("ce-") for name in response.headers) or (
        response.headers.get("content-type", "").startswith(codec.STRUCTURED_JSON))
    if not carries_event:
        return None
    try:
        return codec.from_http(response.headers, response.body)
    except EventError:
        return None


def dead_letter_headers(headers: Mapping[str, str], destination: str,
                        attempt: Attempt) -> dict[str, str]:
    """A binary-mode HTTP event's headers as its dead letter's: the same event, plus the
    knativeerror* extensions, without decoding it (a body that does not match its content
    type is still dead-lettered, byte for byte)."""
    letter = {name: value for name, value in headers.items() if name.lower() != "prefer"}
    for name, value in error_extensions(destination, attempt).items():
        letter[f"ce-{name}"] = quote(value, safe=_HEADER_SAFE)
    return letter
