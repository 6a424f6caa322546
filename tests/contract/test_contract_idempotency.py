"""At-least-once delivery: a redelivered (source, id) is answered from the store, and a
concurrent one at another instance waits for that answer or is told to come back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from cloudevents.core.v1.event import CloudEvent
from flask import Flask
from support.polling import wait_until
from troupe import events
from troupe.function import Context, PermanentError, Settings, TemporaryError, create_app
from troupe.store import EventRef, Store

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


# -- the claim in the store: shared by instances, leased, bounded in time -------------------
class BlockingReplier(CountingReplier):
    """Replies once `release` is set; `started` says the handler is running."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, event: CloudEvent, ctx: Context[Any]) -> CloudEvent:
        self.started.set()
        assert self.release.wait(timeout=60), "the test never released the handler"
        return super().__call__(event, ctx)


def instance(settings: Settings, **env: str) -> Settings:
    """Settings of another instance of the same function: same service, same store."""
    return Settings.from_env({"K_SERVICE": settings.service,
                              "TROUPE_STORE_URL": settings.store_url, **env})


def in_background(url: str, event: CloudEvent) -> tuple[threading.Thread, list[Any]]:
    answers: list[requests.Response] = []
    thread = threading.Thread(target=lambda: answers.append(post(url, event)))
    thread.start()
    return thread, answers


def test_a_delivery_held_elsewhere_gets_503_with_retry_after_then_the_same_answer(
    serve: Serve, settings: Settings
) -> None:
    handler = BlockingReplier()
    first = serve(create_app(handler, settings, consumes=CONSUMES))
    impatient = serve(create_app(handler, instance(settings, TROUPE_REPLY_WAIT_SECONDS="0"),
                                 consumes=CONSUMES))
    event = events.make_event("data-arrived", ARRIVED)
    thread, answers = in_background(first, event)
    assert handler.started.wait(timeout=30)

    busy = post(impatient, event)
    assert busy.status_code == 503
    assert int(busy.headers["Retry-After"]) >= 1
    assert busy.json()["error"] == "in-progress"

    handler.release.set()
    thread.join(timeout=30)
    again = post(impatient, event)
    assert handler.calls == 1
    assert answers[0].status_code == 200 and essence(again) == essence(answers[0])


def test_a_waiting_delivery_gives_the_answer_the_first_one_gives(
    serve: Serve, settings: Settings
) -> None:
    handler = BlockingReplier()
    first = serve(create_app(handler, settings, consumes=CONSUMES))
    patient_app = create_app(handler, instance(settings, TROUPE_REPLY_WAIT_SECONDS="60"),
                             consumes=CONSUMES)
    arrived = threading.Event()
    delivered = patient_app.wsgi_app

    def arriving(environ: Any, start_response: Any) -> Any:
        arrived.set()
        return delivered(environ, start_response)

    patient_app.wsgi_app = arriving  # type: ignore[method-assign]
    patient = serve(patient_app)
    event = events.make_event("data-arrived", ARRIVED)
    holder, held = in_background(first, event)
    assert handler.started.wait(timeout=30)
    waiter, waited = in_background(patient, event)
    # The second delivery reaches its instance while the handler still runs elsewhere.
    assert arrived.wait(timeout=30)
    handler.release.set()
    holder.join(timeout=30)
    waiter.join(timeout=30)
    assert handler.calls == 1
    assert essence(waited[0]) == essence(held[0]) and held[0].status_code == 200


def test_a_claim_whose_lease_lapsed_is_taken_over(serve: Serve, settings: Settings) -> None:
    event = events.make_event("data-arrived", ARRIVED)
    ref = EventRef(settings.service, event.get_source(), event.get_id())
    store = Store(settings.store_url)
    # A delivery that claimed the event and died: its lease ended a minute ago.
    assert store.replies.claim(ref, owner="crashed", lease_seconds=1, now=time.time() - 60).owned
    handler = CountingReplier()
    answer = post(serve(create_app(handler, settings, consumes=CONSUMES)), event)
    assert (answer.status_code, handler.calls) == (200, 1)


def test_a_long_handler_keeps_its_claim_by_renewing_the_lease(
    serve: Serve, settings: Settings
) -> None:
    handler = BlockingReplier()
    leased = instance(settings, TROUPE_REPLY_LEASE_SECONDS="1")
    first = serve(create_app(handler, leased, consumes=CONSUMES))
    impatient = serve(create_app(handler, instance(settings, TROUPE_REPLY_WAIT_SECONDS="0"),
                                 consumes=CONSUMES))
    event = events.make_event("data-arrived", ARRIVED)
    key = EventRef(settings.service, event.get_source(), event.get_id()).key
    store = Store(settings.store_url)
    thread, answers = in_background(first, event)
    assert handler.started.wait(timeout=30)
    claimed_until = store.read_json(key)["lease_until"]
    # Past the first lease's end, the claim is still held: it was renewed.
    wait_until(lambda: time.time() > claimed_until + 0.5
               and store.read_json(key)["lease_until"] > claimed_until + 0.5,
               timeout=15, message="the lease to be renewed past its first end")
    assert post(impatient, event).status_code == 503
    handler.release.set()
    thread.join(timeout=30)
    assert (answers[0].status_code, handler.calls) == (200, 1)


def test_replies_expire_and_are_compacted_by_the_deliveries_themselves(
    serve: Serve, settings: Settings
) -> None:
    handler = CountingReplier()
    url = serve(create_app(handler, instance(settings, TROUPE_REPLY_TTL_SECONDS="1"),
                           consumes=CONSUMES))
    store = Store(settings.store_url)
    event = events.make_event("data-arrived", ARRIVED)
    key = EventRef(settings.service, event.get_source(), event.get_id()).key
    assert post(url, event).status_code == 200
    expires_at = store.read_json(key)["expires_at"]
    assert expires_at <= time.time() + 1

    # Other events keep coming; one of their deliveries sweeps the expired reply away.
    def swept() -> bool:
        assert post(url, events.make_event("data-arrived", ARRIVED)).status_code == 200
        return time.time() > expires_at and not store.exists(key)

    wait_until(swept, timeout=30, message="the expired reply to be compacted")
    calls = handler.calls
    assert post(url, event).status_code == 200
    assert handler.calls == calls + 1  # no longer a duplicate: handled again
