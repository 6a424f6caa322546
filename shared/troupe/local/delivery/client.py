"""The one HTTP client the runtime delivers with, on an asyncio loop, over keep-alive
HTTP/1.1 connections.

Most deliveries succeed at once. Making each of them on its own thread with a blocking
client cost the data plane half its throughput: dozens of threads queueing for the GIL
after every socket call. So every attempt is made on a loop (the data plane's own, where
records handed over on Kafka's acknowledgement are posted from, so most first attempts
start without crossing a thread). Each connection is an asyncio Protocol that writes a
request and parses its answer with httptools as the bytes come: no task, coroutine or
stream per attempt, which had cost a fifth of the data plane's CPU.

Every attempt has one wall-clock deadline, from its start to the last byte of the answer,
connecting included: a subscriber that answers a byte at a time, or never ends its body,
fails the attempt when the deadline passes, as one that never answers does. A body over
the size cap fails it too. Retries, backoff and dead letters are the caller's, on its
own threads, through `send` (policy.py decides what is retried).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Final
from urllib.parse import urlsplit

from troupe.local.delivery.policy import AttemptFailed, DeliveryAborted, Response
from troupe.local.delivery.response import (
    DEFAULT_MAX_RESPONSE_BYTES,
    BadResponseError,
    ResponseReader,
)
from troupe.local.host.loop import LoopThread

# Called on the loop's thread with the response, or with None and what went wrong.
Landed = Callable[[Response | None, str | None], None]
_Key = tuple[str, int]  # host and port
# Idle keep-alive connections kept per subscriber; more than are ever in flight at once is
# waste, and each one holds a socket on both ends.
_MAX_IDLE_PER_HOST: Final = 256
# How often a thread waiting in `send` looks whether its sender is stopping.
_STOP_CHECK_S: Final = 0.1


class _Request:
    """One attempt: the bytes to write, its deadline on the loop's clock, whom to tell."""

    __slots__ = ("deadline", "head_only", "landed", "max_body", "payload", "timeout")

    def __init__(self, payload: bytes, timeout: float, deadline: float, landed: Landed,
                 max_body: int, head_only: bool) -> None:
        self.payload, self.timeout, self.deadline = payload, timeout, deadline
        self.landed, self.max_body, self.head_only = landed, max_body, head_only


class DeliveryClient:
    def __init__(self, loop: LoopThread) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._queued: list[tuple[str, str, Mapping[str, str], bytes, float, Landed, int]] = []
        self._idle: dict[_Key, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._connecting: set[asyncio.Task[None]] = set()
        self._closed = False

    def stop(self) -> None:
        """Drop the attempts in flight (their events stay uncommitted) and close connections."""
        if self._loop.running:
            self._loop.run(self._close())

    # from any thread ---------------------------------------------------------------------
    def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float,
             landed: Landed, *, method: str = "POST",
             max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        """Start an attempt; `landed` is called on the loop's thread once it is over."""
        if self._loop.in_loop():
            self._start(method, url, headers, body, timeout, landed, max_response_bytes)
            return
        with self._lock:
            first = not self._queued
            self._queued.append((method, url, headers, body, timeout, landed,
                                 max_response_bytes))
        if first:  # one wake-up for all the records a fetch hands over at once
            self._loop.call_soon(self._start_queued)

    def send(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float, *,
             stopping: threading.Event | None = None, method: str = "POST",
             max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> Response:
        """One attempt from a thread other than the loop's, waited for: the response, or
        AttemptFailed saying what went wrong (refused, closed, timed out, not HTTP, too
        large); DeliveryAborted once `stopping` is set."""
        if self._loop.in_loop():
            raise RuntimeError("send() blocks: call post() on the loop's thread")
        done = threading.Event()
        outcome: list[tuple[Response | None, str | None]] = []

        def landed(response: Response | None, error: str | None) -> None:
            outcome.append((response, error))
            done.set()

        self.post(url, headers, body, timeout, landed, method=method,
                  max_response_bytes=max_response_bytes)
        # The loop fails the attempt at its deadline; this wait only gives up on a loop
        # that has stopped, a little after that.
        patience = timeout + 5.0
        while not done.wait(_STOP_CHECK_S):
            patience -= _STOP_CHECK_S
            if stopping is not None and stopping.is_set():
                raise DeliveryAborted
            if patience <= 0 or not self._loop.running:
                raise ConnectionError("the delivery loop is not running")
        response, error = outcome[0]
        if response is None:
            raise AttemptFailed(error or "no answer")
        return response

    # on the loop ---------------------------------------------------------------------------
    def _start_queued(self) -> None:
        with self._lock:
            queued, self._queued = self._queued, []
        for attempt in queued:
            self._start(*attempt)

    def _start(self, method: str, url: str, headers: Mapping[str, str], body: bytes,
               timeout: float, landed: Landed, max_body: int) -> None:
        if self._closed:
            return  # stopping: the event stays uncommitted
        try:
            key, target, host = _address(url)
        except ValueError as error:
            self._loop.loop.call_soon(landed, None, f"ConnectionError: {error}")
            return
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        payload = (f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: "
                   f"{len(body)}\r\n{head}\r\n").encode("latin-1") + body
        deadline = self._loop.loop.time() + timeout
        request = _Request(payload, timeout, deadline, landed, max_body, method == "HEAD")
        self._send(key, request, reuse=True)

    def _send(self, key: _Key, request: _Request, *, reuse: bool) -> None:
        idle = self._idle.get(key)
        while reuse and idle:
            connection = idle.pop()
            if connection.usable:
                connection.send(request, reused=True)
                return
        task = self._loop.loop.create_task(self._connect(key, request))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect(self, key: _Key, request: _Request) -> None:
        try:
            async with asyncio.timeout_at(request.deadline):
                _, connection = await self._loop.loop.create_connection(
                    lambda: _Connection(self, key), *key)
        except TimeoutError:
            request.landed(None, f"TimeoutError: no connection within {request.timeout:g} s")
            return
        except Exception as error:  # refused, unreachable: the caller retries
            request.landed(None, f"ConnectionError: {type(error).__name__}: {error}")
            return
        connection.send(request, reused=False)

    # what connections call ----------------------------------------------------------------
    def opened(self, connection: _Connection) -> None:
        self._open.add(connection)

    def closed(self, connection: _Connection) -> None:
        self._open.discard(connection)
        idle = self._idle.get(connection.key)
        if idle and connection in idle:  # closed by the server while kept alive
            idle.remove(connection)

    def idle(self, connection: _Connection) -> None:
        idle = self._idle.setdefault(connection.key, [])
        if self._closed or len(idle) >= _MAX_IDLE_PER_HOST:
            connection.close()
        else:
            idle.append(connection)

    def resend(self, key: _Key, request: _Request) -> None:
        """A kept-alive connection was closed before it answered: once more, on a new one."""
        if not self._closed:
            self._send(key, request, reuse=False)

    async def _close(self) -> None:
        self._closed = True
        for task in list(self._connecting):
            task.cancel()
        await asyncio.gather(*self._connecting, return_exceptions=True)
        for connection in list(self._open):
            connection.abandon()
        self._idle.clear()


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a subscriber: one request at a time."""

    def __init__(self, client: DeliveryClient, key: _Key) -> None:
        self.key = key
        self._client = client
        self._transport: asyncio.Transport | None = None
        self._reader: ResponseReader | None = None
        self._request: _Request | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reused = False

    @property
    def usable(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def send(self, request: _Request, *, reused: bool) -> None:
        assert self._transport is not None
        self._reader = ResponseReader(request.max_body, head_only=request.head_only)
        self._request, self._reused = request, reused
        self._timer = asyncio.get_running_loop().call_at(request.deadline, self._timed_out)
        self._transport.write(request.payload)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abandon(self) -> None:
        """Stopping: close without answering the attempt in flight."""
        self._request = None
        if self._transport is not None:
            self._transport.abort()

    # asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._client.opened(self)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        if reader is None:  # bytes nobody asked for: the connection cannot be trusted
            self.close()
            return
        try:
            complete = reader.feed(data)
        except BadResponseError as error:
            self._fail(f"BadResponseError: {error}")
            return
        if complete:
            self._answered(reader)

    def eof_received(self) -> bool:
        reader = self._reader
        if reader is not None and reader.end():
            self._answered(reader)
        return False  # close our side too; connection_lost reports an unanswered attempt

    def connection_lost(self, exc: Exception | None) -> None:
        self._client.closed(self)
        request, reader = self._request, self._reader
        if request is None or reader is None:
            return
        self._settle()
        if self._reused and not reader.started:
            # Kept alive, then closed by the server before it answered this request.
            self._client.resend(self.key, request)
            return
        request.landed(None, "ConnectionError: the connection closed before an answer "
                       f"({exc or 'EOF'})")

    # outcomes ----------------------------------------------------------------------------
    def _answered(self, reader: ResponseReader) -> None:
        request = self._request
        self._settle()
        if reader.reusable and self.usable:
            self._client.idle(self)
        else:
            self.close()
        if request is not None:
            request.landed(Response(reader.status, reader.headers, reader.body), None)

    def _fail(self, error: str) -> None:
        request = self._request
        self._settle()
        if self._transport is not None:
            self._transport.abort()  # never reuse a connection in an unknown state
        if request is not None:
            request.landed(None, error)

    def _timed_out(self) -> None:
        self._timer = None
        request = self._request
        timeout = request.timeout if request is not None else 0.0
        self._fail(f"TimeoutError: no whole answer within {timeout:g} s")

    def _settle(self) -> None:
        self._request, self._reader = None, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


@lru_cache(maxsize=1024)
def _address(url: str) -> tuple[_Key, str, str]:
    """(host, port), request target and Host header of a subscriber URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"cannot deliver to {url!r}: only http:// URLs are supported")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.hostname, parts.port or 80), target, parts.netloc
