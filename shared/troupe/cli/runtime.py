"""`troupe up`, `troupe down` and `troupe status`: the local runtime from the terminal."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import requests

from troupe.cli import cli
from troupe.cli._capacity_output import format_seconds
from troupe.cli._common import (
    RUNTIME_FILE,
    api_headers,
    echo_json,
    find_project,
    runtime_info,
)
from troupe.local.controlplane.manifests import ManifestError
from troupe.local.controlplane.saved_objects import SavedStateError
from troupe.local.errors import LocalError
from troupe.local.host.private_files import write_owner_only
from troupe.local.host.processes import process_alive
from troupe.local.runtime import STOP_BUDGET_S, Runtime, RuntimeOptions
from troupe.local.serving.controller import ServingSettings

_READY_TIMEOUT = 120.0
_project_option = click.option(
    "--project", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="The project folder holding knative/ and eventing/ (default: this repository).")


def _running_info(project: Path) -> dict[str, Any] | None:
    info = runtime_info(project)
    if info and isinstance(info.get("pid"), int) and process_alive(info["pid"]):
        return info
    return None


def _write_state(project: Path, runtime: Runtime) -> dict[str, Any]:
    brokers = runtime.broker_urls()
    info: dict[str, Any] = {
        "pid": os.getpid(), "project": str(project), "ready": True,
        "api_url": runtime.api_url, "api_token": runtime.api_token,
        "api_ca_file": str(runtime.api_ca_file.resolve()),
        "kubeconfig": str(runtime.kubeconfig.resolve()),
        "dashboard_url": runtime.dashboard_url,
        "broker_url": brokers[0] if brokers else None, "broker_urls": brokers,
        "prometheus_url": runtime.observability.url if runtime.observability else None,
        "store_url": runtime.store_url,
        **runtime.data_plane_info(),
    }
    # Owner-only: it holds the API's token, as the kubeconfig does, and the
    # dashboard's link, which carries the same token.
    write_owner_only(project / RUNTIME_FILE, json.dumps(info, indent=2).encode())
    return info


def _announce(info: dict[str, Any]) -> None:
    for url in info["broker_urls"]:
        click.echo(f"broker      {url}")
    click.echo(f"api         {info['api_url']}")
    click.echo(f"dashboard   {info['dashboard_url']}")
    click.echo(f"kubeconfig  {info['kubeconfig']}")
    if info.get("prometheus_url"):
        click.echo(f"prometheus  {info['prometheus_url']}")


def purge(root: Path, yes: bool) -> None:
    """Remove what earlier runs kept, after saying what; ask first on a terminal."""
    kept = RuntimeOptions(project=root).kept_state()
    if not kept:
        click.echo("nothing kept from earlier runs: starting from nothing", err=True)
        return
    click.echo("starting from nothing removes what earlier runs kept:", err=True)
    for path in kept:
        click.echo(f"  {path}", err=True)
    if not yes and sys.stdin.isatty() and not click.confirm("remove these?", err=True):
        raise click.ClickException("nothing removed")
    for path in kept:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    click.echo("removed", err=True)


_yes_option = click.option("--yes", "-y", is_flag=True,
                           help="Do not ask before removing (implied without a terminal).")


@cli.command()
@_project_option
@click.option("--port", type=int, default=0, show_default=True,
              help="Port of the broker ingress on 127.0.0.1 (0 picks a free one).")
@click.option("--detach", is_flag=True, help="Run in the background; return once ready.")
@click.option("--grace-period", type=float, default=30.0, show_default=True,
              help="Seconds an idle function process lives without a retention annotation.")
@click.option("--fresh", is_flag=True,
              help="Start from nothing: remove the objects, store, metrics and logs that "
                   "earlier runs kept.")
@click.option("--allow-external-sinks", is_flag=True,
              help="Let Triggers and sources deliver to addresses off this machine (by "
                   "default only loopback addresses and the runtime's own Services and "
                   "Brokers).")
@click.option("--no-prewarm", is_flag=True,
              help="Start every function process afresh, instead of forking it from a "
                   "template process that has imported the functions' libraries already.")
@_yes_option
def up(project: Path | None, port: int, detach: bool, grace_period: float, fresh: bool,
       allow_external_sinks: bool, no_prewarm: bool, yes: bool) -> None:
    """Run the project's knative/ and eventing/ manifests on this machine.

    The objects of the last run (Services as the deployer left them, their revisions,
    Triggers made through the API) and the store are kept, and the manifests are applied
    on top of them; `--fresh` starts from nothing."""
    root = (project or find_project()).resolve()
    running = _running_info(root)
    if running:
        raise click.ClickException(f"the runtime is already up for {root} (pid {running['pid']})"
                                   "; stop it with `troupe down` first")
    if fresh:
        purge(root, yes)
    if detach:
        _up_detached(root, port, grace_period, allow_external_sinks,
                     prewarm=not no_prewarm)
        return
    options = RuntimeOptions(project=root, port=port,
                             serving=ServingSettings(grace_period=grace_period),
                             allow_external_sinks=allow_external_sinks,
                             prewarm=not no_prewarm)
    runtime = Runtime(options, say=lambda line: click.echo(line, err=True))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        runtime.start()
    except ManifestError as error:
        raise click.ClickException(f"invalid manifest: {error}") from None
    except SavedStateError as error:
        raise click.ClickException(f"cannot restore the last run's objects: {error}") from None
    except LocalError as error:  # Kafka or Prometheus did not start: one line, no traceback
        raise click.ClickException(f"the runtime could not start: {error}") from None
    try:
        _announce(_write_state(root, runtime))
        click.echo("ready; Ctrl-C stops everything", err=True)
        stop.wait()
        click.echo("stopping...", err=True)
    finally:
        clean = runtime.shutdown()
        (root / RUNTIME_FILE).unlink(missing_ok=True)
    if not clean:
        # Threads stuck on what was killed must not hold the exit (nor its atexit hooks).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def _up_detached(root: Path, port: int, grace_period: float,
                 allow_external_sinks: bool = False, *, prewarm: bool = True) -> None:
    log_path = root / ".troupe" / "runtime.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    (root / RUNTIME_FILE).unlink(missing_ok=True)
    command = [sys.executable, "-c",
               "import troupe.cli.runtime; from troupe.cli import main; main()",
               "up", "--project", str(root), "--port", str(port),
               "--grace-period", str(grace_period),
               *(["--allow-external-sinks"] if allow_external_sinks else []),
               *([] if prewarm else ["--no-prewarm"])]
    with open(log_path, "ab") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        info = runtime_info(root)
        if info and info.get("pid") == child.pid and info.get("ready"):
            _announce(info)
            click.echo(f"running in the background (pid {child.pid}, log {log_path})", err=True)
            return
        if child.poll() is not None:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-10:])
            raise click.ClickException(f"the runtime exited while starting:\n{tail}")
        time.sleep(0.1)
    child.terminate()
    raise click.ClickException(f"the runtime was not ready after {_READY_TIMEOUT:.0f}s; "
                               f"see {log_path}")


@cli.command()
@_project_option
@click.option("--purge", "purge_kept", is_flag=True,
              help="Also remove the objects, store, metrics and logs kept for the next run.")
@_yes_option
def down(project: Path | None, purge_kept: bool, yes: bool) -> None:
    """Stop the runtime that `troupe up --detach` started."""
    root = (project or find_project()).resolve()
    _stop(root)
    if purge_kept:
        purge(root, yes)


def _stop(root: Path) -> None:
    info = _running_info(root)
    if info is None:
        (root / RUNTIME_FILE).unlink(missing_ok=True)
        click.echo(f"the runtime is not running for {root}")
        return
    os.kill(info["pid"], signal.SIGTERM)
    # The runtime kills what it could not stop within STOP_BUDGET_S; past that, it is
    # stuck itself: SIGKILL it and the Kafka it started (in a session of its own).
    deadline = time.monotonic() + STOP_BUDGET_S + 2
    while process_alive(info["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    if process_alive(info["pid"]):
        for pid in (info["pid"], info.get("kafka_pid")):
            if pid and process_alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        (root / RUNTIME_FILE).unlink(missing_ok=True)
        click.echo(f"the runtime (pid {info['pid']}) did not stop within "
                   f"{STOP_BUDGET_S + 2:.0f} s: killed")
        return
    click.echo("stopped")


def _template_line(template: dict[str, Any]) -> str:
    """Where instances come from: the prewarmed template (its PID and memory), or not."""
    if template["state"] == "off":
        return "template off: every instance starts as a fresh process (--no-prewarm)"
    if template["state"] != "ready":
        problem = template.get("problem") or "still preloading"
        return f"template {template['state']}: instances start as fresh processes ({problem})"
    rss = template.get("rss_mib")
    memory = f"RSS {rss:.0f} MiB" if rss is not None else "RSS unknown"
    failed = template.get("failed_imports") or {}
    skipped = f", {len(failed)} could not load" if failed else ""
    return (f"template pid {template['pid']}, {memory}, {template['preloaded']} modules "
            f"preloaded{skipped}")


@cli.command()
@_project_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(project: Path | None, as_json: bool) -> None:
    """Show services (readiness, instances, revisions, traffic) and triggers."""
    root = (project or find_project()).resolve()
    info = _running_info(root)
    if info is None:
        raise click.ClickException(f"the runtime is not running for {root}: start it with "
                                   "`troupe up --detach`")
    try:
        state = requests.get(f"{info['api_url']}/troupe/status", headers=api_headers(info),
                             verify=info.get("api_ca_file", True), timeout=10).json()
    except (requests.RequestException, ValueError) as error:
        raise click.ClickException(
            f"the runtime at {info['api_url']} did not answer: {error}") from None
    if as_json:
        echo_json(state)
        return
    click.echo(f"api {state['api']}   kubeconfig {state['kubeconfig']}")
    click.echo(f"kafka {state.get('kafka', 'unknown')}")
    for url in state["brokers"]:
        click.echo(f"broker {url}")
    click.echo(f"prometheus {state['prometheus'] or 'unavailable'}")
    click.echo(_template_line(state.get("template") or {"state": "off"}))
    click.echo("\nSERVICE              READY  INSTANCES  RHO   P95 WAIT  URL"
               "                      TRAFFIC")
    for service in state["services"]:
        traffic = ", ".join(f"{t['revisionName']}={t['percent']}%"
                            + (f" (tag {t['tag']})" if t.get("tag") else "")
                            for t in service["traffic"])
        rho, p95 = service.get("utilization"), service.get("predicted_p95_wait_s")
        click.echo(f"{service['name']:<20} {'yes' if service['ready'] else 'NO':<6} "
                   f"{service['instances']:<10} {'-' if rho is None else f'{rho:.0%}':<5} "
                   f"{'-' if p95 is None else format_seconds(p95):<9} "
                   f"{service['url']:<24} {traffic}")
        for revision in service["revisions"]:
            if not revision["ready"] and revision.get("reason") not in (None, "", "Deploying"):
                # Why a revision failed to start: its reason and the last lines of its log.
                click.echo(f"  revision {revision['name']} is not ready ({revision['reason']})")
                for line in str(revision.get("message") or "").splitlines()[-10:]:
                    click.echo(f"    {line}")
    click.echo("RHO: utilisation over the last window; P95 WAIT: the queueing model's "
               "predicted wait for an instance (troupe capacity)")
    click.echo("\nTRIGGER              BROKER     READY  LAG     WHY NOT READY")
    for trigger in state["triggers"]:
        why = "" if trigger["ready"] else trigger.get("reason") or ""
        click.echo(f"{trigger['name']:<20} {trigger['broker']:<10} "
                   f"{'yes' if trigger['ready'] else 'NO':<6} {trigger.get('lag', '-')!s:<7} "
                   f"{why}".rstrip())
