"""How the ingress reads requests off one connection: an asyncio Protocol over httptools.

llhttp (Node.js's parser, through httptools) reads the bytes and refuses what RFC 9112
says to refuse: two Content-Length headers, a length like `¹`, an unknown method or HTTP
version, a NUL in a header. What is here is what the ingress does with it:

- keep-alive, and pipelined requests answered in order (parsed at once, handed to the
  ingress one at a time);
- `Expect: 100-continue`, when no earlier answer is owed;
- request bodies sent with a Content-Length; a body the ingress will not read (chunked,
  too large) is answered (411, 413), then the connection is closed gracefully: stop
  writing, drop what the client still sends for a moment, then close, so that the client
  reads the answer instead of a connection reset;
- every request it cannot read gets an answer (400, 408, 431) and then a close: no
  connection is dropped without one, and no exception leaves `data_received`;
- a deadline (`deadline`, on the loop's clock) that the server's sweep enforces: the head
  and body of a request must arrive within their timeouts (else 408), and an idle
  keep-alive connection is closed.

A Protocol rather than streams: no coroutine, future or buffer copy per request, which had
cost the ingress a quarter of its CPU.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import httptools

from troupe.local.eventing.broker.http11 import CONTINUE, MAX_HEAD_BYTES, Request, response

# Gives the answer to a request: status, message (a text/plain body) and extra headers.
# Called once per request, on the loop, at once or later.
Respond = Callable[[int, str, Mapping[str, str] | None], None]
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UnreadBody:
    """A body left unread, and the answer to give if the request needed it."""

    status: int
    message: str


# Handles a request whose body was read (or left unread); calls `answer` exactly once.
Handle = Callable[[Request, "bytes | UnreadBody", Respond], None]


@dataclass(frozen=True, slots=True)
class Timeouts:
    head_s: float = 10.0  # from a request's first byte to the end of its head
    body_s: float = 30.0  # from the end of its head to the end of its body
    idle_s: float = 60.0  # a kept-alive connection with no request


# After refusing a body, read and drop what the client still sends for this long.
_LINGER_S: Final = 2.0
# Requests parsed ahead of their turn; past this, reading pauses until answers go out.
_MAX_PIPELINED: Final = 64


class _Refusal(Exception):
    """Raised from a parser callback to stop reading this connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class IngressConnection(asyncio.Protocol):
    def __init__(self, handle: Handle, max_body_bytes: int,
                 connections: set[IngressConnection], timeouts: Timeouts) -> None:
        self._handle = handle
        self._max_body_bytes = max_body_bytes
        self._connections = connections
        self._timeouts = timeouts
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.deadline = math.inf  # loop time by which something must happen (the sweep)
        # The request being parsed.
        self._url = b""
        self._headers: dict[str, str] = {}
        self._head_bytes = 0  # the headers read so far
        self._raw_head_bytes = 0  # bytes received while the head is incomplete
        self._body: list[bytes] = []
        self._request: Request | None = None  # its head is complete
        self._in_message = False
        # Parsed and waiting for their turn: a request and its body, or a refusal (the
        # last thing this connection answers).
        self._waiting: deque[tuple[Request, bytes | UnreadBody] | _Refusal] = deque()
        self._answering: Request | None = None  # handed to `handle`, not answered yet
        self._unread_body = False  # the request being answered left its body unread
        self._done_reading = False  # a refusal was queued: later bytes are not requests
        self._in_next = False
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
        self._loop = asyncio.get_running_loop()
        self._connections.add(self)
        self._wait_for(self._timeouts.idle_s)

    def data_received(self, data: bytes) -> None:
        if self._discarding or self._done_reading:
            return
        try:
            self._parser.feed_data(data)
            if self._in_message and self._request is None:  # a head arriving in pieces
                self._raw_head_bytes += len(data)
                if self._raw_head_bytes > MAX_HEAD_BYTES:
                    raise _Refusal(431, f"the request headers exceed {MAX_HEAD_BYTES} bytes")
        except _Refusal as refusal:
            self._stop_reading(refusal)
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            self._stop_reading(cause if isinstance(cause, _Refusal) else _Refusal(
                400, f"the request cannot be read: {cause or error}"))
        except httptools.HttpParserUpgrade:
            self._stop_reading(_Refusal(400, "protocol upgrades are not supported: POST "
                                        "events over HTTP/1.1"))
        except httptools.HttpParserError as error:
            self._stop_reading(_Refusal(400, f"not an HTTP/1.x request ({error}): check "
                                        "the request line and headers"))
        except Exception as error:  # never let the loop see it; answer, and say why
            log.exception("ingress: reading a request failed")
            self._stop_reading(_Refusal(400, f"the request cannot be read: {error}"))
        self._next()

    def eof_received(self) -> bool:
        self._input_ended = True
        if self._in_message and not self._done_reading:
            where = "inside its headers" if self._request is None else "inside its body"
            self._stop_reading(_Refusal(400, f"the request ended {where}"))
            self._next()
        elif self._answering is None and not self._waiting:
            self.close()
            return False
        return True  # keep our side open for the answers owed; closed once written

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._answering = None
        self._waiting.clear()

    def timed_out(self) -> None:
        """The server's sweep: this connection's deadline passed."""
        self.deadline = math.inf
        if self._in_message and not self._done_reading:
            part = "head" if self._request is None else "body"
            self._stop_reading(_Refusal(408, f"the request's {part} did not arrive in time"))
            self._next()
        elif self._answering is None and not self._waiting:
            self.close()  # idle

    # httptools callbacks -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_message = True
        self._url, self._headers, self._body = b"", {}, []
        self._head_bytes = self._raw_head_bytes = 0
        self._request = None
        self._wait_for(self._timeouts.head_s)

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _Refusal(431, f"the request headers exceed {MAX_HEAD_BYTES} bytes")
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1").strip()

    def on_headers_complete(self) -> None:
        parser = self._parser
        request = Request(parser.get_method().decode("ascii"), self._url.decode("latin-1"),
                          f"HTTP/{parser.get_http_version()}", self._headers)
        self._request = request
        unread = self._unreadable(request)
        if unread is not None:
            self._waiting.append((request, unread))
            raise _Refusal(0, "")  # no more requests on this connection: the answer closes it
        self._wait_for(self._timeouts.body_s)
        if request.headers.get("expect", "").lower() == "100-continue" and \
                self._answering is None and not self._waiting and self._transport is not None:
            self._transport.write(CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        request = self._request
        assert request is not None
        self._waiting.append((request, b"".join(self._body)))
        self._in_message, self._request, self._body = False, None, []
        if len(self._waiting) >= _MAX_PIPELINED and self._transport is not None:
            self._transport.pause_reading()  # answers are owed first
            self._paused = True

    # reading requests --------------------------------------------------------------------
    def _unreadable(self, request: Request) -> UnreadBody | None:
        """Why the request's body will not be read, if it will not."""
        if "transfer-encoding" in request.headers:
            return UnreadBody(411, "send the event with a Content-Length")
        length = request.headers.get("content-length")
        if length is not None and int(length) > self._max_body_bytes:  # llhttp checked it
            return UnreadBody(413, f"the event is {length} bytes; this broker accepts at most "
                              f"{self._max_body_bytes}: put large payloads in the store")
        return None

    def _stop_reading(self, refusal: _Refusal) -> None:
        """Read nothing more: answer what is owed, then `refusal` (unless it only marks a
        body left unread, answered by the ingress), then close."""
        self._done_reading = True
        self._in_message = False
        self.deadline = math.inf
        if refusal.status:
            self._waiting.append(refusal)

    def _next(self) -> None:
        """Hand over waiting requests, in order, while none is waiting for its answer."""
        if self._in_next:
            return  # an answer given synchronously, inside `handle`: the loop below goes on
        self._in_next = True
        try:
            while self._answering is None and self._waiting and self._open:
                item = self._waiting.popleft()
                if isinstance(item, _Refusal):
                    self._write(response(item.status, item.message, close=True))
                    self.close()
                    return
                request, body = item
                self._answering = request
                self._unread_body = isinstance(body, UnreadBody)
                self.deadline = math.inf  # Kafka settles every write in time
                self._handle(request, body, self._answer)
            if self._answering is None and not self._waiting and self._open:
                if self._input_ended or self._done_reading:
                    self.close()
                elif not self._in_message:
                    self._wait_for(self._timeouts.idle_s)
        finally:
            self._in_next = False

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
            if self._paused and self._transport is not None and \
                    len(self._waiting) < _MAX_PIPELINED // 2:
                self._paused = False
                self._transport.resume_reading()
            self._next()

    def _linger(self) -> None:
        transport = self._transport
        if transport is None:
            return
        self._discarding = True
        self._waiting.clear()
        if self._input_ended:
            transport.close()
            return
        if transport.can_write_eof():
            transport.write_eof()
        if self._paused:
            transport.resume_reading()
        asyncio.get_running_loop().call_later(_LINGER_S, transport.close)

    def _wait_for(self, seconds: float) -> None:
        if self._loop is not None:
            self.deadline = self._loop.time() + seconds

    def _write(self, data: bytes) -> None:
        if self._open:
            assert self._transport is not None
            self._transport.write(data)

    @property
    def _open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()
