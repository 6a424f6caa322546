"""Each delivery opens a span under the event's traceparent, exported over OTLP/HTTP to a
real receiver (the runtime's own), and the reply carries the span's context."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from cloudevents.core.v1.event import CloudEvent
from flask import Flask
from support.polling import wait_until
from troupe import events
from troupe.function import Context, PermanentError, Settings, create_app
from troupe.function.app import EXTENSION
from troupe.local.dashboard.collector import collector_routes
from troupe.local.dashboard.server import DashboardServer
from troupe.local.observability.span_store import SpanStore
from troupe.traces import EVENT_TYPE, ROLE, RUNID, STATUS_CODE, Role, parse_traceparent

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TOKEN = "s3cret token"
Serve = Callable[[Flask], str]


@pytest.fixture
def receiver() -> Iterator[tuple[SpanStore, DashboardServer]]:
    store = SpanStore()
    server = DashboardServer(TOKEN, collector_routes(store))
    yield store, server
    server.close()


def traced_settings(tmp_path: Path, endpoint: str, token: str = TOKEN) -> Settings:
    return Settings.from_env({
        "K_SERVICE": "echo", "K_REVISION": "echo-00001",
        "TROUPE_STORE_URL": (tmp_path / "store").as_uri(),
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_HEADERS": f"authorization={quote('Bearer ' + token)}"})


def echo(event: CloudEvent, ctx: Context[Any]) -> CloudEvent:
    if event.get_data() == {"message": "refuse"}:
        raise PermanentError("told to refuse")
    return ctx.reply(event.get_type(), event.get_data())  # type: ignore[arg-type]


def post(url: str, event: CloudEvent) -> requests.Response:
    message = events.to_http_binary(event)
    return requests.post(url, headers=message.headers, data=message.body, timeout=10)


def flush(app: Flask) -> None:
    app.extensions[EXTENSION].tracing.shutdown()  # exports what the batch still holds


def test_the_span_is_a_child_of_the_traceparent_and_the_reply_carries_its_context(
    tmp_path: Path, serve: Serve, receiver: tuple[SpanStore, DashboardServer],
) -> None:
    store, server = receiver
    app = create_app(echo, traced_settings(tmp_path, server.url), consumes=[events.PING])
    sent = events.make_event("ping", {"message": "tick"}, extensions={"traceparent": TRACEPARENT})

    response = post(serve(app), sent)
    flush(app)

    assert response.status_code == 200, response.text
    reply = events.from_http(dict(response.headers), response.content)
    trace_id, span_id = parse_traceparent(reply.get_extension("traceparent")) or ("", "")
    assert trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span_id != "00f067aa0ba902b7"
    (handled,) = wait_until(lambda: store.trace(trace_id), 10, "the handler's span")
    assert handled.span_id == span_id
    assert handled.parent_id == "00f067aa0ba902b7"
    assert handled.service == "echo"
    assert handled.attributes[ROLE] == Role.HANDLER
    assert handled.attributes[EVENT_TYPE] == events.PING
    assert handled.attributes[RUNID] == sent.get_id()
    assert handled.attributes[STATUS_CODE] == 200
    assert handled.error is None
    assert store.run(sent.get_id()) == [handled]


def _span_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "SpanRecordProcessor" in t.name]


def test_building_the_app_starts_no_thread_its_first_event_does(
    tmp_path: Path, serve: Serve, receiver: tuple[SpanStore, DashboardServer],
) -> None:
    # gunicorn --preload builds the app in its master and then forks the worker: a thread
    # started while building it would run in the master, beside the fork.
    store, server = receiver
    before = _span_threads()
    app = create_app(echo, traced_settings(tmp_path, server.url), consumes=[events.PING])
    assert _span_threads() == before

    response = post(serve(app), events.make_event("ping", {"message": "tick"}))
    assert len(_span_threads()) == len(before) + 1  # the exporter's, in this process
    flush(app)

    assert response.status_code == 200, response.text
    trace_id, _ = parse_traceparent(response.headers["ce-traceparent"]) or ("", "")
    wait_until(lambda: store.trace(trace_id), 10, "the handler's span")


def test_an_event_without_a_traceparent_starts_a_trace_and_a_refusal_is_an_error_span(
    tmp_path: Path, serve: Serve, receiver: tuple[SpanStore, DashboardServer],
) -> None:
    store, server = receiver
    app = create_app(echo, traced_settings(tmp_path, server.url), consumes=[events.PING])
    url = serve(app)
    started = events.make_event("ping", {"message": "tick"})
    refused = events.make_event("ping", {"message": "refuse"})

    reply = post(url, started)
    assert post(url, refused).status_code == 422
    flush(app)

    trace_id, span_id = parse_traceparent(reply.headers["ce-traceparent"]) or ("", "")
    (root,) = wait_until(lambda: store.trace(trace_id), 10, "the handler's span")
    assert root.parent_id is None and root.span_id == span_id
    (failed,) = wait_until(lambda: store.run(refused.get_id()), 10, "the refusal's span")
    assert failed.error == "422 permanent-error"
    assert failed.attributes[STATUS_CODE] == 422
    assert failed.trace_id != trace_id


def test_without_an_endpoint_nothing_is_recorded_and_the_reply_keeps_the_traceparent(
    settings: Settings, serve: Serve,
) -> None:
    app = create_app(echo, settings, consumes=[events.PING])
    sent = events.make_event("ping", {"message": "tick"}, extensions={"traceparent": TRACEPARENT})

    response = post(serve(app), sent)

    assert response.headers["ce-traceparent"] == TRACEPARENT


def test_the_receiver_refuses_spans_without_the_token(
    tmp_path: Path, serve: Serve, receiver: tuple[SpanStore, DashboardServer],
) -> None:
    store, server = receiver
    app = create_app(echo, traced_settings(tmp_path, server.url, token="wrong"),
                     consumes=[events.PING])
    sent = events.make_event("ping", {"message": "tick"})

    assert post(serve(app), sent).status_code == 200
    flush(app)

    assert store.runs() == []
    refused = requests.post(f"{server.url}/v1/traces", data=b"",
                            headers={"Content-Type": "application/x-protobuf"}, timeout=5)
    assert refused.status_code == 401
