"""predictor: the KServe V1 routes, feedback, health and /metrics.

The predictor is an HTTP service, not an event consumer, so it does not go through the
event app factory; it registers the same health and metrics routes as every function.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from predictor_feedback import FeedbackDesk
from predictor_serving import ModelUnavailableError, Predictor, PredictorError, PredictorSettings
from troupe.function import register_health, register_metrics
from troupe.store import Store
from werkzeug.exceptions import HTTPException

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

    @app.errorhandler(PredictorError)
    def predictor_error(error: PredictorError) -> tuple[Response, int]:
        return jsonify(error=str(error)), error.status_code

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        return jsonify(error=error.description), error.code or 500

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
        return jsonify(predictor.predict(name, _json_body()))

    @app.post("/v1/models/<name>:feedback")
    def feedback(name: str) -> Response:
        return jsonify(feedback_desk.take(name, _json_body()))

    def ready() -> bool:
        # With no model configured the service is up and says so on every model route;
        # a configured model that failed to load makes the revision unready instead.
        if predictor.configured and predictor.model is None:
            raise ModelUnavailableError(predictor.error or "the model is not loaded")
        return True

    register_health(app, ready)
    register_metrics(app, predictor.metrics.registry)
    return app


def _json_body() -> Any:
    body = request.get_json(silent=True)
    if body is None:
        raise PredictorError(
            "the body must be JSON (Content-Type: application/json), "
            'e.g. {"instances": [[1.0, 2.0]]}'
        )
    return body
