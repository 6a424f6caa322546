"""`troupe capacity`: what the queueing model says about a Service's waits and size.

`troupe capacity model` answers what-if questions before any traffic exists, from the
model alone (troupe.capacity); `troupe capacity plan` feeds it what the service fronts
measured, from Prometheus, recommends scale bounds per Service and partitions per Trigger,
and with --apply patches the Services. Flags the model
cannot take (a rate <= 0, a service time without a unit, an SLO such as `200ms@p150`, a
load the servers cannot keep up with) are usage errors: exit code 2 and a message that
says what to give instead.
"""

from __future__ import annotations

import math
from typing import Any

import click
import durationpy

from troupe.capacity import (
    CapacityError,
    UnstableQueueError,
    WaitSLO,
    Workload,
    plan_service,
    plan_trigger,
    predict_wait,
    servers_for_slo,
)
from troupe.cli import cli
from troupe.cli._capacity_output import format_seconds
from troupe.cli._common import echo_json, runtime_info


# Flags are read by callbacks rather than click.ParamType subclasses, whose typing changed
# between the click releases that the cli extra allows.
def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A Go duration such as 200ms or 1.5s, in seconds, > 0."""
    if value is None:
        return None
    try:
        seconds = durationpy.from_str(value.strip()).total_seconds()
    except (ValueError, OverflowError):
        raise click.BadParameter(
            f"{value!r} is not a duration: give one with a unit, such as 200ms or 1.5s") from None
    if seconds <= 0:
        raise click.BadParameter(f"{value!r} must be longer than 0")
    return seconds


def _number(*, allow_zero: bool) -> Any:
    """A callback reading a finite number > 0 (or >= 0 with allow_zero)."""

    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a number") from None
        if not (math.isfinite(number) and (number >= 0 if allow_zero else number > 0)):
            raise click.BadParameter(
                f"{value!r} must be a finite number {'>=' if allow_zero else '>'} 0")
        return number

    return convert


def _slo(ctx: click.Context, param: click.Parameter, value: str | None) -> WaitSLO | None:
    if value is None:
        return None
    try:
        return WaitSLO.parse(value)
    except CapacityError as error:
        raise click.BadParameter(str(error)) from None


@cli.group()
def capacity() -> None:
    """Predict waits and size Services with a queueing model (Erlang C, Allen-Cunneen)."""


@capacity.command()
@click.option("--rate", callback=_number(allow_zero=False), required=True, metavar="NUMBER",
              help="Arrival rate, in requests per second.")
@click.option("--service-time", callback=_duration, required=True, metavar="DURATION",
              help="Mean time a request holds a server, e.g. 200ms.")
@click.option("--scv", callback=_number(allow_zero=True), default="1", show_default=True,
              metavar="NUMBER",
              help="Squared coefficient of variation of the service time (1: exponential, "
                   "M/M/c; 0: constant).")
@click.option("--servers", type=click.IntRange(min=1), required=True,
              help="Servers: instances x containerConcurrency.")
@click.option("--slo", callback=_slo, default=None, metavar="WAIT@pNN",
              help="A wait objective such as 300ms@p95; adds the fewest servers that meet it.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object; durations in s.")
def model(rate: float, service_time: float, scv: float, servers: int, slo: WaitSLO | None,
          as_json: bool) -> None:
    """Predict the waits of RATE requests/s of SERVICE-TIME each on SERVERS servers.

    Answers from the model alone, before any traffic exists: Erlang C when --scv is 1
    (M/M/c), the Allen-Cunneen approximation otherwise. Waits are the time a request
    waits for a free server, before its service starts.
    """
    workload = Workload(arrival_rate=rate, service_time=service_time, service_scv=scv)
    try:
        needed = servers_for_slo(workload, slo) if slo is not None else None
    except CapacityError as error:  # no number of servers within the search's bound
        raise click.ClickException(str(error)) from None
    try:
        prediction = predict_wait(workload, servers)
    except UnstableQueueError as error:
        hint = f"--servers {error.servers_needed} or more"
        if slo is not None:
            hint += f" ({needed} meet {slo})"
        raise click.UsageError(f"{error}: give {hint}, or a lower --rate") from None
    p95 = prediction.quantile(0.95)
    if as_json:
        echo_json({"utilization": prediction.utilization, "p_wait": prediction.p_wait,
                   "mean_wait_s": prediction.mean_wait, "p95_wait_s": p95,
                   "servers_for_slo": needed})
        return
    click.echo(f"{prediction.model}: {rate:g} requests/s of {format_seconds(service_time)} "
               f"on {servers} server(s)")
    rows = [("utilisation", f"{prediction.utilization:.1%}"),
            ("P(wait)", f"{prediction.p_wait:.1%}"),
            ("mean wait", format_seconds(prediction.mean_wait)),
            ("p95 wait", format_seconds(p95))]
    if slo is not None:
        rows.append((f"servers for {slo}", str(needed)))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"  {name:<{width}}  {value}")


def _window(ctx: click.Context, param: click.Parameter, value: str) -> float:
    seconds = _duration(ctx, param, value)
    assert seconds is not None  # the option has a default
    if seconds < 1:
        raise click.BadParameter(f"{value!r} is shorter than a second: give e.g. 10m")
    return seconds


@capacity.command()
@click.argument("service", required=False)
@click.option("--window", callback=_window, default="10m", show_default=True,
              metavar="DURATION", help="How far back to measure.")
@click.option("--slo", callback=_slo, default="200ms@p95", show_default=True,
              metavar="WAIT@pNN", help="The wait objective the recommendations meet.")
@click.option("--prometheus", metavar="URL",
              help="Prometheus to read [default: the local runtime's].")
@click.option("--namespace", "-n", default="troupe", show_default=True)
@click.option("--kubeconfig", type=click.Path(dir_okay=False),
              help="Kubeconfig to read Services from [default: the local runtime's, else the "
                   "usual kubeconfig].")
@click.option("--context", help="Kubeconfig context.")
@click.option("--apply", "apply_", is_flag=True,
              help="Patch each Service's autoscaling annotations and containerConcurrency "
                   "to the recommendation, through the Kubernetes API.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: a list of services and a list of triggers.")
def plan(service: str | None, window: float, slo: WaitSLO, prometheus: str | None,
         namespace: str, kubeconfig: str | None, context: str | None, apply_: bool,
         as_json: bool) -> None:
    """Measured load, predicted and measured waits, and recommended scale, per Service;
    and the Kafka partitions each Trigger's delivery rate needs.

    Reads the fronts' metrics (Knative's names) from Prometheus over the window, and the
    Services and Triggers through the Kubernetes API. Nothing is changed unless --apply
    is given; partitions are only reported (a topic's partitions are Kafka's to change).
    """
    from troupe.cli._capacity_metrics import CapacityMetrics, MetricsUnavailableError
    from troupe.cli._capacity_output import plans_json, print_plans
    from troupe.knative import Cluster, KnativeError  # the kubernetes client is slow to import

    info = runtime_info() or {}
    url = prometheus or info.get("prometheus_url")
    if not url:
        raise click.ClickException(
            "no Prometheus to read: start the local runtime with `troupe up --detach` (with "
            "the Debian package prometheus installed), or pass --prometheus URL")
    try:
        cluster = Cluster.connect(kubeconfig or info.get("kubeconfig"), context)
        specs = ([cluster.get_service(namespace, service)] if service is not None
                 else cluster.list_services(namespace))
        triggers = [t for t in cluster.list_triggers(namespace)
                    if service is None or _subscribes(t, service)]
    except KnativeError as error:
        raise click.ClickException(str(error)) from None
    try:
        metrics = CapacityMetrics(str(url), window)
        measured = metrics.measure(namespace, specs)
        measured_triggers = metrics.measure_triggers(namespace, triggers, measured)
    except MetricsUnavailableError as error:
        raise click.ClickException(str(error)) from None
    plans = [plan_service(m, slo) for m in measured]
    trigger_plans = [plan_trigger(m, slo) for m in measured_triggers]
    applied = None
    if apply_:
        from troupe.cli._capacity_apply import apply_plans

        try:
            applied = apply_plans(cluster, plans, {s["metadata"]["name"]: s for s in specs})
        except KnativeError as error:
            raise click.ClickException(f"--apply stopped: {error}") from None
    if as_json:
        echo_json(plans_json(plans, trigger_plans, applied))
    else:
        print_plans(plans, trigger_plans, applied, slo)


def _subscribes(trigger: dict[str, Any], service: str) -> bool:
    ref = ((trigger.get("spec") or {}).get("subscriber") or {}).get("ref") or {}
    return bool(ref.get("kind") == "Service" and ref.get("name") == service)
