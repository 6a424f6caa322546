"""The runtime's loopback HTTP servers: a client that goes away is counted, not printed,
and any other failure goes to the log, never as a bare traceback on the runtime's stderr."""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Iterator

import pytest
from support.polling import wait_until
from troupe.local.host.loopback_http import KeepAliveHandler, LoopbackHTTPServer

BIG = b"x" * (4 << 20)  # more than any socket buffer holds, so the write must fail


class _Handler(KeepAliveHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path == "/late":
            self.server.client_reset.wait(10)  # answer only once the client has reset
            self.send_response(200)
            self.send_header("Content-Length", str(len(BIG)))
            self.end_headers()
            self.wfile.write(BIG)
        elif self.path == "/broken":
            raise ValueError("a handler's own fault")
        else:
            self.send_response(204)
            self.end_headers()


class _Server(LoopbackHTTPServer):
    client_reset: threading.Event


@pytest.fixture
def server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.client_reset = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _send(server: _Server, path: str) -> socket.socket:
    client = socket.create_connection(server.server_address[:2], timeout=10)
    client.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    return client


def _still_serves(server: _Server) -> bool:
    with _send(server, "/") as client:
        return client.recv(64).startswith(b"HTTP/1.1 204")


def test_a_client_gone_before_its_answer_is_counted_not_printed(
        server: _Server, capsys: pytest.CaptureFixture[str]) -> None:
    client = _send(server, "/late")
    # SO_LINGER 0: the close resets the connection, as a killed process's does.
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    server.client_reset.set()

    wait_until(lambda: server.clients_gone == 1, 10, "the reset to be noticed")
    assert capsys.readouterr().err == ""
    assert _still_serves(server)


def test_a_handlers_own_failure_goes_to_the_log(
        server: _Server, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "troupe.local.host.loopback_http")
    with _send(server, "/broken") as client:
        assert client.recv(64) == b""  # closed unanswered: the handler raised

    wait_until(lambda: caplog.records, 10, "the failure to be logged")
    [record] = caplog.records
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    assert server.clients_gone == 0
    assert capsys.readouterr().err == ""
    assert _still_serves(server)
