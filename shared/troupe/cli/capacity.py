"""`troupe capacity`: what the queueing model says about a Service's waits and size.

`troupe capacity model` answers what-if questions before any traffic exists, from the
model alone (troupe.capacity); `troupe capacity plan` feeds it what the service fronts
measured, from Prometheus, and recommends scale bounds per Service. Flags the model
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
    ServicePlan,
    UnstableQueueError,
    WaitSLO,
    Workload,
    plan_service,
    predict_wait,
    servers_for_slo,
)
from troupe.cli import cli
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
    click.echo(f"{prediction.model}: {rate:g} requests/s of {_seconds(service_time)} "
               f"on {servers} server(s)")
    rows = [("utilisation", f"{prediction.utilization:.1%}"),
            ("P(wait)", f"{prediction.p_wait:.1%}"),
            ("mean wait", _seconds(prediction.mean_wait)),
            ("p95 wait", _seconds(p95))]
    if slo is not None:
        rows.append((f"servers for {slo}", str(needed)))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"  {name:<{width}}  {value}")


def _seconds(value: float) -> str:
    return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.3g} s"


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
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per Service.")
def plan(service: str | None, window: float, slo: WaitSLO, prometheus: str | None,
         namespace: str, kubeconfig: str | None, context: str | None, as_json: bool) -> None:
    """Measured load, predicted and measured waits, and recommended scale, per Service.

    Reads the fronts' metrics (Knative's names) from Prometheus over the window, and each
    Service's containerConcurrency and autoscaling annotations through the Kubernetes API.
    Nothing is changed.
    """
    from troupe.cli._capacity_metrics import CapacityMetrics, MetricsUnavailableError

    info = runtime_info() or {}
    url = prometheus or info.get("prometheus_url")
    if not url:
        raise click.ClickException(
            "no Prometheus to read: start the local runtime with `troupe up --detach` (with "
            "the Debian package prometheus installed), or pass --prometheus URL")
    specs = _services(namespace, service, kubeconfig or info.get("kubeconfig"), context)
    try:
        measured = CapacityMetrics(str(url), window).measure(namespace, specs)
    except MetricsUnavailableError as error:
        raise click.ClickException(str(error)) from None
    plans = [plan_service(m, slo) for m in measured]
    if as_json:
        echo_json([_plan_json(p) for p in plans])
    else:
        _print_plans(plans, slo)


def _services(namespace: str, name: str | None, kubeconfig: str | None,
              context: str | None) -> list[dict[str, Any]]:
    from troupe.knative import Cluster, KnativeError  # the kubernetes client is slow to import

    try:
        cluster = Cluster.connect(kubeconfig, context)
        if name is not None:
            return [cluster.get_service(namespace, name)]
        return cluster.list_services(namespace)
    except KnativeError as error:
        raise click.ClickException(str(error)) from None


def _plan_json(plan: ServicePlan) -> dict[str, Any]:
    m, r = plan.measured, plan.recommendation
    return {
        "service": m.service, "namespace": m.namespace, "slo": str(plan.slo),
        "arrival_rate": m.arrival_rate, "peak_arrival_rate": m.peak_arrival_rate,
        "service_time_s": m.service_time, "service_scv": m.service_scv,
        "instances": m.instances, "container_concurrency": m.container_concurrency,
        "servers": plan.servers, "utilization": plan.utilization,
        "predicted_mean_wait_s": plan.predicted_mean_wait,
        "predicted_p95_wait_s": plan.predicted_p95_wait,
        "measured_mean_wait_s": m.measured_mean_wait, "measured_p95_wait_s": m.measured_p95_wait,
        "recommended": None if r is None else {
            "servers": r.servers, "min_scale": r.min_scale, "max_scale": r.max_scale,
            "target": r.target, "container_concurrency": r.container_concurrency},
        "notes": list(plan.notes),
    }


def _print_plans(plans: list[ServicePlan], slo: WaitSLO) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"capacity for {slo}; waits are predicted / measured")
    for column in ("service", "rate/s", "service time", "SCV", "c", "rho", "mean wait",
                   "p95 wait", "min", "max", "target", "cc"):
        table.add_column(column, justify="left" if column == "service" else "right")
    for plan in plans:
        m, r = plan.measured, plan.recommendation
        table.add_row(
            m.service, _maybe(m.arrival_rate, "{:.3g}"), _maybe(m.service_time, None),
            _maybe(m.service_scv, "{:.2f}"), _maybe(plan.servers, "{}"),
            _maybe(plan.utilization, "{:.0%}"),
            f"{_maybe(plan.predicted_mean_wait, None)} / {_maybe(m.measured_mean_wait, None)}",
            f"{_maybe(plan.predicted_p95_wait, None)} / {_maybe(m.measured_p95_wait, None)}",
            *((str(r.min_scale), str(r.max_scale), str(r.target), str(r.container_concurrency))
              if r else ("-",) * 4))
    console = Console()
    console.print(table)
    console.print("min, max, target, cc: the recommended min-scale, max-scale, target and "
                  "containerConcurrency")
    for plan in plans:
        for note in plan.notes:
            console.print(f"{plan.measured.service}: {note}", markup=False)


def _maybe(value: float | None, pattern: str | None) -> str:
    if value is None:
        return "-"
    return _seconds(value) if pattern is None else pattern.format(value)
