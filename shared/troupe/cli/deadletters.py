"""`troupe dead-letters`: inspect what the dead-letter sink recorded, and replay it."""

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


@cli.group("dead-letters")
def dead_letters() -> None:
    """Inspect and replay dead letters (events the broker gave up delivering)."""


@dead_letters.command("list")
@_store_option
@click.option("--json", "as_json", is_flag=True, help="The records as JSON.")
def list_dead_letters(store_url: str | None, as_json: bool) -> None:
    """List the dead letters, oldest first."""
    records = _records(_store(store_url))
    if as_json:
        echo_json([{"key": key, **record} for key, record in records])
        return
    if not records:
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
    Console().print(table)


@dead_letters.command("replay")
@click.argument("key")
@_store_option
@click.option("--broker", metavar="URL", help="Broker ingress URL [default: the local runtime's].")
@click.option("--new-id", is_flag=True,
              help="Give the event a new id, so that functions do not answer it from their "
                   "reply cache (needed after a 422 whose cause you have fixed).")
def replay(key: str, store_url: str | None, broker: str | None, new_id: bool) -> None:
    """Publish the dead letter KEY (from `dead-letters list`) to the broker again."""
    from troupe.events import EventError
    from troupe.store import StoreError

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
