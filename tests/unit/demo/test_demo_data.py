"""The demo's live data source plays the scenarios of troupe.ml.scenarios."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from troupe.demo.data import DriftingSource


def fitted(seed: int = 1) -> LogisticRegression:
    x, y = DriftingSource(seed=seed).sample(2000)
    return LogisticRegression().fit(x, y)


def accuracy_after_drift(scenario: str, rows: int = 3000) -> float:
    model = fitted()
    source = DriftingSource(seed=2, scenario=scenario, drifted=True)
    x, y = source.sample(rows)
    return float((model.predict(x) == y).mean())


def test_before_the_drift_every_scenario_is_the_reference_concept() -> None:
    model = fitted()
    for scenario in ("none", "abrupt", "moderate", "gradual", "covariate"):
        x, y = DriftingSource(seed=3, scenario=scenario).sample(2000)
        assert (model.predict(x) == y).mean() > 0.9, scenario


def test_each_drift_costs_what_its_scenario_says() -> None:
    assert accuracy_after_drift("abrupt") < 0.5
    assert 0.78 < accuracy_after_drift("moderate") < 0.9
    assert accuracy_after_drift("covariate") > 0.9
    assert accuracy_after_drift("none") > 0.9


def test_gradual_drift_deepens_as_rows_are_drawn() -> None:
    model = fitted()
    source = DriftingSource(seed=4, scenario="gradual", gradual_width=2000, drifted=True)
    early = source.sample(500)
    source.sample(1500)
    late = source.sample(1000)
    accuracy = [float((model.predict(x) == y).mean()) for x, y in (early, late)]
    assert accuracy[0] > 0.75 > 0.5 > accuracy[1]


def test_the_covariate_scenario_moves_the_inputs() -> None:
    before, _ = DriftingSource(seed=5, scenario="covariate").sample(2000)
    after, _ = DriftingSource(seed=5, scenario="covariate", drifted=True).sample(2000)
    assert np.abs(after.mean(axis=0) - before.mean(axis=0)).max() > 0.5


def test_a_batch_is_csv_with_the_features_and_the_label() -> None:
    text = DriftingSource(seed=1).batch_csv(3).decode()
    assert text.splitlines()[0] == "f1,f2,f3,f4,label" and len(text.splitlines()) == 4


def test_recurring_cannot_be_played_live() -> None:
    with pytest.raises(ValueError, match="cannot be played live"):
        DriftingSource(scenario="recurring")
