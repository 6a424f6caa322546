"""Slow clients against a service front: connections that hold its cap with a request line
or head that stops midway are closed, unanswered, after the client timeout, and clients
are served again. (A thread per connection: without the timeout, they would hold the cap
and their threads for good.) The front runs alone, without a revision."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from support.polling import wait_until
from troupe.local.delivery import DeliveryClient
from troupe.local.host.loop import LoopThread
from troupe.local.observability.runtime_metrics import RuntimeMetrics
from troupe.local.serving.router import Front

CAP = 4


@pytest.fixture
def impatient_front() -> Iterator[Front]:
    loop = LoopThread("test-front").start()
    client = DeliveryClient(loop)
    made = Front("capped", RuntimeMetrics(), client, max_connections=CAP, client_timeout_s=0.5)
    yield made
    made.close()
    client.stop()
    loop.stop()


def _get(url: str) -> bytes:
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


def test_slow_clients_holding_the_cap_are_closed_after_the_client_timeout(
        impatient_front: Front) -> None:
    address = urlsplit(impatient_front.url)
    held = [socket.create_connection((address.hostname, address.port), timeout=5)
            for _ in range(CAP)]
    try:
        held[0].sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # a head that stops midway
        held[1].sendall(b"GET / HT")  # a request line that stops midway
        # Each is closed by the front, unanswered, after the client timeout (the reads here
        # would time out after 5 s otherwise)...
        for connection in held:
            assert connection.recv(65536) == b""
    finally:
        for connection in held:
            connection.close()
    # ... and clients are served again.
    wait_until(lambda: b"no revision" in _get(impatient_front.url), 10,
               "the front to serve once the slow clients are closed")
