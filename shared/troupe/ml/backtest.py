"""The monitor's drift detectors replayed on a history of labelled predictions.

Users ask how a drift detector would have behaved on their own data before they trust it
with retraining. A history is a table in time order with the true `label`, the model's
`prediction` and, optionally, numeric feature columns. Its first rows are the reference,
as a model's own are in the runtime: their accuracy is the expected accuracy, and their
values the feature distributions. The rest is replayed through the same step functions
the monitor runs (troupe.ml.detectors), one labelled prediction at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .detectors import (
    Alarm,
    ConceptTest,
    DetectorSettings,
    FeatureTest,
    concept_alarms,
    feature_alarms,
)
from .drift import baseline_bins

LABEL = "label"
PREDICTION = "prediction"


class HistoryError(ValueError):
    """The history cannot be replayed; the message says what to fix in the file."""


@dataclass(frozen=True)
class Backtest:
    rows: int
    reference_rows: int
    expected_accuracy: float
    features: tuple[str, ...]  # the numeric columns tested for drift
    ignored: tuple[str, ...]  # other columns, not numeric
    alarms: tuple[Alarm, ...]  # sorted by row; each index counts from the history's first row


def history_columns(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The label and prediction columns as numbers, or HistoryError naming the bad cell."""
    missing = [name for name in (LABEL, PREDICTION) if name not in frame.columns]
    if missing:
        raise HistoryError(
            f"the history has no {' or '.join(repr(m) for m in missing)} column (it has "
            f"{', '.join(map(repr, frame.columns)) or 'none'}); a history needs the columns "
            f"{LABEL!r} and {PREDICTION!r}, and may add numeric feature columns"
        )
    values = []
    for name in (LABEL, PREDICTION):
        numbers = pd.to_numeric(frame[name], errors="coerce")
        bad = numbers.isna().to_numpy().nonzero()[0]
        if bad.size:
            row = int(bad[0])
            cell = frame[name].iloc[row]
            shown = "is empty" if pd.isna(cell) else f"{str(cell)!r} is not a number"
            raise HistoryError(
                f"data row {row} (line {row + 2}): {name} {shown}; every {name} must be "
                "a numeric class"
            )
        values.append(numbers.to_numpy(dtype=float))
    return values[0], values[1]


def backtest(frame: pd.DataFrame, reference_rows: int, settings: DetectorSettings) -> Backtest:
    """Every alarm the configured detectors would have raised on `frame`, a history."""
    label, prediction = history_columns(frame)
    rows = len(frame)
    if reference_rows < 1:
        raise HistoryError(f"--reference-rows must be at least 1, not {reference_rows}")
    if rows <= reference_rows:
        raise HistoryError(
            f"the history has {rows} rows, all of them reference ({reference_rows}): give a "
            "longer history or fewer --reference-rows"
        )
    wrong = label != prediction
    expected = float(1 - wrong[:reference_rows].mean())
    concept = ConceptTest.for_model(expected, reference_rows, settings)
    alarms = [_shifted(a, reference_rows) for a in concept_alarms(concept, wrong[reference_rows:])]
    references, ignored = {}, []
    for name in (str(c) for c in frame.columns if c not in (LABEL, PREDICTION)):
        values = frame[name].to_numpy(dtype=float) if pd.api.types.is_numeric_dtype(
            frame[name]) else None
        if values is None or np.isnan(values[:reference_rows]).all():
            ignored.append(name)  # not numeric, or nothing to compare with
            continue
        references[name] = baseline_bins(values[:reference_rows], bins=settings.baseline_bins)
    if references:
        test = FeatureTest.for_model(references, settings)
        replayed = {name: frame[name].to_numpy(dtype=float)[reference_rows:]
                    for name in references}
        alarms += [_shifted(a, reference_rows) for a in feature_alarms(test, replayed)]
    return Backtest(rows, reference_rows, expected, tuple(references), tuple(ignored),
                    tuple(sorted(alarms, key=lambda a: (a.index, a.kind))))


def _shifted(alarm: Alarm, offset: int) -> Alarm:
    return Alarm(alarm.kind, alarm.test, alarm.statistic, alarm.threshold,
                 alarm.index + offset, alarm.detail)
