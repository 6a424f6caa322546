"""A real `prometheus` scraping real predictor servers on loopback, and the monitor's app.

Each predictor serves a skops model saved in a temporary store, under its own model
name, so tests feed them independently and Prometheus tells them apart by `model`.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from support.functions import load_function
from troupe.local.observability.prometheus import PrometheusServer, find_prometheus
from troupe.ml.drift import baseline_bins
from troupe.store import Store
from werkzeug.serving import BaseWSGIServer, make_server

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# The predictors this module serves; one per scenario.
MODELS = ("degrading", "healthy")


class LoopbackServer:
    """A WSGI app on 127.0.0.1 and a free port, in a thread."""

    def __init__(self, app: Flask) -> None:
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.address = f"127.0.0.1:{self._server.server_port}"
        self.url = f"http://{self.address}"

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


@dataclass(frozen=True)
class Predictor:
    model: str
    server: LoopbackServer
    rows: pd.DataFrame


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return Store(f"file://{tmp_path_factory.mktemp('store')}")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    if find_prometheus() is None:
        pytest.skip("the prometheus binary is not installed (apt-get install prometheus)")
    with PrometheusServer(tmp_path_factory.mktemp("prometheus"), scrape_interval="1s") as server:
        yield server


@pytest.fixture(scope="module")
def predictors(store: Store, prometheus: PrometheusServer) -> Iterator[dict[str, Predictor]]:
    """One real predictor per model name, all scraped under the job `predictor`."""
    predictor = load_function("predictor")
    iris = load_iris(as_frame=True)
    frame = iris.data.set_axis(FEATURES, axis=1)
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    estimator.fit(frame, iris.target)
    stats = {"features": {f: {"kind": "numeric", **baseline_bins(frame[f]).to_json()}
                          for f in FEATURES}}
    stats_uri = store.write_json("stats/iris.json", stats)
    served: dict[str, Predictor] = {}
    for model in MODELS:
        version = store.registry.reserve_version(model, key=f"test|{model}")
        artifact = store.save_model(estimator, name=model, version=version)
        store.registry.register(model, artifact=artifact, metrics={}, key=f"test|{model}",
                                lineage={"features": FEATURES, "stats_uri": stats_uri})
        settings = predictor.PredictorSettings.from_env({
            "TROUPE_STORE_URL": store.url, "TROUPE_MODEL_NAME": model,
            "TROUPE_MODEL_URI": artifact.uri, "TROUPE_MODEL_SHA256": artifact.sha256,
            "TROUPE_MODEL_VERSION": version, "TROUPE_FEEDBACK_KEY": secrets.token_hex(32),
        })
        app = predictor.create_predictor_app(settings, store)
        served[model] = Predictor(model, LoopbackServer(app), frame)
    prometheus.set_targets("predictor", [p.server.address for p in served.values()])
    # The counters are exported at zero from the start; wait until Prometheus holds those
    # zeros, so increase() has a starting point before any feedback arrives.
    prometheus.wait_for(
        "count(troupe_feedback_labeled_total)",
        lambda result: bool(result) and float(result[0]["value"][1]) >= len(MODELS),
    )
    yield served
    prometheus.set_targets("predictor", [])
    for p in served.values():
        p.server.stop()


@pytest.fixture()
def monitor_app(store: Store) -> Iterator[Callable[..., LoopbackServer]]:
    """Start the monitor's function app (the real app factory) on loopback."""
    monitor = load_function("monitor")
    from troupe.function import create_app

    started: list[LoopbackServer] = []

    def start(**env: str) -> LoopbackServer:
        settings = monitor.MonitorSettings.from_env(
            {"K_SERVICE": "monitor", "TROUPE_STORE_URL": store.url, **env}
        )
        server = LoopbackServer(create_app(monitor.handle, settings, consumes=monitor.CONSUMES))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def first_value(result: list[dict[str, Any]]) -> float:
    return float(result[0]["value"][1]) if result else 0.0
