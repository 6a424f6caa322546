"""How the ingress reads requests off one connection: an asyncio Protocol over HTTP/1.1.

Keep-alive, pipelined requests answered in order, `Expect: 100-continue`, and request
bodies sent with a Content-Length. A body the ingress will not read (chunked, too large, a
bad length) is answered, then the connection is closed gracefully: stop writing, drop
what the client still sends for a moment, then close, so that the client reads the answer
instead of a connection reset.

A Protocol rather than streams: no coroutine, future or buffer copy per request, which had
cost the ingress a quarter of its CPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from troupe.local.eventing.broker.http11 import (
    CONTINUE,
    HEAD_END,
    MAX_HEAD_BYTES,
    BadRequestError,
    Request,
    parse_request_head,
    response,
)

# Gives the answer to a request: status, message (a text/plain body) and extra headers.
# Called once per request, on the loop, at once or later.
Respond = Callable[[int, str, Mapping[str, str] | None], None]


@dataclass(frozen=True, slots=True)
class UnreadBody:
    """A body left unread, and the answer to give if the request needed it."""

    status: int
    message: str


# Handles a request whose body was read (or left unread); calls `answer` exactly once.
Handle = Callable[[Request, "bytes | UnreadBody", Respond], None]
# After refusing a body, read and drop what the client still sends for this long.
_LINGER_S: Final = 2.0


class IngressConnection(asyncio.Protocol):
    def __init__(self, handle: Handle, max_body_bytes: int,
                 connections: set[IngressConnection]) -> None:
        self._handle = handle
        self._max_body_bytes = max_body_bytes
        self._connections = connections
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._request: Request | None = None  # its head is read; its body is awaited
        self._body_length = 0
        self._answering: Request | None = None  # handed to `handle`, not answered yet
        self._unread_body = False  # the request being answered left its body unread
        self._in_process = False
        self._input_ended = False
        self._discarding = False
        self._paused = False

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        self._buffer += data
        if self._answering is None:
            self._process()
        elif len(self._buffer) > MAX_HEAD_BYTES + self._max_body_bytes and self._transport:
            # Pipelined requests pile up behind one waiting for Kafka: stop reading.
            self._transport.pause_reading()
            self._paused = True

    def eof_received(self) -> bool:
        self._input_ended = True
        if self._answering is not None and not self._discarding:
            return True  # keep our side open for the answer; closed once it is written
        if not self._discarding:
            self._end_of_input()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._answering = None

    # reading requests --------------------------------------------------------------------
    def _process(self) -> None:
        """Read and hand over requests until one is waiting for its answer or bytes run out."""
        if self._in_process:
            return  # an answer given synchronously, inside `handle`: the loop below goes on
        self._in_process = True
        try:
            while self._answering is None and self._open:
                if self._request is None and not self._read_head():
                    break
                if not self._take_body():
                    break
            if self._input_ended and self._answering is None and self._open and \
                    not self._discarding:
                self._end_of_input()
        finally:
            self._in_process = False

    def _read_head(self) -> bool:
        end = self._buffer.find(HEAD_END, 0, MAX_HEAD_BYTES)
        if end < 0:
            if len(self._buffer) >= MAX_HEAD_BYTES:
                self._refuse(431, f"the request headers exceed {MAX_HEAD_BYTES} bytes")
            return False
        head = bytes(self._buffer[:end + len(HEAD_END)])
        del self._buffer[:end + len(HEAD_END)]
        try:
            request = parse_request_head(head)
        except BadRequestError as error:
            self._refuse(error.status_code, str(error))
            return False
        unread = self._unreadable(request)
        if unread is not None:
            self._start_answer(request, unread)
            return False
        self._request = request
        if self._body_length and len(self._buffer) < self._body_length and \
                request.headers.get("expect", "").lower() == "100-continue":
            self._write(CONTINUE)
        return True

    def _unreadable(self, request: Request) -> UnreadBody | None:
        """Why the request's body will not be read, if it will not; sets its length if it will."""
        self._body_length = 0
        if "transfer-encoding" in request.headers:
            return UnreadBody(411, "send the event with a Content-Length")
        length = request.headers.get("content-length")
        if length is None:
            return None
        if not length.isdigit():
            return UnreadBody(400, "Content-Length is not a number")
        if int(length) > self._max_body_bytes:
            return UnreadBody(413, f"the event is {length} bytes; this broker accepts at most "
                              f"{self._max_body_bytes}: put large payloads in the store")
        self._body_length = int(length)
        return None

    def _take_body(self) -> bool:
        request, length = self._request, self._body_length
        if request is None or len(self._buffer) < length:
            return False
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        self._request = None
        self._start_answer(request, body)
        return True

    def _start_answer(self, request: Request, body: bytes | UnreadBody) -> None:
        self._answering = request
        self._unread_body = isinstance(body, UnreadBody)
        self._handle(request, body, self._answer)

    def _end_of_input(self) -> None:
        """The client sent all it will send: answer a request cut short, then close."""
        if self._request is None and bytes(self._buffer).strip():
            self._refuse(400, "the request ended inside its headers")
        else:
            self.close()  # nothing, or a body cut short: nothing to answer

    # answering ---------------------------------------------------------------------------
    def _answer(self, status: int, message: str = "",
                headers: Mapping[str, str] | None = None) -> None:
        request, self._answering = self._answering, None
        if request is None or not self._open:
            return  # the connection went away meanwhile
        unread, self._unread_body = self._unread_body, False
        close = unread or not request.keep_alive
        self._write(response(status, message, headers, close=close,
                             head_only=request.method == "HEAD"))
        if unread:
            self._linger()
        elif close:
            self.close()
        else:
            if self._paused and self._transport is not None:
                self._paused = False
                self._transport.resume_reading()
            self._process()

    def _refuse(self, status: int, message: str) -> None:
        """A request that cannot be read at all: answer and close."""
        self._write(response(status, message, close=True))
        self.close()

    def _linger(self) -> None:
        transport = self._transport
        if transport is None:
            return
        self._discarding = True
        self._buffer.clear()
        if self._input_ended:
            transport.close()
            return
        if transport.can_write_eof():
            transport.write_eof()
        if self._paused:
            transport.resume_reading()
        asyncio.get_running_loop().call_later(_LINGER_S, transport.close)

    def _write(self, data: bytes) -> None:
        if self._open:
            assert self._transport is not None
            self._transport.write(data)

    @property
    def _open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()
