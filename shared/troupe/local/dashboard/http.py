"""The dashboard's HTTP vocabulary: a request, the answers a route gives, and a route."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

JSON: Final = "application/json"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # names in lower case
    body: bytes
    params: Mapping[str, str] = field(default_factory=dict)  # the route's named groups

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as error:
            raise HttpError(400, f"the body is not JSON: {error}") from None


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stream:
    """An answer written as it comes (server-sent events): each item is sent at once, and
    the stream ends when the iterator does or the client goes away."""

    chunks: Iterator[bytes]
    content_type: str = "text/event-stream"


class HttpError(Exception):
    """A request a route refuses: the status and what to do, as the answer's text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Answer = Response | Stream
Handler = Callable[[Request], Answer]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handle: Handler

    @classmethod
    def of(cls, method: str, pattern: str, handle: Handler) -> Route:
        return cls(method, re.compile(f"^{pattern}$"), handle)


def json_response(value: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(value, default=str).encode(), JSON)


def text_response(status: int, text: str) -> Response:
    return Response(status, (text + "\n").encode())
