"""`troupe dead-letters`: inspect what the dead-letter sink recorded, and the events the
Broker parked on Kafka because their dead-letter sink failed too; replay either."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

import click
from cloudevents.core.v1.event import CloudEvent
from rich.console import Console
from rich.table import Table

from troupe.cli import cli
from troupe.cli._common import broker_url, echo_json, runtime_info
from troupe.client.broker import BrokerError, post_event
from troupe.events.codec import check_attributes
from troupe.events.extensions import KNATIVE_ARRIVALTIME, KNATIVE_BROKER_TTL

PREFIX = "deadletters"
# Set by the broker on the way in; a replay must get fresh ones, not the exhausted ones.
_BROKER_OWNED = (KNATIVE_ARRIVALTIME, KNATIVE_BROKER_TTL)


def _store(url: str | None) -> Any:
    from troupe.store import Store, StoreError

    info = runtime_info() or {}
    url = url or info.get("store_url")
    if not url:
        raise click.ClickException(
            "which store? pass --store URL (the TROUPE_STORE_URL of the functions), or run "
            "this where `troupe up` runs"
        )
    try:
        return Store(str(url))
    except StoreError as error:
        raise click.ClickException(str(error)) from None


def _records(store: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(key, store.read_json(key)) for key in store.list(PREFIX) if key.endswith(".json")]


def replayable(record: dict[str, Any], new_id: bool = False) -> CloudEvent:
    """The event as it was before the broker gave up on it."""
    attributes = {name: value for name, value in record["attributes"].items()
                  if not name.startswith("knativeerror") and name not in _BROKER_OWNED}
    if new_id:
        attributes["id"] = str(uuid.uuid4())
    if isinstance(attributes.get("time"), str):
        attributes["time"] = datetime.fromisoformat(attributes["time"])
    if "data_base64" in record:
        data: Any = base64.b64decode(record["data_base64"])
    else:
        data = record.get("data")
    check_attributes({**attributes, "time": record["attributes"].get("time")})
    return CloudEvent(attributes, data)


_store_option = click.option("--store", "store_url", metavar="URL",
                             help="The store [default: the local runtime's].")
_kafka_option = click.option("--kafka", "kafka", metavar="HOST:PORT",
                             help="The Kafka holding parked events [default: the local "
                                  "runtime's].")
PARKED = "parked:"


def _kafka(explicit: str | None) -> str | None:
    return explicit or (runtime_info() or {}).get("bootstrap_servers")


def _parked(kafka: str | None) -> list[dict[str, Any]]:
    """Parked events as `list` shows them; [] without a Kafka to read."""
    bootstrap = _kafka(kafka)
    if not bootstrap:
        return []
    from kafka.errors import KafkaError

    from troupe.local.eventing.broker.parking import BROKER, PARKED_AT, REASON, TRIGGER, read_parked

    try:
        events = read_parked(bootstrap)
    except KafkaError as error:
        raise click.ClickException(f"cannot read parked events from Kafka at {bootstrap}: "
                                   f"{error}") from None
    return [{"key": event.key,
             "attributes": {name[3:]: value for name, value in event.headers.items()
                            if name.startswith("ce_")},
             "trigger": event.headers.get(TRIGGER), "broker": event.headers.get(BROKER),
             "parked_at": event.headers.get(PARKED_AT), "reason": event.headers.get(REASON),
             "error": {"dest": event.headers.get("ce_knativeerrordest"),
                       "code": event.headers.get("ce_knativeerrorcode")}}
            for event in events]


@cli.group("dead-letters")
def dead_letters() -> None:
    """Inspect and replay dead letters (events the broker gave up delivering)."""


@dead_letters.command("list")
@_store_option
@_kafka_option
@click.option("--no-store", is_flag=True, help="Only the parked events, not the store's.")
@click.option("--json", "as_json", is_flag=True, help="The records as JSON.")
def list_dead_letters(store_url: str | None, kafka: str | None, no_store: bool,
                      as_json: bool) -> None:
    """List the dead letters, oldest first, then the events parked on Kafka because their
    dead-letter sink failed too (keys `parked:<partition>:<offset>`)."""
    records = [] if no_store else _records(_store(store_url))
    parked = _parked(kafka)
    if as_json:
        echo_json([{"key": key, **record} for key, record in records] + parked)
        return
    if not records and not parked:
        click.echo("no dead letters")
        return
    table = Table()
    for column in ("key", "type", "source", "subscriber", "status", "answer"):
        table.add_column(column)
    for key, record in records:
        error = record.get("error", {})
        table.add_row(key, record["attributes"].get("type", ""),
                      record["attributes"].get("source", ""), str(error.get("dest") or ""),
                      str(error.get("code") or "-"), str(error.get("data") or "")[:60])
    for entry in parked:
        table.add_row(entry["key"], entry["attributes"].get("type", ""),
                      entry["attributes"].get("source", ""), str(entry["error"]["dest"] or ""),
                      str(entry["error"]["code"] or "-"), str(entry["reason"] or "")[:60])
    Console().print(table)


@dead_letters.command("replay")
@click.argument("key")
@_store_option
@_kafka_option
@click.option("--broker", metavar="URL", help="Broker ingress URL [default: the local runtime's].")
@click.option("--new-id", is_flag=True,
              help="Give the event a new id, so that functions do not answer it from their "
                   "reply cache (needed after a 422 whose cause you have fixed).")
def replay(key: str, store_url: str | None, kafka: str | None, broker: str | None,
           new_id: bool) -> None:
    """Publish the dead letter KEY (from `dead-letters list`) to the broker again."""
    from troupe.events import EventError
    from troupe.store import StoreError

    if key.startswith(PARKED):
        _replay_parked(key, kafka, broker, new_id)
        return
    store = _store(store_url)
    try:
        record = store.read_json(key)
    except StoreError as error:
        raise click.ClickException(f"no dead letter {key}: {error}") from None
    try:
        event = replayable(record, new_id=new_id)
        post_event(broker_url(broker), event)
    except (EventError, BrokerError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(event.get_id())


def _replay_parked(key: str, kafka: str | None, broker: str | None, new_id: bool) -> None:
    from troupe.events import EventError, from_kafka
    from troupe.local.eventing.broker.parking import read_parked

    bootstrap = _kafka(kafka)
    if not bootstrap:
        raise click.ClickException("which Kafka holds the parked events? pass --kafka "
                                   "HOST:PORT, or run this where `troupe up` runs")
    found = next((event for event in read_parked(bootstrap) if event.key == key), None)
    if found is None:
        raise click.ClickException(f"no parked event {key}: `troupe dead-letters list` "
                                   "shows the keys")
    try:
        event = from_kafka(found.replay_headers(), None, found.value)
        if new_id:
            event = CloudEvent({**event.get_attributes(), "id": str(uuid.uuid4())},
                               event.get_data())
        post_event(broker_url(broker), event)
    except (EventError, BrokerError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(event.get_id())
