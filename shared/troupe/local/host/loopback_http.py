"""What the runtime's own HTTP servers (the API and the service fronts) have in common."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler


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
