"""Each main.py, run the way the image and the local runtime run it: gunicorn --chdir."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sklearn.linear_model import LogisticRegression
from troupe.store import Store

REPO = Path(__file__).resolve().parents[3]
GUNICORN = Path(sys.executable).with_name("gunicorn")
LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")


class Gunicorn:
    def __init__(self, function: str, env: dict[str, str], workdir: Path) -> None:
        self.log = workdir / f"{function}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(GUNICORN), "--bind", "127.0.0.1:0", "--workers", "1", "--threads", "2",
                 "--chdir", str(REPO / "functions" / function), "main:app"],
                env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        self.url = f"http://127.0.0.1:{self._wait_for_port()}"

    def _wait_for_port(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = LISTENING.search(self.log.read_text(errors="replace"))
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"gunicorn did not start: {self.log.read_text(errors='replace')[-2000:]}")

    def get(self, path: str, timeout: float = 60.0) -> requests.Response:
        """GET once the worker answers: it binds first, then imports the app (scikit-learn
        and the model), which takes a while on a busy machine."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return requests.get(f"{self.url}{path}", timeout=timeout)
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture()
def run(tmp_path: Path) -> Iterator[type[Gunicorn]]:
    started: list[Gunicorn] = []

    class Tracked(Gunicorn):
        def __init__(self, function: str, env: dict[str, str], workdir: Path = tmp_path):
            super().__init__(function, env, workdir)
            started.append(self)

    yield Tracked
    for server in started:
        server.stop()


def test_the_predictor_main_serves_the_model_named_in_its_environment(
    run: type[Gunicorn], tmp_path: Path
) -> None:
    store = Store(f"file://{tmp_path / 'store'}")
    model = LogisticRegression().fit([[0.0, 1.0], [1.0, 0.0], [0.0, 0.9], [0.9, 0.1]],
                                     [0, 1, 0, 1])
    artifact = store.save_model(model, name="default", version="v7")
    server = run("predictor", {
        "TROUPE_STORE_URL": store.url, "TROUPE_MODEL_URI": artifact.uri,
        "TROUPE_MODEL_SHA256": artifact.sha256, "TROUPE_MODEL_VERSION": "v7",
    })
    status = server.get("/v1/models/default")
    assert status.status_code == 200
    assert status.json() == {"name": "default", "ready": True, "version": "v7"}
    answer = requests.post(f"{server.url}/v1/models/default:predict",
                           json={"instances": [[0.0, 1.0], [1.0, 0.0]]}, timeout=5)
    assert answer.json()["predictions"] == [0, 1]


@pytest.mark.parametrize("function", ["monitor", "policy"])
def test_the_event_functions_start_under_gunicorn(
    run: type[Gunicorn], tmp_path: Path, function: str
) -> None:
    server = run(function, {"TROUPE_STORE_URL": f"file://{tmp_path / 'store'}",
                            "K_SERVICE": function})
    assert server.get("/health/liveness").status_code == 200
    assert server.get("/health/readiness").status_code == 200
    metrics = server.get("/metrics").text
    assert "troupe_events_total" in metrics or "troupe_handler_duration_seconds" in metrics
