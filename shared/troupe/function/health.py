"""Knative probes: /health/liveness (the process answers) and /health/readiness."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, jsonify

LIVENESS_PATH = "/health/liveness"
READINESS_PATH = "/health/readiness"

ReadyCheck = Callable[[], bool]


def register_health(app: Flask, ready: ReadyCheck | None) -> None:
    """Serve the probes; `ready` (None: always ready) says no by returning False, or with
    its reason by raising."""

    def liveness() -> Response:
        return jsonify(status="alive")

    def readiness() -> tuple[Response, int]:
        if ready is None:
            return jsonify(status="ready"), 200
        try:
            is_ready = ready()
        except Exception as error:  # a failing check means not ready, with the reason
            return jsonify(
                status="not-ready", message=f"{type(error).__name__}: {error}"
            ), 503
        if is_ready:
            return jsonify(status="ready"), 200
        return jsonify(status="not-ready", message="the readiness check said no"), 503

    app.add_url_rule(LIVENESS_PATH, "liveness", liveness, methods=["GET"])
    app.add_url_rule(READINESS_PATH, "readiness", readiness, methods=["GET"])
