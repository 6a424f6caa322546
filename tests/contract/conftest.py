"""Fixtures for contract tests: a real function app served on loopback, and valid data
for every type in the vocabulary."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from troupe import events
from troupe.function import Settings
from werkzeug.serving import make_server

SHA_A = "a" * 64
SHA_B = "0123456789abcdef" * 4
TRAFFIC = [{"revision": "predictor-v2", "tag": "candidate", "percent": 10, "version": "v2"},
           {"revision": "predictor-v1", "percent": 90, "version": "v1"}]

# Data that each type's schema accepts, with the optional fields too where that is cheap,
# so a round trip exercises nested objects, arrays, nulls and numbers.
SAMPLE_DATA: dict[str, Any] = {
    "data-arrived": {"uri": "incoming/iris.csv", "target": "species", "format": "csv",
                     "model": "iris", "features": ["sepal_length", "petal_width"],
                     "classes": ["setosa", "virginica"], "min_rows": 10,
                     "max_null_fraction": 0.05},
    "data-validated": {"dataset_id": SHA_A, "uri": f"datasets/{SHA_A}.csv", "model": "iris",
                       "target": "species", "rows": 150, "features": ["sepal_length"],
                       "classes": ["setosa", "virginica"], "stats_uri": f"stats/{SHA_A}.json"},
    "data-rejected": {"uri": "incoming/bad.csv", "reasons": ["column 'species' is missing"]},
    "training-requested": {"reason": "accuracy degraded", "model": "iris", "window": 3,
                           "dataset_ids": [SHA_A, SHA_B], "params": {"max_depth": 4}},
    "training-finished": {"model": "iris", "version": "v2", "artifact_uri": "models/iris/v2.skops",
                          "sha256": SHA_B, "metrics": {"accuracy": 0.96, "f1": 0.95},
                          "dataset_ids": [SHA_A]},
    "training-failed": {"reason": "no validated datasets", "model": "iris"},
    "model-approved": {"model": "iris", "version": "v2", "metric": "accuracy",
                       "candidate_score": 0.96, "champion_version": None,
                       "champion_score": None, "artifact_uri": "models/iris/v2.skops",
                       "sha256": SHA_B},
    "model-rejected": {"model": "iris", "version": "v3", "metric": "accuracy",
                       "candidate_score": 0.7, "champion_version": "v2",
                       "champion_score": 0.96, "reason": "worse than the champion"},
    "model-deployed": {"model": "iris", "version": "v2", "revision": "predictor-v2",
                       "strategy": "canary", "traffic": TRAFFIC, "service": "predictor"},
    "model-promoted": {"model": "iris", "version": "v2", "revision": "predictor-v2",
                       "traffic": [{"revision": "predictor-v2", "percent": 100}]},
    "model-rolled-back": {"model": "iris", "version": "v1", "from_version": "v2",
                          "revision": "predictor-v1", "reason": "rollback requested"},
    "metric-degraded": {"model": "iris", "version": "v2", "metric": "accuracy", "value": 0.61,
                        "threshold": 0.8, "window": "5m", "breaches": 3},
    "canary-passed": {"model": "iris", "version": "v2", "champion_version": "v1",
                      "metrics": {"accuracy": 0.95}},
    "rollback-requested": {"model": "iris", "version": "v2", "to_version": "v1",
                           "reason": "accuracy degraded"},
    "ping": {"message": "tick"},
}


@pytest.fixture(scope="session")
def sample_data() -> Callable[[str], dict[str, Any]]:
    """Valid data for a type (short name or CloudEvent type); fails for a type it lacks."""

    def data_for(name: str) -> dict[str, Any]:
        short = events.resolve(name).short
        assert short in SAMPLE_DATA, f"add sample data for {short} to tests/contract/conftest.py"
        return dict(SAMPLE_DATA[short])

    return data_for


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    """Run `app` on a free loopback port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # A short poll interval keeps shutdown (and so each test) fast.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="function-app",
        daemon=True,
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


Serve = Callable[[Flask], str]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """serve(app) -> base URL; every app served is stopped at the end of the test."""
    with ExitStack() as stack:
        yield lambda app: stack.enter_context(serving(app))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a function named `echo` whose store is a fresh directory."""
    return Settings.from_env(
        {"K_SERVICE": "echo", "TROUPE_STORE_URL": (tmp_path / "store").as_uri()}
    )
