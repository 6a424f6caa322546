"""Part 3 of bench/capacity.py: priorities in the activator under overload.

A stand-in for the trainer with its serving settings (one instance, one slot; the real
handler would train for minutes, so this one sleeps SERVICE_TIME) gets the trainer's two
event types as two Poisson streams: training-requested (the policy's remedies, ranked
high by the trainer's annotation) and data-validated (routine). For OVERLOAD_SECONDS the
remedies alone take 80% of the slot and the routine events bring it to 110%; a calm
phase then lets the queue drain. Three Services get the identical schedule:
- arrival order: no priorities (what every Service got before);
- strict priorities: the trainer's `troupe.dev/priority`, no wait SLO, so promotion only
  against the activation timeout, which nothing here comes near;
- priorities with promotion: the same, with `troupe.dev/wait-slo: 2s@p95`.
Printed: the p95 wait of each type, the longest any request waited, and the promotions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

import numpy as np
from troupe.events import DATA_VALIDATED, TRAINING_REQUESTED, resolve

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

SERVICE_TIME: Final = 0.1  # one slot serves 10 per second
OVERLOAD_SECONDS: Final = 10.0
CALM_SECONDS: Final = 5.0
# (seconds, arrivals per second) per type: overload, then calm.
STREAMS: Final = {TRAINING_REQUESTED: ((OVERLOAD_SECONDS, 8.0), (CALM_SECONDS, 1.0)),
                  DATA_VALIDATED: ((OVERLOAD_SECONDS, 3.0), (CALM_SECONDS, 2.0))}
PRIORITY: Final = f"type={TRAINING_REQUESTED}:high"
_TRAINER = {"autoscaling.knative.dev/min-scale": "1", "autoscaling.knative.dev/max-scale": "1"}
VARIANTS: Final = {
    "arrival order": _TRAINER,
    "strict priorities": {**_TRAINER, "troupe.dev/priority": PRIORITY},
    "with promotion": {**_TRAINER, "troupe.dev/priority": PRIORITY,
                       "troupe.dev/wait-slo": "2s@p95"},
}


@dataclass(frozen=True)
class VariantResult:
    name: str
    high_p95: float
    routine_p95: float
    longest: float
    promotions: int


def _arrivals() -> list[Arrival]:
    rng = random.Random("overload")
    timed = sorted((at, kind) for kind, phases in STREAMS.items()
                   for at in poisson(phases, rng))
    return [Arrival(at=at, sleep=SERVICE_TIME, label=kind,
                    headers=(("ce-specversion", "1.0"), ("ce-id", f"bench-{i}"),
                             ("ce-source", "/bench/capacity"), ("ce-type", kind)))
            for i, (at, kind) in enumerate(timed)]


def run() -> list[Figure]:
    arrivals = _arrivals()
    names = {name: f"trainer-{i}" for i, name in enumerate(VARIANTS)}
    services = [service_manifest(names[name], annotations)
                for name, annotations in VARIANTS.items()]
    results = []
    with runtime_with(services) as runtime:
        for name, service in names.items():
            url = url_of(runtime, service)
            cost = overhead(url)
            outcomes = drive(url, arrivals, workers=160)
            if any(o.started is None for o in outcomes):
                raise RuntimeError(f"{service} failed requests under overload")
            waits = {kind: [w for o in outcomes if o.arrival.label == kind
                            and (w := o.wait(cost)) is not None]
                     for kind in (TRAINING_REQUESTED, DATA_VALIDATED)}
            [described] = [s for s in runtime.status()["services"] if s["name"] == service]
            results.append(VariantResult(
                name, float(np.percentile(waits[TRAINING_REQUESTED], 95)),
                float(np.percentile(waits[DATA_VALIDATED], 95)),
                max(max(w) for w in waits.values()),
                sum(r["promotions"] for r in described["revisions"])))
    high = sum(1 for a in arrivals if a.label == TRAINING_REQUESTED)
    print(f"priorities under overload ({len(arrivals)} events, {high} training-requested, "
          f"on one slot of {SERVICE_TIME * 1000:g} ms; per second for "
          f"{OVERLOAD_SECONDS:g} s then {CALM_SECONDS:g} s: " + "; ".join(
              f"{resolve(kind).short} {' then '.join(f'{r:g}' for _, r in phases)}"
              for kind, phases in STREAMS.items()) + ")")
    print(f"{'variant':<18} {'p95 wait high':>13} {'p95 wait routine':>16} "
          f"{'longest wait':>12} {'promoted':>8}")
    for r in results:
        print(f"{r.name:<18} {r.high_p95:>12.2f}s {r.routine_p95:>15.2f}s "
              f"{r.longest:>11.2f}s {r.promotions:>8}")
    print()
    fifo, strict, promoted = results
    return [
        Figure("capacity", "p95 wait, training-requested, with promotion", promoted.high_p95,
               "s", "the same in arrival order", fifo.high_p95),
        Figure("capacity", "p95 wait, data-validated, with promotion", promoted.routine_p95,
               "s", "the same in arrival order", fifo.routine_p95),
        Figure("capacity", "longest wait, with promotion", promoted.longest, "s",
               "longest wait, strict priorities", strict.longest),
    ]
