"""The app factory: a plain `handle(event, ctx)` becomes a CloudEvents HTTP endpoint."""

from __future__ import annotations

from typing import Final

from flask import Flask, Response, request

from .consumes import NO_EVENTS, ConsumedTypes, Consumes
from .delivery import EventDelivery, Handler
from .errors import EventTooLargeError
from .health import ReadyCheck, register_health
from .limits import limit_request_bodies, read_body_within
from .logs import event_logger
from .metrics import FunctionMetrics, register_metrics
from .responses import Answer
from .settings import Settings

EVENTS_PATH: Final = "/"
# Where the app keeps its EventDelivery, in Flask's place for extensions' state.
EXTENSION: Final = "troupe"


def create_app(
    handle: Handler,
    settings: Settings | None = None,
    *,
    consumes: Consumes,
    settings_class: type[Settings] = Settings,
    ready: ReadyCheck | None = None,
    validate_incoming: bool = True,
    deduplicate: bool = True,
) -> Flask:
    """A Flask app that delivers CloudEvents POSTed to / to `handle`.

    `consumes` declares the event types the handler is written for (the constants in
    troupe.events); an event of any other type is refused with 422 naming them. `ANY`
    takes every type, those outside troupe's vocabulary too, without schema validation
    (for generic consumers such as a subscriber that records everything).
    Without `settings`, they are built once from the environment with `settings_class`.
    `ready` backs /health/readiness. A body over `settings.max_event_bytes` is answered
    413 without being read. `validate_incoming=False` skips the schema check of
    incoming data, and `deduplicate=False` the reply cache: a dead-letter sink needs both,
    since what it is sent is often invalid by definition, and the same event may be
    dead-lettered by two Triggers (its handler de-duplicates on id and destination itself).
    """
    declared = ConsumedTypes.declared(consumes)
    settings = settings if settings is not None else settings_class.from_env()
    metrics = FunctionMetrics(settings.service)
    delivery = EventDelivery(
        handle,
        settings,
        metrics,
        event_logger(settings.log_level),
        consumes=declared,
        validate_incoming=validate_incoming,
        deduplicate=deduplicate,
    )
    app = Flask(__name__, static_folder=None)
    app.extensions[EXTENSION] = delivery
    limit_request_bodies(app, settings.max_event_bytes)

    def receive_event() -> Response:
        body = read_body_within(settings.max_event_bytes)
        if body is None:
            return _to_response(delivery.refuse(EventTooLargeError(settings.max_event_bytes)))
        return _to_response(delivery.deliver(dict(request.headers.items()), body))

    app.add_url_rule(EVENTS_PATH, "receive_event", receive_event, methods=["POST"])
    register_metrics(app, metrics.registry)
    register_health(app, ready)
    return app


def consumed_types(app: Flask) -> ConsumedTypes:
    """The event types `app` answers, as its create_app declared them; an app made some
    other way (an HTTP service such as the predictor) takes no events."""
    delivery = app.extensions.get(EXTENSION)
    return delivery.consumes if isinstance(delivery, EventDelivery) else NO_EVENTS


def _to_response(answer: Answer) -> Response:
    response = Response(answer.body, answer.status, answer.headers)
    if not any(name.lower() == "content-type" for name in answer.headers):
        # Flask would label it text/html; an answer without a type (a 202) has none.
        response.headers.remove("Content-Type")
    return response
