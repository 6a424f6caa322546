"""First delivery attempts against real servers on loopback that answer as scripted.

The client must read every way an HTTP/1.1 server may answer (a length, chunks, up to the
close, after a 1xx), keep connections alive and notice when it cannot, and report every
failure (refused, timed out, not HTTP) instead of losing the attempt.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from troupe.local.delivery import AttemptFailed, DeliveryAborted, DeliveryClient, Response
from troupe.local.host.loop import LoopThread

# Each scripted answer gets the request's head and returns what to send back, None to close
# the connection without answering, or ... to stay silent. The server closes after an
# answer that says so (HTTP/1.0, or Connection: close), as a real one does.
Script = Callable[[bytes], Any]
WAIT_S = 10.0


def ok(body: bytes = b"", extra: str = "") -> Script:
    return lambda _: (f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
                      .encode() + body)


@dataclass(frozen=True)
class Drip:
    """An answer sent a piece at a time, a pause after each, and never finished."""

    pieces: list[bytes]
    every_s: float


@dataclass
class ScriptedServer:
    """Answers requests in order from `scripts`; counts the connections it accepted."""

    scripts: list[Script]
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/sink?x=1"
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            self._answer(connection)
        except OSError:
            return  # the client went away (a timeout, a stop): nothing to answer
        finally:
            connection.close()

    def _answer(self, connection: socket.socket) -> None:
        buffer = b""
        while self.scripts:
            while b"\r\n\r\n" not in buffer:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(rest) < length:
                rest += connection.recv(65536)
            self.requests.append(head + b"\r\n\r\n" + rest[:length])
            buffer = rest[length:]
            answer = self.scripts.pop(0)(head)
            if answer is Ellipsis:
                connection.recv(1)  # silent until the client gives up
                return
            if answer is None:
                return  # close without answering
            if isinstance(answer, Drip):
                for piece in answer.pieces:
                    connection.sendall(piece)
                    time.sleep(answer.every_s)  # the server's slowness, not synchronisation
                connection.recv(1)  # then silent until the client gives up
                return
            assert isinstance(answer, bytes)
            connection.sendall(answer)
            if answer.startswith(b"HTTP/1.0") or b"connection: close" in answer.lower():
                return

    def close(self) -> None:
        self._listener.close()
        for connection in self._open:
            connection.close()


@pytest.fixture
def attempts() -> Iterator[DeliveryClient]:
    loop = LoopThread("test-first-attempts").start()
    client = DeliveryClient(loop)
    yield client
    client.stop()
    loop.stop()


def post(attempts: DeliveryClient, url: str, body: bytes = b"{}",
         timeout: float = 5.0) -> tuple[Response | None, str | None]:
    landed: queue.Queue[tuple[Response | None, str | None]] = queue.Queue()
    attempts.post(url, {"ce-id": "1", "Prefer": "reply"}, body, timeout,
                  lambda response, error: landed.put((response, error)))
    return landed.get(timeout=WAIT_S)


def test_a_response_with_a_length_is_read_and_the_connection_kept(
        attempts: DeliveryClient) -> None:
    server = ScriptedServer([ok(b"first", "ce-id: r1\r\n"), ok(b"second")])
    first, error = post(attempts, server.url, b'{"a": 1}')
    assert error is None and first is not None
    assert (first.status, first.body, first.headers["ce-id"]) == (200, b"first", "r1")
    second, _ = post(attempts, server.url)
    assert second is not None and second.body == b"second"
    assert server.connections == 1
    request = server.requests[0]
    assert request.startswith(b"POST /sink?x=1 HTTP/1.1\r\n")
    assert b"\r\nce-id: 1\r\n" in request and request.endswith(b'\r\n\r\n{"a": 1}')
    server.close()


def test_a_chunked_response_with_extensions_and_trailers_is_read_whole(
        attempts: DeliveryClient) -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n")
    server = ScriptedServer([lambda _: chunked, ok(b"again")])
    response, error = post(attempts, server.url)
    assert error is None and response is not None and response.body == b"hello, world"
    again, _ = post(attempts, server.url)
    assert again is not None and again.body == b"again"
    assert server.connections == 1  # the chunked answer left the connection reusable
    server.close()


def test_a_body_up_to_the_close_is_read_and_the_next_attempt_reconnects(
        attempts: DeliveryClient) -> None:
    server = ScriptedServer([lambda _: b"HTTP/1.0 200 OK\r\n\r\nuntil the end", ok()])
    response, error = post(attempts, server.url)
    assert error is None and response is not None and response.body == b"until the end"
    post(attempts, server.url)
    assert server.connections == 2
    server.close()


def test_interim_answers_are_skipped(attempts: DeliveryClient) -> None:
    answer = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
              b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
    server = ScriptedServer([lambda _: answer])
    response, error = post(attempts, server.url)
    assert error is None and response is not None
    assert (response.status, response.body) == (200, b"final")
    server.close()


def test_connection_close_is_honoured(attempts: DeliveryClient) -> None:
    server = ScriptedServer([ok(b"", "Connection: close\r\n"), ok()])
    post(attempts, server.url)
    response, error = post(attempts, server.url)
    assert error is None and response is not None and server.connections == 2
    server.close()


def test_a_kept_alive_connection_closed_by_the_server_is_retried_on_a_new_one(
        attempts: DeliveryClient) -> None:
    # The server answers once, then drops the connection without saying so beforehand.
    server = ScriptedServer([ok(b"one"), lambda _: None, ok(b"two")])
    post(attempts, server.url)
    response, error = post(attempts, server.url)
    assert error is None and response is not None and response.body == b"two"
    assert server.connections == 2
    server.close()


def test_a_fresh_connection_closed_without_an_answer_is_an_error(
        attempts: DeliveryClient) -> None:
    server = ScriptedServer([lambda _: None])
    response, error = post(attempts, server.url)
    assert response is None and error is not None and error.startswith("ConnectionError")
    server.close()


def test_no_answer_within_the_timeout_is_a_timeout(attempts: DeliveryClient) -> None:
    server = ScriptedServer([lambda _: ...])
    response, error = post(attempts, server.url, timeout=0.3)
    assert response is None and error is not None and error.startswith("TimeoutError")
    server.close()


def test_a_refused_connection_is_an_error() -> None:
    loop = LoopThread("test-refused").start()
    attempts = DeliveryClient(loop)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    try:
        response, error = post(attempts, f"http://127.0.0.1:{port}/")
        assert response is None and error is not None
        assert "ConnectionRefusedError" in error
    finally:
        attempts.stop()
        loop.stop()


@pytest.mark.parametrize("answer", [
    b"NOT HTTP AT ALL\r\n\r\n",
    # Each read as something else by a hand-written parser: 1_0 as 16, a chunk without its
    # CRLF, a negative size, two lengths, a version that does not exist.
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: \xc2\xb9\r\n\r\nx",
    b"HTTP/1.9 200 OK\r\nContent-Length: 0\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * 70_000 + b"\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
def test_an_answer_that_is_not_http_is_an_error(attempts: DeliveryClient, answer: bytes) -> None:
    server = ScriptedServer([lambda _: answer])
    response, error = post(attempts, server.url)
    assert response is None and error is not None and error.startswith("BadResponseError")
    server.close()


def test_only_http_urls_are_delivered_to(attempts: DeliveryClient) -> None:
    response, error = post(attempts, "https://127.0.0.1:1/")
    assert response is None and error is not None and "only http://" in error


def test_attempts_posted_on_the_loop_and_from_other_threads_all_land(
        attempts: DeliveryClient) -> None:
    count = 40
    server = ScriptedServer([ok(str(n).encode()) for n in range(count)])
    landed: queue.Queue[Response | None] = queue.Queue()

    def one() -> None:
        attempts.post(server.url, {}, b"{}", 5.0, lambda response, _: landed.put(response))

    loop = attempts._loop  # the same loop the attempts run on: the direct path
    for number in range(count):
        if number % 2:
            one()
        else:
            loop.call_soon(one)
    bodies = sorted(int(r.body) for r in (landed.get(timeout=WAIT_S) for _ in range(count))
                    if r is not None)
    assert bodies == list(range(count))
    server.close()


def test_an_answer_a_byte_at_a_time_fails_at_the_deadline(attempts: DeliveryClient) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    server = ScriptedServer([lambda _: Drip([head] + [b"x"] * 1000, 0.05)])
    started = time.monotonic()
    response, error = post(attempts, server.url, timeout=0.5)
    assert response is None and error is not None and error.startswith("TimeoutError")
    # The deadline is the attempt's, not each read's: every byte came within 0.05 s.
    assert time.monotonic() - started < 3.0
    server.close()


def test_a_head_a_byte_at_a_time_fails_at_the_deadline(attempts: DeliveryClient) -> None:
    server = ScriptedServer([lambda _: Drip([bytes([b]) for b in b"HTTP/1.1 200 OK\r\nX: "
                                                   + b"y" * 500], 0.05)])
    response, error = post(attempts, server.url, timeout=0.5)
    assert response is None and error is not None and error.startswith("TimeoutError")
    server.close()


def test_a_body_over_the_cap_fails_the_attempt(attempts: DeliveryClient) -> None:
    server = ScriptedServer([ok(b"x" * 2000)])
    landed: queue.Queue[tuple[Response | None, str | None]] = queue.Queue()
    attempts.post(server.url, {}, b"{}", 5.0, lambda r, e: landed.put((r, e)),
                  max_response_bytes=1000)
    response, error = landed.get(timeout=WAIT_S)
    assert response is None and error is not None and "exceeds 1000 bytes" in error
    server.close()


def test_send_waits_for_the_answer_and_raises_what_went_wrong(
        attempts: DeliveryClient) -> None:
    server = ScriptedServer([ok(b"sent"), lambda _: b"NOT HTTP\r\n\r\n"])
    assert attempts.send(server.url, {}, b"{}", 5.0).body == b"sent"
    with pytest.raises(AttemptFailed, match="BadResponseError"):
        attempts.send(server.url, {}, b"{}", 5.0)
    server.close()


def test_send_gives_up_at_once_when_its_sender_stops(attempts: DeliveryClient) -> None:
    server = ScriptedServer([lambda _: ...])
    stopping = threading.Event()
    threading.Timer(0.2, stopping.set).start()
    started = time.monotonic()
    with pytest.raises(DeliveryAborted):
        attempts.send(server.url, {}, b"{}", 60.0, stopping=stopping)
    assert time.monotonic() - started < 5.0
    server.close()
