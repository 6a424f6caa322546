"""evaluator, called directly: models trained and registered by the real trainer."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pandas as pd
import pytest
from cloudevents.core.v1.event import CloudEvent
from support.functions import load_function
from troupe.events import MODEL_APPROVED, MODEL_REJECTED, TRAINING_FINISHED, make_event, validate
from troupe.function import Context, PermanentError, SettingsError
from troupe.ml.synthetic import synthetic_frame, to_csv_bytes
from troupe.store import Store

ingest = load_function("ingest")
trainer = load_function("trainer")
evaluator = load_function("evaluator")


def call(module: ModuleType, settings: Any, store: Store, event: CloudEvent) -> CloudEvent:
    reply: CloudEvent = module.handle(event, Context(settings=settings, store=store, event=event))
    validate(reply)
    return reply


def ingest_file(
    store: Store, name: str, drop: tuple[str, ...] = (), *, copies: int = 1, flip: bool = False
) -> CloudEvent:
    frame = synthetic_frame(600, seed=1).drop(columns=list(drop))
    if flip:  # every label wrong: what a broken labelling job would deliver
        frame["label"] = 1 - frame["label"]
    frame = pd.concat([frame] * copies, ignore_index=True)
    store.write_bytes(name, to_csv_bytes(frame))
    event = make_event("data-arrived", {"uri": name, "target": "label"}, source="/tests")
    return call(ingest, ingest.IngestSettings(), store, event)


def trained(store: Store, cause: CloudEvent | None = None, **request: Any) -> CloudEvent:
    event = cause or make_event("training-requested", {"reason": "test", **request},
                                source="/tests")
    reply = call(trainer, trainer.TrainerSettings(), store, event)
    assert reply.get_type() == TRAINING_FINISHED, reply.get_data()
    return reply


def evaluate(store: Store, finished: CloudEvent, **settings: Any) -> CloudEvent:
    return call(evaluator, evaluator.EvaluatorSettings(**settings), store, finished)


def test_the_first_model_is_approved_against_the_floor_alone(store: Store) -> None:
    finished = trained(store, ingest_file(store, "a.csv"))

    reply = evaluate(store, finished, eval_floor=0.6)

    assert reply.get_type() == MODEL_APPROVED
    data = reply.get_data()
    assert (data["model"], data["version"], data["metric"]) == ("default", "v1", "accuracy")
    assert data["candidate_score"] > 0.75
    assert data["champion_version"] is None and data["champion_score"] is None
    assert data["eval_rows"] == 120  # the seeded 20% held out of the 600-row dataset
    assert data["sha256"] == finished.get_data()["sha256"]
    assert reply.get_extension("modelversion") == "v1"
    assert reply.get_extension("runid") == finished.get_extension("runid")
    record = store.read_json("evaluations/default/v1.json")
    assert record["approved"] is True
    # The held-out accuracy is the expected accuracy the monitor's concept test uses.
    assert record["expected_accuracy"] == data["candidate_score"]
    assert store.registry.champion("default") is None, "the evaluator never crowns"


def test_a_candidate_worse_than_the_champion_is_rejected_with_both_scores(store: Store) -> None:
    clean = ingest_file(store, "clean.csv").get_data()["dataset_id"]
    trained(store, dataset_ids=[clean])
    store.registry.set_champion("default", "v1")
    flipped = ingest_file(store, "flipped.csv", copies=2, flip=True).get_data()["dataset_id"]
    # mostly mislabelled training rows; the newest dataset named (clean) is the one held out
    weak = trained(store, dataset_ids=[flipped, clean])

    reply = evaluate(store, weak, eval_floor=0.0, eval_tolerance=0.02)

    assert reply.get_type() == MODEL_REJECTED
    data = reply.get_data()
    assert data["version"] == "v2" and data["champion_version"] == "v1"
    assert data["champion_score"] > 0.75 > data["candidate_score"]
    assert "worse than the champion" in data["reason"]


def test_a_candidate_as_good_as_the_champion_is_approved(store: Store) -> None:
    trained(store, ingest_file(store, "a.csv"))
    store.registry.set_champion("default", "v1")
    same_kind = trained(store, estimator="logistic_regression")
    reply = evaluate(store, same_kind, eval_tolerance=0.0)
    assert reply.get_type() == MODEL_APPROVED
    data = reply.get_data()
    # same data, same rows, same estimator: the same score on the same held-out rows
    assert data["candidate_score"] == pytest.approx(data["champion_score"])


def test_below_the_floor_is_rejected_even_without_a_champion(store: Store) -> None:
    finished = trained(store, ingest_file(store, "a.csv"))
    reply = evaluate(store, finished, eval_floor=0.999, eval_metric="roc_auc")
    assert reply.get_type() == MODEL_REJECTED
    assert reply.get_data()["metric"] == "roc_auc"
    assert "below the floor 0.9990" in reply.get_data()["reason"]


def test_a_champion_that_cannot_read_the_new_schema_leaves_the_floor_to_decide(
    store: Store,
) -> None:
    trained(store, ingest_file(store, "six.csv"))
    store.registry.set_champion("default", "v1")
    four = trained(store, ingest_file(store, "four.csv", drop=("f4", "f5")))
    reply = evaluate(store, four)
    assert reply.get_type() == MODEL_APPROVED
    assert reply.get_data()["champion_score"] is None
    assert "champion v1 could not be scored" in reply.get_data()["reason"]


def test_redelivery_is_answered_from_the_recorded_verdict(store: Store) -> None:
    finished = trained(store, ingest_file(store, "a.csv"))
    first = evaluate(store, finished)
    store.registry.set_champion("default", "v1")  # the world moved on meanwhile
    again = evaluate(store, finished, eval_floor=0.99)
    assert (again.get_id(), again.get_type(), again.get_data()) == (
        first.get_id(), first.get_type(), first.get_data()
    )


def test_events_that_do_not_describe_a_registered_model_are_permanent_errors(
    store: Store,
) -> None:
    finished = trained(store, ingest_file(store, "a.csv"))
    data = finished.get_data()
    ghost = make_event("training-finished", {**data, "version": "v9"}, source="/tests")
    with pytest.raises(PermanentError, match="v9 is not in the model registry"):
        evaluate(store, ghost)
    forged = make_event("training-finished", {**data, "sha256": "0" * 64}, source="/tests")
    with pytest.raises(PermanentError, match="does not describe the registered model"):
        evaluate(store, forged)
    assert not store.exists("evaluations/default/v9.json")


def test_settings_come_from_the_environment() -> None:
    settings = evaluator.EvaluatorSettings.from_env(
        {"TROUPE_EVAL_METRIC": "f1", "TROUPE_EVAL_TOLERANCE": "0.05", "TROUPE_EVAL_FLOOR": "0.7"}
    )
    assert (settings.eval_metric, settings.eval_tolerance, settings.eval_floor) == (
        "f1", 0.05, 0.7
    )
    with pytest.raises(SettingsError, match="TROUPE_EVAL_METRIC"):
        evaluator.EvaluatorSettings.from_env({"TROUPE_EVAL_METRIC": "mse"})
