"""trainer, called directly: datasets catalogued by the real ingest, real scikit-learn."""

from __future__ import annotations

from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent
from support.functions import load_function
from troupe.events import (
    DATA_VALIDATED,
    TRAINING_FAILED,
    TRAINING_FINISHED,
    InvalidEventDataError,
    make_event,
    validate,
)
from troupe.function import Context, SettingsError
from troupe.ml import ESTIMATORS
from troupe.ml.synthetic import synthetic_frame, to_csv_bytes
from troupe.store import Store

CLASS_NAMES = {
    "logistic_regression": "LogisticRegression",
    "hist_gradient_boosting": "HistGradientBoostingClassifier",
    "random_forest": "RandomForestClassifier",
}


ingest = load_function("ingest")
trainer = load_function("trainer")


def validated(store: Store, seed: int, rows: int = 400, model: str = "default") -> CloudEvent:
    """Upload a dataset and run the real ingest on it; its data-validated reply."""
    key = f"incoming/{model}-{seed}.csv"
    store.write_bytes(key, to_csv_bytes(synthetic_frame(rows, seed=seed)))
    event = make_event("data-arrived", {"uri": key, "target": "label", "model": model},
                       source="/tests")
    ctx = Context(settings=ingest.IngestSettings(service="ingest"), store=store, event=event)
    reply: CloudEvent = ingest.handle(event, ctx)
    assert reply.get_type() == DATA_VALIDATED, reply.get_data()
    return reply


def train(store: Store, event: CloudEvent, **settings: Any) -> CloudEvent:
    ctx = Context(settings=trainer.TrainerSettings(service="trainer", **settings), store=store,
                  event=event)
    reply: CloudEvent = trainer.handle(event, ctx)
    validate(reply)
    return reply


def requested(**data: Any) -> CloudEvent:
    return make_event("training-requested", {"reason": "test", **data}, source="/tests")


def test_data_validated_trains_registers_and_replies_training_finished(store: Store) -> None:
    arrival = validated(store, seed=1)

    reply = train(store, arrival)

    assert reply.get_type() == TRAINING_FINISHED
    data = reply.get_data()
    assert (data["model"], data["version"]) == ("default", "v1")
    assert reply.get_extension("modelversion") == "v1"
    assert reply.get_extension("runid") == arrival.get_extension("runid")
    assert set(data["metrics"]) == {"accuracy", "f1", "roc_auc"}
    assert data["metrics"]["accuracy"] > 0.75
    assert data["dataset_ids"] == [arrival.get_data()["dataset_id"]]
    assert data["estimator"] == "logistic_regression"
    registered = store.registry.get("default", "v1")
    assert (registered.artifact_uri, registered.sha256) == (data["artifact_uri"], data["sha256"])
    lineage = registered.lineage
    assert lineage["dataset_ids"] == data["dataset_ids"]
    assert lineage["stats_uri"] == arrival.get_data()["stats_uri"]
    assert lineage["features"] == [f"f{i}" for i in range(6)]
    assert (lineage["target"], lineage["classes"]) == ("label", [0, 1])
    assert lineage["cause"] == {"source": arrival.get_source(), "id": arrival.get_id(),
                                "type": arrival.get_type()}
    assert lineage["runid"] == arrival.get_extension("runid")
    # The reference feature distributions, counted from the rows the model learnt from.
    reference = store.read_json(lineage["reference_uri"])
    assert reference["rows"] == 400  # the whole dataset: trained and held-out rows
    assert set(reference["features"]) == {f"f{i}" for i in range(6)}
    f0 = reference["features"]["f0"]
    assert f0["rows"] == reference["rows"] and len(f0["fractions"]) == 10
    model = store.load_model(data["artifact_uri"], data["sha256"])
    predictions = model.predict(synthetic_frame(50, seed=1).drop(columns=["label"]))
    assert set(predictions) <= {0, 1}


def test_redelivery_replies_the_same_and_makes_no_second_version(store: Store) -> None:
    arrival = validated(store, seed=1)
    first = train(store, arrival)
    again = train(store, arrival)
    assert (again.get_id(), again.get_data()) == (first.get_id(), first.get_data())
    assert [v.version for v in store.registry.versions("default")] == ["v1"]


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_every_estimator_trains_from_settings(store: Store, estimator: str) -> None:
    arrival = validated(store, seed=2)
    params = '{"n_estimators": 25}' if estimator == "random_forest" else "{}"
    reply = train(store, arrival, estimator=estimator, estimator_params=params)
    assert reply.get_type() == TRAINING_FINISHED, reply.get_data()
    assert reply.get_data()["estimator"] == estimator
    assert reply.get_data()["metrics"]["accuracy"] > 0.75
    model = store.load_model(reply.get_data()["artifact_uri"], reply.get_data()["sha256"])
    assert type(model.named_steps["estimator"]).__name__ == CLASS_NAMES[estimator]


def test_the_window_ends_at_the_validated_dataset(store: Store) -> None:
    arrivals = [validated(store, seed=s, rows=200) for s in range(1, 5)]
    ids = [a.get_data()["dataset_id"] for a in arrivals]

    third = train(store, arrivals[2], training_window=3)
    assert third.get_data()["dataset_ids"] == ids[0:3]
    assert third.get_data()["rows_train"] + third.get_data()["rows_test"] == 600

    last_two = train(store, requested(window=2))
    assert last_two.get_data()["dataset_ids"] == ids[2:4]
    chosen = train(store, requested(dataset_ids=[ids[3], ids[0]]))
    assert chosen.get_data()["dataset_ids"] == [ids[3], ids[0]]
    assert [v.version for v in store.registry.versions("default")] == ["v1", "v2", "v3"]


def test_a_request_may_choose_the_estimator_and_its_parameters(store: Store) -> None:
    validated(store, seed=3)
    reply = train(store, requested(estimator="hist_gradient_boosting", params={"max_iter": 5}),
                  estimator="random_forest", estimator_params='{"n_estimators": 10}')
    assert reply.get_data()["estimator"] == "hist_gradient_boosting"
    assert reply.get_data()["params"] == {"max_iter": 5}
    lineage = store.registry.get("default", "v1").lineage
    assert lineage["params"] == {"max_iter": 5}


@pytest.mark.parametrize(
    ("request_data", "expected"),
    [
        ({}, "no validated datasets for model 'default'"),
        ({"dataset_ids": ["0" * 64]}, "unknown dataset ids"),
        ({"estimator": "random_forest", "params": {"bogus": 1}}, "does not take these parameters"),
        ({"params": {"C": -1.0}}, "could not be fitted"),
    ],
)
def test_what_cannot_be_trained_is_answered_training_failed(
    store: Store, request_data: dict[str, Any], expected: str
) -> None:
    if request_data:
        validated(store, seed=4)
    reply = train(store, requested(**request_data))
    assert reply.get_type() == TRAINING_FAILED
    assert expected in reply.get_data()["reason"]
    assert store.registry.versions("default") == []


def test_an_unknown_estimator_is_refused_by_the_schema_before_the_handler() -> None:
    with pytest.raises(InvalidEventDataError, match="estimator"):
        requested(estimator="svm")


def test_a_dataset_changed_after_validation_is_refused(store: Store) -> None:
    arrival = validated(store, seed=5)
    store.write_bytes(store.key_of(arrival.get_data()["uri"]), b"f0,label\n1,0\n")
    reply = train(store, arrival)
    assert reply.get_type() == TRAINING_FAILED
    assert "changed after validation" in reply.get_data()["reason"]


def test_settings_come_from_the_environment_and_bad_ones_stop_the_start() -> None:
    settings = trainer.TrainerSettings.from_env({
        "TROUPE_ESTIMATOR": "random_forest",
        "TROUPE_ESTIMATOR_PARAMS": '{"n_estimators": 50}',
        "TROUPE_TRAINING_WINDOW": "5",
    })
    assert settings.params == {"n_estimators": 50}
    assert settings.training_window == 5
    with pytest.raises(SettingsError, match="TROUPE_ESTIMATOR="):
        trainer.TrainerSettings.from_env({"TROUPE_ESTIMATOR": "svm"})
    with pytest.raises(SettingsError, match="not JSON"):
        trainer.TrainerSettings.from_env({"TROUPE_ESTIMATOR_PARAMS": "{n_estimators: 5}"})
    with pytest.raises(SettingsError, match="JSON object"):
        trainer.TrainerSettings.from_env({"TROUPE_ESTIMATOR_PARAMS": "[1]"})


def test_train_on_arrival_first_leaves_later_datasets_to_training_requested(
    store: Store,
) -> None:
    first = train(store, validated(store, seed=1), train_on_arrival="first")
    assert first.get_type() == TRAINING_FINISHED
    later = validated(store, seed=2)
    ctx = Context(settings=trainer.TrainerSettings(service="trainer", train_on_arrival="first"),
                  store=store, event=later)
    assert trainer.handle(later, ctx) is None  # catalogued, not trained
    assert [v.version for v in store.registry.versions("default")] == ["v1"]
    # The policy's (or a user's) request then trains on the window that includes it.
    retrained = train(store, requested(window=2), train_on_arrival="first")
    assert retrained.get_data()["version"] == "v2"
    assert retrained.get_data()["dataset_ids"][-1] == later.get_data()["dataset_id"]


def test_an_unknown_train_on_arrival_is_refused_at_start() -> None:
    with pytest.raises(SettingsError, match="TROUPE_TRAIN_ON_ARRIVAL"):
        trainer.TrainerSettings(train_on_arrival="sometimes")
