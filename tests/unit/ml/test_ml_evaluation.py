"""The evaluator's rule: a floor, and no worse than the champion beyond a tolerance."""

from __future__ import annotations

import pytest
from troupe.ml import EvaluationError, decide, score, train
from troupe.ml.synthetic import synthetic_frame

FEATURES = [f"f{i}" for i in range(6)]


@pytest.mark.parametrize(
    ("candidate", "champion", "approved", "why"),
    [
        (0.90, None, True, "no champion yet"),
        (0.40, None, False, "below the floor"),
        (0.89, 0.90, True, "within"),
        (0.85, 0.90, False, "worse than the champion"),
        (0.95, 0.90, True, "within"),
        (0.40, 0.30, False, "below the floor"),
    ],
)
def test_decide(candidate: float, champion: float | None, approved: bool, why: str) -> None:
    verdict = decide("accuracy", candidate, champion, tolerance=0.02, floor=0.5)
    assert verdict.approved is approved
    assert why in verdict.reason


def test_score_uses_the_named_metric_and_refuses_what_it_cannot_compute() -> None:
    frame = synthetic_frame(400, seed=1)
    model = train([frame], features=FEATURES, target="label",
                  estimator="logistic_regression").pipeline
    accuracy = score(model, frame, features=FEATURES, target="label", metric="accuracy")
    auc = score(model, frame, features=FEATURES, target="label", metric="roc_auc")
    assert 0.8 < accuracy <= 1.0
    assert auc > accuracy - 0.1
    with pytest.raises(EvaluationError, match="unknown metric"):
        score(model, frame, features=FEATURES, target="label", metric="mse")
    with pytest.raises(EvaluationError, match="lacks the model's features"):
        score(model, frame.drop(columns=["f2"]), features=FEATURES, target="label",
              metric="accuracy")
    three = synthetic_frame(300, classes=3)
    model3 = train([three], features=FEATURES, target="label",
                   estimator="logistic_regression").pipeline
    with pytest.raises(EvaluationError, match="binary"):
        score(model3, three, features=FEATURES, target="label", metric="roc_auc")
