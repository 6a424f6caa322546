"""Bad feedback to a real predictor, scraped by a real Prometheus, makes the monitor's app
reply metric-degraded after N ticks; good feedback never does; no Prometheus is a 503."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable

import pytest
import requests
from troupe.events import METRIC_DEGRADED, make_event, to_http_binary
from troupe.local.observability.prometheus import PrometheusServer
from troupe.store import Store

from .conftest import LoopbackServer, Predictor, first_value

pytestmark = pytest.mark.prometheus
BREACHES = 3


def send_feedback(predictor: Predictor, *, right: bool, count: int = 30) -> None:
    rows = predictor.rows.sample(count, random_state=7)
    url = f"{predictor.server.url}/v1/models/{predictor.model}"
    answer = requests.post(f"{url}:predict", json={"instances": rows.to_numpy().tolist()},
                           timeout=5)
    answer.raise_for_status()
    body = answer.json()
    for prediction_id, prediction in zip(body["ids"], body["predictions"], strict=True):
        label = prediction if right else (prediction + 1) % 3
        requests.post(f"{url}:feedback", json={"id": prediction_id, "label": label},
                      timeout=5).raise_for_status()


def wait_until_prometheus_sees(prometheus: PrometheusServer, model: str, labeled: int) -> None:
    prometheus.wait_for(
        f'sum(increase(troupe_feedback_labeled_total{{model="{model}"}}[1m]))',
        lambda result: first_value(result) >= labeled,
    )


def tick(monitor: LoopbackServer) -> requests.Response:
    event = make_event("ping", {"message": "tick"}, source="/pingsource/monitor-tick",
                       event_id=str(uuid.uuid4()))
    message = to_http_binary(event)
    return requests.post(monitor.url, data=message.body, headers=dict(message.headers),
                         timeout=10)


def monitor_env(prometheus_url: str, model: str) -> dict[str, str]:
    return {"TROUPE_PROMETHEUS_URL": prometheus_url, "TROUPE_MODEL_NAME": model,
            "TROUPE_MONITOR_WINDOW": "1m", "TROUPE_MONITOR_BREACHES": str(BREACHES),
            "TROUPE_MONITOR_MIN_FEEDBACK": "20"}


def test_wrong_labels_raise_metric_degraded_after_n_ticks(
    prometheus: PrometheusServer,
    predictors: dict[str, Predictor],
    monitor_app: Callable[..., LoopbackServer],
) -> None:
    send_feedback(predictors["degrading"], right=False)
    wait_until_prometheus_sees(prometheus, "degrading", labeled=20)
    monitor = monitor_app(**monitor_env(prometheus.url, "degrading"))
    answers = [tick(monitor) for _ in range(BREACHES)]
    assert [a.status_code for a in answers] == [202] * (BREACHES - 1) + [200]
    fired = answers[-1]
    assert fired.headers["ce-type"] == METRIC_DEGRADED
    assert fired.headers["ce-modelversion"] == "v1"
    data = json.loads(fired.content)
    assert (data["model"], data["version"], data["metric"]) == ("degrading", "v1", "accuracy")
    assert data["value"] == pytest.approx(0.0)
    assert data["threshold"] == 0.8 and data["window"] == "1m"
    assert data["breaches"] == BREACHES and data["samples"] >= 20
    # Cooling down now: the next tick is quiet although accuracy is still 0.
    assert tick(monitor).status_code == 202


def test_good_feedback_reports_no_degradation(
    prometheus: PrometheusServer,
    predictors: dict[str, Predictor],
    monitor_app: Callable[..., LoopbackServer],
    store: Store,
) -> None:
    send_feedback(predictors["healthy"], right=True)
    wait_until_prometheus_sees(prometheus, "healthy", labeled=20)
    monitor = monitor_app(**monitor_env(prometheus.url, "healthy"))
    assert [tick(monitor).status_code for _ in range(BREACHES + 2)] == [202] * (BREACHES + 2)
    # It did judge (not merely lack data): each healthy reading reset the breach count.
    assert store.read_json("monitor/healthy.json")["breaches"] == {"v1/accuracy": 0}
    accuracy = prometheus.query(
        'sum(increase(troupe_feedback_correct_total{model="healthy"}[1m])) '
        '/ sum(increase(troupe_feedback_labeled_total{model="healthy"}[1m]))'
    )
    assert first_value(accuracy) == pytest.approx(1.0)


def test_an_unreachable_prometheus_answers_503(
    monitor_app: Callable[..., LoopbackServer],
) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monitor = monitor_app(**monitor_env(dead, "degrading"))
    answer = tick(monitor)
    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) > 0
    assert "did not answer" in answer.text
