"""The app factory: a plain `handle(event, ctx)` becomes a CloudEvents HTTP endpoint."""

from __future__ import annotations

from flask import Flask, Response, request

from .delivery import EventDelivery, Handler
from .health import ReadyCheck, register_health
from .logs import event_logger
from .metrics import FunctionMetrics
from .responses import Answer
from .settings import Settings

EVENTS_PATH = "/"
METRICS_PATH = "/metrics"


def create_app(
    handle: Handler,
    settings: Settings | None = None,
    *,
    settings_class: type[Settings] = Settings,
    ready: ReadyCheck | None = None,
    accept_unknown_types: bool = False,
    validate_incoming: bool = True,
    deduplicate: bool = True,
) -> Flask:
    """A Flask app that delivers CloudEvents POSTed to / to `handle`.

    Without `settings`, they are built once from the environment with `settings_class`.
    `ready` backs /health/readiness. `accept_unknown_types` lets events of types outside
    troupe's vocabulary through, without schema validation (for generic consumers such
    as a subscriber that records everything); by default they are refused with 422.
    `validate_incoming=False` skips the schema check of incoming data, and
    `deduplicate=False` the reply cache: a dead-letter sink needs both, since what it is
    sent is often invalid by definition, and the same event may be dead-lettered by two
    Triggers (its handler de-duplicates on id and destination itself).
    """
    settings = settings if settings is not None else settings_class.from_env()
    metrics = FunctionMetrics(settings.service)
    delivery = EventDelivery(
        handle,
        settings,
        metrics,
        event_logger(settings.log_level),
        accept_unknown_types=accept_unknown_types,
        validate_incoming=validate_incoming,
        deduplicate=deduplicate,
    )
    app = Flask(__name__, static_folder=None)
    app.extensions["troupe"] = delivery

    def receive_event() -> Response:
        body = request.get_data(cache=False)
        return _to_response(delivery.deliver(dict(request.headers.items()), body))

    def serve_metrics() -> Response:
        payload, content_type = metrics.exposition()
        return Response(payload, 200, {"Content-Type": content_type})

    app.add_url_rule(EVENTS_PATH, "receive_event", receive_event, methods=["POST"])
    app.add_url_rule(METRICS_PATH, "metrics", serve_metrics, methods=["GET"])
    register_health(app, ready)
    return app


def _to_response(answer: Answer) -> Response:
    response = Response(answer.body, answer.status, answer.headers)
    if not any(name.lower() == "content-type" for name in answer.headers):
        # Flask would label it text/html; an answer without a type (a 202) has none.
        response.headers.remove("Content-Type")
    return response
