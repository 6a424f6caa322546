"""The ingress's side of HTTP/1.1 that is not parsing: a request as the ingress handles it,
and the responses it writes. Parsing is httptools' (ingress_connection.py), and answers to
deliveries are read by troupe.local.delivery.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from typing import Final

# The request line and headers together; a CloudEvent's attributes fit many times over.
MAX_HEAD_BYTES: Final = 64 * 1024
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


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
