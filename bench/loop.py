"""Choreography overhead of one lifecycle run: data-arrived to model-deployed.

What is measured. A CSV dataset is written into the store of a real `troupe up` (Kafka,
broker, Triggers, functions started on demand, Prometheus: everything the manifests
declare), and `data-arrived` is POSTed to the broker ingress. The run is followed through
the event log until the `model-deployed` with the same runid:

    data-arrived -> ingest -> data-validated -> trainer -> training-finished
      -> evaluator -> model-approved -> deployer -> model-deployed

- end-to-end: from just before the POST (wall clock) to the Kafka append time of that
  `model-deployed` (the data plane stamps records on the same machine clock). Using the
  log's timestamp, not the time this process read it, keeps the watcher's own polling
  out of the figure.
- handler time: the sum of `duration_ms` from the one JSON line per delivery that the
  four functions write (ingest, trainer, evaluator, deployer, matched by runid), retries
  included. That duration covers the function's whole in-process work on a delivery
  (decoding, schema check, reply cache, handler), so it errs on the side of a smaller
  overhead.
- overhead = end-to-end - handler time: ingress, Kafka, Trigger dispatch, the activator
  and process starts, re-publishing each reply. Per step, stderr shows the gap between
  consecutive events in the log, the handler time and the process start time inside it
  (the runtime's troupe_runtime_cold_start_seconds), which tells where the overhead goes.

Cold and warm. "Cold" is the first run after `troupe up` (every function at zero), and a
second one after the scale-to-zero grace period has stopped every function again. "Warm"
runs right after the first cold one, while every process is up; its figure is the median
of WARM_RUNS runs, and a warm run that finds a function at zero fails the benchmark
rather than pass a cold figure off as warm. Both cold runs are measured twice, each time
on a fresh copy of the project: with instances forked from the prewarmed template (the
default), and with `troupe up --no-prewarm`, where every instance is a fresh process; the
prewarmed overhead is also shown against the --no-prewarm one of the same kind of run.
A cold run that finds one of the chain's functions up fails the benchmark, as a warm run
that finds one at zero does.

Why the copy's revisions start at zero (initial-scale 0). A new revision starts at its
initial scale, one instance by default, as Knative's do, so a user's first run after `up`
finds every function up, or starting. The cold-after-up figure is about the first starts
on a fresh runtime, and it is the one compared with earlier sessions, from before revisions
started at their initial scale: without this, it would measure warm instances with the
template and instances half-started without it.

Why end-to-end is compared too. Functions load pandas and scikit-learn on their first
event (lean imports), so without the template the first event's handler time includes
those imports, and "overhead" (which subtracts handler time) understates what a cold
start costs there. The cold end-to-end time, prewarmed against --no-prewarm, and each
against the warm median, shows all of it.

Why every run sends the same data for the same model, with TROUPE_TRAIN_ON_ARRIVAL=always.
The shipped ConfigMap says `first`: only the first dataset of a model trains on arrival, so
a second data-arrived would stop at the trainer. Another model name is no way out either:
the deployer names predictor revisions `predictor-<version>` whatever the model, so a
second model's v1 collides with the first model's `predictor-v1` and is answered as
"already rolled out" without any rollout, which would flatter the warm figure. So the
temporary copy of the project sets `always` (the trainer's own default) and every run
publishes the same rows: each run then does the same work in every handler (ingest
re-checks the dataset, the trainer fits the same model, the evaluator approves a version
that ties the champion, the deployer rolls it out as a canary revision), so cold and warm
differ only in what the choreography costs. The shipped manifests are otherwise unchanged.
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families
from troupe.cli._common import api_headers
from troupe.client.broker import post_event
from troupe.client.eventlog import LoggedEvent, read_events
from troupe.demo.data import FEATURES, TARGET, DriftingSource
from troupe.events import (
    DATA_ARRIVED,
    DATA_REJECTED,
    DATA_VALIDATED,
    MODEL_APPROVED,
    MODEL_DEPLOYED,
    MODEL_REJECTED,
    RUNID,
    TRAINING_FAILED,
    TRAINING_FINISHED,
    make_event,
    resolve,
)
from troupe.store import Store

from bench._loop_runtime import copy_project, down, up
from bench.report import Figure

NAME = "loop"
CHAIN = ("ingest", "trainer", "evaluator", "deployer")
ROWS = 1500  # the demo's batch size
SEED = 7
# The model the shipped predictor and deployer serve (TROUPE_MODEL_NAME); the runtime runs
# on a fresh copy of the project, so its versions start at v1.
MODEL = "default"
WARM_RUNS = 3
# Longer than `troupe up`'s 30 s default: on a loaded machine (2 cores shared with test
# suites) one cold run took over 50 s, and the warm runs must find every function still up.
GRACE_PERIOD_S = 45.0
RUN_TIMEOUT_S = 90.0
# The events of one run, in order; the n-th function answers the n-th and emits the next.
STEPS = (DATA_ARRIVED, DATA_VALIDATED, TRAINING_FINISHED, MODEL_APPROVED, MODEL_DEPLOYED)
_FAILED = {resolve(t).type for t in (DATA_REJECTED, TRAINING_FAILED, MODEL_REJECTED)}


@dataclass
class LoopRun:
    label: str
    end_to_end_s: float = 0.0
    handler_s: float = 0.0
    cold_services: list[str] = field(default_factory=list)  # at zero when published
    hops: list[str] = field(default_factory=list)  # where the time went, for the reader
    process_start_s: float = 0.0  # the runtime's own count: launch until accepting requests

    @property
    def overhead_s(self) -> float:
        return self.end_to_end_s - self.handler_s


# -- one run -----------------------------------------------------------------------------
class Loop:
    def __init__(self, info: dict[str, Any], project: Path) -> None:
        self.info = info
        self.logs = project / ".troupe" / "logs"
        self.store = Store(info["store_url"])
        self.data = DriftingSource(seed=SEED).batch_csv(ROWS)

    def instances(self) -> dict[str, int]:
        status = requests.get(f"{self.info['api_url']}/troupe/status", timeout=10,
                              headers=api_headers(self.info),
                              verify=self.info["api_ca_file"]).json()
        return {s["name"]: int(s["instances"]) for s in status["services"]}

    def at_zero(self) -> list[str]:
        running = self.instances()
        return [name for name in CHAIN if not running.get(name)]

    def wait_scaled_to_zero(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(self.instances().get(name, 0) for name in CHAIN):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the functions were not at zero within {timeout:.0f} s: "
                                   f"{self.instances()}")
            time.sleep(0.5)  # polling the runtime's status, with a deadline

    def start_seconds(self) -> dict[str, float]:
        """Seconds the runtime spent starting each function's processes, so far."""
        text = requests.get(f"{self.info['api_url']}/metrics", timeout=10,
                            headers=api_headers(self.info), verify=self.info["api_ca_file"]).text
        spent: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "troupe_runtime_cold_start_seconds_sum":
                    service = sample.labels["service"]
                    spent[service] = spent.get(service, 0.0) + sample.value
        return spent

    def run(self, label: str) -> LoopRun:
        result = LoopRun(label)
        running = self.instances()
        starts_before = self.start_seconds()
        result.cold_services = [name for name in CHAIN if not running.get(name)]
        key = f"incoming/bench-loop-{label}.csv"
        self.store.write_bytes(key, self.data)
        event = make_event(
            DATA_ARRIVED,
            {"uri": key, "format": "csv", "target": TARGET, "features": list(FEATURES),
             "classes": [0, 1], "model": MODEL},
            source="/bench/loop",
        )
        runid = str(event.get_extension(RUNID) or event.get_id())
        published = time.time()
        post_event(self.info["broker_url"], event)
        steps = self._follow(runid, published)
        result.end_to_end_s = steps[-1].timestamp_ms / 1000 - published
        durations = self._handler_durations(runid)
        result.handler_s = sum(sum(d) for d in durations.values())
        starts = self.start_seconds()
        starting = {name: starts.get(name, 0.0) - starts_before.get(name, 0.0) for name in CHAIN}
        result.process_start_s = sum(starting.values())
        result.hops = _hops(published, steps, durations, starting)
        return result

    def _follow(self, runid: str, published: float) -> list[LoggedEvent]:
        """The run's STEPS as the log holds them (first appearance of each type).

        Partitions are read side by side, so model-deployed may come before an earlier
        step of another partition: reading goes on until every step has been seen."""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        since = datetime.fromtimestamp(published, UTC) - timedelta(seconds=1)
        steps: dict[str, LoggedEvent] = {}
        for logged in read_events(self.info["bootstrap_servers"], self.info["topic"],
                                  since=since, follow=True,
                                  stop=lambda: time.monotonic() > deadline):
            event = logged.event
            if str(event.get_extension(RUNID)) != runid:
                continue
            if event.get_type() in _FAILED:
                raise RuntimeError(f"the run ended in {event.get_type()}: {event.get_data()!r}")
            # at-least-once: the log may hold a redelivered reply twice; the first counts
            steps.setdefault(event.get_type(), logged)
            if all(step in steps for step in STEPS):
                return [steps[step] for step in STEPS]
        seen = sorted(steps)
        raise RuntimeError(f"no model-deployed for run {runid} within {RUN_TIMEOUT_S:.0f} s "
                           f"(the log held only {seen}): a function failed, or the machine is too "
                           "loaded to finish a run in time")

    def _handler_durations(self, runid: str) -> dict[str, list[float]]:
        """Seconds per delivery of this run, by function, from the functions' event lines.

        The deployer's line is written after its reply has been sent, so it is waited for
        briefly: the reply can reach the log before the line reaches the file."""
        deadline = time.monotonic() + 10
        while True:
            found: dict[str, list[float]] = {name: [] for name in CHAIN}
            for path in sorted(self.logs.glob("*.log")):
                for line in path.read_text(errors="replace").splitlines():
                    if not line.startswith("{"):
                        continue
                    try:
                        fields = json.loads(line)
                    except ValueError:
                        continue
                    if fields.get("runid") == runid and fields.get("service") in found:
                        found[fields["service"]].append(float(fields["duration_ms"]) / 1000)
            if all(found.values()) or time.monotonic() > deadline:
                missing = [name for name, d in found.items() if not d]
                if missing:
                    raise RuntimeError(f"no event log line of {missing} for run {runid}")
                return found
            time.sleep(0.1)  # polling log files another process writes, with a deadline


def _hops(published: float, steps: list[LoggedEvent], durations: dict[str, list[float]],
          starting: dict[str, float]) -> list[str]:
    """Per step: the gap between one event and the next in the log, the handler time and
    the process start inside it; the rest of each gap is dispatch, Kafka and re-publishing."""
    hops = [f"publish->log {steps[0].timestamp_ms / 1000 - published:.2f}s"]
    for service, (before, after) in zip(CHAIN, itertools.pairwise(steps), strict=True):
        gap = (after.timestamp_ms - before.timestamp_ms) / 1000
        inside = sum(durations[service])
        hops.append(f"{service} {gap:.2f}s (handler {inside:.2f}s in "
                    f"{len(durations[service])} deliveries, process start "
                    f"{starting[service]:.2f}s)")
    return hops


# -- the benchmark -----------------------------------------------------------------------
def _show(run: LoopRun) -> LoopRun:
    print(f"  {run.label}: end-to-end {run.end_to_end_s:.2f}s, handlers "
          f"{run.handler_s:.2f}s, overhead {run.overhead_s:.2f}s of which process "
          f"starts {run.process_start_s:.2f}s; at zero when published: "
          f"{', '.join(run.cold_services) or 'none'}\n    " + "; ".join(run.hops),
          file=sys.stderr, flush=True)
    return run


def _cold(run: LoopRun) -> LoopRun:
    """A cold run, shown; one that found a function of the chain up is no cold figure."""
    _show(run)
    if set(run.cold_services) != set(CHAIN):
        up = sorted(set(CHAIN) - set(run.cold_services))
        raise RuntimeError(f"{run.label} found {', '.join(up)} up: a cold run needs every "
                           "function at zero when it is published")
    return run


def _warm_runs(loop: Loop) -> list[LoopRun]:
    """WARM_RUNS runs with every function up. On a loaded machine the cold run can outlast
    the grace period, so an unmeasured run first brings back any function already stopped."""
    if loop.at_zero():
        _show(loop.run("warm-up, not measured"))
    warm = []
    for number in range(1, WARM_RUNS + 1):
        measured = _show(loop.run(f"warm-{number}"))
        if measured.cold_services:
            raise RuntimeError(
                f"{measured.label} found {', '.join(measured.cold_services)} at zero: a run "
                f"takes longer than the {GRACE_PERIOD_S:.0f} s grace period on this machine "
                "now, so it is too loaded to measure warm services; run the benchmark again "
                "when it is quieter")
        warm.append(measured)
    return warm


@dataclass
class Measured:
    """The runs of one way of starting functions (prewarmed, or --no-prewarm)."""

    cold: LoopRun
    cold_again: LoopRun
    warm: list[LoopRun] = field(default_factory=list)


def _measure(*options: str, warm: bool) -> Measured:
    """Cold after up, WARM_RUNS warm runs when `warm`, then cold after the grace period, on
    a fresh copy of the project (so that each way's first run finds no champion either)."""
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as folder:
        project = copy_project(Path(folder))
        pid: int | None = None
        try:
            info = up(project, *options, grace_period_s=GRACE_PERIOD_S)
            pid = int(info["pid"])
            loop = Loop(info, project)
            way = " (no prewarm)" if options else ""
            cold = _cold(loop.run(f"cold-after-up{way}"))
            warm_runs = _warm_runs(loop) if warm else []
            loop.wait_scaled_to_zero(GRACE_PERIOD_S + 60)
            cold_again = _cold(loop.run(f"cold-after-grace{way}"))
        finally:
            down(project, pid)
    return Measured(cold, cold_again, warm_runs)


def run() -> list[Figure]:
    prewarmed = _measure(warm=True)
    fresh = _measure("--no-prewarm", warm=False)
    warm = prewarmed.warm
    middle = sorted(warm, key=lambda w: w.overhead_s)[len(warm) // 2]  # the median run
    overhead = "choreography overhead (publish->model-deployed minus handler time)"
    handlers = "summed handler time, same run"
    end_to_end = "publish->model-deployed, same run"
    figures = []
    for mode, measured in (("cold after up", prewarmed.cold),
                           ("cold after grace", prewarmed.cold_again),
                           ("cold after up, --no-prewarm", fresh.cold),
                           ("cold after grace, --no-prewarm", fresh.cold_again),
                           (f"warm, median of {len(warm)}", middle)):
        figures += [
            Figure(NAME, f"{overhead}, {mode}", measured.overhead_s, "s",
                   f"{handlers} ({mode})", measured.handler_s),
            Figure(NAME, f"{overhead}, {mode}", measured.overhead_s, "s",
                   f"{end_to_end} ({mode})", measured.end_to_end_s),
        ]
    for mode, with_template, without in (("cold after up", prewarmed.cold, fresh.cold),
                                         ("cold after grace", prewarmed.cold_again,
                                          fresh.cold_again)):
        figures += [
            Figure(NAME, f"{overhead}, {mode}, prewarmed", with_template.overhead_s, "s",
                   "the same, --no-prewarm", without.overhead_s),
            Figure(NAME, f"publish->model-deployed, {mode}, prewarmed",
                   with_template.end_to_end_s, "s", "the same, --no-prewarm",
                   without.end_to_end_s),
        ]
    for mode, measured in (("cold after up", prewarmed.cold),
                           ("cold after grace", prewarmed.cold_again),
                           ("cold after up, --no-prewarm", fresh.cold),
                           ("cold after grace, --no-prewarm", fresh.cold_again)):
        figures.append(Figure(NAME, f"publish->model-deployed, {mode}", measured.end_to_end_s,
                              "s", f"the same, warm (median of {len(warm)}, prewarmed runtime)",
                              middle.end_to_end_s))
    spread = [w.overhead_s for w in warm]
    print(f"  warm overheads: {', '.join(f'{s:.2f}s' for s in spread)} "
          f"(median {statistics.median(spread):.2f}s)", file=sys.stderr)
    return figures


if __name__ == "__main__":
    from bench.report import render

    print(render(run()))
