"""Training a classifier pipeline on a window of datasets, and the metrics it is judged by.

The held-out split is taken per dataset, by a seeded function of the dataset's own rows
(`holdout_split`). The evaluator calls the same function, so a candidate and a champion
trained on the same dataset never saw the rows they are compared on.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .spec import (
    ESTIMATORS,
    HIST_GRADIENT_BOOSTING,
    LOGISTIC_REGRESSION,
    RANDOM_FOREST,
    Holdout,
    TrainingError,
)

DEFAULT_HOLDOUT: Final = Holdout()  # frozen: one shared default is safe


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Pipeline
    metrics: dict[str, float]
    rows_train: int
    rows_test: int
    classes: tuple[Any, ...]


def _estimator(name: str, seed: int) -> tuple[BaseEstimator, bool]:
    """The estimator for `name` and whether it needs scaled inputs."""
    if name == LOGISTIC_REGRESSION:
        return LogisticRegression(max_iter=1000, random_state=seed), True
    if name == HIST_GRADIENT_BOOSTING:
        return HistGradientBoostingClassifier(random_state=seed), False
    if name == RANDOM_FOREST:
        return RandomForestClassifier(n_estimators=100, random_state=seed), False
    raise TrainingError(f"unknown estimator {name!r}: choose one of {', '.join(ESTIMATORS)}")


def build_pipeline(
    name: str, params: Mapping[str, Any] | None = None, *, seed: int = 42
) -> Pipeline:
    """Imputer, a scaler for the estimators that need one, and the estimator with `params`."""
    estimator, needs_scaling = _estimator(name, seed)
    try:
        estimator.set_params(**dict(params or {}))
    except ValueError as error:
        raise TrainingError(f"{name} does not take these parameters: {error}") from None
    steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if needs_scaling:
        steps.append(("scale", StandardScaler()))
    steps.append(("estimator", estimator))
    return Pipeline(steps)


def holdout_split(
    frame: pd.DataFrame, target: str, holdout: Holdout
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train rows, held-out rows) of one dataset; stratified when every class allows it."""
    labels = frame[target]
    counts = labels.value_counts()
    test_rows = int(np.ceil(len(frame) * holdout.fraction))
    stratify = labels if counts.min() >= 2 and test_rows >= len(counts) else None
    train, test = train_test_split(
        frame, test_size=holdout.fraction, random_state=holdout.seed, stratify=stratify
    )
    return train, test


def classification_metrics(
    model: Pipeline, frame: pd.DataFrame, features: Sequence[str], target: str
) -> dict[str, float]:
    """accuracy, macro F1 and, for a binary task, ROC AUC of `model` on `frame`."""
    inputs = frame[list(features)]
    truth = frame[target].to_numpy()
    predicted = model.predict(inputs)
    metrics = {
        "accuracy": float(accuracy_score(truth, predicted)),
        "f1": float(f1_score(truth, predicted, average="macro")),
    }
    classes = list(model.classes_)
    # AUC is undefined when the held-out rows hold a single class; leave it out then.
    if len(classes) == 2 and len(np.unique(truth)) == 2:
        positive = model.predict_proba(inputs)[:, 1]
        metrics["roc_auc"] = float(roc_auc_score(truth == classes[1], positive))
    return metrics


def train(
    frames: Sequence[pd.DataFrame],
    *,
    features: Sequence[str],
    target: str,
    estimator: str,
    params: Mapping[str, Any] | None = None,
    holdout: Holdout = DEFAULT_HOLDOUT,
) -> TrainedModel:
    """Fit a pipeline on the training rows of every frame; score it on their held-out rows."""
    if not frames:
        raise TrainingError("there is no dataset to train on")
    columns = [*features, target]
    trains, tests = [], []
    for frame in frames:
        train_part, test_part = holdout_split(frame[columns], target, holdout)
        trains.append(train_part)
        tests.append(test_part)
    train_rows = pd.concat(trains, ignore_index=True)
    test_rows = pd.concat(tests, ignore_index=True)
    if train_rows[target].nunique() < 2:
        raise TrainingError("the training rows hold a single class; a classifier needs two")
    pipeline = build_pipeline(estimator, params, seed=holdout.seed)
    try:
        with warnings.catch_warnings():
            # A logistic regression that stops at max_iter is still a usable model; its
            # metrics say how good, so the warning would only be noise in the logs.
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipeline.fit(train_rows[list(features)], train_rows[target].to_numpy())
    except (ValueError, TypeError) as error:
        raise TrainingError(f"{estimator} could not be fitted: {error}") from None
    return TrainedModel(
        pipeline=pipeline,
        metrics=classification_metrics(pipeline, test_rows, features, target),
        rows_train=len(train_rows),
        rows_test=len(test_rows),
        classes=tuple(_plain(c) for c in pipeline.classes_),
    )


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
