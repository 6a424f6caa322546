"""DESIGN's status table, checked over HTTP: what each failure is answered with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from cloudevents.core.v1.event import CloudEvent
from flask import Flask
from troupe import events
from troupe.function import (
    ANY,
    Context,
    PermanentError,
    Settings,
    TemporaryError,
    UnconsumedTypeError,
    consumed_types,
    create_app,
)

Serve = Callable[[Flask], str]
Handler = Callable[[CloudEvent, Context[Any]], CloudEvent | None]
ARRIVED = {"uri": "incoming/iris.csv", "target": "species"}
CONSUMES = [events.DATA_ARRIVED, events.TRAINING_REQUESTED]


class Recorder:
    """A handler that records what it was given and then does what it was told."""

    def __init__(self, action: Callable[[CloudEvent, Context[Any]], CloudEvent | None]) -> None:
        self.action = action
        self.events: list[CloudEvent] = []

    def __call__(self, event: CloudEvent, ctx: Context[Any]) -> CloudEvent | None:
        self.events.append(event)
        return self.action(event, ctx)


def post(url: str, event: CloudEvent) -> requests.Response:
    message = events.to_http_binary(event)
    return requests.post(url, headers=message.headers, data=message.body, timeout=10)


def error_of(response: requests.Response, *more: str) -> dict[str, Any]:
    assert response.headers["Content-Type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", *more}
    return body


@pytest.fixture
def start(serve: Serve, settings: Settings) -> Callable[[Handler], str]:
    return lambda handler: serve(create_app(handler, settings, consumes=CONSUMES))


def test_no_reply_is_202_without_body(start: Callable[[Handler], str]) -> None:
    url = start(Recorder(lambda event, ctx: None))
    response = post(url, events.make_event("data-arrived", ARRIVED))
    assert response.status_code == 202
    assert response.content == b""
    assert "Content-Type" not in response.headers


def test_malformed_events_are_400(start: Callable[[Handler], str]) -> None:
    handler = Recorder(lambda event, ctx: None)
    url = start(handler)
    cases = [
        ({"Content-Type": "application/cloudevents+json"}, b"{not json"),
        ({"ce-specversion": "1.0", "ce-source": "/s", "ce-type": events.DATA_ARRIVED}, b""),
        ({}, b""),
    ]
    for headers, body in cases:
        response = requests.post(url, headers=headers, data=body, timeout=10)
        assert response.status_code == 400, headers
        assert error_of(response)["error"] == "malformed-event"
    assert handler.events == []


def test_unsupported_media_type_is_415(start: Callable[[Handler], str]) -> None:
    url = start(Recorder(lambda event, ctx: None))
    response = requests.post(url, headers={"Content-Type": "text/csv"}, data=b"a,b\n", timeout=10)
    assert response.status_code == 415
    body = error_of(response)
    assert body["error"] == "unsupported-media-type"
    assert "text/csv" in body["message"] and "ce-" in body["message"]


def test_data_that_breaks_the_schema_is_422_naming_the_field(
    start: Callable[[Handler], str],
) -> None:
    handler = Recorder(lambda event, ctx: None)
    url = start(handler)
    bad = CloudEvent(
        {"id": "bad-1", "source": "/tests", "type": events.DATA_ARRIVED,
         "datacontenttype": "application/json"},
        {"uri": "incoming/iris.csv"},
    )
    response = post(url, bad)
    assert response.status_code == 422
    body = error_of(response)
    assert body["error"] == "invalid-data"
    assert "$.target" in body["message"] and events.DATA_ARRIVED in body["message"]
    assert handler.events == []


@pytest.mark.parametrize("event_type", [events.DATA_VALIDATED, "com.example.odd"])
def test_a_type_it_does_not_consume_is_422_naming_the_accepted_types(
    start: Callable[[Handler], str], event_type: str
) -> None:
    handler = Recorder(lambda event, ctx: None)
    url = start(handler)
    response = post(url, CloudEvent({"id": "u-1", "source": "/x", "type": event_type}))
    assert response.status_code == 422
    body = error_of(response, "accepted")
    assert body["error"] == "unconsumed-type"
    assert body["accepted"] == sorted(CONSUMES)
    assert event_type in body["message"] and "Trigger" in body["message"]
    assert handler.events == []


def test_any_takes_types_outside_the_vocabulary_too(serve: Serve, settings: Settings) -> None:
    handler = Recorder(lambda event, ctx: None)
    url = serve(create_app(handler, settings, consumes=ANY))
    response = post(url, CloudEvent({"id": "u-2", "source": "/x", "type": "com.example.odd"}))
    assert response.status_code == 202
    assert [event.get_type() for event in handler.events] == ["com.example.odd"]


@pytest.mark.parametrize(
    ("consumes", "error", "says"),
    [(None, TypeError, "ANY"), (events.DATA_ARRIVED, TypeError, "collection"),
     ([], ValueError, "ANY"), (["data-arived"], events.UnknownEventTypeError, "data-arived")],
)
def test_a_function_must_declare_what_it_consumes(
    settings: Settings, consumes: Any, error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        create_app(lambda event, ctx: None, settings, consumes=consumes)


def test_short_names_declare_the_same_types(settings: Settings) -> None:
    declared = create_app(lambda event, ctx: None, settings, consumes=["data-arrived"])
    assert consumed_types(declared).types == {events.DATA_ARRIVED}
    with pytest.raises(UnconsumedTypeError, match=events.DATA_ARRIVED):
        consumed_types(declared).check(events.DATA_VALIDATED)


def test_permanent_error_is_422(start: Callable[[Handler], str]) -> None:
    def refuse(event: CloudEvent, ctx: Context[Any]) -> None:
        raise PermanentError("the dataset at incoming/iris.csv has no rows")

    response = post(start(Recorder(refuse)), events.make_event("data-arrived", ARRIVED))
    assert response.status_code == 422
    body = error_of(response)
    assert body["error"] == "permanent-error"
    assert "no rows" in body["message"]


@pytest.mark.parametrize(("delay", "retry_after"), [(2.2, "3"), (0, "1"), (0.01, "1"), (30, "30")])
def test_temporary_error_is_503_with_retry_after(
    start: Callable[[Handler], str], delay: float, retry_after: str
) -> None:
    def later(event: CloudEvent, ctx: Context[Any]) -> None:
        raise TemporaryError("the store is busy", delay=delay)

    response = post(start(Recorder(later)), events.make_event("data-arrived", ARRIVED))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == retry_after
    body = error_of(response)
    assert body["error"] == "temporary-error" and "busy" in body["message"]


def test_any_other_exception_is_500(start: Callable[[Handler], str]) -> None:
    def crash(event: CloudEvent, ctx: Context[Any]) -> None:
        raise KeyError("features")

    response = post(start(Recorder(crash)), events.make_event("data-arrived", ARRIVED))
    assert response.status_code == 500
    body = error_of(response)
    assert body["error"] == "internal-error" and "KeyError" in body["message"]


def test_a_handler_that_returns_something_else_is_500(start: Callable[[Handler], str]) -> None:
    url = start(Recorder(lambda event, ctx: "done"))  # type: ignore[arg-type,return-value]
    response = post(url, events.make_event("data-arrived", ARRIVED))
    assert response.status_code == 500
    assert "return a CloudEvent" in error_of(response)["message"]


def test_replies_built_without_ctx_reply_still_carry_lineage(
    start: Callable[[Handler], str],
) -> None:
    def reply_by_hand(event: CloudEvent, ctx: Context[Any]) -> CloudEvent:
        return events.make_event("data-rejected", {"uri": "x", "reasons": ["empty"]})

    sent = events.make_event(
        "data-arrived", ARRIVED, extensions={"runid": "run-42", "modelversion": "v7"}
    )
    response = post(start(Recorder(reply_by_hand)), sent)
    assert response.status_code == 200
    assert response.headers["ce-runid"] == "run-42"
    assert response.headers["ce-modelversion"] == "v7"


def test_other_methods_and_paths(start: Callable[[Handler], str]) -> None:
    url = start(Recorder(lambda event, ctx: None))
    assert requests.get(url, timeout=10).status_code == 405
    assert requests.post(f"{url}/nowhere", timeout=10).status_code == 404


def test_a_reply_of_an_unknown_type_is_the_functions_bug_500(
    start: Callable[[Handler], str],
) -> None:
    def reply_oddly(event: CloudEvent, ctx: Context[Any]) -> CloudEvent:
        return CloudEvent({"id": "r-1", "source": "/me", "type": "com.example.odd"}, None)

    response = post(start(Recorder(reply_oddly)), events.make_event("data-arrived", ARRIVED))
    assert response.status_code == 500
    message = error_of(response)["message"]
    assert "reply is invalid" in message and "com.example.odd" in message
