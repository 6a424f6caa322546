"""Just enough HTTP/1.1 for the Broker ingress and for first delivery attempts.

Requests: a head, then a Content-Length body (or none); chunked request bodies are refused
by the caller (411), as event producers send a length. Responses are read as their bytes
arrive: Content-Length, chunked, or up to the end of the connection, after any 1xx.
Both ends parse bytes handed to them by an asyncio Protocol; no stream or task is involved.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Final

from troupe.local.errors import LocalError

# The request line and headers together; a CloudEvent's attributes fit many times over.
MAX_HEAD_BYTES: Final = 64 * 1024
HEAD_END: Final = b"\r\n\r\n"
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


class BadRequestError(LocalError):
    """The request line or a header cannot be parsed; `status_code` is the answer (400,
    431)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


class BadResponseError(LocalError, ValueError):
    """The peer's answer is not HTTP/1.x."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


def parse_request_head(head: bytes) -> Request:
    """The request line and headers, `head` ending with the blank line."""
    lines = head.decode("latin-1").lstrip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequestError(400, f"not an HTTP/1.x request line: {lines[0][:100]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise BadRequestError(400, f"malformed header line: {line[:100]!r}")
        headers[name.lower()] = value.strip()
    return Request(parts[0], parts[1], parts[2], headers)


class _Date:
    """The Date header, formatted once a second rather than once a request."""

    second = -1
    value = ""

    @classmethod
    def now(cls) -> str:
        second = int(time.time())
        if second != cls.second:
            cls.second, cls.value = second, formatdate(second, usegmt=True)
        return cls.value


def response(status: int, message: str = "", headers: Mapping[str, str] | None = None, *,
             close: bool = False, head_only: bool = False) -> bytes:
    """An HTTP/1.1 response; a message becomes a text/plain body."""
    body = (message + "\n").encode() if message else b""
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Date: {_Date.now()}",
             "Server: troupe-broker"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append("Content-Type: text/plain; charset=utf-8")
    lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body)


class ResponseReader:
    """One response to a POST, from its bytes as they arrive.

        reader = ResponseReader()
        done = reader.feed(data)  # on each data_received; True once complete
        done = reader.end()       # on EOF: True if the body ran to the end
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._length: int | None = None  # body bytes still to come; None: until EOF
        self._chunked = False
        self._chunk_left = -1  # bytes of the current chunk and its CRLF; -1: at a size line
        self._chunks: list[bytes] = []
        self._in_trailers = False
        self._head_done = False
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.reusable = False  # the connection can carry another request afterwards
        self.started = False  # any byte of the answer arrived

    def feed(self, data: bytes) -> bool:
        """Take the next bytes; True once the response is complete. Raises BadResponseError."""
        self.started = True
        self._buffer += data
        if not self._head_done and not self._read_head():
            return False
        if self._chunked:
            return self._read_chunks()
        if self._length is None:
            return False  # the body runs to the end of the connection
        if len(self._buffer) < self._length:
            return False
        self.body = bytes(self._buffer[:self._length])
        self.reusable = self.reusable and len(self._buffer) == self._length
        return True

    def end(self) -> bool:
        """The peer closed its side: True if that completed the response."""
        if self._head_done and self._length is None and not self._chunked:
            self.body, self.reusable = bytes(self._buffer), False
            return True
        return False

    def _read_head(self) -> bool:
        while True:  # 1xx are interim answers: the final one follows
            end = self._buffer.find(HEAD_END, 0, MAX_HEAD_BYTES)
            if end < 0:
                if len(self._buffer) >= MAX_HEAD_BYTES:
                    raise BadResponseError(f"response headers exceed {MAX_HEAD_BYTES} bytes")
                return False
            lines = self._buffer[:end].decode("latin-1").split("\r\n")
            del self._buffer[:end + len(HEAD_END)]
            version, _, rest = lines[0].partition(" ")
            if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
                raise BadResponseError(f"not an HTTP/1.x response: {lines[0][:100]!r}")
            if int(rest[:3]) >= 200:
                break
        self.status = int(rest[:3])
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon:
                self.headers[name.strip().lower()] = value.strip()
        connection = self.headers.get("connection", "").lower()
        self.reusable = "close" not in connection and (
            version == "HTTP/1.1" or "keep-alive" in connection)
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in self.headers:
            length = self.headers["content-length"]
            if not length.isdigit():
                raise BadResponseError(f"Content-Length is not a number: {length[:40]!r}")
            self._length = int(length)
        elif self.status in (204, 304):
            self._length = 0
        self._head_done = True
        return True

    def _read_chunks(self) -> bool:
        buffer = self._buffer
        while True:
            if self._in_trailers:
                end = buffer.find(b"\r\n")
                if end < 0:
                    return False
                del buffer[:end + 2]
                if end == 0:  # the blank line after the trailers
                    self.body = b"".join(self._chunks)
                    self.reusable = self.reusable and not buffer
                    return True
                continue
            if self._chunk_left < 0:
                end = buffer.find(b"\r\n")
                if end < 0:
                    return False
                size_text = bytes(buffer[:end]).split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise BadResponseError(f"bad chunk size {size_text[:20]!r}") from None
                del buffer[:end + 2]
                if size == 0:
                    self._in_trailers = True
                    continue
                self._chunk_left = size + 2
            if len(buffer) < self._chunk_left:
                return False
            self._chunks.append(bytes(buffer[:self._chunk_left - 2]))
            del buffer[:self._chunk_left]
            self._chunk_left = -1
