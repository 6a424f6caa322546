"""Rebuilding runs from an event log: lineage, order, duplicates and model lookups."""

from __future__ import annotations

from troupe.client.timeline import build_timeline, runs_of_model, summarize
from troupe.events import make_event

SHA = "ab" * 32


def _run() -> list:
    arrived = make_event("data-arrived", {"uri": "in/a.csv", "target": "y"}, source="/troupe/cli")
    validated = make_event(
        "data-validated",
        {"dataset_id": SHA, "uri": "datasets/a.csv", "target": "y", "rows": 100,
         "features": ["x"], "stats_uri": "stats/a.json"},
        cause=arrived, source="/troupe/ingest",
    )
    finished = make_event(
        "training-finished",
        {"model": "default", "version": "v1", "artifact_uri": "models/default/v1.skops",
         "sha256": SHA, "metrics": {"accuracy": 0.9}, "dataset_ids": [SHA]},
        cause=validated, source="/troupe/trainer", extensions={"modelversion": "v1"},
    )
    return [arrived, validated, finished]


def test_a_run_is_rebuilt_in_order_with_one_runid_and_producers() -> None:
    run = _run()
    other = make_event("data-arrived", {"uri": "in/b.csv", "target": "y"})
    runid = run[0].get_id()
    # The log interleaves runs and holds an at-least-once duplicate.
    steps = build_timeline([run[2], other, run[0], run[1], run[2]], {runid})
    assert [s.type for s in steps] == ["data-arrived", "data-validated", "training-finished"]
    assert [s.service for s in steps] == ["cli", "ingest", "trainer"]
    assert {s.runid for s in steps} == {runid}
    assert steps[0].since_previous_s is None
    assert all(s.since_previous_s is not None and s.since_previous_s >= 0 for s in steps[1:])


def test_runs_of_a_model_version_are_found_by_extension_or_data() -> None:
    run = _run()
    assert runs_of_model(run, "v1") == {run[0].get_id()}
    assert runs_of_model(run, "v9") == set()


def test_outcome_marks_bad_news() -> None:
    arrived = make_event("data-arrived", {"uri": "in/a.csv", "target": "y"})
    rejected = make_event("data-rejected", {"uri": "in/a.csv", "reasons": ["empty"]}, cause=arrived)
    steps = build_timeline([arrived, rejected], {arrived.get_id()})
    assert [s.outcome for s in steps] == ["ok", "rejected"]


def test_summaries_shorten_hashes_and_collections() -> None:
    text = summarize({"dataset_id": SHA, "features": ["a", "b"], "score": 0.123456})
    assert text == f"dataset_id={SHA[:12]} features=[2] score=0.1235"
    assert len(summarize({"k": "x" * 500}, width=40)) == 40
