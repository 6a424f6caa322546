"""One reader per Broker topic feeds every Trigger: a slow Trigger must lose nothing and
must not hold back a fast one (the reader seeks back to it once it has room)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from support.polling import wait_until
from troupe.local.eventing.broker import DataPlane

from .conftest import NAMESPACE, binary_headers, broker_resource, trigger_resource, unique
from .sink import RecordingSink

pytestmark = pytest.mark.kafka
EVENTS = 300


@pytest.fixture
def slow_sink() -> Iterator[RecordingSink]:
    server = RecordingSink().start()
    server.delay_s = 0.005
    yield server
    server.stop()


def test_a_full_trigger_is_sought_back_and_misses_nothing(
        kafka_servers: str, fresh_sink: RecordingSink, slow_sink: RecordingSink) -> None:
    # Two deliveries in flight at most, so the slow Trigger is full most of the time.
    with DataPlane(kafka_servers, default_namespace=NAMESPACE, max_in_flight=2) as plane:
        broker = unique("shared")
        plane.add_broker(broker_resource(broker))
        plane.add_trigger(trigger_resource(f"{broker}-slow", broker, f"{slow_sink.url}/slow"))
        plane.add_trigger(trigger_resource(f"{broker}-fast", broker, f"{fresh_sink.url}/fast"))
        plane.add_trigger(trigger_resource(f"{broker}-none", broker, f"{fresh_sink.url}/none",
                                           filter_attributes={"type": "dev.example.never"}))
        assert plane.wait_ready(30)
        url = plane.broker_url(NAMESPACE, broker)

        def post(number: int) -> int:
            return requests.post(url, headers=binary_headers(f"e{number}"), data=b"{}",
                                 timeout=10).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(post, range(EVENTS))) == {202}
        expected = {f"e{n}" for n in range(EVENTS)}
        wait_until(lambda: set(fresh_sink.ids("/fast")) >= expected, 30, "the fast trigger")
        wait_until(lambda: set(slow_sink.ids("/slow")) >= expected, 60, "the slow trigger")
        assert fresh_sink.ids("/none") == []
        # The sink records a request before it answers, and a delivery is counted once
        # the answer is in: wait for the count too.
        wait_until(lambda: plane.trigger_status(NAMESPACE, f"{broker}-slow").delivered
                   >= EVENTS, 10, "every delivery to the slow trigger to be counted")
        assert plane.trigger_status(NAMESPACE, f"{broker}-slow").dropped == 0
