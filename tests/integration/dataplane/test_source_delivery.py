"""PingSource delivers through the runtime's one client and retry policy: the statuses
Knative retries (408 and 409 among them) are retried with the same event."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.polling import wait_until
from troupe.local.delivery import DeliveryClient
from troupe.local.eventing.sources.runners import PingSourceRunner
from troupe.local.host.loop import LoopThread

from .sink import RecordingSink


@pytest.fixture
def client() -> Iterator[DeliveryClient]:
    loop = LoopThread("test-sources").start()
    made = DeliveryClient(loop)
    yield made
    made.stop()
    loop.stop()


@pytest.mark.parametrize("status", [408, 409, 429, 404, 503])
def test_a_ping_answered_with_a_retryable_status_is_sent_again(
        client: DeliveryClient, fresh_sink: RecordingSink, status: int) -> None:
    fresh_sink.answer_next(status)
    ping = {"metadata": {"namespace": "troupe", "name": "tick",
                         "annotations": {"troupe.dev/interval-seconds": "0.2"}},
            "spec": {"schedule": "* * * * *", "data": '{"n": 1}',
                     "sink": {"uri": f"{fresh_sink.url}/ping"}}}
    runner = PingSourceRunner(ping, lambda _, destination: destination["uri"], client)
    try:
        wait_until(lambda: len(fresh_sink.paths("/ping")) >= 2, 10, "a tick and its retry")
    finally:
        runner.stop()
    first, second = fresh_sink.paths("/ping")[:2]
    assert first.ce_id == second.ce_id  # the same tick, retried
    assert runner.ticks >= 1
