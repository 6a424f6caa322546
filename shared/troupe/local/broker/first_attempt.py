"""First delivery attempts on one asyncio loop, over keep-alive HTTP/1.1 connections.

Most deliveries succeed at once. Making each of them on its own thread with a blocking
client cost the data plane half its throughput: dozens of threads queueing for the GIL
after every socket call. So the first attempt of an unordered delivery is made here,
with a future instead of a thread; only what needs more (a retry, a reply to re-publish,
a dead letter) goes on to a worker thread and `send_with_retries`, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import urlsplit

from .delivery import Response

# Called on the loop's thread with the response, or with None and what went wrong.
Landed = Callable[[Response | None, str | None], None]
_MAX_HEAD_BYTES: Final = 64 * 1024
_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class FirstAttempts:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever,
                                        name="broker-first-attempts", daemon=True)
        self._lock = threading.Lock()
        self._queued: list[tuple[str, Mapping[str, str], bytes, float, Landed]] = []
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> FirstAttempts:
        self._thread.start()
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def post(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float,
             landed: Landed) -> None:
        """POST from any thread; `landed` is called on the loop's thread."""
        with self._lock:
            first = not self._queued
            self._queued.append((url, headers, body, timeout, landed))
        if first:  # one wake-up for all the records a fetch hands over at once
            with contextlib.suppress(RuntimeError):  # stopped: the event stays uncommitted
                self._loop.call_soon_threadsafe(self._launch)

    def _launch(self) -> None:
        with self._lock:
            queued, self._queued = self._queued, []
        for url, headers, body, timeout, landed in queued:
            task = self._loop.create_task(self._attempt(url, headers, body, timeout, landed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _attempt(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float,
                       landed: Landed) -> None:
        try:
            async with asyncio.timeout(timeout):
                response = await self._exchange(url, headers, body)
        except Exception as error:  # whatever it was, the worker's attempts take over
            landed(None, f"{type(error).__name__}: {error}")
        else:
            landed(response, None)

    async def _exchange(self, url: str, headers: Mapping[str, str], body: bytes) -> Response:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ConnectionError(f"cannot deliver to {url!r}: only http:// URLs are supported")
        key = (parts.hostname, parts.port or 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}",
                 f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        idle = self._idle.setdefault(key, [])
        while idle:
            try:
                return await self._over(key, *idle.pop(), request)
            except (OSError, EOFError):
                continue  # a kept-alive connection the server closed meanwhile: next one
        connection = await asyncio.open_connection(*key, limit=_MAX_HEAD_BYTES)
        return await self._over(key, *connection, request)

    async def _over(self, key: tuple[str, int], reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter, request: bytes) -> Response:
        """The exchange over one connection, kept for the next if the server allows."""
        try:
            response, reusable = await _send(reader, writer, request)
        except BaseException:  # timeouts and cancellation included: never reuse it
            writer.close()
            raise
        if reusable:
            self._idle.setdefault(key, []).append((reader, writer))
        else:
            writer.close()
        return response

    async def _close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for connections in self._idle.values():
            for _, writer in connections:
                writer.close()
        self._idle.clear()


async def _send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                request: bytes) -> tuple[Response, bool]:
    """One request and its response; True if the connection can carry another."""
    writer.write(request)
    await writer.drain()
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
            raise ValueError(f"not an HTTP/1.x response: {lines[0][:100]!r}")
        status = int(rest[:3])
        if status >= 200:
            break  # 1xx are interim answers
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    reusable = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif status in (204, 304):
        body = b""
    else:  # the body runs to the end of the connection
        body, reusable = await reader.read(), False
    return Response(status, headers, body), reusable


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
