"""The monitor's statistical tests, fed each tick with what the predictors counted since.

The decisions are troupe.ml's pure step functions (detectors for drift, canary for
canaries); this module only feeds them. Their inputs arrive two ways, each by the path
that suits how often it changes:

- per version and once: the expected accuracy and the reference feature distributions,
  read from the store (troupe.ml.reference) when the monitor first meets the version;
- every tick: how many predictions were labelled, how many were right, and how many
  inputs fell in each reference bin, from the predictors' Prometheus counters. The raw
  counters are read per series (one per predictor process) and differenced against the
  values the previous tick saw, kept in the monitor's state: exact integer counts, where
  increase() over a window would extrapolate, and would count twice what two overlapping
  windows share. A counter that went down belongs to a restarted process, and counts
  from zero again; a series seen for the first time counts whole.

(Unique module name: tests import several function folders in one process.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor_queries import CounterSample
from troupe.events import CANARY_PASSED, ROLLBACK_REQUESTED
from troupe.ml.canary import PROMOTE, WAIT, CanarySettings, Side, judge_canary
from troupe.ml.detectors import (
    Alarm,
    ConceptTest,
    CusumState,
    DetectorSettings,
    FeatureBlock,
    FeatureTest,
    concept_step,
    feature_step,
)
from troupe.ml.drift import FeatureBaseline
from troupe.ml.reference import expected_accuracy, read_distributions
from troupe.store import Store, StoreError

LABELLED = "troupe_feedback_labeled_total"
CORRECT = "troupe_feedback_correct_total"
BINS = "troupe_feature_bin_total"
COUNTERS = (LABELLED, CORRECT, BINS)


@dataclass
class VersionCounts:
    """What one version's predictors counted since the previous tick."""

    labelled: int = 0
    correct: int = 0
    bins: dict[str, dict[int, int]] = field(default_factory=dict)


def _series_key(sample: CounterSample) -> str:
    return sample.metric + "|" + "|".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))


def counter_deltas(
    last: Mapping[str, float], samples: Iterable[CounterSample]
) -> tuple[dict[str, float], dict[str, VersionCounts]]:
    """(the values to remember, the counts per version since `last`)."""
    remembered: dict[str, float] = {}
    counts: dict[str, VersionCounts] = {}
    for sample in samples:
        version = sample.labels.get("model_version")
        if not version:
            continue
        key = _series_key(sample)
        previous = last.get(key)
        grown = sample.value if previous is None or sample.value < previous else (
            sample.value - previous)
        remembered[key] = sample.value
        added = round(grown)
        if added <= 0:
            continue
        tally = counts.setdefault(version, VersionCounts())
        if sample.metric == LABELLED:
            tally.labelled += added
        elif sample.metric == CORRECT:
            tally.correct += added
        elif sample.metric == BINS and sample.labels.get("bin", "").isdigit():
            per_bin = tally.bins.setdefault(sample.labels.get("feature", ""), {})
            index = int(sample.labels["bin"])
            per_bin[index] = per_bin.get(index, 0) + added
    return remembered, counts


# -- a version's tests, built once from the store --------------------------------------
def load_version_tests(store: Store, model: str, version: str,
                       settings: DetectorSettings) -> dict[str, Any]:
    """The JSON state of a version's concept and feature tests; either may be None when
    the lifecycle recorded no reference for it (the fixed thresholds then apply)."""
    expected = expected_accuracy(store, model, version)
    concept = None
    if expected is not None:
        test = ConceptTest.for_model(expected.accuracy, expected.rows, settings)
        concept = {"test": test.to_json(), "state": CusumState().to_json(),
                   "source": expected.source}
    try:
        lineage = store.registry.get(model, version).lineage
    except StoreError:
        lineage = {}
    references = read_distributions(store, lineage, [str(f) for f in lineage.get("features", [])])
    features = None
    if references:
        features = {"references": {k: v.to_json() for k, v in references.items()},
                    "block": settings.feature_block, "arl0": settings.feature_arl0,
                    "state": FeatureBlock().to_json()}
    return {"concept": concept, "features": features, "labelled": 0}


def step_version(tests: dict[str, Any], counts: VersionCounts) -> list[Alarm]:
    """Feed one tick's counts to a version's tests (updating `tests`); their alarms."""
    alarms = []
    labelled = counts.labelled
    tests["labelled"] = int(tests.get("labelled", 0)) + labelled
    concept = tests.get("concept")
    if concept is not None and labelled:
        errors = min(max(labelled - counts.correct, 0), labelled)
        state, alarm = concept_step(ConceptTest.from_json(concept["test"]),
                                    CusumState.from_json(concept["state"]), labelled, errors)
        concept["state"] = state.to_json()
        if alarm is not None:
            alarms.append(alarm)
    features = tests.get("features")
    if features is not None and counts.bins:
        references = {k: FeatureBaseline.from_json(v) for k, v in features["references"].items()}
        test = FeatureTest(references, int(features["block"]), float(features["arl0"]))
        per_feature = {name: [counts.bins.get(name, {}).get(i, 0)
                              for i in range(len(reference.fractions))]
                       for name, reference in references.items()}
        rows = max((sum(c) for c in per_feature.values()), default=0)
        state, alarm = feature_step(test, FeatureBlock.from_json(features["state"]),
                                    per_feature, rows)
        features["state"] = state.to_json()
        if alarm is not None:
            alarms.append(alarm)
    return alarms


def degradation(alarm: Alarm, model: str, version: str, labelled: int) -> dict[str, Any]:
    """The metric-degraded data of a statistical alarm."""
    detail = dict(alarm.detail)
    common = {"model": model, "version": version, "kind": alarm.kind, "test": alarm.test,
              "statistic": alarm.statistic, "bound": alarm.threshold,
              "samples": int(detail["samples"]), "labelled": labelled}
    if alarm.kind == "concept":
        return {**common, "metric": "accuracy", "value": float(detail["accuracy"]),
                "threshold": float(detail["expected_accuracy"])}
    return {**common, "metric": "feature_distribution", "value": float(detail["p_value"]),
            "threshold": alarm.threshold, "feature": str(detail["feature"]),
            "psi": float(detail["psi"])}


# -- canaries --------------------------------------------------------------------------
def count_canary(canary: dict[str, Any], counts: Mapping[str, VersionCounts]) -> None:
    """Add this tick's labelled predictions of the candidate and the champion."""
    for side in ("candidate", "champion"):
        version = canary.get(side)
        tally = counts.get(version) if version else None
        if tally is None:
            continue
        labelled, correct = canary.setdefault("counts", {}).get(side, [0, 0])
        canary["counts"][side] = [labelled + tally.labelled,
                                  correct + min(tally.correct, tally.labelled)]


def canary_decision(canary: dict[str, Any], now: float, settings: CanarySettings,
                    model: str) -> dict[str, Any] | None:
    """canary-passed or rollback-requested once the canary is decided (marking it so)."""
    if canary.get("decided"):
        return None
    counts = canary.get("counts", {})
    candidate = Side(*counts.get("candidate", [0, 0]))
    champion = Side(*counts.get("champion", [0, 0]))
    decision = judge_canary(candidate, champion,
                            expected_accuracy=float(canary.get("expected_accuracy") or 0.5),
                            waited_seconds=now - float(canary["since"]), settings=settings)
    outcome = decision.outcome
    if canary.get("champion") is None:
        # Nothing serves beside it to compare with: its own concept test watches it.
        outcome = PROMOTE if candidate.labelled >= decision.required_per_side else WAIT
    if outcome == WAIT:
        return None
    canary["decided"] = outcome
    test = decision.to_json() | {"outcome": outcome}
    if outcome == PROMOTE:
        metrics: dict[str, float] = {"labeled": candidate.labelled}
        if candidate.accuracy is not None:
            metrics["accuracy"] = candidate.accuracy
        if champion.accuracy is not None:
            metrics |= {"champion_accuracy": champion.accuracy,
                        "champion_labeled": champion.labelled}
        return {"type": CANARY_PASSED, "data": {
            "model": model, "version": canary["candidate"],
            "champion_version": canary.get("champion"), "metrics": metrics, "test": test}}
    data: dict[str, Any] = {"model": model, "version": canary["candidate"],
                            "reason": f"canary {canary['candidate']}: {decision.reason}",
                            "canary": test}
    if canary.get("champion"):
        data["to_version"] = canary["champion"]
    return {"type": ROLLBACK_REQUESTED, "data": data}
