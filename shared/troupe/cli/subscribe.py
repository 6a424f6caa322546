"""`troupe subscribe` and `troupe unsubscribe`: Triggers to a sink of your own, created
through the Kubernetes API with the same client code on a cluster and on `troupe up`."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import click

from troupe.cli import cli
from troupe.cli._common import cesql_filter, echo_json, runtime_info
from troupe.events import EventError, resolve

_MANAGED_BY = {"app.kubernetes.io/managed-by": "troupe-subscribe",
               "app.kubernetes.io/part-of": "troupe"}


def _cluster(kubeconfig: str | None, context: str | None) -> Any:
    from troupe.knative import Cluster, KnativeError  # the kubernetes client is slow to import

    if kubeconfig is None and context is None:
        info = runtime_info()
        if info and info.get("kubeconfig"):
            kubeconfig = str(info["kubeconfig"])  # the local runtime of this project
    try:
        return Cluster.connect(kubeconfig, context)
    except KnativeError as error:
        raise click.ClickException(str(error)) from None


def default_name(event_type: str | None, sink: str, expression: str | None = None) -> str:
    # The filter is part of the digest, so one sink may subscribe with several.
    digest = hashlib.sha256(
        sink.encode() if expression is None else f"{sink}\n{expression}".encode()
    ).hexdigest()[:8]
    return f"sub-{resolve(event_type).short if event_type else 'filter'}-{digest}"


_cluster_options = [
    click.option("--namespace", "-n", default="troupe", show_default=True),
    click.option("--kubeconfig", type=click.Path(dir_okay=False, path_type=Path),
                 help="Kubeconfig of the cluster [default: the local runtime, else the usual "
                      "kubeconfig]."),
    click.option("--context", help="Kubeconfig context."),
]


def cluster_options(function: Any) -> Any:
    for option in reversed(_cluster_options):
        function = option(function)
    return function


@cli.command()
@click.option("--type", "event_type", metavar="TYPE",
              help="The lifecycle event to receive (short name or full type).")
@click.option("--source", help="Only events from this source.")
@click.option("--filter", "expression", metavar="CESQL",
              help="Only events this CESQL expression is true for (a cesql filter), e.g. "
                   "\"type LIKE 'dev.troupe.model.%' AND modelversion <> 'v1'\".")
@click.option("--sink", metavar="URL", help="Where to send the events.")
@click.option("--service", metavar="NAME", help="A Knative Service to send the events to.")
@click.option("--name", help="The Trigger's name [default: derived from type, filter and sink].")
@click.option("--broker", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the Trigger as JSON.")
@cluster_options
def subscribe(event_type: str | None, source: str | None, expression: str | None,
              sink: str | None, service: str | None, name: str | None, broker: str,
              as_json: bool, namespace: str, kubeconfig: Path | None,
              context: str | None) -> None:
    """Create a Trigger that delivers a lifecycle event type, or the events a CESQL
    expression selects, to your sink."""
    from troupe.knative import KnativeError, ResourceConflictError, trigger_manifest

    if event_type is None and expression is None:
        raise click.UsageError("give --type TYPE, --filter CESQL, or both")
    full_type = None
    if event_type is not None:
        try:
            full_type = resolve(event_type).type
        except EventError as error:
            raise click.BadParameter(str(error), param_hint="--type") from None
    if expression is not None:
        cesql_filter(expression)  # refuse it here, with a caret, before any cluster
    if (sink is None) == (service is None):
        raise click.UsageError("give exactly one of --sink URL or --service NAME")
    name = name or default_name(full_type, sink or str(service), expression)
    attributes = {**({"type": full_type} if full_type else {}),
                  **({"source": source} if source else {})}
    # With a CESQL expression the Trigger uses spec.filters, where Knative then ignores
    # spec.filter: the type and source become exact filters beside it.
    filters: list[dict[str, Any]] | None = None if expression is None else [
        *({"exact": {key: value}} for key, value in attributes.items()), {"cesql": expression}]
    cluster = _cluster(str(kubeconfig) if kubeconfig else None, context)
    try:
        trigger = cluster.create_trigger(trigger_manifest(
            namespace, name, broker=broker, filter_attributes=None if filters else attributes,
            filters=filters, sink_uri=sink, service=service, labels=_MANAGED_BY))
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    except ResourceConflictError:
        raise click.ClickException(
            f"a Trigger named {name} already exists in {namespace}: pick another --name, or "
            f"remove it with `troupe unsubscribe {name}`"
        ) from None
    except KnativeError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        echo_json(trigger)
    else:
        selected = " and ".join(part for part in (
            full_type, f"events where {expression}" if expression else None) if part)
        click.echo(f"trigger {name} delivers {selected} from broker {namespace}/{broker} "
                   f"to {sink or 'service ' + str(service)}")


@cli.command()
@click.argument("name")
@cluster_options
def unsubscribe(name: str, namespace: str, kubeconfig: Path | None,
                context: str | None) -> None:
    """Delete the Trigger NAME that `troupe subscribe` created."""
    from troupe.knative import KnativeError, ResourceNotFoundError

    cluster = _cluster(str(kubeconfig) if kubeconfig else None, context)
    try:
        cluster.delete_trigger(namespace, name)
    except ResourceNotFoundError:
        raise click.ClickException(f"no Trigger named {name} in {namespace}") from None
    except KnativeError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"trigger {name} removed")
