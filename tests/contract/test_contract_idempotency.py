"""At-least-once delivery: a redelivered (source, id) is answered from the store."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import requests
from cloudevents.core.v1.event import CloudEvent
from flask import Flask
from troupe import events
from troupe.function import Context, PermanentError, Settings, TemporaryError, create_app

Serve = Callable[[Flask], str]
ARRIVED = {"uri": "incoming/iris.csv", "target": "species"}
CONSUMES = [events.DATA_ARRIVED]


class CountingReplier:
    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, event: CloudEvent, ctx: Context[Any]) -> CloudEvent:
        with self._lock:
            self.calls += 1
        return ctx.reply("data-rejected", {"uri": "incoming/iris.csv", "reasons": ["no rows"]})


def post(url: str, event: CloudEvent) -> requests.Response:
    message = events.to_http_binary(event)
    return requests.post(url, headers=message.headers, data=message.body, timeout=10)


def essence(response: requests.Response) -> tuple[int, dict[str, str], bytes]:
    """What must be identical between deliveries (the server adds Date and Server)."""
    kept = {k.lower(): v for k, v in response.headers.items()
            if k.lower().startswith("ce-") or k.lower() in ("content-type", "retry-after")}
    return response.status_code, kept, response.content


def test_a_redelivered_event_gets_the_same_reply_without_rerunning(
    serve: Serve, settings: Settings
) -> None:
    handler = CountingReplier()
    url = serve(create_app(handler, settings, consumes=CONSUMES))
    event = events.make_event("data-arrived", ARRIVED)
    first, second = post(url, event), post(url, event)
    assert first.status_code == 200
    assert handler.calls == 1
    assert essence(second) == essence(first)


def test_the_reply_survives_a_restart(serve: Serve, settings: Settings) -> None:
    event = events.make_event("data-arrived", ARRIVED)
    before = CountingReplier()
    first = post(serve(create_app(before, settings, consumes=CONSUMES)), event)
    after = CountingReplier()  # a new process: same settings, same store directory
    second = post(serve(create_app(after, Settings.from_env({
        "K_SERVICE": settings.service, "TROUPE_STORE_URL": settings.store_url}),
        consumes=CONSUMES)), event)
    assert (before.calls, after.calls) == (1, 0)
    assert essence(second) == essence(first)


def test_same_id_from_another_source_is_another_event(serve: Serve, settings: Settings) -> None:
    handler = CountingReplier()
    url = serve(create_app(handler, settings, consumes=CONSUMES))
    post(url, events.make_event("data-arrived", ARRIVED, source="/a", event_id="same"))
    post(url, events.make_event("data-arrived", ARRIVED, source="/b", event_id="same"))
    assert handler.calls == 2


def test_a_permanent_failure_is_remembered(serve: Serve, settings: Settings) -> None:
    calls: list[str] = []

    def refuse(event: CloudEvent, ctx: Context[Any]) -> None:
        calls.append(event.get_id())
        raise PermanentError("unusable dataset")

    url = serve(create_app(refuse, settings, consumes=CONSUMES))
    event = events.make_event("data-arrived", ARRIVED)
    first, second = post(url, event), post(url, event)
    assert first.status_code == 422 and len(calls) == 1
    assert essence(second) == essence(first)


def test_a_temporary_failure_is_not_remembered(serve: Serve, settings: Settings) -> None:
    outcomes: list[str] = []

    def flaky(event: CloudEvent, ctx: Context[Any]) -> None:
        outcomes.append("called")
        if len(outcomes) == 1:
            raise TemporaryError("model registry locked", delay=1)
        return None

    url = serve(create_app(flaky, settings, consumes=CONSUMES))
    event = events.make_event("data-arrived", ARRIVED)
    assert post(url, event).status_code == 503
    assert post(url, event).status_code == 202
    assert post(url, event).status_code == 202
    assert len(outcomes) == 2


def test_concurrent_duplicates_run_the_handler_once(serve: Serve, settings: Settings) -> None:
    handler = CountingReplier()
    url = serve(create_app(handler, settings, consumes=CONSUMES))
    event = events.make_event("data-arrived", ARRIVED)
    responses: list[requests.Response] = []
    threads = [threading.Thread(target=lambda: responses.append(post(url, event)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(responses) == 8
    assert handler.calls == 1
    assert all(essence(r) == essence(responses[0]) for r in responses)
