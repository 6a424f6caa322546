"""`troupe events` and `troupe timeline`: watching the lifecycle through the event log, and
each hop of a run through its trace."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich import box
from rich.console import Console
from rich.table import Table

from troupe.cli import cli
from troupe.cli._common import cesql_filter, echo_json, find_project, kafka_endpoint

if TYPE_CHECKING:
    from troupe.client.eventlog import LoggedEvent
from troupe.client.timeline import (
    build_timeline,
    fit,
    producer,
    runs_of_model,
    short_type,
    summarize,
)
from troupe.events import MODELVERSION, RUNID, EventError, resolve
from troupe.traces import TRACE_FILE, Hop, hops_of, read_run_spans

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    match = _DURATION.match(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 30s, 10m, 2h or 1d",
                                 param_hint="--since")
    return datetime.now(UTC) - timedelta(**{_UNITS[match[2]]: int(match[1])})


def _event_json(logged: LoggedEvent) -> dict[str, object]:
    event = logged.event
    attributes = {k: v for k, v in event.get_attributes().items()}
    return {**attributes, "data": event.get_data(), "partition": logged.partition,
            "offset": logged.offset}


def _line(logged: LoggedEvent) -> str:
    event = logged.event
    when = event.get_time()
    stamp = when.strftime("%H:%M:%S.%f")[:-3] if when else "--:--:--"
    version = event.get_extension(MODELVERSION) or "-"
    runid = str(event.get_extension(RUNID) or "-")[:8]
    return (f"{stamp}  {short_type(event.get_type()):<19} {producer(event):<12} "
            f"run={runid} model={version}  {summarize(event.get_data())}")


_bootstrap = click.option("--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS",
                          help="Kafka of the broker [default: the local runtime's].")
_topic = click.option("--topic", help="The broker's topic [default: the local runtime's].")


@cli.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they arrive.")
@click.option("--type", "type_filter", metavar="TYPE", help="Only this type (short name or full).")
@click.option("--runid", help="Only the events of this run.")
@click.option("--since", metavar="DURATION", help="Only events newer than this, e.g. 10m.")
@click.option("--filter", "expression", metavar="CESQL",
              help="Only events this CESQL expression is true for, as a Trigger's cesql "
                   "filter would pass them, e.g. \"type LIKE 'dev.troupe.model.%'\".")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@_bootstrap
@_topic
def events(follow: bool, type_filter: str | None, runid: str | None, since: str | None,
           expression: str | None, as_json: bool, bootstrap_servers: str | None,
           topic: str | None) -> None:
    """Tail the broker's event log (without committing offsets)."""
    wanted = cesql_filter(expression) if expression is not None else None
    wanted_type = None
    if type_filter:
        try:
            wanted_type = resolve(type_filter).type
        except EventError:
            wanted_type = type_filter  # a foreign type: match it literally
    servers, topic_name = kafka_endpoint(bootstrap_servers, topic)
    from troupe.client.eventlog import EventLogError, read_events  # kafka is slow to import

    try:
        for logged in read_events(servers, topic_name, since=parse_since(since), follow=follow):
            event = logged.event
            if wanted_type and event.get_type() != wanted_type:
                continue
            if runid and str(event.get_extension(RUNID)) != runid:
                continue
            if wanted is not None and not wanted.matches(logged.attributes):
                continue
            click.echo(json.dumps(_event_json(logged), default=str) if as_json else _line(logged))
    except EventLogError as error:
        raise click.ClickException(str(error)) from None
    except KeyboardInterrupt:
        pass


@cli.command()
@click.argument("runid", required=False)
@click.option("--model", "model_version", metavar="VERSION",
              help="Every run that touched this model version.")
@click.option("--json", "as_json", is_flag=True, help="The steps and hops as JSON.")
@click.option("--spans", "span_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The span file to read hops from [default: the local runtime's, "
                   f".troupe/{TRACE_FILE}].")
@_bootstrap
@_topic
def timeline(runid: str | None, model_version: str | None, as_json: bool,
             span_file: Path | None, bootstrap_servers: str | None, topic: str | None) -> None:
    """Rebuild a run (by RUNID, or every run of --model VERSION) from the event log, and
    each of its hops from its trace: queue wait, cold start, handler time and attempts."""
    if bool(runid) == bool(model_version):
        raise click.UsageError("give a RUNID or --model VERSION (one of them)")
    servers, topic_name = kafka_endpoint(bootstrap_servers, topic)
    from troupe.client.eventlog import EventLogError, read_events  # kafka is slow to import

    try:
        logged = [entry.event for entry in read_events(servers, topic_name)]
    except EventLogError as error:
        raise click.ClickException(str(error)) from None
    runids = {runid} if runid else runs_of_model(logged, str(model_version))
    steps = build_timeline(logged, runids)
    if not steps:
        wanted = f"run {runid}" if runid else f"model version {model_version}"
        raise click.ClickException(
            f"no events for {wanted} in the event log: check the id with `troupe events`"
        )
    spans = read_run_spans(span_file or find_project() / ".troupe" / TRACE_FILE, runids)
    hops = hops_of(spans)
    if as_json:
        echo_json({"runids": sorted(runids), "steps": [s.to_json() for s in steps],
                   "traces": sorted({span.trace_id for span in spans}),
                   "hops": [hop.to_json() for hop in hops]})
        return
    table = Table(title=f"timeline of {', '.join(sorted(runids))}")
    fixed = (("time", 12), ("+s", 6), ("service", 9), ("event", 18), ("outcome", 8),
             ("model", 5))
    for column, width in fixed:
        table.add_column(column, no_wrap=True, min_width=width)
    table.add_column("summary", no_wrap=True)
    console = Console()
    room = max(console.width - sum(width + 3 for _, width in fixed) - 4, 12)
    for step in steps:
        table.add_row(step.time.strftime("%H:%M:%S.%f")[:-3] if step.time else "",
                      "" if step.since_previous_s is None else f"{step.since_previous_s:.3f}",
                      step.service, step.type, step.outcome, step.modelversion or "",
                      fit(step.summary, room))
    console.print(table)
    if hops:
        console.print(_hop_table(hops, sorted({span.trace_id for span in spans})))
    else:
        click.echo("no trace of this run: spans are kept by `troupe up` (see the README on "
                   "traces); on a cluster, read them where OTEL_EXPORTER_OTLP_ENDPOINT sends "
                   "them", err=True)


def _hop_table(hops: list[Hop], traces: list[str]) -> Table:
    table = Table(title=f"hops, from trace {', '.join(traces)}", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    # Short headings: the table must fit an 80-column terminal beside the steps'.
    for column in ("start", "service", "event", "queue", "cold", "handler", "tries",
                   "outcome"):
        table.add_column(column, no_wrap=True, min_width=12 if column == "start" else None,
                         justify="right" if column in _TIMED_COLUMNS else "left")
    for hop in hops:
        started = datetime.fromtimestamp(hop.start_ns / 1e9, UTC).astimezone()
        table.add_row(started.strftime("%H:%M:%S.%f")[:-3], hop.service,
                      short_type(hop.event_type) if hop.event_type else "",
                      _seconds(hop.queue_wait_s), _seconds(hop.cold_start_s),
                      _seconds(hop.handler_s), str(hop.attempts or ""), hop.outcome)
    return table


_TIMED_COLUMNS = ("queue", "cold", "handler", "tries")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
