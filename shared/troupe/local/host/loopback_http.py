"""What the runtime's loopback servers have in common: a free port to bind, a port held
for a child process, and the keep-alive handler of its own HTTP servers (the API and the
service fronts)."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler


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

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle's algorithm
        # and the client's delayed ACK add ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the runtime logs what matters itself; stderr is no place for every request
