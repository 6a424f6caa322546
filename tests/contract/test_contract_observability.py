"""Health probes, Prometheus metrics and the JSON log line of a function app."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from cloudevents.core.v1.event import CloudEvent
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from troupe import events
from troupe.function import Context, PermanentError, Settings, create_app

Serve = Callable[[Flask], str]
ARRIVED = {"uri": "incoming/iris.csv", "target": "species"}
CONSUMES = [events.DATA_ARRIVED]


def post(url: str, event: CloudEvent) -> requests.Response:
    message = events.to_http_binary(event)
    return requests.post(url, headers=message.headers, data=message.body, timeout=10)


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


def refuse_models(event: CloudEvent, ctx: Context[Any]) -> None:
    if event.get_data() and "model" in event.get_data():  # type: ignore[operator]
        raise PermanentError("models are not accepted here")


def test_liveness_and_readiness(serve: Serve, settings: Settings) -> None:
    state = {"ready": False}
    app = create_app(lambda e, c: None, settings, consumes=CONSUMES, ready=lambda: state["ready"])
    url = serve(app)
    assert requests.get(f"{url}/health/liveness", timeout=10).json() == {"status": "alive"}
    not_ready = requests.get(f"{url}/health/readiness", timeout=10)
    assert not_ready.status_code == 503 and not_ready.json()["status"] == "not-ready"
    state["ready"] = True
    assert requests.get(f"{url}/health/readiness", timeout=10).status_code == 200


def test_a_failing_readiness_check_says_why(serve: Serve, settings: Settings) -> None:
    def broken() -> bool:
        raise ConnectionError("prometheus unreachable")

    url = serve(create_app(lambda e, c: None, settings, consumes=CONSUMES, ready=broken))
    response = requests.get(f"{url}/health/readiness", timeout=10)
    assert response.status_code == 503
    assert "prometheus unreachable" in response.json()["message"]


def test_readiness_without_a_check_is_ready(serve: Serve, settings: Settings) -> None:
    url = serve(create_app(lambda e, c: None, settings, consumes=CONSUMES))
    assert requests.get(f"{url}/health/readiness", timeout=10).status_code == 200


def test_events_are_counted_by_type_and_outcome(serve: Serve, settings: Settings) -> None:
    url = serve(create_app(refuse_models, settings, consumes=CONSUMES))
    accepted = events.make_event("data-arrived", ARRIVED)
    post(url, accepted)
    post(url, accepted)  # a duplicate
    post(url, events.make_event("data-arrived", {**ARRIVED, "model": "iris"}))
    requests.post(url, headers={"Content-Type": "application/cloudevents+json"}, data=b"{",
                  timeout=10)

    found = samples(url)
    arrived = events.DATA_ARRIVED
    total = "troupe_events_total"
    assert found[(total, labels(service="echo", type=arrived, outcome="accepted"))] == 1
    assert found[(total, labels(service="echo", type=arrived, outcome="duplicate"))] == 1
    assert found[(total, labels(service="echo", type=arrived, outcome="permanent-error"))] == 1
    assert found[(total, labels(service="echo", type="unparsed", outcome="malformed-event"))] == 1
    # The handler ran twice: the duplicate and the malformed event never reached it.
    count = "troupe_handler_duration_seconds_count"
    assert found[(count, labels(service="echo", type=arrived))] == 2


def test_two_apps_in_one_process_keep_their_own_metrics(serve: Serve, tmp_path: Path) -> None:
    def app_for(service: str) -> str:
        store = (tmp_path / service).as_uri()
        settings = Settings.from_env({"K_SERVICE": service, "TROUPE_STORE_URL": store})
        return serve(create_app(lambda e, c: None, settings, consumes=CONSUMES))

    first, second = app_for("first"), app_for("second")
    post(first, events.make_event("data-arrived", ARRIVED))
    post(first, events.make_event("data-arrived", ARRIVED))
    post(second, events.make_event("data-arrived", ARRIVED))

    def counts(url: str) -> dict[str | None, float]:
        return {dict(key[1]).get("service"): value for key, value in samples(url).items()
                if key[0] == "troupe_events_total"}

    assert counts(first) == {"first": 2}
    assert counts(second) == {"second": 1}


def test_one_json_log_line_per_event(
    serve: Serve, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    url = serve(create_app(refuse_models, settings, consumes=CONSUMES))
    sent = events.make_event("data-arrived", ARRIVED, extensions={"runid": "run-9"})
    refused = events.make_event("data-arrived", {**ARRIVED, "model": "iris"})
    post(url, sent)
    post(url, refused)

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()
             if line.startswith("{") and '"outcome"' in line]
    assert len(lines) == 2
    first, second = lines
    assert first["id"] == sent.get_id() and first["type"] == events.DATA_ARRIVED
    assert first["source"] == sent.get_source() and first["runid"] == "run-9"
    assert (first["outcome"], first["status"]) == ("accepted", 202)
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert (second["outcome"], second["status"]) == ("permanent-error", 422)
    assert "models are not accepted" in second["error"]
