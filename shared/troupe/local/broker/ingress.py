"""The Broker ingress: `POST /<namespace>/<broker>` as Knative's data-plane spec describes.

202 once Kafka acknowledged the event; 400 malformed; 404 unknown broker; 405 (with
`Allow`) other methods; 411 no Content-Length; 413 too large; 415 unsupported media type;
OPTIONS answers the CloudEvents HTTP webhook validation handshake.

One asyncio loop serves every connection: a request waiting for Kafka's acknowledgement
holds a future, not a thread, so many producers in flight cost little and share batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any, Final

from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata

from troupe.events import codec
from troupe.events.errors import MalformedEventError, UnsupportedMediaTypeError

from .errors import PublishFailedError, RejectedEventError
from .http11 import (
    CONTINUE,
    MAX_HEAD_BYTES,
    BadRequestError,
    Request,
    close_after_refusal,
    read_request,
    response,
)
from .publish import Publisher
from .spec import BrokerSpec

log = logging.getLogger(__name__)
ALLOW: Final = "POST, OPTIONS"
HEALTH_PATH: Final = "/healthz"

BrokerLookup = Callable[[str, str], BrokerSpec | None]


class _Answer(Exception):
    """Ends a request early with this status and message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None,
                 *, unread_body: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers
        self.unread_body = unread_body  # so the connection cannot be used again


class IngressServer:
    def __init__(self, port: int, brokers: BrokerLookup, publisher: Publisher) -> None:
        self.brokers = brokers
        self.publisher = publisher
        # Bound now, so that the port is known before start().
        self._socket = socket.create_server(("127.0.0.1", port), backlog=256)
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self._acks = _AckBridge(self._loop)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def start(self) -> None:
        listening = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(asyncio.start_server(
                self._serve_connection, sock=self._socket, limit=MAX_HEAD_BYTES))
            listening.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="broker-ingress", daemon=True)
        self._thread.start()
        listening.wait(10)

    def stop(self) -> None:
        if self._thread is None:
            self._socket.close()
            return
        shutdown = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        try:
            shutdown.result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None
            if not self._loop.is_running():
                self._loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    # one connection ----------------------------------------------------------------------
    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    request = await read_request(reader)
                except BadRequestError as error:
                    writer.write(response(error.status, str(error), close=True))
                    await writer.drain()
                    return
                if request is None:
                    return
                unread_body = False
                try:
                    status, message, headers = await self._answer(request, reader, writer)
                except _Answer as early:
                    status, message, headers = early.status, early.message, early.headers
                    unread_body = early.unread_body
                close = unread_body or not request.keep_alive
                writer.write(response(status, message, headers, close=close,
                                      head_only=request.method == "HEAD"))
                await writer.drain()
                if unread_body:
                    await close_after_refusal(reader, writer)
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return  # the client went away mid-request; nothing was acknowledged
        except asyncio.CancelledError:
            # The ingress is stopping. Ending quietly: asyncio's stream protocol would log a
            # cancelled connection task as an error, and nothing here was acknowledged.
            return
        finally:
            self._connections.discard(task)
            writer.close()

    async def _answer(self, request: Request, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> tuple[int, str, dict[str, str] | None]:
        if request.method == "POST":
            return await self._post(request, reader, writer)
        if request.method == "OPTIONS":
            # CloudEvents HTTP webhook spec, section 4: abuse protection handshake.
            headers = {"Allow": ALLOW}
            origin = request.headers.get("webhook-request-origin")
            if origin:
                headers["WebHook-Allowed-Origin"] = origin
                headers["WebHook-Allowed-Rate"] = "*"
            answer: tuple[int, str, dict[str, str] | None] = (200, "", headers)
        elif request.method == "GET" and request.path == HEALTH_PATH:
            answer = (200, "ok", None)
        else:
            answer = (405, f"{request.method} is not allowed: send events with POST",
                      {"Allow": ALLOW})
        try:
            await self._read_body(request, reader, writer, required=False)
        except _Answer:  # a body we will not read: this answer still, then close
            raise _Answer(*answer, unread_body=True) from None
        return answer

    async def _post(self, request: Request, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> tuple[int, str, dict[str, str] | None]:
        body = await self._read_body(request, reader, writer, required=True)
        broker = self._broker(request.path)
        if broker is None:
            return 404, f"no broker at {request.path}: POST to /<namespace>/<broker>", None
        try:
            message = codec.http_to_kafka(request.headers, body)
            if self.publisher.knows(broker):
                await self._acks.wait(self.publisher.send_record(broker, message))
            else:  # the first write to a topic may block on its metadata: not on this loop
                await asyncio.get_running_loop().run_in_executor(
                    None, self.publisher.publish_record, broker, message)
        except UnsupportedMediaTypeError as error:
            return 415, str(error), None
        except MalformedEventError as error:
            return 400, str(error), None
        except RejectedEventError as error:
            return error.status, str(error), None
        except (PublishFailedError, KafkaError) as error:
            log.warning("ingress: Kafka did not acknowledge an event on %s: %s",
                        broker.topic, error or type(error).__name__)
            return 503, "Kafka did not acknowledge the event; retry later", {"Retry-After": "1"}
        return 202, "", None

    async def _read_body(self, request: Request, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter, *, required: bool) -> bytes:
        length_header = request.headers.get("content-length")
        if "transfer-encoding" in request.headers or (length_header is None and required):
            raise _Answer(411, "send the event with a Content-Length", unread_body=True)
        if length_header is None:
            return b""
        if not length_header.isdigit():
            raise _Answer(400, "Content-Length is not a number", unread_body=True)
        length = int(length_header)
        limit = self.publisher.max_event_bytes
        if length > limit:
            raise _Answer(413, f"the event is {length} bytes; this broker accepts at most "
                          f"{limit}: put large payloads in the store", unread_body=True)
        if request.headers.get("expect", "").lower() == "100-continue":
            writer.write(CONTINUE)
        return await reader.readexactly(length) if length else b""

    def _broker(self, path: str) -> BrokerSpec | None:
        parts = path.strip("/").split("/")
        if len(parts) != 2:
            return None
        return self.brokers(parts[0], parts[1])


class _AckBridge:
    """Kafka acknowledgements (on the producer's thread) as awaitables on the loop.

    Acknowledgements come in batches; they are handed over with one loop wake-up per batch
    instead of one per event.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._done: list[tuple[asyncio.Future[None], object]] = []

    async def wait(self, future: FutureRecordMetadata) -> None:
        """Return once Kafka acknowledged; raise its error.

        No timer per request: the producer settles every future within its delivery
        timeout (publish.ACK_TIMEOUT_S), failing it with KafkaTimeoutError if need be.
        """
        waiter: asyncio.Future[None] = self._loop.create_future()
        future.add_both(self._settled, waiter)
        await waiter

    def _settled(self, waiter: asyncio.Future[None], outcome: object) -> None:
        with self._lock:
            first = not self._done
            self._done.append((waiter, outcome))
        if first:
            # RuntimeError: the ingress stopped, nobody waits for this any more.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._hand_over)

    def _hand_over(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        for waiter, outcome in done:
            if waiter.done():
                continue  # timed out meanwhile
            if isinstance(outcome, BaseException):
                waiter.set_exception(outcome)
            else:
                waiter.set_result(None)
