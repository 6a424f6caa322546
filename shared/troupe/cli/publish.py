"""`troupe publish`: send one lifecycle event to a broker's ingress, checked before it goes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from troupe.cli import cli
from troupe.cli._common import broker_url
from troupe.client.broker import BrokerError, post_event
from troupe.events import EventError, make_event, resolve


def _read_data(option: str | None) -> Any:
    if option is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise click.UsageError(
                "give the event's data with --data JSON, --data @FILE or on stdin"
            )
        text, origin = sys.stdin.read(), "stdin"
    elif option.startswith("@"):
        path = Path(option[1:])
        try:
            text, origin = path.read_text(), str(path)
        except OSError as error:
            raise click.BadParameter(
                f"cannot read {path}: {error.strerror}", param_hint="--data"
            ) from None
    else:
        text, origin = option, "--data"
    try:
        return json.loads(text)
    except ValueError as error:
        raise click.BadParameter(
            f"the data from {origin} is not valid JSON ({error})", param_hint="--data"
        ) from None


def _parse_extensions(pairs: tuple[str, ...]) -> dict[str, str]:
    extensions = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--extension")
        extensions[name] = value
    return extensions


@cli.command()
@click.argument("event_type", metavar="TYPE")
@click.option("--data", "data_option", metavar="JSON|@FILE",
              help="The event's data (default: stdin).")
@click.option("--source", default="/troupe/cli", show_default=True, help="The event's source.")
@click.option("--extension", "-e", "extension_pairs", multiple=True, metavar="NAME=VALUE",
              help="An extension attribute; repeatable.")
@click.option("--broker", metavar="URL",
              help="Broker ingress URL [default: $TROUPE_BROKER or the local runtime].")
@click.option("--json", "as_json", is_flag=True, help="Print the event as JSON instead of its id.")
def publish(
    event_type: str,
    data_option: str | None,
    source: str,
    extension_pairs: tuple[str, ...],
    broker: str | None,
    as_json: bool,
) -> None:
    """Publish one event of TYPE (a short name like data-arrived, or a full type).

    The data is checked against the type's schema before anything is sent.
    """
    try:
        resolve(event_type)
    except EventError as error:
        raise click.BadParameter(str(error), param_hint="TYPE") from None
    data = _read_data(data_option)
    if not isinstance(data, dict):
        raise click.BadParameter("the data must be a JSON object", param_hint="--data")
    try:
        extensions = _parse_extensions(extension_pairs)
        event = make_event(event_type, data, source=source, extensions=extensions)
    except EventError as error:
        raise click.BadParameter(f"{error}; nothing was sent", param_hint="--data") from None
    url = broker_url(broker)
    try:
        status = post_event(url, event)
    except BrokerError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps({"id": event.get_id(), "type": event.get_type(), "source": source,
                               "broker": url, "status": status}))
    else:
        click.echo(event.get_id())
