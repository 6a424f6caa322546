"""Drift decisions with a false-alarm budget: pure functions over a stream.

The monitor runs these on what it reads each tick, `troupe drift backtest` on a user's
history, and the benchmark on generated streams, so all three judge the same way. Each
decision is a step function `(test, state, new data) -> (state, alarm or None)`; the state
is a small frozen value the monitor keeps in the store between ticks.

**Concept alarm: a Bernoulli CUSUM on labelled errors.** The model's expected accuracy is
known in advance (the evaluator's held-out score), so the question for every labelled
prediction is whether errors now come at the expected rate e0 or at a worse one. Page's
CUSUM of the log-likelihood ratio of "error rate e0 + drop" against "e0" is the optimal
test for that question (Lorden; Moustakides): it detects a shift of the designed size in
the fewest samples for a given false-alarm rate, and it still detects larger shifts
faster and smaller ones more slowly. The alternatives were weighed:

- ADWIN and DDM estimate the reference from the stream itself, so they need a warm-up
  after every deployment and see a model that was bad from the start as "no change";
  ADWIN's delta also bounds the error of one cut, not the rate of false alarms over time.
- Page-Hinkley is the same sum with a Gaussian increment; on 0/1 errors the Bernoulli
  likelihood ratio is exact.

The threshold comes from the false-alarm budget, not from a raw number: by Lorden's bound,
a CUSUM with threshold h has an in-control average run length of at least e^h, so
h = ln(TROUPE_CONCEPT_ARL0) guarantees at least that many labelled predictions between
false alarms on average. Batches (a tick's worth of feedback) add their summed
log-likelihood ratio, which is the exact ratio of a binomial batch: the bound then holds
per batch, a still more conservative guarantee per prediction. The expected error rate
is smoothed by half an error over its held-out rows, so a held-out score of 1.0 still
leaves room for errors.

**Feature alarm: a two-sample chi-squared test per block.** The reference distributions
are quantile bins with their row counts, recorded by the trainer. Predictions are counted
into the same bins, and every block of at least TROUPE_FEATURE_BLOCK predictions is
compared with the reference by a chi-squared test of homogeneity, which accounts for the
size of both samples (unlike a fixed PSI bound, whose noise floor is about
(bins - 1) / n). Blocks do not overlap, so under no drift each is an independent trial:
a block may raise a false alarm with probability at most block / TROUPE_FEATURE_ARL0,
split over the features by Bonferroni, which gives at least TROUPE_FEATURE_ARL0
predictions between false feature alarms on average. A reference without row counts is
taken as exact (a goodness-of-fit test).

Every alarm names its test and its statistic, with the bound it crossed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

import numpy as np

from troupe.function.settings import Settings, SettingsError

from .drift import FeatureBaseline, psi

CONCEPT_TEST: Final = "bernoulli-cusum"
FEATURE_TEST: Final = "chi-squared"
AlarmKind = Literal["concept", "covariate"]


@dataclass(frozen=True)
class DetectorSettings(Settings):
    """TROUPE_CONCEPT_ARL0, TROUPE_CONCEPT_DROP, TROUPE_FEATURE_ARL0, TROUPE_FEATURE_BLOCK,
    TROUPE_BASELINE_BINS: shared by the monitor and `troupe drift backtest`."""

    # Labelled predictions between false concept alarms, on average (at least).
    concept_arl0: float = 1_000_000.0
    # The fall in accuracy the concept test is tuned to catch soonest; larger falls are
    # caught sooner, smaller ones later.
    concept_drop: float = 0.10
    # Predictions between false feature alarms, on average (at least).
    feature_arl0: float = 1_000_000.0
    # Predictions per feature test: each block is tested once, then a new one starts.
    feature_block: int = 500
    # Quantile bins of a reference feature distribution.
    baseline_bins: int = 10

    def __post_init__(self) -> None:
        if self.concept_arl0 <= 1:
            raise SettingsError(f"TROUPE_CONCEPT_ARL0={self.concept_arl0} must exceed 1: it "
                                "is the mean number of labelled predictions between false alarms")
        if not 0 < self.concept_drop < 1:
            raise SettingsError(f"TROUPE_CONCEPT_DROP={self.concept_drop} must lie between 0 "
                                "and 1: it is a fall in accuracy, e.g. 0.1")
        if self.feature_block < 20:
            raise SettingsError(f"TROUPE_FEATURE_BLOCK={self.feature_block} is too small for "
                                "a chi-squared test: use at least 20 (500 is the default)")
        if self.feature_arl0 <= self.feature_block:
            raise SettingsError(f"TROUPE_FEATURE_ARL0={self.feature_arl0} must exceed "
                                f"TROUPE_FEATURE_BLOCK={self.feature_block}")
        if self.baseline_bins < 2:
            raise SettingsError(f"TROUPE_BASELINE_BINS={self.baseline_bins} must be at least 2")


@dataclass(frozen=True)
class Alarm:
    kind: AlarmKind
    test: str
    statistic: float
    threshold: float  # the bound the statistic crossed (a p-value bound for chi-squared)
    index: int  # the stream position that raised it: labelled (concept) or made predictions
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "test": self.test, "statistic": self.statistic,
                "threshold": self.threshold, "index": self.index, **self.detail}


# -- the concept alarm -------------------------------------------------------------------
@dataclass(frozen=True)
class ConceptTest:
    """The CUSUM for one model version: its expected accuracy and the alarm bound."""

    expected_accuracy: float
    reference_rows: int  # held-out rows behind the expected accuracy; 0 when unknown
    drop: float
    arl0: float

    @classmethod
    def for_model(cls, expected_accuracy: float, reference_rows: int,
                  settings: DetectorSettings) -> ConceptTest:
        if not 0.0 <= expected_accuracy <= 1.0:
            raise ValueError(f"an expected accuracy of {expected_accuracy} is not a share")
        return cls(expected_accuracy, max(reference_rows, 0), settings.concept_drop,
                   settings.concept_arl0)

    @property
    def expected_error(self) -> float:
        errors = (1.0 - self.expected_accuracy) * self.reference_rows
        smoothed = (errors + 0.5) / (self.reference_rows + 1) if self.reference_rows else (
            1.0 - self.expected_accuracy)
        return min(max(smoothed, 1e-3), 0.999 - self.drop)

    @property
    def threshold(self) -> float:
        return math.log(self.arl0)

    @property
    def increments(self) -> tuple[float, float]:
        """The log-likelihood ratio of one error, and of one right answer."""
        before = self.expected_error
        after = before + self.drop
        return math.log(after / before), math.log((1 - after) / (1 - before))

    def to_json(self) -> dict[str, Any]:
        return {"expected_accuracy": self.expected_accuracy,
                "reference_rows": self.reference_rows, "drop": self.drop, "arl0": self.arl0}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ConceptTest:
        return cls(float(doc["expected_accuracy"]), int(doc["reference_rows"]),
                   float(doc["drop"]), float(doc["arl0"]))


@dataclass(frozen=True)
class CusumState:
    statistic: float = 0.0
    labelled: int = 0  # labelled predictions seen, in all
    # Since the statistic last stood at zero: the stretch that looks drifted.
    run_labelled: int = 0
    run_errors: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"statistic": self.statistic, "labelled": self.labelled,
                "run_labelled": self.run_labelled, "run_errors": self.run_errors}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> CusumState:
        return cls(float(doc["statistic"]), int(doc["labelled"]), int(doc["run_labelled"]),
                   int(doc["run_errors"]))


def concept_step(test: ConceptTest, state: CusumState, labelled: int,
                 errors: int) -> tuple[CusumState, Alarm | None]:
    """Add `labelled` new labelled predictions, `errors` of them wrong.

    After an alarm the statistic starts again from zero, so a lasting drift that nobody
    fixes alarms again after about as long as it took the first time.
    """
    if labelled < 0 or not 0 <= errors <= labelled:
        raise ValueError(f"{errors} errors in {labelled} labelled predictions is not a count")
    if labelled == 0:
        return state, None
    on_error, on_right = test.increments
    statistic = max(0.0, state.statistic + errors * on_error + (labelled - errors) * on_right)
    seen = state.labelled + labelled
    if statistic == 0.0:
        return CusumState(0.0, seen), None
    run_labelled, run_errors = state.run_labelled + labelled, state.run_errors + errors
    if statistic < test.threshold:
        return CusumState(statistic, seen, run_labelled, run_errors), None
    alarm = Alarm("concept", CONCEPT_TEST, statistic, test.threshold, seen - 1, {
        "expected_accuracy": test.expected_accuracy,
        "accuracy": 1 - run_errors / run_labelled,
        "samples": run_labelled,
    })
    return CusumState(0.0, seen), alarm


def concept_alarms(test: ConceptTest, wrong: Iterable[bool | int]) -> list[Alarm]:
    """Every concept alarm over a stream of labelled predictions (True: it was wrong)."""
    state, alarms = CusumState(), []
    for error in wrong:
        state, alarm = concept_step(test, state, 1, int(error))
        if alarm is not None:
            alarms.append(alarm)
    return alarms


# -- the feature alarm -------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureTest:
    references: Mapping[str, FeatureBaseline]
    block: int
    arl0: float

    @classmethod
    def for_model(cls, references: Mapping[str, FeatureBaseline],
                  settings: DetectorSettings) -> FeatureTest:
        return cls(dict(references), settings.feature_block, settings.feature_arl0)

    @property
    def alpha(self) -> float:
        """The p-value below which one feature's test raises an alarm."""
        return self.block / self.arl0 / max(len(self.references), 1)


@dataclass(frozen=True)
class FeatureBlock:
    """Bin counts of the block being filled, per feature, and predictions seen in all."""

    counts: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    rows: int = 0
    seen: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"counts": {k: list(v) for k, v in self.counts.items()}, "rows": self.rows,
                "seen": self.seen}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> FeatureBlock:
        counts = {str(k): tuple(int(c) for c in v) for k, v in doc["counts"].items()}
        return cls(counts, int(doc["rows"]), int(doc["seen"]))


def feature_step(test: FeatureTest, state: FeatureBlock,
                 counts: Mapping[str, Sequence[int] | np.ndarray],
                 rows: int) -> tuple[FeatureBlock, Alarm | None]:
    """Add the bin counts of `rows` new predictions; test once the block is full."""
    if rows <= 0:
        return state, None
    merged = dict(state.counts)
    for name, reference in test.references.items():
        new = np.asarray(counts.get(name, ()), dtype=np.int64)
        if new.size == 0:
            continue
        if new.size != len(reference.fractions):
            raise ValueError(f"feature {name}: {new.size} bin counts for "
                             f"{len(reference.fractions)} reference bins")
        old = np.asarray(merged.get(name, (0,) * new.size), dtype=np.int64)
        merged[name] = tuple(int(c) for c in old + new)
    block = replace(state, counts=merged, rows=state.rows + rows, seen=state.seen + rows)
    if block.rows < test.block:
        return block, None
    worst: tuple[float, float, str] | None = None  # (p-value, statistic, feature)
    for name, observed in merged.items():
        statistic, p_value = homogeneity(test.references[name], observed)
        if worst is None or p_value < worst[0]:
            worst = (p_value, statistic, name)
    fresh = FeatureBlock({}, 0, block.seen)
    if worst is None or worst[0] >= test.alpha:
        return fresh, None
    p_value, statistic, name = worst
    reference = test.references[name]
    return fresh, Alarm("covariate", FEATURE_TEST, statistic, test.alpha, block.seen - 1, {
        "feature": name,
        "p_value": p_value,
        "samples": int(sum(merged[name])),
        "psi": psi(reference, merged[name]),
    })


def homogeneity(reference: FeatureBaseline,
                observed: Sequence[int] | np.ndarray) -> tuple[float, float]:
    """Chi-squared statistic and p-value of `observed` bin counts against the reference."""
    # scipy costs the monitor a second at start-up; only a feature test with counts needs it.
    from scipy import stats

    counts = np.asarray(observed, dtype=float)
    if counts.sum() == 0:
        return 0.0, 1.0
    if reference.rows > 0:
        expected_counts = np.asarray(reference.fractions) * reference.rows
        table = np.vstack([expected_counts, counts])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            return 0.0, 1.0
        result = stats.chi2_contingency(table, correction=False)
        return float(result.statistic), float(result.pvalue)
    fractions = np.clip(np.asarray(reference.fractions), 1e-4, None)
    expected = fractions / fractions.sum() * counts.sum()
    statistic, p_value = stats.chisquare(counts, expected)
    return float(statistic), float(p_value)


def feature_alarms(test: FeatureTest, columns: Mapping[str, np.ndarray]) -> list[Alarm]:
    """Every feature alarm over a stream of inputs, one array of values per feature."""
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise ValueError("every feature needs one value per prediction")
    rows = lengths.pop() if lengths else 0
    state, alarms = FeatureBlock(), []
    for start in range(0, rows - test.block + 1, test.block):
        counts = {name: test.references[name].bin_counts(values[start:start + test.block])
                  for name, values in columns.items() if name in test.references}
        state, alarm = feature_step(test, state, counts, test.block)
        if alarm is not None:
            alarms.append(alarm)
    return alarms
