"""First delivery attempts on the data plane's loop, over keep-alive HTTP/1.1 connections.

Most deliveries succeed at once. Making each of them on its own thread with a blocking
client cost the data plane half its throughput: dozens of threads queueing for the GIL
after every socket call. So the first attempt of an unordered delivery is made here;
only what needs more (a retry, a reply to re-publish, a dead letter) goes on to a worker
thread and `send_with_retries`, as before.

They run on the data plane's loop (loop.py), where records handed over on Kafka's
acknowledgement are posted from, so most attempts start without crossing a thread. Each
connection is an asyncio Protocol that writes a request and parses its answer as the bytes
come: no task, coroutine or stream per attempt, which had cost a fifth of the data plane's
CPU.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Final
from urllib.parse import urlsplit

from troupe.local.eventing.broker.http11 import BadResponseError, ResponseReader
from troupe.local.eventing.broker.loop import LoopThread
from troupe.local.eventing.broker.retries import Response

# Called on the loop's thread with the response, or with None and what went wrong.
Landed = Callable[[Response | None, str | None], None]
_Key = tuple[str, int]  # host and port
_Attempt = tuple[str, Mapping[str, str], bytes, float, Landed]
# Idle keep-alive connections kept per subscriber; more than are ever in flight at once is
# waste, and each one holds a socket on both ends.
_MAX_IDLE_PER_HOST: Final = 256


class FirstAttempts:
    def __init__(self, loop: LoopThread) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._queued: list[_Attempt] = []
        self._idle: dict[_Key, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._connecting: set[asyncio.Task[None]] = set()
        self._closed = False

    def stop(self) -> None:
        """Drop the attempts in flight (their events stay uncommitted) and close connections."""
        if self._loop.running:
            self._loop.run(self._close())

    def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float,
             landed: Landed) -> None:
        """POST from any thread; `landed` is called on the loop's thread."""
        if self._loop.in_loop():
            self._start(url, headers, body, timeout, landed)
            return
        with self._lock:
            first = not self._queued
            self._queued.append((url, headers, body, timeout, landed))
        if first:  # one wake-up for all the records a fetch hands over at once
            self._loop.call_soon(self._start_queued)

    def _start_queued(self) -> None:
        with self._lock:
            queued, self._queued = self._queued, []
        for attempt in queued:
            self._start(*attempt)

    def _start(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float,
               landed: Landed) -> None:
        if self._closed:
            return  # stopping: the event stays uncommitted
        try:
            key, target, host = _address(url)
        except ValueError as error:
            self._loop.loop.call_soon(landed, None, f"ConnectionError: {error}")
            return
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = (f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
                   f"{head}\r\n").encode("latin-1") + body
        self._send(key, request, timeout, landed, reuse=True)

    def _send(self, key: _Key, request: bytes, timeout: float, landed: Landed, *,
              reuse: bool) -> None:
        idle = self._idle.get(key)
        while reuse and idle:
            connection = idle.pop()
            if connection.usable:
                connection.send(request, timeout, landed, reused=True)
                return
        task = self._loop.loop.create_task(self._connect(key, request, timeout, landed))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect(self, key: _Key, request: bytes, timeout: float, landed: Landed) -> None:
        try:
            async with asyncio.timeout(timeout):
                _, connection = await self._loop.loop.create_connection(
                    lambda: _Connection(self, key), *key)
        except Exception as error:  # refused, unreachable, timed out: the worker retries
            landed(None, f"{type(error).__name__}: {error}")
            return
        connection.send(request, timeout, landed, reused=False)

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

    def resend(self, key: _Key, request: bytes, timeout: float, landed: Landed) -> None:
        """A kept-alive connection was closed before it answered: once more, on a new one."""
        if not self._closed:
            self._send(key, request, timeout, landed, reuse=False)

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

    def __init__(self, attempts: FirstAttempts, key: _Key) -> None:
        self.key = key
        self._attempts = attempts
        self._transport: asyncio.Transport | None = None
        self._reader: ResponseReader | None = None
        self._landed: Landed | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._request = b""
        self._timeout = 0.0
        self._reused = False

    @property
    def usable(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def send(self, request: bytes, timeout: float, landed: Landed, *, reused: bool) -> None:
        assert self._transport is not None
        self._reader, self._landed, self._reused = ResponseReader(), landed, reused
        self._request, self._timeout = request, timeout
        self._timer = asyncio.get_running_loop().call_later(timeout, self._timed_out)
        self._transport.write(request)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abandon(self) -> None:
        """Stopping: close without answering the attempt in flight."""
        self._landed = None
        if self._transport is not None:
            self._transport.abort()

    # asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._attempts.opened(self)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        if reader is None:  # bytes nobody asked for: the connection cannot be trusted
            self.close()
            return
        try:
            complete = reader.feed(data)
        except BadResponseError as error:
            self._fail(f"{type(error).__name__}: {error}")
            return
        if complete:
            self._answered(reader)

    def eof_received(self) -> bool:
        reader = self._reader
        if reader is not None and reader.end():
            self._answered(reader)
        return False  # close our side too; connection_lost reports an unanswered attempt

    def connection_lost(self, exc: Exception | None) -> None:
        self._attempts.closed(self)
        landed, reader, request = self._landed, self._reader, self._request
        if landed is None or reader is None:
            return
        self._settle()
        if self._reused and not reader.started:
            # Kept alive, then closed by the server before it answered this request.
            self._attempts.resend(self.key, request, self._timeout, landed)
            return
        landed(None, f"ConnectionError: the connection closed before an answer ({exc or 'EOF'})")

    # outcomes ----------------------------------------------------------------------------
    def _answered(self, reader: ResponseReader) -> None:
        landed = self._landed
        self._settle()
        if reader.reusable and self.usable:
            self._attempts.idle(self)
        else:
            self.close()
        if landed is not None:
            landed(Response(reader.status, reader.headers, reader.body), None)

    def _fail(self, error: str) -> None:
        landed = self._landed
        self._settle()
        if self._transport is not None:
            self._transport.abort()  # never reuse a connection in an unknown state
        if landed is not None:
            landed(None, error)

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(f"TimeoutError: no answer within {self._timeout:g} s")

    def _settle(self) -> None:
        self._landed, self._reader, self._request = None, None, b""
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
