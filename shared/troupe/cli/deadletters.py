"""`troupe dead-letters`: inspect what the dead-letter sink recorded, and replay it."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from troupe.cli import cli
from troupe.cli._common import broker_url, echo_json, runtime_info
from troupe.client.broker import BrokerError, post_event
from troupe.client.deadletters import dead_letter_records, replayable


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
    records = dead_letter_records(_store(store_url))
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
