"""ingest -> trainer -> evaluator, each reply fed to the next, as the Broker would."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cloudevents.core.v1.event import CloudEvent
from support.functions import load_function
from troupe.events import (
    DATA_VALIDATED,
    MODEL_APPROVED,
    TRAINING_FINISHED,
    from_http,
    make_event,
    to_http_binary,
    validate,
)
from troupe.function import Context, create_app
from troupe.ml.synthetic import synthetic_frame, to_csv_bytes
from troupe.store import Store
from werkzeug.serving import make_server

REPO = Path(__file__).resolve().parents[3]


FUNCTIONS = {
    "ingest": (load_function("ingest"), "IngestSettings"),
    "trainer": (load_function("trainer"), "TrainerSettings"),
    "evaluator": (load_function("evaluator"), "EvaluatorSettings"),
}


def settings_of(name: str, **values: Any) -> Any:
    module, class_name = FUNCTIONS[name]
    return getattr(module, class_name)(service=name, **values)


def deliver(name: str, store: Store, event: CloudEvent) -> CloudEvent:
    module, _ = FUNCTIONS[name]
    ctx = Context(settings=settings_of(name), store=store, event=event)
    reply: CloudEvent = module.handle(event, ctx)
    validate(reply)
    return reply


def same(a: CloudEvent, b: CloudEvent) -> bool:
    """Equal as a de-duplicating receiver sees them (only `time` may differ)."""
    attributes = {k: v for k, v in a.get_attributes().items() if k != "time"}
    others = {k: v for k, v in b.get_attributes().items() if k != "time"}
    return attributes == others and a.get_data() == b.get_data()


def test_a_run_keeps_its_runid_and_redelivery_changes_nothing(store: Store) -> None:
    store.write_bytes("uploads/day-1.csv", to_csv_bytes(synthetic_frame(800, seed=7)))
    arrived = make_event("data-arrived", {"uri": "uploads/day-1.csv", "target": "label"},
                         source="/producer")

    validated = deliver("ingest", store, arrived)
    finished = deliver("trainer", store, validated)
    approved = deliver("evaluator", store, finished)

    assert [e.get_type() for e in (validated, finished, approved)] == [
        DATA_VALIDATED, TRAINING_FINISHED, MODEL_APPROVED,
    ]
    runid = arrived.get_id()
    assert {e.get_extension("runid") for e in (validated, finished, approved)} == {runid}
    assert finished.get_extension("modelversion") == approved.get_extension("modelversion") == "v1"
    assert store.registry.get("default", "v1").lineage["runid"] == runid

    again = [
        deliver("ingest", store, arrived),
        deliver("trainer", store, validated),
        deliver("evaluator", store, finished),
    ]
    assert all(same(a, b) for a, b in zip(again, (validated, finished, approved), strict=True))
    assert [v.version for v in store.registry.versions("default")] == ["v1"]
    assert len(store.read_json("datasets/index/default.json")["datasets"]) == 1


@pytest.fixture
def servers(store: Store) -> Iterator[dict[str, str]]:
    """The three functions as real HTTP servers on loopback, sharing the test's store."""
    running = []
    urls = {}
    for name, (module, _) in FUNCTIONS.items():
        app = create_app(module.handle, settings_of(name, store_url=store.url),
                         consumes=module.CONSUMES)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        urls[name] = f"http://127.0.0.1:{server.server_port}/"
    yield urls
    for server, thread in running:
        server.shutdown()
        thread.join(timeout=10)


def post(url: str, event: CloudEvent) -> tuple[int, CloudEvent | None]:
    message = to_http_binary(event)
    response = requests.post(url, headers=dict(message.headers), data=message.body, timeout=60)
    if response.status_code != 200:
        return response.status_code, None
    return 200, from_http(dict(response.headers), response.content)


def test_the_chain_over_http_replies_in_binary_mode_and_deduplicates(
    servers: dict[str, str], store: Store
) -> None:
    store.write_bytes("uploads/day-1.csv", to_csv_bytes(synthetic_frame(600, seed=8)))
    arrived = make_event("data-arrived", {"uri": "uploads/day-1.csv", "target": "label"},
                         source="/producer")

    replies = []
    event = arrived
    for name in ("ingest", "trainer", "evaluator"):
        status, reply = post(servers[name], event)
        assert status == 200 and reply is not None, name
        replies.append(reply)
        event = reply
    assert replies[-1].get_type() == MODEL_APPROVED
    assert {r.get_extension("runid") for r in replies} == {arrived.get_id()}

    status, repeated = post(servers["trainer"], replies[0])
    assert status == 200 and repeated is not None and same(repeated, replies[1])
    assert len(store.registry.versions("default")) == 1

    outside = make_event("data-arrived", {"uri": "/etc/passwd", "target": "label"},
                         source="/producer")
    status, rejected = post(servers["ingest"], outside)
    assert status == 200 and rejected is not None
    assert "outside" in rejected.get_data()["reasons"][0]


def test_each_main_builds_its_app_from_the_environment_as_gunicorn_would(tmp_path: Path) -> None:
    """`gunicorn --chdir functions/<name> main:app` imports main from the function folder;
    one interpreter imports the three in turn (each folder has its own `handler`)."""
    probe = """
import importlib, os, sys
for folder in sys.argv[1:]:
    os.chdir(folder)
    sys.path.insert(0, folder)
    for module in ("main", "handler"):
        sys.modules.pop(module, None)
    main = importlib.import_module("main")
    print(type(main.app).__name__, type(main.app.extensions["troupe"]).__name__ != "NoneType")
    sys.path.remove(folder)
"""
    folders = [str(REPO / "functions" / name) for name in FUNCTIONS]
    # PYTHONPATH as this test has it, so the probe imports the same troupe library.
    environ = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
               "TROUPE_STORE_URL": f"file://{tmp_path}/store",
               "TROUPE_ESTIMATOR": "random_forest", "TROUPE_EVAL_METRIC": "f1"}
    done = subprocess.run([sys.executable, "-c", probe, *folders], env=environ, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Flask", "True"] * 3
