"""Slow-loris against the API server: many clients that open a request and never finish
it cost connections up to waitress's cap, never its worker threads. Below the cap a normal
client is served beside them; past it, a new client waits until the idle ones are closed
(after the idle timeout), and is then served. Raw sockets, a real waitress on loopback."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from support.polling import wait_until
from troupe.local.controlplane.apiserver import ApiServer, ClientLimits
from troupe.local.controlplane.objects import ObjectStore

CAP = 6
READ_TIMEOUT_S = 15.0


def _start(limits: ClientLimits) -> ApiServer:
    return ApiServer(ObjectStore(), lambda: b"", limits=limits)


@pytest.fixture
def patient_api() -> Iterator[ApiServer]:
    """Capped, and slow to close idle connections: they stay for the whole test."""
    server = _start(ClientLimits(connections=CAP, idle_s=120, sweep_s=1))
    yield server
    server.close()


@pytest.fixture
def strict_api() -> Iterator[ApiServer]:
    """Capped, and quick to close idle connections."""
    server = _start(ClientLimits(connections=CAP, idle_s=1, sweep_s=1))
    yield server
    server.close()


def _connect(server: ApiServer) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=READ_TIMEOUT_S)
    if server.url.startswith("https:"):  # where the API speaks TLS, the clients do too
        context = ssl.create_default_context(cafile=str(getattr(server, "ca_file", "")))
        return context.wrap_socket(connection, server_hostname="127.0.0.1")
    return connection


def _slow_client(server: ApiServer) -> socket.socket:
    connection = _connect(server)
    connection.sendall(b"GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # a head that never ends
    return connection


def _send_get(server: ApiServer) -> socket.socket:
    connection = _connect(server)
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    return connection


def _read_to_end(connection: socket.socket) -> bytes:
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    return answer


def test_below_the_cap_a_client_is_served_beside_slow_ones(patient_api: ApiServer) -> None:
    slow = [_slow_client(patient_api) for _ in range(CAP - 1)]
    try:
        wait_until(lambda: patient_api.open_connections == CAP - 1, 5,
                   "the slow clients to be accepted")
        assert patient_api.busy_workers == 0  # a slow client holds a connection, no worker
        with _send_get(patient_api) as normal:
            assert _read_to_end(normal).startswith(b"HTTP/1.1 200")
        # Served while the slow ones are still there.
        wait_until(lambda: patient_api.open_connections == CAP - 1, 5,
                   "the normal client's connection to go, the slow ones staying")
    finally:
        for connection in slow:
            connection.close()


def test_past_the_cap_a_client_waits_until_idle_slow_ones_are_closed(
        strict_api: ApiServer) -> None:
    most = 0

    def accepted(count: int) -> bool:
        nonlocal most
        most = max(most, strict_api.open_connections)
        return strict_api.open_connections == count
    # Each client connects on a thread of its own: past the cap a client's TLS handshake
    # waits, unanswered, until the API accepts it.
    with ThreadPoolExecutor(CAP + 4) as pool:
        slow = [pool.submit(_slow_client, strict_api) for _ in range(CAP + 3)]
        try:
            wait_until(lambda: accepted(CAP), 5, "the cap's worth of slow clients to be accepted")
            normal = pool.submit(_send_get, strict_api)
            # The idle timeout closes the slow ones (the extra three once accepted in turn),
            # each without an answer, since none sent a whole request...
            for connection in slow:
                assert _read_to_end(connection.result()) == b""
            # ... and the normal client, waiting meanwhile, is served.
            with normal.result() as served:
                assert _read_to_end(served).startswith(b"HTTP/1.1 200")
            wait_until(lambda: accepted(0), 5, "every connection to be gone")
            assert most <= CAP  # never more connections than the cap, at any sample
        finally:
            for future in slow:
                if future.done() and future.exception() is None:
                    future.result().close()


def test_a_body_over_the_apis_limit_is_refused_before_it_is_read(patient_api: ApiServer) -> None:
    # 4 MiB announced, against Kubernetes' 3 MiB: refused from the head alone, before the
    # request checks (which need the whole request) could run.
    with _connect(patient_api) as connection:
        connection.sendall(b"POST /api/v1/namespaces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Type: application/json\r\n"
                           b"Content-Length: 4194304\r\n\r\n{")
        assert _read_to_end(connection).startswith(b"HTTP/1.1 413")


def test_closing_the_server_with_clients_connected_warns_of_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    """Stopping the API closes each connection and the listening socket, quietly: every
    `troupe down` used to print waitress's "unhandled close event"."""
    server = _start(ClientLimits(connections=CAP, idle_s=120, sweep_s=1))
    client = _slow_client(server)
    wait_until(lambda: server.open_connections == 1, 10, "the client to be accepted")
    with caplog.at_level("WARNING"):
        server.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= 30] == []
    assert client.recv(1) == b""  # its connection was closed, not left open
    client.close()
