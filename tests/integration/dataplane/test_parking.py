"""An event whose dead-letter sink fails too is parked on Kafka, never dropped: every one
of a counted set is there, with the reason, its offsets are committed, and the CLI lists
and replays it."""

from __future__ import annotations

import json

import pytest
import requests
from click.testing import CliRunner
from support.polling import wait_until
from troupe.cli import cli
from troupe.local.eventing.broker import DataPlane
from troupe.local.eventing.broker.parking import REASON, TRIGGER, read_parked

from .conftest import NAMESPACE, binary_headers, broker_with_dead_letters
from .sink import RecordingSink

pytestmark = pytest.mark.kafka
EVENTS = 20


def test_a_dead_letter_sink_that_refuses_everything_parks_every_event(
        plane: DataPlane, kafka_servers: str, fresh_sink: RecordingSink) -> None:
    broker = broker_with_dead_letters(plane, fresh_sink, "parking")
    trigger = f"{broker}-t"
    fresh_sink.default_status = 500  # the subscriber and its dead-letter sink alike
    ids = {f"{broker}-{n}" for n in range(EVENTS)}
    for event_id in sorted(ids):
        answer = requests.post(plane.broker_url(NAMESPACE, broker), data=b'{"n": 1}',
                               headers=binary_headers(event_id), timeout=10)
        assert answer.status_code == 202

    def parked_ids() -> set[str]:
        return {p.headers.get("ce_id", "") for p in read_parked(kafka_servers)
                if p.headers.get(TRIGGER) == f"{NAMESPACE}/{trigger}"}

    wait_until(lambda: parked_ids() == ids, 30, lambda: f"all {EVENTS} events parked; "
               f"missing {sorted(ids - parked_ids())}")
    # A record is readable before its writer counts it: wait for the counts to settle.
    def counts() -> tuple[int, int, int, int]:
        status = plane.trigger_status(NAMESPACE, trigger)
        return status.parked, status.dead_lettered, status.dropped, status.lag

    wait_until(lambda: counts() == (EVENTS, 0, 0, 0), 15,
               lambda: f"the counts ({EVENTS}, 0, 0, 0) (parked, dead-lettered, dropped, "
                       f"lag); they are {counts()}")
    parked = [p for p in read_parked(kafka_servers) if p.headers.get("ce_id") in ids]
    assert all("failed too: HTTP 500" in p.headers[REASON] for p in parked)
    assert all(p.headers["ce_knativeerrorcode"] == "500" for p in parked)
    assert all(p.value == b'{"n": 1}' for p in parked)

    # The CLI shows them, and replays one to the Broker, which delivers it again.
    runner = CliRunner()
    listed = runner.invoke(cli, ["dead-letters", "list", "--json", "--kafka", kafka_servers,
                                 "--no-store"])
    assert listed.exit_code == 0, listed.output
    shown = {entry["attributes"]["id"]: entry for entry in json.loads(listed.output)
             if entry["key"].startswith("parked:")}
    assert ids <= set(shown)
    one = shown[f"{broker}-0"]
    assert "failed too" in one["reason"]
    fresh_sink.default_status = 202
    replayed = runner.invoke(cli, ["dead-letters", "replay", one["key"], "--kafka",
                                   kafka_servers, "--broker",
                                   plane.broker_url(NAMESPACE, broker)])
    assert replayed.exit_code == 0, replayed.output
    wait_until(lambda: f"{broker}-0" in {i for _, i in fresh_sink.acknowledged(f"/{broker}")},
               15, "the replayed event delivered")
