"""The whole loop, as a user runs it: `troupe up`, `troupe subscribe`, `troupe demo`,
`troupe timeline`, on a copy of this project's own manifests and functions.

Real everything: Tansu, Prometheus, gunicorn processes, the control plane, and a sink of
the test's own on loopback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from troupe.events import (
    MODEL_DEPLOYED,
    from_http,
)
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

REPO = Path(__file__).resolve().parents[2]
TROUPE = [sys.executable, "-c", "from troupe.cli import main; main()"]
RETRAIN_STEPS = ["metric-degraded", "training-requested", "training-finished",
                 "model-approved", "model-deployed"]

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.prometheus,
              pytest.mark.timeout(900)]


def troupe(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TROUPE, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


class Sink:
    """A subscriber of the test's own: records every event it is sent."""

    def __init__(self) -> None:
        self.events: list = []
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        with self._lock:
            self.events.append(from_http(dict(request.headers), request.get_data()))
        return Response(status=202)(environ, start_response)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if shutil.which("prometheus") is None:
        pytest.skip("the closed loop needs Prometheus: apt-get install prometheus")
    root = tmp_path_factory.mktemp("project")
    for folder in ("knative", "eventing", "functions"):
        shutil.copytree(REPO / folder, root / folder,
                        ignore=shutil.ignore_patterns("__pycache__", ".troupe"))
    started = troupe("up", "--detach", "--project", str(root), cwd=root, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "kubeconfig" in started.stdout
    yield root
    stopped = troupe("down", "--project", str(root), cwd=root, timeout=90)
    assert stopped.returncode == 0, stopped.stderr


@pytest.fixture(scope="module")
def sink() -> Iterator[tuple[Sink, str]]:
    app = Sink()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield app, f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def test_demo_closes_the_loop_and_a_subscriber_sees_it(project: Path, sink) -> None:
    recorder, url = sink
    subscribed = troupe("subscribe", "--type", "model-deployed", "--sink", url,
                        "--name", "e2e-sink", cwd=project)
    assert subscribed.returncode == 0, subscribed.stderr

    demo = troupe("demo", "--project", str(project), "--json", cwd=project, timeout=300)
    assert demo.returncode == 0, demo.stderr[-3000:]
    result = json.loads(demo.stdout)
    assert result["dead_letters"] == 0
    assert result["versions"]["first"] != result["versions"]["retrained"]
    assert result["accuracy"]["after_retrain"] > result["accuracy"]["after_drift"]
    # The drift was caught by the concept test, and the summary says how late.
    assert result["scenario"] == "abrupt"
    concept = [a for a in result["alarms"] if a["kind"] == "concept"]
    assert concept and concept[0]["metric"] == "accuracy"
    assert concept[0]["version"] == result["versions"]["first"]
    assert result["detection_delay_predictions"] == concept[0]["at_predictions"]
    assert result["detection_delay_seconds"] > 0
    # Every label the traffic driver sent was taken: the ids it got were signed.
    assert not {name: n for name, n in result["traffic_errors"].items()
                if name.startswith("feedback")}

    # The retraining run, rebuilt from the event log by the timeline command.
    runid = result["runids"]["retrained"]
    timeline = troupe("timeline", runid, "--json", cwd=project, timeout=60)
    assert timeline.returncode == 0, timeline.stderr
    steps = json.loads(timeline.stdout)["steps"]
    types = [step["type"] for step in steps]
    assert [t for t in types if t in RETRAIN_STEPS] == RETRAIN_STEPS
    assert {step["runid"] for step in steps} == {runid}

    # The event log, tailed as a user would, shows both rollouts.
    tailed = troupe("events", "--type", "model-deployed", "--json", cwd=project, timeout=60)
    assert tailed.returncode == 0, tailed.stderr
    logged = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert {e["data"]["version"] for e in logged} == {result["versions"]["first"],
                                                      result["versions"]["retrained"]}
    assert all(e["type"] == MODEL_DEPLOYED for e in logged)

    # Our own Trigger delivered both rollouts to our sink.
    deployed = {e.get_data()["version"] for e in recorder.events
                if e.get_type() == MODEL_DEPLOYED}
    assert {result["versions"]["first"], result["versions"]["retrained"]} <= deployed

    # No dead letter anywhere in the store.
    assert not list((project / ".troupe" / "store").glob("deadletters/**/*.json"))

    removed = troupe("unsubscribe", "e2e-sink", cwd=project)
    assert removed.returncode == 0, removed.stderr
    again = troupe("unsubscribe", "e2e-sink", cwd=project)
    assert again.returncode == 1 and "no Trigger named e2e-sink" in again.stderr


def test_the_predictor_takes_feedback_for_its_own_signed_ids_once(project: Path) -> None:
    url = _predictor(project)["url"]
    (model,) = requests.get(f"{url}/v1/models", timeout=60).json()["models"]
    answer = _predict(url, model).json()
    (prediction_id,) = answer["ids"]
    payload, nonce, _ = prediction_id.split(".")

    def feedback(given: str) -> int:
        sent = requests.post(f"{url}/v1/models/{model}:feedback", timeout=60,
                             json={"id": given, "label": answer["predictions"][0]})
        return sent.status_code

    assert feedback(f"{payload}.{nonce}.{'0' * 24}") == 404  # forged
    assert feedback(f"{payload}.{nonce}") == 400  # unsigned
    assert feedback(prediction_id) == 200
    assert feedback(prediction_id) == 409  # whichever instance or revision takes it


def _summary(result: dict) -> tuple:  # type: ignore[type-arg]
    return (result["versions"], result["dead_letters"])


def _status(project: Path) -> dict:  # type: ignore[type-arg]
    status = troupe("status", "--json", "--project", str(project), cwd=project, timeout=60)
    assert status.returncode == 0, status.stderr
    return json.loads(status.stdout)  # type: ignore[no-any-return]


def _predictor(project: Path) -> dict:  # type: ignore[type-arg]
    return next(s for s in _status(project)["services"] if s["name"] == "predictor")


def _split(service: dict) -> list[tuple]:  # type: ignore[type-arg]
    return [(t["revisionName"], t["percent"], t.get("tag")) for t in service["traffic"]]


def _predict(url: str, model: str) -> requests.Response:
    return requests.post(f"{url}/v1/models/{model}:predict", timeout=60,
                         json={"instances": [[0.1] * 4]})


def test_demo_runs_again_on_the_same_runtime_and_after_a_restart(project: Path) -> None:
    runs = []
    for _ in range(2):
        demo = troupe("demo", "--project", str(project), "--json", cwd=project, timeout=300)
        assert demo.returncode == 0, demo.stderr[-3000:]
        runs.append(json.loads(demo.stdout))
    # Each run has a model of its own, so each tells the same story from v1.
    assert runs[0]["model"] != runs[1]["model"]
    assert _summary(runs[0]) == _summary(runs[1]) == ({"first": "v1", "retrained": "v2"}, 0)

    before = _predictor(project)
    assert _predict(before["url"], runs[1]["model"]).status_code == 200
    assert _status(project)["template"]["state"] == "ready"  # the runs above were forked
    stopped = troupe("down", "--project", str(project), cwd=project, timeout=90)
    assert stopped.returncode == 0, stopped.stderr
    # Up again with every instance started afresh, as pods are: the loop closes the same
    # with or without the prewarmed template (the runs above had it).
    started = troupe("up", "--detach", "--no-prewarm", "--project", str(project), cwd=project,
                     timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr

    after = _predictor(project)
    assert _status(project)["template"]["state"] == "off"
    assert _split(after) == _split(before)  # revisions, percentages and tags
    answered = _predict(after["url"], runs[1]["model"])  # the champion of before
    assert answered.status_code == 200, answered.text
    assert len(answered.json()["predictions"]) == 1

    demo = troupe("demo", "--project", str(project), "--json", cwd=project, timeout=300)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert _summary(json.loads(demo.stdout)) == _summary(runs[0])


def test_status_shows_every_function_of_the_project(project: Path) -> None:
    status = troupe("status", "--json", "--project", str(project), cwd=project, timeout=60)
    assert status.returncode == 0, status.stderr
    names = {service["name"] for service in json.loads(status.stdout)["services"]}
    assert names == {path.name for path in (project / "functions").iterdir() if path.is_dir()}

