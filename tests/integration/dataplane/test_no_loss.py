"""Killing the dispatcher mid-stream loses nothing: every (source, id) arrives at least once."""

from __future__ import annotations

import http.client
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from support.polling import wait_until

from .conftest import (
    NAMESPACE,
    binary_headers,
    broker_resource,
    trigger_resource,
    unique,
)
from .sink import RecordingSink

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
EVENTS = 10_000


class BrokerProcess:
    """`python -m troupe.local.eventing.broker` as the runtime runs it, with its output
    collected."""

    def __init__(self, eventing: Path, kafka_servers: str) -> None:
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_servers}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "troupe.local.eventing.broker", "--eventing", str(eventing)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.strip())

    def ingress_url(self, timeout: float = 60.0) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"the data plane printed no URL within {timeout} s")
        assert line.startswith("http://127.0.0.1:"), line
        return line

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)


@pytest.fixture
def eventing(tmp_eventing: Path, fresh_sink: RecordingSink) -> tuple[Path, str]:
    broker = unique("noloss")
    documents = [
        broker_resource(broker),
        trigger_resource(f"{broker}-sink", broker, f"{fresh_sink.url}/noloss", delivery={
            "retry": 20, "backoffPolicy": "linear", "backoffDelay": "PT0.01S"}),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ignored"}},
    ]
    (tmp_eventing / "300-broker.yaml").write_text(yaml.safe_dump_all(documents))
    return tmp_eventing, broker


@pytest.fixture
def processes() -> Iterator[list[BrokerProcess]]:
    started: list[BrokerProcess] = []
    yield started
    for process in started:
        process.terminate()


def publish_all(url: str, broker: str) -> None:
    parts = urlsplit(url)
    local = threading.local()

    def post(number: int) -> int:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=30)
        connection.request("POST", f"/{NAMESPACE}/{broker}", body=b'{"n": %d}' % number,
                           headers=binary_headers(f"id-{number}", source="/no-loss"))
        response = connection.getresponse()
        response.read()
        return response.status

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(post, range(EVENTS)))
    assert statuses == [202] * EVENTS


def test_sigkill_of_the_dispatcher_loses_nothing(eventing: tuple[Path, str], kafka_servers: str,
                                                 fresh_sink: RecordingSink,
                                                 processes: list[BrokerProcess]) -> None:
    folder, broker = eventing
    first = BrokerProcess(folder, kafka_servers)
    processes.append(first)
    url = first.ingress_url()
    fresh_sink.gate.clear()  # hold deliveries until everything is stored
    publish_all(url, broker)
    fresh_sink.delay_s, fresh_sink.fail_every = 0.001, 10  # slow, and fails every 10th time
    fresh_sink.gate.set()

    # Counted only once the sink answered 2xx: a request answered 503 did not deliver the
    # event. The count is kept by the sink as requests come, so polling it is cheap: a
    # poll that rescanned every request would hold the sink's lock and starve it.
    wait_until(lambda: fresh_sink.acknowledged_count() >= EVENTS // 2, timeout=60,
               message="half the events", interval=0.1)
    first.kill()
    assert fresh_sink.acknowledged_count() < EVENTS, "the kill must happen mid-stream"
    second = BrokerProcess(folder, kafka_servers)
    processes.append(second)
    second.ingress_url()
    wait_until(lambda: fresh_sink.acknowledged_count() >= EVENTS, timeout=120,
               message=lambda: f"every event ({fresh_sink.acknowledged_count()} of {EVENTS})",
               interval=0.1)
    assert fresh_sink.acknowledged("/noloss") == {("/no-loss", f"id-{n}") for n in range(EVENTS)}
