"""A recording HTTP sink on loopback that can be told how to answer.

It plays a Knative subscriber: it records every request, answers 202 by default, and can
be scripted to fail the next N requests, answer given statuses, be slow, or reply with an
event (200 + a binary-mode CloudEvent).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cloudevents.core.v1.event import CloudEvent
from troupe.events import codec


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float

    @property
    def event(self) -> CloudEvent:
        return codec.from_http(self.headers, self.body)

    @property
    def ce_id(self) -> str:
        return self.headers.get("ce-id", "")


Replier = Callable[[CloudEvent], CloudEvent | None]


class RecordingSink:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received: list[Received] = []
        self._scripted: deque[tuple[int, dict[str, str]]] = deque()
        self.default_status = 202
        self.delay_s = 0.0
        self.fail_every = 0  # answer 503 to every n-th request (0: never)
        self.replier: Replier | None = None
        self.gate = threading.Event()
        self.gate.set()
        self._count = 0
        # (path, ce-source, ce-id) of every request answered 2xx, kept as they come so that
        # a test polling for thousands of events does not rescan `received` each time.
        self._acknowledged: set[tuple[str, str, str]] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> RecordingSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.gate.set()
        self._server.shutdown()
        self._server.server_close()

    def answer_next(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        """Answer the next requests with these statuses, in order, then the default."""
        with self._lock:
            self._scripted.extend((status, dict(headers or {})) for status in statuses)

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self._scripted.clear()
            self._count = 0
            self._acknowledged.clear()
        self.default_status, self.delay_s, self.fail_every, self.replier = 202, 0.0, 0, None
        self.gate.set()

    def paths(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def acknowledged(self, path: str) -> set[tuple[str, str]]:
        """(source, id) of the events at `path` that were answered with a 2xx."""
        with self._lock:
            return {(source, ce_id) for p, source, ce_id in self._acknowledged if p == path}

    def acknowledged_count(self) -> int:
        with self._lock:
            return len(self._acknowledged)

    def ids(self, path: str) -> list[str]:
        return [r.ce_id for r in self.paths(path)]

    def _decide(self, received: Received) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = self._answer(received)
        if 200 <= status < 300:
            with self._lock:
                self._acknowledged.add((received.path, received.headers.get("ce-source", ""),
                                        received.ce_id))
        return status, headers, body

    def _answer(self, received: Received) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.received.append(received)
            self._count += 1
            count = self._count
            scripted = self._scripted.popleft() if self._scripted else None
        if scripted is not None:
            return scripted[0], scripted[1], f"scripted {scripted[0]}".encode()
        if self.fail_every and count % self.fail_every == 0:
            return 503, {}, b"sometimes failing"
        if self.replier is not None:
            reply = self.replier(received.event)
            if reply is not None:
                message = codec.to_http_binary(reply)
                return 200, dict(message.headers), message.body
        return self.default_status, {}, b""


def _handler_for(sink: RecordingSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                body, time.monotonic())
            sink.gate.wait()
            if sink.delay_s:
                time.sleep(sink.delay_s)  # the sink's simulated work, not synchronisation
            status, headers, payload = sink._decide(received)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler
