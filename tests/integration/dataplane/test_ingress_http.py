"""The ingress speaks HTTP/1.1 as event producers use it, down to the bytes on one connection.

Keep-alive, pipelined requests answered in order, `Expect: 100-continue`, HEAD, and every
request it cannot read answered with a status before the connection ends.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from troupe.local.eventing.broker import DataPlane

from .conftest import NAMESPACE

pytestmark = pytest.mark.kafka
WAIT_S = 10.0


class Client:
    """One raw connection to the ingress, and the responses read off it in order."""

    def __init__(self, plane: DataPlane) -> None:
        address = urlsplit(plane.ingress_url)
        self.socket = socket.create_connection((address.hostname, address.port), WAIT_S)
        self._buffer = b""
        self.last_headers: dict[str, str] = {}

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def response(self, *, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self._buffer:
            self._read()
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in
                   (line.partition(":") for line in lines[1:])}
        length = 0 if head_only else int(headers.get("content-length", "0"))
        while len(self._buffer) < length:
            self._read()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        self.last_headers = headers
        return int(lines[0].split(" ")[1]), headers, body

    def closed_by_peer(self) -> bool:
        """True once the ingress closed the connection (EOF, with nothing more to read)."""
        try:
            return not self._buffer and self.socket.recv(1) == b""
        except ConnectionResetError:
            return True

    def _read(self) -> None:
        chunk = self.socket.recv(65536)
        if not chunk:
            raise ConnectionError("the ingress closed the connection before answering")
        self._buffer += chunk

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def client(plane: DataPlane) -> Iterator[Client]:
    connection = Client(plane)
    yield connection
    connection.close()


def post(path: str, event_id: str, body: bytes = b"{}", extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nce-specversion: 1.0\r\n"
            f"ce-id: {event_id}\r\nce-source: /tests\r\nce-type: dev.example.test\r\n"
            f"content-type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            ).encode() + body


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:80",
                                  "127.0.0.1.nip.io", "[::2]"])
def test_a_host_that_is_not_loopback_is_403_and_nothing_is_stored(
        client: Client, ingress_broker: str, host: str) -> None:
    """DNS rebinding: a page's own name, resolved to 127.0.0.1, arrives as the Host."""
    request = post(f"/{NAMESPACE}/{ingress_broker}", "rebound").replace(
        b"Host: 127.0.0.1", f"Host: {host}".encode())

    client.send(request)
    status, headers, body = client.response()

    assert status == 403 and b"loopback" in body
    assert not [name for name in headers if name.startswith("access-control-")]
    client.send(post(f"/{NAMESPACE}/{ingress_broker}", "after"))  # the connection serves on
    assert client.response()[0] == 202


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:1", "[::1]:8080", "127.0.0.1:9"])
def test_loopback_hosts_are_served(client: Client, ingress_broker: str, host: str) -> None:
    client.send(post(f"/{NAMESPACE}/{ingress_broker}", "local").replace(
        b"Host: 127.0.0.1", f"Host: {host}".encode()))

    assert client.response()[0] == 202


def test_one_connection_carries_many_events(client: Client, ingress_broker: str) -> None:
    for number in range(3):
        client.send(post(f"/{NAMESPACE}/{ingress_broker}", f"keep-{number}"))
        status, headers, _ = client.response()
        assert status == 202
        assert headers.get("connection") != "close"


def test_pipelined_requests_are_answered_in_order(client: Client, ingress_broker: str) -> None:
    path = f"/{NAMESPACE}/{ingress_broker}"
    client.send(post(path, "pipe-1") + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                + post(path, "pipe-2", b"not json") + post(path, "pipe-3"))
    answers = [client.response() for _ in range(4)]
    assert [status for status, _, _ in answers] == [202, 200, 400, 202]
    assert answers[1][2] == b"ok\n"


def test_expect_continue_is_answered_before_the_body_is_sent(client: Client,
                                                             ingress_broker: str) -> None:
    request = post(f"/{NAMESPACE}/{ingress_broker}", "continue-1", b'{"a": 1}',
                   "Expect: 100-continue\r\n")
    head, _, body = request.partition(b"\r\n\r\n")
    client.send(head + b"\r\n\r\n")
    assert client.response()[0] == 100
    client.send(body)
    assert client.response()[0] == 202


def test_a_chunked_body_is_411_then_the_connection_closes(client: Client,
                                                          ingress_broker: str) -> None:
    client.send(f"POST /{NAMESPACE}/{ingress_broker} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "ce-specversion: 1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                "2\r\n{}\r\n0\r\n\r\n".encode())
    status, headers, body = client.response()
    assert (status, headers["connection"]) == (411, "close")
    assert b"Content-Length" in body
    assert client.closed_by_peer()


def test_a_post_without_a_length_is_411(client: Client, ingress_broker: str) -> None:
    client.send(f"POST /{NAMESPACE}/{ingress_broker} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    assert client.response()[0] == 411


def test_a_length_that_is_not_a_number_is_400(client: Client, ingress_broker: str) -> None:
    client.send(f"POST /{NAMESPACE}/{ingress_broker} HTTP/1.1\r\nContent-Length: ten\r\n\r\n"
                .encode())
    status, headers, _ = client.response()
    assert (status, headers["connection"]) == (400, "close")


def test_headers_larger_than_the_limit_are_431(client: Client, ingress_broker: str) -> None:
    client.send(f"POST /{NAMESPACE}/{ingress_broker} HTTP/1.1\r\nX-Big: {'x' * 70_000}\r\n\r\n"
                .encode())
    status, _, _ = client.response()
    assert status == 431
    assert client.closed_by_peer()


def test_a_request_line_that_is_not_http_is_400(client: Client) -> None:
    client.send(b"HELLO THERE\r\n\r\n")
    status, _, body = client.response()
    assert status == 400 and b"request line" in body
    assert client.closed_by_peer()


def test_a_request_cut_inside_its_headers_is_400(client: Client, ingress_broker: str) -> None:
    client.send(f"POST /{NAMESPACE}/{ingress_broker} HTTP/1.1\r\nce-id: x".encode())
    client.socket.shutdown(socket.SHUT_WR)
    status, _, body = client.response()
    assert status == 400 and b"ended inside its headers" in body


def test_head_gets_the_headers_and_no_body(client: Client, ingress_broker: str) -> None:
    client.send(f"HEAD /{NAMESPACE}/{ingress_broker} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    status, headers, _ = client.response(head_only=True)
    assert status == 405 and int(headers["content-length"]) > 0 and headers["allow"]
    # Had a body followed the head, the next answer would be read from its bytes.
    client.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert client.response() == (200, client.last_headers, b"ok\n")


def test_http_1_0_without_keep_alive_is_closed_after_its_answer(client: Client,
                                                                ingress_broker: str) -> None:
    http_1_0 = post(f"/{NAMESPACE}/{ingress_broker}", "old-1").replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    client.send(http_1_0)
    status, headers, _ = client.response()
    assert (status, headers["connection"]) == (202, "close")
    assert client.closed_by_peer()


def test_a_client_leaving_halfway_through_a_body_leaves_the_ingress_serving(
        plane: DataPlane, ingress_broker: str) -> None:
    leaving = Client(plane)
    leaving.send(post(f"/{NAMESPACE}/{ingress_broker}", "gone", b'{"a": 1}')[:-4])
    leaving.close()
    staying = Client(plane)
    staying.send(post(f"/{NAMESPACE}/{ingress_broker}", "after-the-leaver"))
    assert staying.response()[0] == 202
    staying.close()
