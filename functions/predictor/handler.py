"""predictor: the KServe V1 routes, feedback, health and /metrics.

The predictor is an HTTP service, not an event consumer, so it does not go through the
event app factory; it registers the same health and metrics routes as every function.
"""

from __future__ import annotations

import json

from flask import Flask, Response, jsonify, request
from predictor_feedback import FeedbackDesk
from predictor_serving import (
    NOT_JSON,
    ModelUnavailableError,
    Predictor,
    PredictorError,
    PredictorSettings,
)
from troupe.function import (
    limit_request_bodies,
    read_body_within,
    register_health,
    register_metrics,
)
from troupe.store import Store
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

__all__ = ["PredictorSettings", "create_predictor_app"]


def create_predictor_app(settings: PredictorSettings, store: Store | None = None) -> Flask:
    """Load the configured model (once) and return the app serving it.

    A model that fails to load does not stop the app: readiness reports the reason, so
    Knative keeps traffic on the previous revision and a human can read why.
    """
    predictor = Predictor(settings, store)
    feedback_desk = FeedbackDesk(predictor)
    app = Flask("predictor")
    app.extensions["troupe.predictor"] = predictor
    # A larger body is refused (413) before it is read, as every function refuses one.
    limit_request_bodies(app, settings.max_event_bytes)

    @app.errorhandler(PredictorError)
    def predictor_error(error: PredictorError) -> tuple[Response, int]:
        return jsonify(error=str(error)), error.status_code

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        return jsonify(error=error.description), error.code or 500

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge) -> tuple[Response, int]:
        return jsonify(error=(
            f"the request body is larger than {settings.max_event_bytes} bytes "
            "(TROUPE_MAX_EVENT_BYTES); send the instances in several requests")), 413

    @app.get("/v1/models")
    def list_models() -> Response:
        # KServe's list: the names a client can put in /v1/models/<name>, ready or not.
        return jsonify(models=predictor.model_names())

    @app.get("/v1/models/<name>")
    def model_status(name: str) -> tuple[Response, int]:
        status = predictor.status(name)
        if status["ready"]:
            return jsonify(status), 200
        return jsonify({**status, "error": predictor.error}), 503

    @app.post("/v1/models/<name>:predict")
    def predict(name: str) -> Response:
        return jsonify(predictor.predict(name, json_bytes(settings.max_event_bytes)))

    @app.post("/v1/models/<name>:feedback")
    def feedback(name: str) -> Response:
        try:
            body = json.loads(json_bytes(settings.max_event_bytes))
        except (ValueError, RecursionError):
            raise PredictorError(NOT_JSON) from None
        return jsonify(feedback_desk.take(name, body))

    def ready() -> bool:
        # With no model configured the service is up and says so on every model route;
        # a configured model that failed to load makes the revision unready instead.
        if predictor.configured and predictor.model is None:
            raise ModelUnavailableError(predictor.error or "the model is not loaded")
        return True

    register_health(app, ready)
    register_metrics(app, predictor.metrics.registry)
    return app


def json_bytes(limit: int) -> bytes:
    """The body of a JSON request, unparsed (:predict counts instances as it parses), or
    413 when it is larger than `limit`."""
    if not request.is_json:
        raise PredictorError(NOT_JSON)
    body = read_body_within(limit)
    if body is None:
        raise RequestEntityTooLarge()
    return body
