"""`troupe demo`: the closed loop end to end on this machine, with live progress."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from cloudevents.core.v1.event import CloudEvent
from rich.console import Console
from rich.table import Table

from troupe.cli import cli
from troupe.cli._common import echo_json, find_project
from troupe.client.broker import BrokerError
from troupe.client.timeline import fit, producer, short_type, summarize
from troupe.demo import LIVE_SCENARIOS
from troupe.events import MODELVERSION, PING


def _ensure_runtime(root: Path, console: Console) -> tuple[dict[str, Any], bool]:
    """The running runtime of this project, or one started now (and whether we did)."""
    from troupe.cli.runtime import _running_info, _up_detached

    info = _running_info(root)
    if info is not None:
        console.print(f"using the runtime already up for {root} (pid {info['pid']})")
        return info, False
    console.print("starting the local runtime (Kafka, broker, functions, Prometheus)...")
    _up_detached(root, port=0, grace_period=60.0)
    info = _running_info(root)
    if info is None:
        raise click.ClickException("the runtime did not come up: see .troupe/runtime.log")
    return info, True


def _stop_runtime(info: dict[str, Any]) -> None:
    os.kill(int(info["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(int(info["pid"]), 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)  # waiting for another process to exit, with a deadline


# The topic Knative's Kafka broker gives the Broker `default` of the namespace `troupe`.
DEFAULT_TOPIC = "knative-broker-troupe-default"


def _cluster_info(kubeconfig: Path, context: str | None, broker: str | None,
                  bootstrap_servers: str | None, topic: str, store_url: str | None,
                  predictor_url: str | None) -> dict[str, Any]:
    """What the demo needs of a Knative cluster deployed with `skaffold run`, in the shape
    `troupe up` reports its own runtime in; a missing piece is a usage error naming it."""
    missing = [flag for flag, value in (("--broker", broker),
                                        ("--bootstrap-servers", bootstrap_servers),
                                        ("--store-url", store_url)) if not value]
    if missing:
        raise click.UsageError(
            f"with --kubeconfig the demo runs against that cluster and needs {', '.join(missing)}:"
            " the Broker's ingress URL (e.g. a port-forward of kafka-broker-ingress), the "
            "Kafka bootstrap servers its topic is on, and the store the functions use")
    return {"kubeconfig": str(kubeconfig), "context": context, "broker_url": broker,
            "bootstrap_servers": bootstrap_servers, "topic": topic, "store_url": store_url,
            "predictor_url": predictor_url}


@cli.command()
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The project folder holding knative/ and eventing/ (default: this one).")
@click.option("--kubeconfig", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="Run against the Knative cluster of this kubeconfig (deployed "
              "with `skaffold run`) instead of the local runtime.")
@click.option("--context", default=None, help="With --kubeconfig: the context to use.")
@click.option("--broker", default=None, help="With --kubeconfig: the Broker's ingress URL.")
@click.option("--bootstrap-servers", default=None,
              help="With --kubeconfig: the Kafka the Broker's topic is on (the event log).")
@click.option("--topic", default=DEFAULT_TOPIC, show_default=True,
              help="With --kubeconfig: the Broker's Kafka topic.")
@click.option("--store-url", default=None,
              help="With --kubeconfig: the store the functions use (e.g. s3://bucket/troupe).")
@click.option("--predictor-url", default=None,
              help="With --kubeconfig: where to reach the predictor (default: its status.url;"
                   " the manifests make it cluster-local, so a port-forward is usual).")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the synthetic data.")
@click.option("--scenario", type=click.Choice(LIVE_SCENARIOS), default="abrupt",
              show_default=True,
              help="The drift to play: none (a control run that must raise no alarm), abrupt, "
                   "moderate (about 10 points), gradual, or covariate (inputs move, answers "
                   "stay right: reported, not retrained).")
@click.option("--predictions", type=click.IntRange(min=1), default=2000, show_default=True,
              help="With --scenario none: the labeled predictions to watch.")
@click.option("--keep", is_flag=True, help="Leave the runtime running afterwards.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def demo(project: Path | None, kubeconfig: Path | None, context: str | None,
         broker: str | None, bootstrap_servers: str | None, topic: str,
         store_url: str | None, predictor_url: str | None, seed: int, scenario: str,
         predictions: int, keep: bool, as_json: bool) -> None:
    """Run the whole lifecycle: train, deploy, drift, degrade, retrain, recover."""
    from troupe.demo.loop import Demo, DemoOptions
    from troupe.demo.watcher import Stalled

    console = Console(stderr=as_json)
    if kubeconfig is not None:
        info = _cluster_info(kubeconfig, context, broker, bootstrap_servers, topic, store_url,
                             predictor_url)
        root, started_here = Path.cwd(), False
    else:
        root = (project or find_project()).resolve()
        info, started_here = _ensure_runtime(root, console)
    began = datetime.now(UTC)

    def show(event: CloudEvent) -> None:
        if event.get_type() == PING:
            return  # the monitor's clock: every few seconds, and nothing to read in it
        elapsed = (datetime.now(UTC) - began).total_seconds()
        version = event.get_extension(MODELVERSION) or ""
        console.print(f"[dim]{elapsed:6.1f}s[/dim]  {short_type(event.get_type()):<19} "
                      f"{producer(event):<12} {version:<4} {summarize(event.get_data(), 60)}",
                      highlight=False, soft_wrap=True)

    runner = Demo(info, DemoOptions(seed=seed, scenario=scenario, predictions=predictions),
                  say=lambda line: console.print(line, style="bold", soft_wrap=True))
    try:
        result = runner.run(on_event=show)
    except (Stalled, BrokerError) as error:
        logs = ("`kubectl logs` of the functions" if kubeconfig is not None
                else f"Function logs are in {root / '.troupe' / 'logs'}")
        raise click.ClickException(
            f"the loop stalled: {error}. {logs}; `troupe events` shows what happened"
        ) from None
    finally:
        if started_here and not keep:
            _stop_runtime(info)
    _report(result, runner.timeline_of_retrain(), console, as_json)
    if scenario == "none" and result.alarms:
        raise click.ClickException(
            f"{len(result.alarms)} alarm(s) fired with no drift (false alarms): "
            + ", ".join(f"{a['kind']} {a['metric']} of {a['version']}" for a in result.alarms)
        )
    if result.dead_letters:
        raise click.ClickException(
            f"the loop closed but {result.dead_letters} dead letter(s) were recorded: inspect "
            f"them under deadletters/ in {info['store_url']}"
        )


def _report(result: Any, timeline: list[Any], console: Console, as_json: bool) -> None:
    if as_json:
        echo_json({**dataclasses.asdict(result),
                   "timeline": [step.to_json() for step in timeline]})
        return
    table = Table(title="troupe demo: the loop closed")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("scenario", result.scenario)
    table.add_row("first model", result.versions.get("first", "-"))
    table.add_row("retrained model", result.versions.get("retrained", "-"))
    for phase, accuracy in result.accuracy.items():
        table.add_row(f"accuracy {phase.replace('_', ' ')}",
                      "-" if accuracy is None else f"{accuracy:.3f}")
    for alarm in result.alarms:
        table.add_row(f"alarm: {alarm['kind']} ({alarm['metric']}) of {alarm['version']}",
                      f"after {alarm['at_predictions']} labeled predictions")
    if result.detection_delay_predictions is not None:
        table.add_row("detection delay (drift -> alarm)",
                      f"{result.detection_delay_predictions} labeled predictions, "
                      f"{result.detection_delay_seconds:.1f} s")
    if result.serving_delay_predictions is not None:
        table.add_row("drift -> retrained model serving",
                      f"{result.serving_delay_predictions} labeled predictions, "
                      f"{result.serving_delay_seconds:.1f} s")
    table.add_row("events exchanged", str(result.events))
    table.add_row("loop time (first data -> retrained model serving)",
                  f"{result.loop_seconds:.1f} s")
    table.add_row("retrain time (metric-degraded -> model-deployed)",
                  f"{result.retrain_seconds:.1f} s")
    table.add_row("dead letters", str(result.dead_letters))
    console.print(table)
    steps = Table(title="the retraining run, rebuilt from the event log")
    fixed = (("+s", 5), ("service", 9), ("event", 18), ("outcome", 8))
    for column, width in fixed:
        steps.add_column(column, no_wrap=True, min_width=width)
    steps.add_column("summary", no_wrap=True)
    # One line per step: the summary takes what the fixed columns and borders leave.
    room = max(console.width - sum(width + 3 for _, width in fixed) - 4, 12)
    for step in timeline:
        gap = "" if step.since_previous_s is None else f"{step.since_previous_s:.2f}"
        steps.add_row(gap, step.service, step.type, step.outcome, fit(step.summary, room))
    console.print(steps)

