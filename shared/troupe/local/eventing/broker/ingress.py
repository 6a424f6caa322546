"""The Broker ingress: `POST /<namespace>/<broker>` as Knative's data-plane spec describes.

202 once Kafka acknowledged the event; 400 malformed; 404 unknown broker; 405 (with
`Allow`) other methods; 411 no Content-Length; 413 too large; 415 unsupported media type;
503 with Retry-After when Kafka does not take it; OPTIONS answers the CloudEvents HTTP
webhook validation handshake.

It runs on the data plane's loop (loop.py), reading requests with ingress_connection.py.
A request waiting for Kafka's acknowledgement holds a callback, not a thread, so many
producers in flight cost little and share produce requests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
from collections.abc import Callable
from typing import Final

from kafka.errors import KafkaError

from troupe.events import codec
from troupe.events.errors import EventError
from troupe.local.eventing.broker.errors import PublishFailedError, RejectedEventError
from troupe.local.eventing.broker.http11 import Request, response
from troupe.local.eventing.broker.ingress_connection import (
    IngressConnection,
    Respond,
    Timeouts,
    UnreadBody,
)
from troupe.local.eventing.broker.publish import Publisher
from troupe.local.eventing.broker.spec import BrokerSpec
from troupe.local.host.loop import LoopThread

log = logging.getLogger(__name__)
ALLOW: Final = "POST, OPTIONS"
HEALTH_PATH: Final = "/healthz"
_RETRY_LATER: Final = {"Retry-After": "1"}
_MAX_CONNECTIONS: Final = 4096
_SWEEP_S: Final = 1.0
_BUSY_LINGER_S: Final = 1.0

BrokerLookup = Callable[[str, str], BrokerSpec | None]


class IngressServer:
    """The listener: connections up to `max_connections` (the next ones get 503 and a
    close), and a sweep once a second that enforces each connection's deadline."""

    def __init__(self, port: int, brokers: BrokerLookup, publisher: Publisher,
                 loop: LoopThread, *, timeouts: Timeouts | None = None,
                 max_connections: int | None = None) -> None:
        self.brokers = brokers
        self.publisher = publisher
        self._loop = loop
        self._timeouts = timeouts or Timeouts()
        self.max_connections = max_connections or default_max_connections()
        # Bound now, so that the port is known before start().
        self._socket = socket.create_server(("127.0.0.1", port), backlog=256)
        self._server: asyncio.Server | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._connections: set[IngressConnection] = set()
        self.refused_connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def start(self) -> None:
        self._server = self._loop.run(self._listen())

    def stop(self) -> None:
        if self._server is None or not self._loop.running:
            self._socket.close()
            return
        self._loop.run(self._shutdown())
        self._server = None

    async def _listen(self) -> asyncio.Server:
        self._sweep = asyncio.get_running_loop().call_later(_SWEEP_S, self._sweep_deadlines)
        return await asyncio.get_running_loop().create_server(self._connection,
                                                              sock=self._socket)

    def _connection(self) -> asyncio.Protocol:
        if len(self._connections) >= self.max_connections:
            self.refused_connections += 1
            return _Busy()
        return IngressConnection(self._handle, self.publisher.max_event_bytes,
                                 self._connections, self._timeouts)

    def _sweep_deadlines(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for connection in [c for c in self._connections if c.deadline <= now]:
            connection.timed_out()
        self._sweep = loop.call_later(_SWEEP_S, self._sweep_deadlines)

    async def _shutdown(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.close()  # whatever waits for Kafka was not acknowledged: no answer

    # answering ---------------------------------------------------------------------------
    def _handle(self, request: Request, body: bytes | UnreadBody, answer: Respond) -> None:
        if request.method == "POST":
            if isinstance(body, UnreadBody):
                answer(body.status, body.message, None)
            elif "content-length" not in request.headers:
                answer(411, "send the event with a Content-Length", None)
            else:
                self._post(request.path, request.headers, body, answer)
            return
        if request.method == "OPTIONS":
            # CloudEvents HTTP webhook spec, section 4: abuse protection handshake.
            headers = {"Allow": ALLOW}
            origin = request.headers.get("webhook-request-origin")
            if origin:
                headers["WebHook-Allowed-Origin"] = origin
                headers["WebHook-Allowed-Rate"] = "*"
            answer(200, "", headers)
        elif request.method == "GET" and request.path == HEALTH_PATH:
            answer(200, "ok", None)
        else:  # an unread body does not matter here: the same answer, then the close
            answer(405, f"{request.method} is not allowed: send events with POST",
                   {"Allow": ALLOW})

    def _post(self, path: str, headers: dict[str, str], body: bytes, answer: Respond) -> None:
        broker = self._broker(path)
        if broker is None:
            answer(404, f"no broker at {path}: POST to /<namespace>/<broker>", None)
            return
        unavailable = self.publisher.unavailable
        if unavailable is not None:  # not stored: the producer should send it again
            answer(503, f"{unavailable}; retry later", _RETRY_LATER)
            return

        def stored(error: BaseException | None) -> None:
            if error is None:
                answer(202, "", None)
            else:
                answer(*_refusal(broker, error))

        try:
            message = codec.http_to_kafka(headers, body)
            if self.publisher.knows(broker):
                # No timer per request: the producer settles every write within its
                # delivery timeout (publish.ACK_TIMEOUT_S), failing it if need be.
                self.publisher.write(broker, message, stored)
                return
        except Exception as error:
            answer(*_refusal(broker, error))
            return
        # The first write to a topic may block on its metadata: not on this loop.
        written = asyncio.get_running_loop().run_in_executor(
            None, self.publisher.publish_record, broker, message)

        def published(future: asyncio.Future[None]) -> None:
            if not future.cancelled():
                stored(future.exception())

        written.add_done_callback(published)

    def _broker(self, path: str) -> BrokerSpec | None:
        parts = path.strip("/").split("/")
        if len(parts) != 2:
            return None
        return self.brokers(parts[0], parts[1])


def default_max_connections() -> int:
    """Connections the ingress takes at once: half of the files this process may still open
    (the rest is for Kafka, subscribers, and answering 503 past the cap), at most
    _MAX_CONNECTIONS."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MAX_CONNECTIONS
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux: guess
        in_use = 64
    return max(8, min(_MAX_CONNECTIONS, (soft - in_use) // 2))


class _Busy(asyncio.Protocol):
    """A connection over the cap: 503 with Retry-After, then a graceful close (what the
    client sends meanwhile is dropped, so that it reads the answer, not a reset)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(response(503, "too many connections: retry later", _RETRY_LATER,
                                 close=True))
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(_BUSY_LINGER_S, transport.close)

    def data_received(self, data: bytes) -> None:
        pass  # not read: the answer is given

    def eof_received(self) -> bool:
        return False  # the client is done too: close


def _refusal(broker: BrokerSpec, error: BaseException) -> tuple[int, str, dict[str, str] | None]:
    """The answer to an event the ingress could not store: the status the error carries,
    as werkzeug's exceptions do (event errors, refusals), or 503 when Kafka did not take
    it; anything else is a bug, answered 500."""
    if isinstance(error, KafkaError):
        error = PublishFailedError(str(error) or type(error).__name__)
    if isinstance(error, PublishFailedError):
        log.warning("ingress: Kafka did not acknowledge an event on %s: %s", broker.topic,
                    error)
        return error.status_code, "Kafka did not acknowledge the event; retry later", \
            _RETRY_LATER
    status = getattr(error, "status_code", None)
    if isinstance(error, (EventError, RejectedEventError)) and isinstance(status, int):
        return status, str(error), None
    # A bug: the client may send the event again, and the traceback goes to the log.
    log.error("ingress: storing an event on %s failed", broker.topic, exc_info=error)
    return 500, "the broker failed to store the event; retry later", _RETRY_LATER
