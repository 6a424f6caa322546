"""The Broker ingress: `POST /<namespace>/<broker>` as Knative's data-plane spec describes.

202 once Kafka acknowledged the event; 400 malformed; 404 unknown broker; 405 (with
`Allow`) other methods; 413 too large; 415 unsupported media type; OPTIONS answers the
CloudEvents HTTP webhook validation handshake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Final

from troupe.events import codec
from troupe.events.errors import MalformedEventError, UnsupportedMediaTypeError

from .errors import PublishFailedError, RejectedEventError
from .publish import Publisher
from .spec import BrokerSpec

log = logging.getLogger(__name__)
ALLOW: Final = "POST, OPTIONS"
HEALTH_PATH: Final = "/healthz"

BrokerLookup = Callable[[str, str], BrokerSpec | None]


class IngressServer(ThreadingHTTPServer):
    daemon_threads = True
    # Many short keep-alive connections from load generators and replies.
    request_queue_size = 256

    def __init__(self, port: int, brokers: BrokerLookup, publisher: Publisher) -> None:
        super().__init__(("127.0.0.1", port), _IngressHandler)
        self.brokers = brokers
        self.publisher = publisher
        self._thread: Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        self._thread = Thread(target=self.serve_forever, name="broker-ingress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _IngressHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # A handler attribute (it did nothing on the server): a body written after its headers
    # must not wait for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: IngressServer

    def log_message(self, format: str, *args: object) -> None:
        log.debug("ingress: " + format, *args)

    def _answer(self, status: int, message: str = "",
                headers: dict[str, str] | None = None) -> None:
        body = (message + "\n").encode() if message else b""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if body:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _broker(self) -> BrokerSpec | None:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 2:
            return None
        return self.server.brokers(parts[0], parts[1])

    def _method_not_allowed(self) -> None:
        if self.command == "GET" and self.path == HEALTH_PATH:
            self._answer(200, "ok")
            return
        self._discard_body()
        self._answer(405, f"{self.command} is not allowed: send events with POST",
                     {"Allow": ALLOW})

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = _method_not_allowed

    def do_OPTIONS(self) -> None:
        # CloudEvents HTTP webhook spec, section 4: abuse protection handshake.
        origin = self.headers.get("WebHook-Request-Origin")
        headers = {"Allow": ALLOW}
        if origin:
            headers["WebHook-Allowed-Origin"] = origin
            headers["WebHook-Allowed-Rate"] = "*"
        self._answer(200, headers=headers)

    def do_POST(self) -> None:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.close_connection = True
            self._answer(411, "send the event with a Content-Length")
            return
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            self._answer(400, "Content-Length is not a number")
            return
        publisher = self.server.publisher
        if length > publisher.max_event_bytes:
            self.close_connection = True  # the body stays unread
            self._answer(413, f"the event is {length} bytes; this broker accepts at most "
                         f"{publisher.max_event_bytes}: put large payloads in the store")
            return
        body = self.rfile.read(length)
        broker = self._broker()
        if broker is None:
            self._answer(404, f"no broker at {self.path}: POST to /<namespace>/<broker>")
            return
        try:
            event = codec.from_http(dict(self.headers.items()), body)
            publisher.publish(broker, event)
        except UnsupportedMediaTypeError as error:
            self._answer(415, str(error))
        except MalformedEventError as error:
            self._answer(400, str(error))
        except RejectedEventError as error:
            self._answer(error.status, str(error))
        except PublishFailedError as error:
            log.warning("%s", error)
            self._answer(503, f"{error}; retry later", {"Retry-After": "1"})
        else:
            self._answer(202)

    def _discard_body(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= self.server.publisher.max_event_bytes:
            self.rfile.read(int(length))
        elif length:
            self.close_connection = True
