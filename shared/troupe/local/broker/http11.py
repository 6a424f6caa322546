"""Just enough HTTP/1.1 on asyncio streams for the Broker ingress.

Keep-alive connections, requests with a Content-Length body (or none), `Expect:
100-continue`, and answers with a Content-Length. Chunked request bodies are refused by
the caller (411), as before: event producers send a length.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Final

# The request line and headers together; a CloudEvent's attributes fit many times over.
MAX_HEAD_BYTES: Final = 64 * 1024
# After refusing a body (413), read and drop what the client still sends for this long
# before closing, so that it sees the answer instead of a connection reset.
_LINGER_S: Final = 2.0


class BadRequestError(Exception):
    """The request line or a header cannot be parsed; `status` is the answer (400, 431)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
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


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request's line and headers; None when the client closed the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if error.partial.strip():
            raise BadRequestError(400, "the request ended inside its headers") from None
        return None
    except asyncio.LimitOverrunError:
        raise BadRequestError(431, f"the request headers exceed {MAX_HEAD_BYTES} bytes") from None
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


CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


async def close_after_refusal(reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:
    """Close a connection whose request body was left unread, without resetting it.

    Closing a socket with unread input makes the kernel send a reset, which can reach the
    client before our answer does; so stop writing, drop its input for a moment, then close.
    """
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()
    with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
        async with asyncio.timeout(_LINGER_S):
            while await reader.read(64 * 1024):
                pass
