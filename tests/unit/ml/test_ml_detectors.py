"""The drift detectors on short seeded streams: they fire when they should, stay quiet
when they should, and their false-alarm setting moves them the right way."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from troupe.function.settings import SettingsError
from troupe.ml.detectors import (
    CONCEPT_TEST,
    FEATURE_TEST,
    ConceptTest,
    CusumState,
    DetectorSettings,
    FeatureBlock,
    FeatureTest,
    concept_alarms,
    concept_step,
    feature_alarms,
    feature_step,
)
from troupe.ml.drift import FeatureBaseline, baseline_bins
from troupe.ml.scenarios import FEATURES, ScenarioSpec, generate, reference_sample

EXPECTED_ACCURACY = 0.94


@pytest.fixture(scope="module")
def model() -> tuple[LogisticRegression, np.ndarray]:
    x, y = reference_sample(1500, seed=11)
    return LogisticRegression().fit(x, y), x


def wrong_in_label_order(model: LogisticRegression, name: str, **spec: int) -> np.ndarray:
    stream = generate(ScenarioSpec(name=name, **spec))
    wrong = model.predict(stream.x) != stream.y
    return np.asarray(wrong[stream.label_order()])


def concept_test(**settings: float) -> ConceptTest:
    return ConceptTest.for_model(EXPECTED_ACCURACY, 300, DetectorSettings(**settings))


def test_abrupt_drift_raises_a_concept_alarm_within_200_labelled_predictions(model) -> None:
    wrong = wrong_in_label_order(model[0], "abrupt", rows=4000, onset=2000, seed=3)
    alarms = concept_alarms(concept_test(), wrong)
    assert alarms, "no alarm on abrupt drift"
    first = alarms[0]
    assert 2000 <= first.index < 2200
    assert first.kind == "concept" and first.test == CONCEPT_TEST
    assert first.statistic >= first.threshold == pytest.approx(np.log(1_000_000))
    assert first.detail["accuracy"] < 0.7


def test_late_labels_delay_the_alarm_by_about_the_label_delay(model) -> None:
    prompt = concept_alarms(concept_test(), wrong_in_label_order(
        model[0], "abrupt", rows=4000, onset=2000, seed=3))
    late = concept_alarms(concept_test(), wrong_in_label_order(
        model[0], "abrupt", rows=4000, onset=2000, seed=3, label_delay=100, label_jitter=50))
    # Counted in labels received, the delay barely moves: the same errors arrive later.
    assert abs(late[0].index - prompt[0].index) < 60


def test_no_drift_raises_no_alarm_over_a_long_stream(model) -> None:
    wrong = wrong_in_label_order(model[0], "none", rows=30_000, onset=1, seed=5)
    assert concept_alarms(concept_test(), wrong) == []


def test_the_false_alarm_budget_holds_on_errors_at_the_expected_rate() -> None:
    # Lorden's bound: at least arl0 labelled predictions between false alarms on average.
    rng = np.random.default_rng(2)
    wrong = rng.random(200_000) < 1 - EXPECTED_ACCURACY
    arl0 = 500.0
    alarms = concept_alarms(concept_test(concept_arl0=arl0), wrong)
    assert len(alarms) <= len(wrong) / arl0


def test_a_smaller_false_alarm_budget_detects_sooner_and_a_larger_one_later(model) -> None:
    wrong = wrong_in_label_order(model[0], "moderate", rows=6000, onset=2000, seed=4)
    delays = [concept_alarms(concept_test(concept_arl0=arl0), wrong)[0].index - 2000
              for arl0 in (1e3, 1e6, 1e9)]
    assert delays[0] < delays[1] < delays[2]


def test_a_tick_of_counts_adds_up_like_its_predictions() -> None:
    test = concept_test()
    state, alarm = concept_step(test, CusumState(), 100, 50)
    assert alarm is not None and alarm.index == 99 and alarm.detail["samples"] == 100
    assert state == CusumState(0.0, 100)  # restarts after an alarm
    quiet, none = concept_step(test, CusumState(), 100, 4)
    assert none is None and quiet.statistic == 0.0 and quiet.labelled == 100
    assert CusumState.from_json(state.to_json()) == state
    with pytest.raises(ValueError, match="not a count"):
        concept_step(test, CusumState(), 3, 4)


def test_a_perfect_held_out_score_still_leaves_room_for_errors() -> None:
    test = ConceptTest.for_model(1.0, 300, DetectorSettings())
    assert 0 < test.expected_error < 0.01
    assert concept_alarms(test, [False] * 1000 + [True]) == []


# -- features ----------------------------------------------------------------------------
def references(x: np.ndarray) -> dict[str, FeatureBaseline]:
    return {name: baseline_bins(x[:, i]) for i, name in enumerate(FEATURES)}


def columns(name: str, **spec: int) -> dict[str, np.ndarray]:
    stream = generate(ScenarioSpec(name=name, **spec))
    return {feature: stream.x[:, i] for i, feature in enumerate(FEATURES)}


def test_covariate_shift_raises_a_feature_alarm_in_the_first_full_block(model) -> None:
    test = FeatureTest.for_model(references(model[1]), DetectorSettings())
    alarms = feature_alarms(test, columns("covariate", rows=4000, onset=2000, seed=1))
    assert alarms and alarms[0].index == 2499
    first = alarms[0]
    assert first.kind == "covariate" and first.test == FEATURE_TEST
    assert first.detail["p_value"] < first.threshold == pytest.approx(500 / 1e6 / 4)
    assert first.detail["feature"] in FEATURES and first.detail["psi"] > 0.1


def test_no_drift_raises_no_feature_alarm(model) -> None:
    test = FeatureTest.for_model(references(model[1]), DetectorSettings())
    assert feature_alarms(test, columns("none", rows=50_000, onset=1, seed=8)) == []


def test_the_feature_budget_holds_and_a_looser_one_alarms_more(model) -> None:
    stream = columns("none", rows=100_000, onset=1, seed=9)
    loose = FeatureTest.for_model(references(model[1]),
                                  DetectorSettings(feature_arl0=5000, feature_block=100))
    alarms = feature_alarms(loose, stream)
    # 1000 blocks at 2% each: about 20 expected, never more than the budget allows twice.
    assert 0 < len(alarms) <= 2 * 100_000 / 5000


def test_a_reference_without_row_counts_is_taken_as_exact() -> None:
    exact = FeatureBaseline((0.0,), (0.5, 0.5))
    test = FeatureTest({"f": exact}, block=100, arl0=1e4)
    state, alarm = feature_step(test, FeatureBlock(), {"f": [50, 49]}, 99)
    assert alarm is None and state.rows == 99
    state, alarm = feature_step(test, state, {"f": [0, 1]}, 1)
    assert alarm is None and state == FeatureBlock({}, 0, 100)
    _, alarm = feature_step(test, state, {"f": [90, 10]}, 100)
    assert alarm is not None and alarm.detail["feature"] == "f"
    with pytest.raises(ValueError, match="3 bin counts for 2 reference bins"):
        feature_step(test, state, {"f": [1, 2, 3]}, 6)


def test_settings_come_from_the_monitors_variables() -> None:
    settings = DetectorSettings.from_env({"TROUPE_CONCEPT_ARL0": "5000",
                                          "TROUPE_FEATURE_BLOCK": "250"})
    assert (settings.concept_arl0, settings.feature_block) == (5000.0, 250)
    with pytest.raises(SettingsError, match="TROUPE_CONCEPT_DROP"):
        DetectorSettings.from_env({"TROUPE_CONCEPT_DROP": "1.5"})
    with pytest.raises(SettingsError, match="TROUPE_CONCEPT_ARL0"):
        DetectorSettings.from_env({"TROUPE_CONCEPT_ARL0": "1"})
