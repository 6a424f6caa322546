"""What the runtime's loopback servers have in common: a free port to bind, a port held
for a child process, the keep-alive handler of its own HTTP servers (the API and the
service fronts), and a threading server that takes a bounded number of connections.

These servers spend a thread per connection. So that a slow client costs one connection
and not the runtime, a connection that sends nothing for CLIENT_TIMEOUT_S is closed
(while its request head arrives, or idle between requests), and past `max_connections`
a new one is answered 503 and closed.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

log = logging.getLogger(__name__)

# How long a client of the API or a service front may stay silent.
CLIENT_TIMEOUT_S: Final = 30.0
_BUSY_BODY: Final = b"too many connections: retry later\n"
_BUSY: Final = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
                b"Content-Type: text/plain; charset=utf-8\r\n"
                + f"Content-Length: {len(_BUSY_BODY)}\r\n\r\n".encode() + _BUSY_BODY)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now, for a child process to bind."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PortReservation:
    """A loopback port held for a child process (gunicorn --reuse-port) for as long as the
    child runs.

    free_port() finds a port that is free at that moment only. On a busy machine another
    process may bind it before the child does; the child then fails to start, or worse, a
    readiness probe reaches the other process and requests follow it there. A reservation
    is bound here with SO_REUSEPORT and never listens: the child, which sets SO_REUSEPORT
    too, binds the same port and takes every connection, while any other process is
    refused the port until the reservation is released.
    """

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]

    def release(self) -> None:
        self._socket.close()


class KeepAliveHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive without Nagle delays, and without a log line per request."""

    protocol_version = "HTTP/1.1"
    timeout = CLIENT_TIMEOUT_S  # each read of a request, and the wait for the next one

    def setup(self) -> None:
        super().setup()
        # The server's own client timeout, when it has one (a BoundedThreadingHTTPServer).
        self.connection.settimeout(getattr(self.server, "client_timeout_s", self.timeout))
        # Headers and body go out in separate writes; without NODELAY, Nagle's algorithm
        # and the client's delayed ACK add ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the runtime logs what matters itself; stderr is no place for every request


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A thread per connection, whose failures go to the log rather than to stderr.

    socketserver prints a traceback for any exception a connection raises. A client that
    goes away first (a function instance killed while it exported its spans, a browser
    tab closed, a caller that gave up) is routine, not a fault: it is counted, not printed.
    """

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.clients_gone = 0  # connections the client closed or reset before the answer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            self.clients_gone += 1
            return
        log.exception("a connection from %s failed", client_address)


class BoundedThreadingHTTPServer(LoopbackHTTPServer):
    """A thread per connection, at most `max_connections` at once."""

    max_connections = 512
    client_timeout_s = CLIENT_TIMEOUT_S  # how long a client may stay silent

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._active = 0
        self._active_lock = threading.Lock()
        self.refused_connections = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._active_lock:
            over = self._active >= self.max_connections
            if not over:
                self._active += 1
        if over:
            self.refused_connections += 1
            try:
                request.sendall(_BUSY)
                request.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # gone already
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._active -= 1
