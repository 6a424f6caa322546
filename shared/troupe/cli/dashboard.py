"""`troupe dashboard`: the link that opens the running runtime's dashboard."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import click

from troupe.cli import cli
from troupe.cli._common import find_project, runtime_info


@cli.command()
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The project folder (default: this repository).")
@click.option("--open", "open_browser", is_flag=True, help="Open it in a browser too.")
def dashboard(project: Path | None, open_browser: bool) -> None:
    """Print the dashboard's link (it carries the API's token: keep it to yourself)."""
    info = runtime_info(project)
    url = (info or {}).get("dashboard_url")
    if not url:
        root = (project or find_project()).resolve()
        raise click.ClickException(f"the runtime is not running for {root}: start it with "
                                   "`troupe up --detach`")
    click.echo(f"dashboard   {url}")
    if open_browser and not webbrowser.open(str(url)):
        raise click.ClickException("no browser could be started here: open the link above")
