"""The ingress against requests a hand-written parser misread, slow clients, too many
clients, and arbitrary bytes (hypothesis): every request it cannot read is answered (400,
408, 411, 413, 431, or 503 over the connection cap) and closed, never dropped without an
answer and never a 5xx, and the other clients are served meanwhile."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.polling import wait_until
from troupe.local.eventing.broker import DataPlane
from troupe.local.eventing.broker.ingress_connection import Timeouts

from .conftest import NAMESPACE, binary_headers, broker_resource, trigger_resource, unique
from .sink import RecordingSink

pytestmark = pytest.mark.kafka
CAP = 6
TIMEOUTS = Timeouts(head_s=0.5, body_s=0.5, idle_s=1.0)


@pytest.fixture(scope="module")
def guarded(kafka_servers: str, sink: RecordingSink) -> Iterator[tuple[DataPlane, str]]:
    with DataPlane(kafka_servers, default_namespace=NAMESPACE, ingress_timeouts=TIMEOUTS,
                   max_connections=CAP) as plane:
        broker = unique("guarded")
        plane.add_broker(broker_resource(broker))
        plane.add_trigger(trigger_resource(broker, broker, f"{sink.url}/{broker}"))
        assert plane.wait_ready(30)
        yield plane, broker


def _connect(plane: DataPlane) -> socket.socket:
    address = urlsplit(plane.ingress_url)
    return socket.create_connection((address.hostname, address.port), timeout=5)


def _exchange(plane: DataPlane, data: bytes) -> bytes:
    """Send `data`, end the request side, and read until the ingress closes."""
    with _connect(plane) as connection:
        connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


def _statuses(answer: bytes) -> list[int]:
    return [int(line.split(b" ")[1]) for line in answer.split(b"\r\n")
            if line.startswith(b"HTTP/1.1 ")]


def _post(broker: str, event_id: str, *, head: str = "", body: bytes = b"{}",
          version: str = "HTTP/1.1", method: str = "POST") -> bytes:
    lines = [f"{method} /{NAMESPACE}/{broker} {version}", "Host: t", "ce-specversion: 1.0",
             f"ce-id: {event_id}", "ce-source: /tests", "ce-type: dev.example.test",
             "content-type: application/json"]
    if "Content-Length" not in head and "Transfer-Encoding" not in head:
        lines.append(f"Content-Length: {len(body)}")
    # latin-1: one byte per character, as a client that puts raw bytes in a header does.
    return ("\r\n".join(lines) + "\r\n" + head + "\r\n").encode("latin-1") + body


@pytest.mark.parametrize(("request_bytes", "status"), [
    # A length that str.isdigit() accepts and int() does not.
    (lambda b: _post(b, "sup", head="Content-Length: \u00b9\r\n"), 400),
    # Two lengths: RFC 9112 requires 400, not the last one winning.
    (lambda b: _post(b, "two", head="Content-Length: 5\r\nContent-Length: 0\r\n",
                     body=b"hello"), 400),
    (lambda b: _post(b, "version", version="HTTP/1.9"), 400),
    (lambda b: _post(b, "nul", method="PO\x00ST"), 400),
    (lambda b: _post(b, "chunked", head="Transfer-Encoding: chunked\r\n"), 411),
    (lambda b: _post(b, "huge", head="Content-Length: 99999999\r\n"), 413),
    (lambda b: _post(b, "big-head", head=f"X-Big: {'x' * 70_000}\r\n"), 431),
])
def test_a_request_that_cannot_be_read_is_answered_then_closed(
        guarded: tuple[DataPlane, str], request_bytes: object, status: int) -> None:
    plane, broker = guarded
    answer = _exchange(plane, request_bytes(broker))  # type: ignore[operator]
    assert _statuses(answer) == [status], answer[:300]
    assert b"connection: close" in answer.lower()


def test_a_slow_client_costs_one_connection_and_gets_408(
        guarded: tuple[DataPlane, str]) -> None:
    plane, broker = guarded
    with _connect(plane) as slow:
        slow.sendall(b"POST /" + NAMESPACE.encode() + b"/" + broker.encode() + b" HTTP/1.1\r\n")
        # Meanwhile another client is served at once.
        answer = requests.post(plane.broker_url(NAMESPACE, broker), data=b"{}", timeout=5,
                               headers=binary_headers("beside-the-slow-one"))
        assert answer.status_code == 202
        for byte in b"ce-id: a-byte-at-a-time\r\n":  # a header a byte at a time, too late
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.05)  # the client's slowness, not synchronisation
        received = b""
        while chunk := slow.recv(65536):
            received += chunk
    assert _statuses(received) == [408]


def test_over_the_connection_cap_new_clients_get_503_and_idle_ones_are_closed(
        guarded: tuple[DataPlane, str]) -> None:
    plane, broker = guarded
    idle = [_connect(plane) for _ in range(CAP)]
    try:
        wait_until(lambda: _statuses(_exchange(plane, _post(broker, "over"))) == [503], 5,
                   "a client over the cap to get 503")
        # Idle connections are closed after the idle timeout, and clients are served again.
        for connection in idle:
            assert connection.recv(1) == b""
        wait_until(lambda: _statuses(_exchange(plane, _post(broker, "after"))) == [202], 5,
                   "a client to be served once the idle connections are gone")
    finally:
        for connection in idle:
            connection.close()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from([b"POST ", b"GET ", b"/troupe/x ", b"HTTP/1.1", b"HTTP/1.0",
                              b"\r\n", b"Content-Length: ", b"5", b"-1", b"\xc2\xb9",
                              b"Transfer-Encoding: chunked", b"ce-id: x", b"Expect: ",
                              b"100-continue", b"Connection: close", b"{}", b":", b" ",
                              b"\x00"]), max_size=25).map(b"".join)))
def test_arbitrary_bytes_are_answered_never_with_5xx_nor_dropped(
        guarded: tuple[DataPlane, str], data: bytes) -> None:
    plane, _ = guarded
    started = time.monotonic()
    answer = _exchange(plane, data)
    statuses = _statuses(answer)
    assert time.monotonic() - started < 5  # never a hang: socket reads time out at 5 s
    assert all(status < 500 or status == 503 for status in statuses), answer[:300]
    if data.strip(b"\r\n"):
        assert statuses, f"no answer to {data!r}"
