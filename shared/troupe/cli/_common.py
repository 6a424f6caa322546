"""What the user-facing commands share: where the runtime is, and how failures are shown.

Every failure a user can cause or meet becomes a click.ClickException (exit 1) with a
message that says what to do; usage errors stay click's (exit 2). No traceback reaches
the terminal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from troupe.events.cesql import Expression

# Written by `troupe up` so that other commands can find the running runtime.
RUNTIME_FILE = Path(".troupe") / "runtime.json"


def find_project(start: Path | None = None) -> Path:
    """The nearest folder, from `start` upwards, that holds knative/ or a .troupe/ state dir."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / RUNTIME_FILE).is_file() or (folder / "knative").is_dir():
            return folder
    return here


def runtime_info(project: Path | None = None) -> dict[str, Any] | None:
    """What `troupe up` recorded about the runtime of this project, if it is up."""
    path = find_project(project) / RUNTIME_FILE
    try:
        info: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info


def api_headers(info: dict[str, Any]) -> dict[str, str]:
    """The Authorization header the local API wants: the token `troupe up` recorded."""
    return {"Authorization": f"Bearer {info.get('api_token', '')}"}


def broker_url(explicit: str | None, project: Path | None = None) -> str:
    """--broker, else $TROUPE_BROKER, else the local runtime's broker."""
    if explicit:
        return explicit
    if os.environ.get("TROUPE_BROKER"):
        return os.environ["TROUPE_BROKER"]
    info = runtime_info(project)
    if info and info.get("broker_url"):
        return str(info["broker_url"])
    raise click.ClickException(
        "no broker to talk to: start the local runtime with `troupe up --detach`, "
        "or pass --broker URL (or set TROUPE_BROKER) for a cluster's broker ingress"
    )


def kafka_endpoint(
    bootstrap: str | None, topic: str | None, project: Path | None = None
) -> tuple[str, str]:
    """Where the broker's event log is: explicit options, else the local runtime's."""
    info = runtime_info(project) or {}
    servers = bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or info.get(
        "bootstrap_servers"
    )
    topic = topic or info.get("topic")
    if not servers or not topic:
        raise click.ClickException(
            "cannot find the broker's Kafka topic: start the local runtime with "
            "`troupe up --detach`, or pass --bootstrap-servers and --topic (on a cluster the "
            "Kafka broker's topic is knative-broker-<namespace>-<broker>)"
        )
    return str(servers), str(topic)


def cesql_filter(text: str, param_hint: str = "--filter") -> Expression:
    """A CESQL expression compiled as a Trigger filter would be; a usage error if invalid,
    with a caret under the position of a parse error."""
    from troupe.events.cesql import CesqlError, ParseError, compile_filter

    try:
        return compile_filter(text)
    except ParseError as error:
        pointer = "\n".join(f"    {line}" for line in error.pointer().splitlines())
        raise click.BadParameter(f"{error}\n{pointer}", param_hint=param_hint) from None
    except CesqlError as error:
        raise click.BadParameter(str(error), param_hint=param_hint) from None


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))
