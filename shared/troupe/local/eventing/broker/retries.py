"""Delivering one event to a subscriber the way Knative does: retries, backoff, dead letters.

Retried: 5xx, 404, 408, 409, 429 and connection errors (Knative's table); `Retry-After`
is honoured. Other 4xx go straight to the dead-letter sink. Dead letters carry
`knativeerrordest`, `knativeerrorcode` and `knativeerrordata` (the response body, base64,
at most 1024 bytes, as Knative encodes it).
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, urlsplit

from cloudevents.core.v1.event import CloudEvent

from troupe.events import codec
from troupe.events.errors import EventError
from troupe.events.extensions import (
    KNATIVE_ERROR_CODE,
    KNATIVE_ERROR_DATA,
    KNATIVE_ERROR_DEST,
)
from troupe.local.errors import LocalError
from troupe.local.eventing.broker.spec import DEFAULT_TIMEOUT_S, DeliverySpec

RETRYABLE_STATUSES: Final = frozenset({404, 408, 409, 429})
ERROR_DATA_MAX_BYTES: Final = 1024
# A Retry-After longer than this is capped: one subscriber must not park a partition for hours.
MAX_RETRY_AFTER_S: Final = 300.0


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


def is_retryable(status: int) -> bool:
    return status >= 500 or status in RETRYABLE_STATUSES


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


class DeliveryAborted(LocalError):
    """The data plane is stopping; the event stays uncommitted and is delivered again later."""


class HttpSender:
    """POSTs over keep-alive connections, one per thread and host (http.client is not shared)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> Response:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ConnectionError(f"cannot deliver to {url!r}: only http:// URLs are supported")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        pool: dict[tuple[str, int], http.client.HTTPConnection] = self._pool()
        key = (parts.hostname, parts.port or 80)
        for attempt in (1, 2):
            connection = pool.get(key)
            if connection is None:
                connection = pool[key] = http.client.HTTPConnection(*key, timeout=timeout)
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            try:
                connection.request("POST", target, body=body, headers=dict(headers))
                answer = connection.getresponse()
                payload = answer.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                del pool[key]
                # A kept-alive connection the server closed meanwhile: retry once on a new one.
                if attempt == 2:
                    raise
                continue
            if answer.will_close:
                connection.close()
                del pool[key]
            return Response(answer.status, {k.lower(): v for k, v in answer.getheaders()}, payload)
        raise AssertionError("unreachable")

    def _pool(self) -> dict[tuple[str, int], http.client.HTTPConnection]:
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = {}
        return pool


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds asked for by a `Retry-After` header (delta seconds or an HTTP date)."""
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), MAX_RETRY_AFTER_S))


@dataclass(frozen=True)
class Attempt:
    """The last attempt's result: a response, or the connection error that replaced it."""

    response: Response | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.response is not None and 200 <= self.response.status < 300


def send_with_retries(
    send: Callable[[], Response],
    delivery: DeliverySpec,
    stopping: threading.Event,
    on_retry: Callable[[], None] = lambda: None,
    first: Attempt | None = None,
) -> Attempt:
    """Call `send` until it succeeds, fails for good, or `delivery.retry` retries are spent.

    `first` is the outcome of an attempt already made elsewhere (first_attempt.py).
    """
    retries = delivery.retry or 0
    for retry_number in range(retries + 1):
        if stopping.is_set():
            raise DeliveryAborted
        if first is not None and retry_number == 0:
            attempt = first
        else:
            try:
                attempt = Attempt(send())
            except (OSError, http.client.HTTPException, LookupError) as error:
                attempt = Attempt(None, f"{type(error).__name__}: {error}")
        response = attempt.response
        if attempt.ok or (response is not None and not is_retryable(response.status)):
            return attempt
        if retry_number == retries:
            return attempt
        on_retry()
        delay = delivery.backoff_s(retry_number + 1)
        asked = retry_after_s(response.headers) if response is not None else None
        if stopping.wait(delay if asked is None else max(delay, asked)):
            raise DeliveryAborted
    raise AssertionError("unreachable")


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


def error_extensions(destination: str, attempt: Attempt) -> dict[str, str]:
    """The knativeerror* extensions saying why an event is dead-lettered."""
    extensions = {KNATIVE_ERROR_DEST: destination}
    if attempt.response is not None:
        extensions[KNATIVE_ERROR_CODE] = str(attempt.response.status)
        body = attempt.response.body[:ERROR_DATA_MAX_BYTES]
    else:
        body = (attempt.error or "connection failed").encode()[:ERROR_DATA_MAX_BYTES]
    if body:
        extensions[KNATIVE_ERROR_DATA] = base64.b64encode(body).decode()
    return extensions


def dead_letter(event: CloudEvent, destination: str, attempt: Attempt) -> CloudEvent:
    """The event as the dead-letter sink gets it: unchanged, plus the knativeerror* extensions."""
    attributes = {**event.get_attributes(), **error_extensions(destination, attempt)}
    return CloudEvent(attributes, event.get_data())


def dead_letter_headers(headers: Mapping[str, str], destination: str,
                        attempt: Attempt) -> dict[str, str]:
    """A binary-mode HTTP event's headers as its dead letter's: the same event, plus the
    knativeerror* extensions, without decoding it (a body that does not match its content
    type is still dead-lettered, byte for byte)."""
    letter = {name: value for name, value in headers.items() if name.lower() != "prefer"}
    for name, value in error_extensions(destination, attempt).items():
        letter[f"ce-{name}"] = quote(value, safe=_HEADER_SAFE)
    return letter
