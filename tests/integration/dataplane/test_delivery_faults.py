"""Faults in delivery that must not hold a Trigger: a subscriber that answers a byte at a
time or never ends its body, and an error nobody expected while delivering. Each ends in
the dead-letter sink, within the attempts' deadlines, and the offset is committed."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import requests
from support.polling import wait_until
from troupe.local.eventing.broker import DataPlane

from .conftest import NAMESPACE, binary_headers, broker_resource, trigger_resource, unique
from .sink import RecordingSink

pytestmark = pytest.mark.kafka


class TricklingSink:
    """Accepts every connection, reads the request, then sends its answer `trickle` one
    byte per `every_s`; `endless` sends a head and then body bytes forever."""

    def __init__(self, *, endless: bool = False, every_s: float = 0.05) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/trickle"
        self._endless, self._every_s = endless, every_s
        self.requests = 0
        self._stopping = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.requests += 1
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            try:
                connection.recv(65536)
                if self._endless:
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
                answer = b"x" * 10**8 if self._endless else \
                    b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
                for byte in answer:
                    if self._stopping.wait(self._every_s):  # its slowness, not a sync
                        return
                    connection.sendall(bytes([byte]))
            except OSError:
                return

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()


@pytest.fixture(params=["a byte at a time", "a body that never ends"])
def trickling(request: pytest.FixtureRequest) -> Iterator[TricklingSink]:
    sink = TricklingSink(endless=request.param == "a body that never ends")
    yield sink
    sink.stop()


def _publish(plane: DataPlane, broker: str, event_id: str) -> None:
    answer = requests.post(plane.broker_url(NAMESPACE, broker), data=b"{}", timeout=10,
                           headers=binary_headers(event_id))
    assert answer.status_code == 202, answer.text


def _error_data(letter_headers: Mapping[str, str]) -> str:
    return base64.b64decode(letter_headers["ce-knativeerrordata"]).decode()


@pytest.mark.parametrize("ordered", [False, True], ids=["unordered", "ordered"])
def test_a_slow_subscriber_is_dead_lettered_within_the_deadlines(
        plane: DataPlane, fresh_sink: RecordingSink, trickling: TricklingSink,
        ordered: bool) -> None:
    broker = unique("trickle")
    plane.add_broker(broker_resource(broker))
    trigger = f"{broker}-t"
    annotations = {"kafka.eventing.knative.dev/delivery.order": "ordered"} if ordered else None
    plane.add_trigger(trigger_resource(trigger, broker, trickling.url, annotations=annotations,
                                       delivery={
        "retry": 2, "backoffDelay": "PT0.01S", "timeout": "PT0.5S",
        "deadLetterSink": {"uri": f"{fresh_sink.url}/{broker}-dead"}}))
    assert plane.wait_ready(30)

    started = time.monotonic()
    _publish(plane, broker, "slow-1")
    _publish(plane, broker, "slow-2")

    # Three attempts of 0.5 s each, and the backoffs: well within 15 s.
    letters = wait_until(lambda: len(fresh_sink.paths(f"/{broker}-dead")) == 2 and
                         fresh_sink.paths(f"/{broker}-dead"), 15, "both dead letters")
    assert time.monotonic() - started < 15
    assert {letter.ce_id for letter in letters} == {"slow-1", "slow-2"}
    assert all(_error_data(letter.headers).startswith("TimeoutError")
               for letter in letters)
    assert trickling.requests >= 6  # every attempt was made
    wait_until(lambda: plane.trigger_status(NAMESPACE, trigger).lag == 0, 15,
               "the offsets to be committed past both events")


def test_an_unexpected_error_is_a_failed_attempt_and_ends_in_the_dead_letter_sink(
        kafka_servers: str, fresh_sink: RecordingSink) -> None:
    def resolve(namespace: str, ref: Mapping[str, Any]) -> str:
        if ref.get("name") == "broken":
            raise RuntimeError("the resolver has a bug")
        return f"{fresh_sink.url}/{ref['name']}"

    with DataPlane(kafka_servers, default_namespace=NAMESPACE,
                   resolve_subscriber=resolve) as plane:
        broker = unique("unexpected")
        plane.add_broker(broker_resource(broker))
        trigger = trigger_resource(f"{broker}-t", broker, "", delivery={
            "retry": 2, "backoffDelay": "PT0.01S",
            "deadLetterSink": {"uri": f"{fresh_sink.url}/{broker}-dead"}})
        trigger["spec"]["subscriber"] = {"ref": {"apiVersion": "serving.knative.dev/v1",
                                                 "kind": "Service", "name": "broken"}}
        plane.add_trigger(trigger)
        assert plane.wait_ready(30)
        _publish(plane, broker, "unlucky")

        letter = wait_until(lambda: fresh_sink.paths(f"/{broker}-dead"), 15,
                            "the dead letter")[0]
        assert letter.ce_id == "unlucky"
        assert "RuntimeError: the resolver has a bug" in _error_data(letter.headers)
        assert letter.headers["ce-knativeerrordest"] == "Service/broken"
        # The sink records a request before it answers: wait for the count too.
        wait_until(lambda: plane.trigger_status(NAMESPACE, f"{broker}-t").dead_lettered == 1,
                   10, "the dead letter to be counted")
        assert plane.trigger_status(NAMESPACE, f"{broker}-t").retries == 2
        wait_until(lambda: plane.trigger_status(NAMESPACE, f"{broker}-t").lag == 0, 15,
                   "the offset to be committed")
