"""Part 2 of bench/capacity.py: the autoscaling classes under the same bursty load.

Three Services run the same function (CPU_SECONDS of CPU, then a sleep, SERVICE_TIME in
all: a handler that computes a little and waits on I/O), one slot per instance, up to
MAX_SCALE instances, each class with the same memory of the past (a 6 s stable window or
scale-down delay, and 6 s retention):
- concurrency (kpa, the default; target 1);
- HPA on CPU, target TARGET_CPU percent of a core: per instance the function uses
  CPU_SECONDS / SERVICE_TIME of a core when always busy, so the target asks for about
  half-busy instances;
- queueing, for the SLO.
Each gets the identical on/off Poisson schedule (PHASES) after one warm request, so
every class starts with one instance. SLO attainment is the share of requests that
waited at most the SLO's wait; instance-seconds integrate the running instances, read
every SAMPLE_EVERY seconds, from the first arrival until the last answer.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from itertools import pairwise
from typing import Final

from troupe.capacity import WaitSLO
from troupe.local.runtime import Runtime

from bench._capacity_load import (
    Arrival,
    drive,
    overhead,
    poisson,
    runtime_with,
    service_manifest,
    url_of,
)
from bench.report import Figure

SLO: Final = WaitSLO.parse("200ms@p95")
SERVICE_TIME: Final = 0.1
CPU_SECONDS: Final = 0.015
TARGET_CPU: Final = 8
MAX_SCALE: Final = 6
# (seconds, arrivals per second): quiet, a burst of 1.5 Erlangs, a longer quiet spell
# than any class remembers (6 s), and the burst again. MAX_SCALE instances carry the
# burst even when a busy machine stretches the service time to twice its length.
PHASES: Final = ((5.0, 2.0), (8.0, 15.0), (10.0, 2.0), (8.0, 15.0))
SAMPLE_EVERY: Final = 0.1
_MEMORY = {"autoscaling.knative.dev/max-scale": str(MAX_SCALE),
           "autoscaling.knative.dev/scale-to-zero-pod-retention-period": "6s"}
CLASSES: Final = {
    "concurrency (kpa)": {**_MEMORY, "autoscaling.knative.dev/target": "1"},
    "hpa on cpu": {**_MEMORY, "autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev",
                   "autoscaling.knative.dev/metric": "cpu",
                   "autoscaling.knative.dev/target": str(TARGET_CPU),
                   "autoscaling.knative.dev/scale-down-delay": "6s"},
    "queueing": {**_MEMORY, "autoscaling.knative.dev/class": "queueing.troupe.dev",
                 "troupe.dev/wait-slo": str(SLO), "autoscaling.knative.dev/window": "6s"},
}


@dataclass(frozen=True)
class ClassResult:
    name: str
    requests: int
    attainment: float  # share of requests within the SLO's wait
    p95_wait: float
    instance_seconds: float
    peak_instances: int


def _service_name(index: int) -> str:
    return f"bursty-{index}"


def _run_class(runtime: Runtime, index: int, name: str,
               arrivals: list[Arrival]) -> ClassResult:
    serving = runtime.serving
    assert serving is not None
    service = _service_name(index)
    url = url_of(runtime, service)
    cost = overhead(url)  # also the warm requests: one instance runs from here on

    def running() -> int:
        return sum(1 for _, name, _ in serving.instance_targets() if name == service)

    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.monotonic(), running()))
            done.wait(SAMPLE_EVERY)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    outcomes = drive(url, arrivals, workers=96)
    done.set()
    sampler.join()
    samples.append((time.monotonic(), running()))
    waits = sorted(w for o in outcomes if (w := o.wait(cost)) is not None)
    within = sum(1 for w in waits if w <= SLO.wait)  # a failed request is a miss
    return ClassResult(
        name, len(outcomes), within / len(outcomes),
        waits[int(0.95 * (len(waits) - 1))] if waits else float("nan"),
        sum(count * (t2 - t1) for (t1, count), (t2, _) in pairwise(samples)),
        max(count for _, count in samples))


def run() -> list[Figure]:
    rng = random.Random("bursty")
    arrivals = [Arrival(at=at, sleep=SERVICE_TIME - CPU_SECONDS, cpu=CPU_SECONDS)
                for at in poisson(PHASES, rng)]
    services = [service_manifest(_service_name(i), annotations)
                for i, annotations in enumerate(CLASSES.values())]
    with runtime_with(services) as runtime:
        results = [_run_class(runtime, i, name, arrivals)
                   for i, name in enumerate(CLASSES)]
    print(f"autoscaling classes under bursts ({len(arrivals)} requests, on/off Poisson "
          f"{' '.join(f'{s:g}s@{r:g}/s' for s, r in PHASES)}, service {SERVICE_TIME * 1000:g} "
          f"ms of which {CPU_SECONDS * 1000:g} ms CPU, SLO {SLO})")
    print(f"{'class':<18} {'SLO attainment':>14} {'p95 wait ms':>11} {'instance-s':>10} "
          f"{'peak':>4}")
    for r in results:
        print(f"{r.name:<18} {r.attainment:>14.1%} {r.p95_wait * 1000:>11.1f} "
              f"{r.instance_seconds:>10.1f} {r.peak_instances:>4}")
    print()
    kpa, hpa, queueing = results
    best = max((kpa, hpa), key=lambda r: (r.attainment, -r.instance_seconds))
    return [
        Figure("capacity", "SLO attainment, queueing", queueing.attainment * 100, "%",
               f"SLO attainment, {best.name} (best other)", best.attainment * 100),
        Figure("capacity", "instance-seconds, queueing", queueing.instance_seconds, "s",
               f"instance-seconds, {best.name} (best other)", best.instance_seconds),
        Figure("capacity", "SLO attainment, hpa on cpu", hpa.attainment * 100, "%",
               "SLO attainment, concurrency (kpa)", kpa.attainment * 100),
        Figure("capacity", "instance-seconds, hpa on cpu", hpa.instance_seconds, "s",
               "instance-seconds, concurrency (kpa)", kpa.instance_seconds),
    ]
