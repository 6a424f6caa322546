"""Serving: scale from zero and back, concurrency limits, revisions and traffic splits."""

from __future__ import annotations

import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests
from support.polling import wait_until
from troupe.local.controlplane.kinds import SERVICE

from .conftest import StartRuntime, service, service_status

RETENTION = "autoscaling.knative.dev/scale-to-zero-pod-retention-period"


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_cold_request_is_served_and_the_process_goes_away_after_the_grace_period(
        start_runtime: StartRuntime) -> None:
    runtime = start_runtime([service("echo", annotations={RETENTION: "1s"})])
    status = service_status(runtime, "echo")
    assert status["instances"] == 0 and status["ready"]

    answer = requests.get(status["url"], timeout=30)

    assert answer.status_code == 200
    assert answer.json()["revision"] == "echo-00001"
    assert answer.json()["store"].startswith("file://")
    assert service_status(runtime, "echo")["instances"] == 1
    wait_until(lambda: service_status(runtime, "echo")["instances"] == 0, 15, "scale to zero")
    wait_until(lambda: _gone(answer.json()["pid"]), 10, "the gunicorn process to exit")


def test_fifty_concurrent_requests_to_a_cold_service_all_succeed_on_at_most_three_instances(
        start_runtime: StartRuntime) -> None:
    runtime = start_runtime([service("echo", concurrency=1, annotations={
        "autoscaling.knative.dev/max-scale": "3"})])
    url = service_status(runtime, "echo")["url"]

    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: requests.get(f"{url}/?sleep=0.05", timeout=60),
                                range(50)))

    assert [a.status_code for a in answers] == [200] * 50
    pids = {a.json()["pid"] for a in answers}
    assert 2 <= len(pids) <= 3, f"{len(pids)} processes served the burst"
    assert service_status(runtime, "echo")["instances"] <= 3


def test_env_comes_from_configmaps_and_secrets(start_runtime: StartRuntime) -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "echo-config"},
              "data": {"GREETING": "hello"}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "echo-secret"},
              "data": {"token": "czNjcjN0"}}  # base64 of s3cr3t
    echo = service("echo", env=[{"name": "SECRET", "valueFrom": {
        "secretKeyRef": {"name": "echo-secret", "key": "token"}}}])
    echo["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [
        {"configMapRef": {"name": "echo-config"}}]
    runtime = start_runtime([config, secret, echo])

    answer = requests.get(service_status(runtime, "echo")["url"], timeout=30).json()

    assert (answer["greeting"], answer["secret"]) == ("hello", "s3cr3t")


def test_an_eighty_twenty_split_holds_over_a_thousand_requests_and_a_tag_has_its_own_url(
        start_runtime: StartRuntime) -> None:
    traffic = [{"revisionName": "echo-blue", "percent": 80},
               {"revisionName": "echo-green", "percent": 20, "tag": "candidate"}]
    # Two revisions exist only after the template changed once, as on a cluster.
    runtime = start_runtime([service("echo", revision="echo-blue")])
    green = service("echo", revision="echo-green", traffic=traffic)
    current = runtime.objects.get(SERVICE, "troupe", "echo")
    runtime.objects.replace(SERVICE, {**current, "spec": green["spec"]})
    status = service_status(runtime, "echo")
    assert [(t["revisionName"], t["percent"]) for t in status["traffic"]] == [
        ("echo-blue", 80), ("echo-green", 20)]

    sessions = threading.local()

    def revision_at(url: str) -> str:
        if not hasattr(sessions, "session"):
            sessions.session = requests.Session()
        return str(sessions.session.get(url, timeout=30).json()["revision"])

    with ThreadPoolExecutor(8) as pool:
        counts = Counter(pool.map(revision_at, [status["url"]] * 1000))
        tagged = set(pool.map(revision_at, [status["traffic"][1]["url"]] * 20))

    assert 750 <= counts["echo-blue"] <= 850 and 150 <= counts["echo-green"] <= 250, counts
    assert tagged == {"echo-green"}


def test_a_function_that_cannot_start_gets_503_naming_the_problem(
        start_runtime: StartRuntime, ) -> None:
    runtime = start_runtime([service("broken", image="broken")], functions={
        "broken": "raise RuntimeError('no model configured')\n"})

    answer = requests.get(service_status(runtime, "broken")["url"], timeout=60)

    assert answer.status_code == 503
    assert "no model configured" in answer.text


def test_a_full_activator_buffer_answers_503(start_runtime: StartRuntime) -> None:
    runtime = start_runtime([service("echo", concurrency=1, annotations={
        "autoscaling.knative.dev/max-scale": "1"})], buffer_size=2)
    url = service_status(runtime, "echo")["url"]

    with ThreadPoolExecutor(8) as pool:
        codes = Counter(pool.map(lambda _: requests.get(f"{url}/?sleep=0.3", timeout=60)
                                 .status_code, range(8)))

    assert codes[503] >= 1 and codes[200] >= 1, codes
