"""The drift scenarios: seeded, labelled with their onsets, and drifting as they say."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from troupe.ml.scenarios import SCENARIOS, ScenarioSpec, generate, reference_sample


@pytest.fixture(scope="module")
def reference_model() -> LogisticRegression:
    x, y = reference_sample(2000, seed=1)
    return LogisticRegression().fit(x, y)


def accuracy(model: LogisticRegression, x: np.ndarray, y: np.ndarray) -> float:
    return float((model.predict(x) == y).mean())


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_same_seed_gives_the_same_stream(name: str) -> None:
    a, b = generate(ScenarioSpec(name=name, seed=4)), generate(ScenarioSpec(name=name, seed=4))
    other = generate(ScenarioSpec(name=name, seed=5))
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.x, other.x)


def test_each_scenario_moves_a_reference_models_accuracy_as_it_says(
    reference_model: LogisticRegression,
) -> None:
    spec = {"rows": 12_000, "onset": 4_000, "period": 4_000, "seed": 2}
    before_after = {}
    for name in SCENARIOS:
        stream = generate(ScenarioSpec(name=name, **spec))
        before = accuracy(reference_model, stream.x[:4000], stream.y[:4000])
        after = accuracy(reference_model, stream.x[6000:8000], stream.y[6000:8000])
        before_after[name] = (before, after)
        assert before > 0.9, name
    assert before_after["none"][1] > 0.9
    assert before_after["covariate"][1] > 0.9
    assert before_after["abrupt"][1] < 0.5
    assert before_after["gradual"][1] < 0.5  # the transition is over by row 6000
    drop = before_after["moderate"][0] - before_after["moderate"][1]
    assert 0.07 < drop < 0.13
    recurring = generate(ScenarioSpec(name="recurring", **spec))
    assert accuracy(reference_model, recurring.x[9000:], recurring.y[9000:]) > 0.9


def test_onsets_are_labelled_with_their_kind() -> None:
    assert generate(ScenarioSpec(name="none")).drifts == ()
    (covariate,) = generate(ScenarioSpec(name="covariate", onset=1234)).drifts
    assert (covariate.onset, covariate.kind) == (1234, "covariate")
    gone, back = generate(ScenarioSpec(name="recurring", onset=1000, period=500)).drifts
    assert (gone.onset, gone.kind, back.onset, back.to) == (1000, "concept", 1500, "reference")


def test_the_covariate_scenario_moves_the_features() -> None:
    stream = generate(ScenarioSpec(name="covariate", onset=5000, seed=3))
    shift = stream.x[5000:].mean(axis=0) - stream.x[:5000].mean(axis=0)
    assert np.abs(shift).max() > 0.5


def test_gradual_drift_mixes_the_concepts_over_its_width() -> None:
    stream = generate(ScenarioSpec(name="gradual", onset=1000, gradual_width=4000, seed=1))
    drifted = np.array([c != "reference" for c in stream.concept])
    assert not drifted[:1000].any()
    assert 0.1 < drifted[1000:2000].mean() < drifted[4000:5000].mean() < 0.95
    assert drifted[5000:].all()


def test_labels_arrive_late_and_out_of_order_when_asked() -> None:
    prompt = generate(ScenarioSpec(name="none", seed=1))
    assert np.array_equal(prompt.label_order(), np.arange(prompt.rows))
    late = generate(ScenarioSpec(name="none", label_delay=50, label_jitter=20, seed=1))
    assert (late.arrival - np.arange(late.rows) - 1 >= 50).all()
    order = late.label_order()
    assert not np.array_equal(order, np.arange(late.rows))
    assert np.all(np.diff(late.arrival[order]) >= 0)


def test_a_bad_spec_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'sudden'"):
        ScenarioSpec(name="sudden")
    with pytest.raises(ValueError, match="onset"):
        ScenarioSpec(rows=100, onset=100)
