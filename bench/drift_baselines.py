"""The detectors troupe's are measured against, on the same streams (see bench/drift.py).

- "today": the fixed thresholds as the monitor applied them before the statistical tests
  (functions/monitor/handler.py then): on each tick, accuracy over the window below 0.8
  with at least 20 labels, or the highest feature PSI over the predictor's last 500
  inputs (from 200 on) above 0.25, on 3 consecutive ticks, then a 600 s cooldown. Ticks
  and windows are in seconds there; here they become labelled predictions at the demo's
  measured feedback rate (about 70 a second, every prediction labelled).
- River's ADWIN and DDM, fed 1 for each wrong prediction and 0 for each right one, with
  their default parameters. River is a benchmark-only dependency (the `bench` extra).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

import numpy as np
from troupe.ml.drift import FeatureBaseline, psi

LABELS_PER_SECOND: Final = 70.0
TICK_SECONDS: Final = 5.0  # the PingSource's local interval
WINDOW_SECONDS: Final = 300.0  # TROUPE_MONITOR_WINDOW=5m
COOLDOWN_SECONDS: Final = 600.0
ACCURACY_THRESHOLD: Final = 0.8
PSI_THRESHOLD: Final = 0.25
MIN_FEEDBACK: Final = 20
BREACHES: Final = 3
PSI_WINDOW: Final = 500
PSI_MIN_SAMPLES: Final = 200

Detector = Callable[[np.ndarray], list[int]]


def _per_tick(values: list[float | None]) -> list[int]:
    """Tick numbers at which the old hysteresis fired, for per-tick readings (None: too
    little data, which leaves the count alone)."""
    tick_every_cooldown = int(COOLDOWN_SECONDS / TICK_SECONDS)
    breaches, quiet_until, fired = 0, 0, []
    for tick, breached in enumerate(values):
        if breached is None:
            continue
        breaches = breaches + 1 if breached else 0
        if breaches >= BREACHES and tick >= quiet_until:
            fired.append(tick)
            breaches, quiet_until = 0, tick + tick_every_cooldown
    return fired


def _tick_ends(rows: int) -> np.ndarray:
    step = int(LABELS_PER_SECOND * TICK_SECONDS)
    return np.arange(step, rows + 1, step)


def todays_accuracy_alarms(wrong: np.ndarray) -> list[int]:
    """Label positions where the old accuracy threshold would have fired."""
    window = int(LABELS_PER_SECOND * WINDOW_SECONDS)
    errors = np.concatenate([[0], np.cumsum(wrong)])
    ends = _tick_ends(len(wrong))
    readings: list[float | None] = []
    for end in ends:
        start = max(0, end - window)
        labelled = end - start
        if labelled < MIN_FEEDBACK:
            readings.append(None)
            continue
        accuracy = 1 - (errors[end] - errors[start]) / labelled
        readings.append(float(accuracy < ACCURACY_THRESHOLD))
    return [int(ends[tick]) - 1 for tick in _per_tick(readings)]


def todays_psi_alarms(baselines: Mapping[str, FeatureBaseline],
                      columns: Mapping[str, np.ndarray]) -> list[int]:
    """Prediction positions where the old PSI threshold would have fired."""
    rows = len(next(iter(columns.values())))
    ends = _tick_ends(rows)
    readings: list[float | None] = []
    for end in ends:
        start = max(0, end - PSI_WINDOW)
        if end - start < PSI_MIN_SAMPLES:
            readings.append(None)
            continue
        worst = max(psi(baselines[name], baselines[name].bin_counts(values[start:end]))
                    for name, values in columns.items())
        readings.append(float(worst > PSI_THRESHOLD))
    return [int(ends[tick]) - 1 for tick in _per_tick(readings)]


def river_detectors() -> dict[str, Detector]:
    """ADWIN and DDM from River, or nothing when River is not installed."""
    try:
        from river import drift
    except ImportError:
        return {}

    def run(make: Callable[[], drift.ADWIN | drift.binary.DDM]) -> Detector:
        def alarms(wrong: np.ndarray) -> list[int]:
            detector, fired = make(), []
            for index, error in enumerate(wrong.tolist()):
                detector.update(error)
                if detector.drift_detected:
                    fired.append(index)
            return fired

        return alarms

    return {"ADWIN (River)": run(drift.ADWIN), "DDM (River)": run(drift.binary.DDM)}
