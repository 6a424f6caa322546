"""The dead-letters sink, served by its own app on loopback, records what the broker sends."""

from __future__ import annotations

import base64
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from support.functions import load_fresh, load_function
from troupe.store import Store
from werkzeug.serving import make_server


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"file://{tmp_path / 'store'}"


@pytest.fixture
def sink(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """main.py's app, built from the environment as gunicorn would build it."""
    monkeypatch.setenv("TROUPE_STORE_URL", store_url)
    monkeypatch.setenv("K_SERVICE", "dead-letters")
    # main.py imports `handler` from its own folder (gunicorn --chdir); give it ours.
    monkeypatch.setitem(sys.modules, "handler", load_function("dead-letters"))
    app: Flask = load_fresh("dead-letters", "main", name="dead_letters_main").app
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    thread.join(5)


def dead_letter(event_id: str, event_type: str, data: Any, dest: str) -> dict[str, str]:
    return {
        "ce-specversion": "1.0", "ce-id": event_id, "ce-source": "/troupe/evaluator",
        "ce-type": event_type, "ce-runid": "run-1", "content-type": "application/json",
        "ce-knativeerrordest": dest, "ce-knativeerrorcode": "422",
        "ce-knativeerrordata": base64.b64encode(b'{"error": "not registered"}').decode(),
    }


def records(store: Store) -> list[dict[str, Any]]:
    return [store.read_json(key) for key in store.list("deadletters")]


APPROVED = {"model": "default", "version": "v7", "metric": "accuracy", "candidate_score": 0.9}
DEPLOYER = "http://deployer.troupe.svc.cluster.local"
AUDIT = "http://audit.example.svc.cluster.local"


def test_a_dead_letter_is_recorded_with_its_knative_error(sink: str, store_url: str) -> None:
    headers = dead_letter("e-1", "dev.troupe.model.approved", APPROVED, DEPLOYER)

    answer = requests.post(sink, headers=headers, data=json.dumps(APPROVED), timeout=10)

    assert answer.status_code == 202
    assert answer.content == b""
    store = Store(store_url)
    keys = store.list("deadletters")
    assert len(keys) == 1 and keys[0].endswith("/e-1.json")
    (record,) = records(store)
    assert record["attributes"]["type"] == "dev.troupe.model.approved"
    assert record["attributes"]["runid"] == "run-1"
    assert record["attributes"]["knativeerrordest"] == DEPLOYER
    assert record["error"] == {"dest": DEPLOYER, "code": 422,
                               "data": '{"error": "not registered"}'}
    assert record["data"] == APPROVED


def test_the_same_event_failing_at_two_subscribers_is_kept_twice(
    sink: str, store_url: str
) -> None:
    # Through the app: the sink must not let the reply cache swallow the second Trigger's
    # dead letter of the same (source, id); a plain redelivery is still recorded once.
    for dest in (DEPLOYER, AUDIT, AUDIT):
        headers = dead_letter("e-2", "dev.troupe.model.approved", APPROVED, dest)
        answer = requests.post(sink, headers=headers, data=json.dumps(APPROVED), timeout=10)
        assert answer.status_code == 202
    assert sorted(r["error"]["dest"] for r in records(Store(store_url))) == [AUDIT, DEPLOYER]


def test_an_unsafe_event_id_cannot_escape_the_dead_letter_folder(
    sink: str, store_url: str
) -> None:
    headers = dead_letter("../../registry/default", "dev.example.audit", {}, DEPLOYER)
    assert requests.post(sink, headers=headers, data=b"{}", timeout=10).status_code == 202
    (key,) = Store(store_url).list("deadletters")
    assert key.count("/") == 2 and ".." not in key


def test_a_dead_letter_whose_data_broke_its_schema_is_still_recorded(
    sink: str, store_url: str
) -> None:
    broken = {"model": "default"}  # why it was dead-lettered in the first place
    headers = dead_letter("e-3", "dev.troupe.model.approved", broken, DEPLOYER)
    answer = requests.post(sink, headers=headers, data=json.dumps(broken), timeout=10)
    assert answer.status_code == 202
    assert records(Store(store_url))[0]["data"] == broken
