"""Training pipelines and held-out metrics on real scikit-learn."""

from __future__ import annotations

import pandas as pd
import pytest
from troupe.ml import (
    ESTIMATORS,
    Holdout,
    TrainingError,
    build_pipeline,
    holdout_split,
    train,
)
from troupe.ml.synthetic import synthetic_frame

FEATURES = [f"f{i}" for i in range(6)]


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_every_estimator_learns_a_separable_task(estimator: str) -> None:
    params = {"n_estimators": 30} if estimator == "random_forest" else {}
    trained = train(
        [synthetic_frame(800, seed=1)],
        features=FEATURES,
        target="label",
        estimator=estimator,
        params=params,
    )
    assert set(trained.metrics) == {"accuracy", "f1", "roc_auc"}
    assert trained.metrics["accuracy"] > 0.8
    assert trained.metrics["roc_auc"] > 0.85
    assert (trained.rows_train, trained.rows_test) == (640, 160)
    assert trained.classes == (0, 1)


def test_only_logistic_regression_is_scaled() -> None:
    assert [n for n, _ in build_pipeline("logistic_regression").steps] == [
        "impute", "scale", "estimator",
    ]
    assert [n for n, _ in build_pipeline("random_forest").steps] == ["impute", "estimator"]


def test_parameters_reach_the_estimator_and_bad_ones_are_explained() -> None:
    pipeline = build_pipeline("hist_gradient_boosting", {"max_iter": 7})
    assert pipeline.named_steps["estimator"].max_iter == 7
    with pytest.raises(TrainingError, match="does not take these parameters"):
        build_pipeline("random_forest", {"no_such_knob": 1})
    with pytest.raises(TrainingError, match="unknown estimator 'svm'"):
        build_pipeline("svm")
    with pytest.raises(TrainingError, match="could not be fitted"):
        train([synthetic_frame(200)], features=FEATURES, target="label",
              estimator="random_forest", params={"n_estimators": -3})


def test_multiclass_has_no_roc_auc() -> None:
    trained = train([synthetic_frame(600, classes=3)], features=FEATURES, target="label",
                    estimator="logistic_regression")
    assert set(trained.metrics) == {"accuracy", "f1"}
    assert trained.classes == (0, 1, 2)


def test_the_holdout_is_a_seeded_function_of_the_rows() -> None:
    frame = synthetic_frame(500)
    first_train, first_test = holdout_split(frame, "label", Holdout(0.2, 7))
    _, again_test = holdout_split(frame.copy(), "label", Holdout(0.2, 7))
    _, other_test = holdout_split(frame, "label", Holdout(0.2, 8))
    assert list(first_test.index) == list(again_test.index)
    assert list(first_test.index) != list(other_test.index)
    assert set(first_train.index).isdisjoint(first_test.index)
    assert len(first_test) == 100
    # stratified: both classes keep their share in the held-out rows
    assert first_test["label"].mean() == pytest.approx(frame["label"].mean(), abs=0.02)


def test_a_window_trains_on_every_dataset_and_holds_out_from_each() -> None:
    frames = [synthetic_frame(300, seed=s) for s in (1, 2, 3)]
    trained = train(frames, features=FEATURES, target="label", estimator="logistic_regression")
    assert trained.rows_train + trained.rows_test == 900
    assert trained.rows_test == 3 * 60


def test_a_single_class_cannot_be_trained() -> None:
    frame = synthetic_frame(100)
    frame["label"] = 0
    with pytest.raises(TrainingError, match="single class"):
        train([frame], features=FEATURES, target="label", estimator="logistic_regression")
    with pytest.raises(TrainingError, match="no dataset"):
        train([], features=FEATURES, target="label", estimator="logistic_regression")
    assert isinstance(frame, pd.DataFrame)
