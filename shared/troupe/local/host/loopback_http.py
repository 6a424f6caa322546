"""What the runtime's loopback servers have in common: a free port to bind, and the
keep-alive handler of its own HTTP servers (the API and the service fronts)."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now, for a child process to bind."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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
