"""`troupe dead-letters`: records written by the real sink, listed and replayed over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.functions import load_function
from troupe.cli import cli
from troupe.events import from_http, make_event
from troupe.store import Store
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

APPROVED = {"model": "default", "version": "v7", "metric": "accuracy", "candidate_score": 0.9}


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    store = Store(f"file://{tmp_path}/store")
    failed = make_event("model-approved", APPROVED, source="/troupe/evaluator",
                        extensions={"knativeerrordest": "http://deployer/",
                                    "knativeerrorcode": 500, "knativebrokerttl": 0,
                                    "knativeerrordata": "b29wcw=="})
    record = load_function("dead-letters").dead_letter_record(failed, received=datetime.now(UTC))
    store.write_json("deadletters/2026-11-25/one.json", record)
    return store


@pytest.fixture()
def broker() -> Iterator[tuple[list, str]]:
    received: list = []

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        received.append(from_http(dict(request.headers), request.get_data()))
        return Response(status=202)(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield received, f"http://127.0.0.1:{server.server_port}/troupe/default"
    server.shutdown()


def test_list_shows_what_failed_and_why(store: Store, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["dead-letters", "list", "--store", store.url, "--json"])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.output)
    assert record["key"] == "deadletters/2026-11-25/one.json"
    assert record["error"] == {"dest": "http://deployer/", "code": 500, "data": "oops"}


def test_replay_sends_the_event_without_the_brokers_extensions(
    store: Store, broker, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    received, url = broker
    key = "deadletters/2026-11-25/one.json"
    original = store.read_json(key)["attributes"]
    result = CliRunner().invoke(cli, ["dead-letters", "replay", key, "--store", store.url,
                                      "--broker", url])
    assert result.exit_code == 0, result.output
    (event,) = received
    assert event.get_id() == original["id"] == result.output.strip()
    assert event.get_data() == APPROVED
    assert event.get_extension("runid") == original["runid"]
    names = set(event.get_attributes())
    assert not {n for n in names if n.startswith("knativeerror")}
    assert "knativebrokerttl" not in names
    fresh = CliRunner().invoke(cli, ["dead-letters", "replay", key, "--store", store.url,
                                     "--broker", url, "--new-id"])
    assert fresh.exit_code == 0 and received[1].get_id() != original["id"]


def test_replaying_an_unknown_key_is_a_clear_failure(store: Store, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["dead-letters", "replay", "deadletters/none.json",
                                      "--store", store.url, "--broker", "http://127.0.0.1:9/"])
    assert result.exit_code == 1 and "no dead letter deadletters/none.json" in result.output
