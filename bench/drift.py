"""Drift detection, offline: how soon each detector notices a drift, and how often it cries wolf.

What is measured. For each scenario of troupe.ml.scenarios and each of SEEDS seeds, a
logistic regression is trained on 1,500 reference rows exactly as the trainer does
(troupe.ml.training.train, a 20% held-out split), so its held-out accuracy is the
expected accuracy the evaluator would record, and the reference feature distributions are
the quantile bins of those rows. It then predicts a stream of ROWS rows whose drift
begins at ONSET; every prediction is labelled, in the order the labels arrive. Every
detector sees the identical stream:

- troupe: the concept alarm (Bernoulli CUSUM) and the feature alarm (block chi-squared)
  of troupe.ml.detectors, with the monitor's default settings;
- today: the fixed thresholds the monitor used before them (bench/drift_baselines.py);
- ADWIN and DDM from River, on the same stream of errors.

For each detector of model errors, per scenario: the median and 90th percentile of the
detection delay, counted in labelled predictions of rows at or after the onset seen when
the first alarm after the onset fires; misses, the seeds with no alarm before the drifted
stretch ends (for `recurring`, before the concept returns); false alarms per 10,000
labelled predictions on `none` and on `covariate` (where accuracy holds, so any concept
alarm is false). `abrupt-late` is the abrupt stream with every label 200 to 300
predictions late and out of order; its delay is still counted in post-onset labels
received. The feature alarms get the same figures, with `covariate` as the drift
and `none` for false alarms. Recovery: for abrupt and moderate drift, a model retrained on
the first 1,500 labelled rows after troupe's alarm, scored on the rest of the stream, as a
share of the model's accuracy before the drift.

The aims (issue 17): no false concept alarm in 100,000 labelled predictions of `none`;
abrupt drift within 200 labels (median), moderate within 1,000; fewer misses than every
baseline at a false-alarm rate no higher; recovery at least 0.95.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd
from troupe.ml.detectors import (
    ConceptTest,
    DetectorSettings,
    FeatureTest,
    concept_alarms,
    feature_alarms,
)
from troupe.ml.drift import baseline_bins
from troupe.ml.scenarios import (
    FEATURES,
    SCENARIOS,
    TARGET,
    ScenarioSpec,
    Stream,
    generate,
    reference_sample,
)
from troupe.ml.training import Holdout, train

from bench.drift_baselines import river_detectors, todays_accuracy_alarms, todays_psi_alarms
from bench.report import Figure

SEEDS: Final = 10
ROWS: Final = 10_000
ONSET: Final = 3_000
REFERENCE_ROWS: Final = 1_500
RETRAIN_ROWS: Final = 1_500
TROUPE, TODAY = "troupe", "today (fixed thresholds)"
CONCEPT_DRIFTS: Final = ("abrupt", "moderate", "gradual", "recurring", "abrupt-late")
# abrupt-late: the abrupt stream with each label arriving 200 to 300 predictions late.
LATE: Final = {"abrupt-late": ("abrupt", 200, 100)}


@dataclass
class Tally:
    """One detector on one scenario, over the seeds."""

    delays: list[int] = field(default_factory=list)
    misses: int = 0
    alarms: int = 0
    labelled: int = 0

    def per_10k(self) -> float:
        return 10_000 * self.alarms / self.labelled if self.labelled else float("nan")

    def delay(self, quantile: float) -> float:
        if not self.delays:
            return float("nan")
        return float(np.quantile(self.delays, quantile, method="inverted_cdf"))


@dataclass(frozen=True)
class Case:
    """A stream with its model's predictions, in label-arrival order."""

    stream: Stream
    order: np.ndarray  # rows in the order their labels arrive
    wrong: np.ndarray  # in that order
    expected_accuracy: float
    held_out_rows: int
    reference: pd.DataFrame


def make_case(name: str, seed: int) -> tuple[Case, object]:
    x, y = reference_sample(REFERENCE_ROWS, seed)
    frame = pd.DataFrame(x, columns=list(FEATURES)).assign(**{TARGET: y})
    trained = train([frame], features=FEATURES, target=TARGET,
                    estimator="logistic_regression", holdout=Holdout())
    scenario, delay, jitter = LATE.get(name, (name, 0, 0))
    stream = generate(ScenarioSpec(name=scenario, rows=ROWS, onset=ONSET, seed=seed,
                                   label_delay=delay, label_jitter=jitter))
    order = stream.label_order()
    predicted = trained.pipeline.predict(pd.DataFrame(stream.x, columns=list(FEATURES)))
    wrong = (predicted != stream.y)[order]
    case = Case(stream, order, wrong, trained.metrics["accuracy"], trained.rows_test, frame)
    return case, trained.pipeline


def score(tally: Tally, case: Case, alarms: list[int]) -> None:
    """Count one stream's alarms (label positions) into the tally."""
    tally.labelled += len(case.wrong)
    drifts = case.stream.drifts
    if case.stream.scenario in ("none", "covariate") or not drifts:
        tally.alarms += len(alarms)
        return
    onset = drifts[0].onset
    ends = drifts[1].onset if len(drifts) > 1 else case.stream.rows
    after = np.cumsum(case.order >= onset)  # post-onset labels seen at each position
    tally.alarms += sum(1 for a in alarms if after[a] == 0)  # before the onset: false
    detected = [a for a in alarms if after[a] > 0 and case.order[a] < ends]
    if detected:
        tally.delays.append(int(after[detected[0]]))
    else:
        tally.misses += 1


def concept_detectors(case: Case, settings: DetectorSettings) -> dict[str, list[int]]:
    test = ConceptTest.for_model(case.expected_accuracy, case.held_out_rows, settings)
    found = {TROUPE: [a.index for a in concept_alarms(test, case.wrong)],
             TODAY: todays_accuracy_alarms(case.wrong)}
    for name, detector in river_detectors().items():
        found[name] = detector(case.wrong)
    return found


def feature_detectors(case: Case, settings: DetectorSettings) -> dict[str, list[int]]:
    references = {f: baseline_bins(case.reference[f].to_numpy(), bins=settings.baseline_bins)
                  for f in FEATURES}
    columns = {f: case.stream.x[:, i] for i, f in enumerate(FEATURES)}
    test = FeatureTest.for_model(references, settings)
    # Inputs are seen when predicted; with every label on time that is the label order.
    return {TROUPE: [a.index for a in feature_alarms(test, columns)],
            TODAY: todays_psi_alarms(references, columns)}


def recovery(case: Case, pipeline: object, alarm: int) -> float:
    """Accuracy of a model retrained on the rows labelled after the alarm, on the rest,
    as a share of the reference model's accuracy before the onset."""
    rows = case.order[alarm + 1: alarm + 1 + RETRAIN_ROWS]
    rest = case.order[alarm + 1 + RETRAIN_ROWS:]
    frame = pd.DataFrame(case.stream.x[rows], columns=list(FEATURES)).assign(
        **{TARGET: case.stream.y[rows]})
    retrained = train([frame], features=FEATURES, target=TARGET,
                      estimator="logistic_regression", holdout=Holdout()).pipeline
    after = retrained.predict(pd.DataFrame(case.stream.x[rest], columns=list(FEATURES)))
    before = 1 - case.wrong[case.order < ONSET].mean()
    return float((after == case.stream.y[rest]).mean() / before)


def run() -> list[Figure]:
    settings = DetectorSettings()
    concept: dict[str, dict[str, Tally]] = {}
    features: dict[str, dict[str, Tally]] = {}
    recovered: dict[str, list[float]] = {"abrupt": [], "moderate": []}
    for name in (*SCENARIOS, *LATE):
        for seed in range(SEEDS):
            case, pipeline = make_case(name, seed)
            for detector, alarms in concept_detectors(case, settings).items():
                score(concept.setdefault(detector, {}).setdefault(name, Tally()), case, alarms)
                if detector == TROUPE and name in recovered:
                    after = [a for a in alarms if case.order[a] >= ONSET]
                    if after:
                        recovered[name].append(recovery(case, pipeline, after[0]))
            if name in ("none", "covariate", "abrupt"):
                feature_case = case if name != "covariate" else _as_drift(case)
                for detector, alarms in feature_detectors(case, settings).items():
                    score(features.setdefault(detector, {}).setdefault(name, Tally()),
                          feature_case, alarms)
    if len(concept) < 4:
        print("River is not installed (pip install -e '.[bench]'): ADWIN and DDM left out",
              file=sys.stderr)
    print(_table("concept alarms (detectors of model errors)", concept, CONCEPT_DRIFTS,
                 ("none", "covariate")))
    print(_table("feature alarms", features, ("covariate", "abrupt"), ("none",)))
    print("recovery (retrained after troupe's alarm / before drift, median): " + ", ".join(
        f"{k} {statistics.median(v):.3f} ({len(v)} runs)" for k, v in recovered.items() if v))
    print()
    return _figures(concept, features, recovered)


def _as_drift(case: Case) -> Case:
    """For feature alarms, the covariate shift is the drift to detect."""
    return Case(Stream("covariate-as-drift", case.stream.x, case.stream.y, case.stream.concept,
                       case.stream.drifts, case.stream.arrival), case.order, case.wrong,
                case.expected_accuracy, case.held_out_rows, case.reference)


def _table(title: str, tallies: Mapping[str, Mapping[str, Tally]], drifts: tuple[str, ...],
           quiet: tuple[str, ...]) -> str:
    header = ["detector"]
    header += [f"{d} p50/p90 (miss)" for d in drifts]
    header += [f"false/10k {q}" for q in quiet]
    rows = [header]
    for detector, by in tallies.items():
        row = [detector]
        for d in drifts:
            t = by[d]
            row.append(f"{t.delay(0.5):.0f}/{t.delay(0.9):.0f} ({t.misses})")
        row += [f"{by[q].per_10k():.2f} ({by[q].alarms} in {by[q].labelled:,})" for q in quiet]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [f"\n{title}, {SEEDS} seeds, onset at {ONSET} of {ROWS} rows; delays in labelled "
             "predictions after the onset"]
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _figures(concept: Mapping[str, Mapping[str, Tally]],
             features: Mapping[str, Mapping[str, Tally]],
             recovered: Mapping[str, list[float]]) -> list[Figure]:
    figures = []
    ours = concept[TROUPE]
    for baseline, by in concept.items():
        if baseline == TROUPE:
            continue
        for drift in CONCEPT_DRIFTS:
            figures.append(Figure("drift", f"{drift}: median delay, troupe",
                                  ours[drift].delay(0.5), "labels", baseline,
                                  by[drift].delay(0.5)))
        figures.append(Figure("drift", "misses, troupe",
                              sum(ours[d].misses for d in CONCEPT_DRIFTS), "drifts", baseline,
                              sum(by[d].misses for d in CONCEPT_DRIFTS)))
    figures.append(Figure("drift", "covariate: feature delay, troupe",
                          features[TROUPE]["covariate"].delay(0.5), "labels", TODAY,
                          features[TODAY]["covariate"].delay(0.5)))
    for name, values in recovered.items():
        if values:
            figures.append(Figure("drift", f"{name}: accuracy after retrain", statistics.median(
                values), "share", "accuracy before drift", 1.0))
    return figures


if __name__ == "__main__":
    from bench.report import render

    print(render(run()))
