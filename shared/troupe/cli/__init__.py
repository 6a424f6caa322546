"""The `troupe` command. Each group of subcommands lives in a module of its own."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="troupe")
def cli() -> None:
    """troupe: an ML lifecycle choreographed as Knative services reacting to CloudEvents."""


def main() -> None:
    cli.main(prog_name="troupe")


# The command modules register themselves on `cli` when imported.
from troupe.cli import (  # noqa: E402,F401
    capacity,
    dashboard,
    deadletters,
    demo,
    drift,
    publish,
    runtime,
    subscribe,
    watch,
)
