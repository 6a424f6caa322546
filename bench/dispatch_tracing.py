"""The data plane's throughput with tracing on, beside the same with tracing off, measured
in the same interleaved rounds (bench/dispatch.py).

Two data planes run side by side on the same Kafka and the same sink: the usual one, and
one started with `--spans FILE`, which records the ingress, the wait in Kafka and each
delivery attempt of every event, and appends them to FILE as `troupe up` keeps them.
Each has a Broker with one Trigger of its own (its own topic and consumer group); while
one is measured, the other is idle. Beside the throughput, the CPU each data plane spent
per event over the same rounds (/proc/<pid>/stat), which says what tracing costs when
the machine is not the limit.
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
BROKER = "one"


def _traced_eventing(folder: Path, sink_url: str, event_type: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    documents: list[dict[str, Any]] = [
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
         "metadata": {"name": BROKER, "namespace": TRACED_NAMESPACE}},
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
         "metadata": {"name": "one-match", "namespace": TRACED_NAMESPACE},
         "spec": {"broker": BROKER, "subscriber": {"uri": sink_url},
                  "filter": {"attributes": {"type": event_type}}}}]
    (folder / "300-bench.yaml").write_text(yaml.safe_dump_all(documents))


def tracing_figures(stack: ExitStack, workdir: Path, env: dict[str, str], sink: int,
                    untraced: tuple[int, int], start: Callable[..., str],
                    throughput: Callable[[int, int, str, str], float],
                    cpu_seconds: Callable[[int], float], namespace: str,
                    rounds: int, count: int, connections: int, benchmark: str) -> list[Figure]:
    """`untraced` is the usual data plane's (ingress port, pid); `start(stack, command,
    env, pids)` starts a process and returns its first line; `throughput(ingress, sink,
    namespace, broker)` measures one round; `cpu_seconds(pid)` reads a process's CPU."""
    spans = workdir / "spans.jsonl"
    _traced_eventing(workdir / "eventing-traced", f"http://127.0.0.1:{sink}/", "bench.match")
    pids: list[int] = []
    traced_url = start(stack, [sys.executable, "-m", "troupe.local.eventing.broker",
                               "--eventing", str(workdir / "eventing-traced"),
                               "--spans", str(spans)], env, pids)
    traced = (int(traced_url.rsplit(":", 1)[1]), pids[0])
    throughput(traced[0], sink, TRACED_NAMESPACE, BROKER)  # warm-up
    off: list[float] = []
    on: list[float] = []
    cpu = {untraced[1]: 0.0, traced[1]: 0.0}
    for number in range(rounds):  # which goes first alternates
        pair = [(off, untraced, namespace), (on, traced, TRACED_NAMESPACE)]
        for rates, (ingress, pid), space in (pair if number % 2 == 0 else pair[::-1]):
            before = cpu_seconds(pid)
            rates.append(throughput(ingress, sink, space, BROKER))
            cpu[pid] += cpu_seconds(pid) - before
    recorded = sum(1 for _ in read_span_file(spans))
    per_event = recorded / (count * (rounds + 1))
    events = count * rounds
    return [Figure(benchmark, f"throughput with tracing on ({connections} connections, median "
                   f"of {rounds}), 1 trigger; {per_event:.1f} spans kept per event "
                   "(flushed so far)", statistics.median(on), "events/s",
                   "the same with tracing off, same rounds", statistics.median(off)),
            Figure(benchmark, f"data-plane CPU per event with tracing on ({rounds} rounds)",
                   cpu[traced[1]] / events * 1e6, "µs", "the same with tracing off",
                   cpu[untraced[1]] / events * 1e6)]
