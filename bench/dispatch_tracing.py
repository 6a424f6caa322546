"""The data plane's throughput with tracing on, beside the same with tracing off, measured
in the same interleaved rounds (bench/dispatch.py).

Two data planes made alike run side by side on the same Kafka and the same sink, each with
one Broker and one Trigger of its own (its own topic and consumer group): one started with
`--spans FILE`, which records the ingress, the wait in Kafka and each delivery attempt of
every event and appends them to FILE as `troupe up` keeps them, and one without. While one
is measured, the other is idle. A round measures both, back to back, in alternating order;
the figure is the median of the rounds' ratios, so that a change in the machine's load
between rounds (it is shared) cancels out, and the spread of the ratios is printed beside
it. Beside the throughput, the CPU each data plane spent per event over the same rounds
(/proc/<pid>/stat), which says what tracing costs when the machine is not the limit.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml
from troupe.traces import read_span_file

from bench.report import Figure

TRACED_NAMESPACE = "bench-traced"
UNTRACED_NAMESPACE = "bench-untraced"
BROKER = "one"
# More than the other throughput figures: single rounds vary by ±30% on a shared machine
# (two untraced planes measured so: 0.67-1.19x), and the ratio is the point.
ROUNDS = 21


def _plane_eventing(folder: Path, namespace: str, sink_url: str, event_type: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    documents: list[dict[str, Any]] = [
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
         "metadata": {"name": BROKER, "namespace": namespace}},
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
         "metadata": {"name": "one-match", "namespace": namespace},
         "spec": {"broker": BROKER, "subscriber": {"uri": sink_url},
                  "filter": {"attributes": {"type": event_type}}}}]
    (folder / "300-bench.yaml").write_text(yaml.safe_dump_all(documents))


def tracing_figures(stack: ExitStack, workdir: Path, env: dict[str, str], sink: int,
                    start: Callable[..., str], throughput: Callable[[int, int, str, str], float],
                    cpu_seconds: Callable[[int], float], count: int, connections: int,
                    benchmark: str) -> list[Figure]:
    """`start(stack, command, env, pids)` starts a process and returns its first line;
    `throughput(ingress, sink, namespace, broker)` measures one round; `cpu_seconds(pid)`
    reads a process's CPU."""
    spans = workdir / "spans.jsonl"
    planes: dict[str, tuple[int, int]] = {}  # namespace -> (ingress port, pid)
    for namespace, traced in ((UNTRACED_NAMESPACE, False), (TRACED_NAMESPACE, True)):
        folder = workdir / f"eventing-{namespace}"
        _plane_eventing(folder, namespace, f"http://127.0.0.1:{sink}/", "bench.match")
        pids: list[int] = []
        url = start(stack, [sys.executable, "-m", "troupe.local.eventing.broker",
                            "--eventing", str(folder),
                            *(["--spans", str(spans)] if traced else [])], env, pids)
        planes[namespace] = (int(url.rsplit(":", 1)[1]), pids[0])
        throughput(planes[namespace][0], sink, namespace, BROKER)  # warm-up
    rates: dict[str, list[float]] = {UNTRACED_NAMESPACE: [], TRACED_NAMESPACE: []}
    cpu = dict.fromkeys(rates, 0.0)
    for number in range(ROUNDS):  # which goes first alternates
        order = [UNTRACED_NAMESPACE, TRACED_NAMESPACE]
        for namespace in (order if number % 2 == 0 else order[::-1]):
            ingress, pid = planes[namespace]
            before = cpu_seconds(pid)
            rates[namespace].append(throughput(ingress, sink, namespace, BROKER))
            cpu[namespace] += cpu_seconds(pid) - before
    on, off = rates[TRACED_NAMESPACE], rates[UNTRACED_NAMESPACE]
    ratios = sorted(traced / untraced for traced, untraced in zip(on, off, strict=True))
    recorded = sum(1 for _ in read_span_file(spans))
    per_event = recorded / (count * (ROUNDS + 1))
    events = count * ROUNDS
    median_ratio = statistics.median(ratios)
    return [Figure(benchmark, f"throughput with tracing on ({connections} connections, 1 "
                   f"trigger), median of {ROUNDS} rounds' ratios (each round's ratio "
                   f"{ratios[0]:.2f}-{ratios[-1]:.2f}x); {per_event:.1f} spans kept per event",
                   statistics.median(off) * median_ratio, "events/s",
                   "the same with tracing off, median of the same rounds",
                   statistics.median(off)),
            Figure(benchmark, f"data-plane CPU per event with tracing on ({ROUNDS} rounds)",
                   cpu[TRACED_NAMESPACE] / events * 1e6, "µs", "the same with tracing off",
                   cpu[UNTRACED_NAMESPACE] / events * 1e6)]
