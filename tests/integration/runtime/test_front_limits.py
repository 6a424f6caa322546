"""A service front takes a bounded number of connections: past the cap a client gets 503
with Retry-After and a close, and once connections go (a silent one is closed after the
client timeout) clients are served again. The front runs alone, without a revision."""

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
def front() -> Iterator[Front]:
    loop = LoopThread("test-front").start()
    client = DeliveryClient(loop)
    made = Front("capped", RuntimeMetrics(), client, max_connections=CAP)
    yield made
    made.close()
    client.stop()
    loop.stop()


def _get(url: str) -> bytes:
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


def test_past_the_cap_a_client_gets_503_and_is_served_once_others_leave(front: Front) -> None:
    address = urlsplit(front.url)
    held = [socket.create_connection((address.hostname, address.port), timeout=5)
            for _ in range(CAP)]
    try:
        for connection in held:  # each holds a thread: a request head that never ends
            connection.sendall(b"GET / HTTP/1.1\r\n")
        busy = _get(front.url)
        assert busy.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in busy
    finally:
        for connection in held:
            connection.close()
    # Served again (no revision to route to: a 503 of the front's own, not the cap's).
    wait_until(lambda: b"no revision" in _get(front.url), 10,
               "the front to serve once the held connections are gone")
