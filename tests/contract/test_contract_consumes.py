"""A function answers only the event types it declares it consumes; any other is refused
with 422 naming the accepted types, before its handler runs.

The apps here are the functions' own, built by their main.py from the environment as
gunicorn builds them, and served on loopback.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from cloudevents.core.v1.event import CloudEvent
from flask import Flask
from support.functions import load_main
from troupe import events
from troupe.ml.synthetic import synthetic_frame, to_csv_bytes
from troupe.store import Store

Serve = Callable[[Flask], str]


def post(url: str, event: CloudEvent) -> requests.Response:
    message = events.to_http_binary(event)
    return requests.post(url, headers=message.headers, data=message.body, timeout=60)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    """The store every main.py of this test builds its settings with."""
    store = Store((tmp_path / "store").as_uri())
    monkeypatch.setenv("TROUPE_STORE_URL", store.url)
    return store


def function_url(folder: str, serve: Serve, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("K_SERVICE", folder)
    app: Flask = load_main(folder).app
    return serve(app)


def test_the_trainer_refuses_training_finished_and_trains_nothing(
    store: Store, serve: Serve, monkeypatch: pytest.MonkeyPatch,
    sample_data: Callable[[str], dict[str, Any]],
) -> None:
    store.write_bytes("uploads/day-1.csv", to_csv_bytes(synthetic_frame(400, seed=3)))
    ingest = function_url("ingest", serve, monkeypatch)
    trainer = function_url("trainer", serve, monkeypatch)
    arrived = events.make_event("data-arrived", {"uri": "uploads/day-1.csv", "target": "label"})
    validated = post(ingest, arrived)
    assert validated.status_code == 200  # a dataset the trainer could train on
    dataset_id = validated.json()["dataset_id"]

    finished = events.make_event("training-finished", {
        **sample_data("training-finished"), "model": "default", "dataset_ids": [dataset_id],
    })
    refused = post(trainer, finished)

    assert refused.status_code == 422
    body = refused.json()
    assert body["error"] == "unconsumed-type"
    assert body["accepted"] == sorted([events.DATA_VALIDATED, events.TRAINING_REQUESTED])
    assert events.TRAINING_FINISHED in body["message"]
    assert store.registry.versions("default") == []
    # The same trainer trains on what it does consume: the refusal above was not luck.
    requested = events.make_event("training-requested", {"reason": "test", "model": "default"})
    assert post(trainer, requested).headers["ce-type"] == events.TRAINING_FINISHED
    assert [v.version for v in store.registry.versions("default")] == ["v1"]
