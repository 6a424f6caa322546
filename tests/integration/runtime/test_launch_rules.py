"""What the local API may start, and where it may send events (422s naming the field).

A Service runs `functions/<image>/main.py` as the runtime's user with the container's
environment, and a Trigger's subscriber gets every event its filter passes. Each refusal
below was accepted by the old runtime: a Service running a folder outside the project,
LD_PRELOAD and GUNICORN_CMD_ARGS reaching gunicorn, a Trigger copying events off the
machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from troupe.local.controlplane.kinds import SERVICE, TRIGGER
from troupe.local.controlplane.saved_objects import SavedStateError
from troupe.local.runtime import Runtime, RuntimeOptions

from .conftest import service, write_project

API = "/apis/{group}/v1/namespaces/troupe/{plural}"
SERVICES = API.format(group="serving.knative.dev", plural="services")
TRIGGERS = API.format(group="eventing.knative.dev", plural="triggers")
BROKERS = API.format(group="eventing.knative.dev", plural="brokers")
PINGSOURCES = "/apis/sources.knative.dev/v1/namespaces/troupe/pingsources"
CONFIGMAPS = "/api/v1/namespaces/troupe/configmaps"
CONTAINER = "spec.template.spec.containers[0]"


def start(project: Path, *, allow_external_sinks: bool = False) -> Runtime:
    runtime = Runtime(RuntimeOptions(project=project, data_plane=False, prometheus=False,
                                     allow_external_sinks=allow_external_sinks),
                      say=lambda line: None)
    runtime.start()
    return runtime


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    started = start(write_project(tmp_path_factory.mktemp("launch-rules"), []))
    yield started
    started.stop()


def create(runtime: Runtime, path: str, obj: dict[str, Any]) -> requests.Response:
    return requests.post(f"{runtime.api_url}{path}", json=obj, timeout=30,
                         headers=runtime.api_headers, verify=runtime.api_ca_file)


def refused_fields(response: requests.Response) -> list[str]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["kind"], body["reason"]) == ("Status", "Invalid")
    return [cause["field"] for cause in body["details"]["causes"]]


@pytest.mark.parametrize("image", ["/tmp/elsewhere", "../echo", "echo/../../x", "a/b",
                                   "Echo", "echo_", "-echo", "x" * 64, ""])
def test_an_image_that_is_not_a_function_folder_is_422(runtime: Runtime, tmp_path: Path,
                                                       image: str) -> None:
    (tmp_path / "main.py").write_text("raise SystemExit('ran code from outside functions/')")

    answer = create(runtime, SERVICES, service("outside", image=image.replace(
        "/tmp/elsewhere", str(tmp_path))))

    assert refused_fields(answer) == [f"{CONTAINER}.image"]
    assert not [s for s in runtime.objects.list(SERVICE) if s["metadata"]["name"] == "outside"]


@pytest.mark.parametrize("name", ["LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH",
                                  "PYTHONSTARTUP", "PYTHONHOME", "GUNICORN_CMD_ARGS",
                                  "PORT", "K_SERVICE", "K_REVISION", "KUBECONFIG",
                                  "TROUPE_KUBECONFIG"])
def test_an_env_name_that_steers_the_process_is_422(runtime: Runtime, name: str) -> None:
    env = [{"name": "GREETING", "value": "hello"}, {"name": name, "value": "/tmp/x"}]

    answer = create(runtime, SERVICES, service("steered", env=env))

    assert refused_fields(answer) == [f"{CONTAINER}.env[1].name"]
    assert name in answer.json()["message"]


def test_the_functions_own_settings_are_taken(runtime: Runtime) -> None:
    env = [{"name": name, "value": "1"} for name in (
        "TROUPE_DEPLOY_MODELS", "TROUPE_TRAIN_ON_ARRIVAL", "TROUPE_MAX_EVENT_BYTES",
        "TROUPE_MAX_DATASET_BYTES", "TROUPE_STORE_URL", "TROUPE_PROMETHEUS_URL")]

    assert create(runtime, SERVICES, service("configured", env=env)).status_code == 201


def test_a_configmap_that_would_set_ld_preload_through_envfrom_is_422(
        runtime: Runtime) -> None:
    made = create(runtime, CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "sneaky"},
                                        "data": {"GREETING": "hi", "LD_PRELOAD": "/tmp/x.so"}})
    by_config = service("from-config")
    by_config["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [
        {"configMapRef": {"name": "sneaky"}}]
    by_prefix = service("by-prefix")
    by_prefix["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [
        {"prefix": "PYTHON", "configMapRef": {"name": "troupe-settings", "optional": True}}]

    assert made.status_code == 201
    assert refused_fields(create(runtime, SERVICES, by_config)) == [
        f"{CONTAINER}.envFrom[0].configMapRef.name"]
    assert refused_fields(create(runtime, SERVICES, by_prefix)) == [
        f"{CONTAINER}.envFrom[0].prefix"]


def trigger(name: str, subscriber: str, dead_letters: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"broker": "default", "subscriber": {"uri": subscriber}}
    if dead_letters is not None:
        spec["delivery"] = {"deadLetterSink": {"uri": dead_letters}}
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": name}, "spec": spec}


@pytest.mark.parametrize("uri", ["http://attacker.example/", "https://attacker.example:443/x",
                                 "http://10.0.0.7:8080/", "http://[2001:db8::1]/",
                                 "http://0.0.0.0:9/", "http://169.254.169.254/",
                                 "http://2130706433/", "ftp://127.0.0.1/"])
def test_a_subscriber_off_this_machine_is_422(runtime: Runtime, uri: str) -> None:
    answer = create(runtime, TRIGGERS, trigger("exfiltrate", uri))

    assert refused_fields(answer) == ["spec.subscriber.uri"]
    assert not [t for t in runtime.objects.list(TRIGGER)
                if t["metadata"]["name"] == "exfiltrate"]


@pytest.mark.parametrize(("path", "obj", "field"), [
    (TRIGGERS, trigger("dls", "http://127.0.0.1:9/", "http://attacker.example/"),
     "spec.delivery.deadLetterSink.uri"),
    (BROKERS, {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
               "metadata": {"name": "leaky"},
               "spec": {"delivery": {"deadLetterSink": {"uri": "http://attacker.example/"}}}},
     "spec.delivery.deadLetterSink.uri"),
    (PINGSOURCES, {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
                   "metadata": {"name": "ticker"},
                   "spec": {"schedule": "* * * * *", "sink": {"uri": "http://attacker.example/"}}},
     "spec.sink.uri"),
])
def test_a_dead_letter_sink_or_source_sink_off_this_machine_is_422(
        runtime: Runtime, path: str, obj: dict[str, Any], field: str) -> None:
    assert refused_fields(create(runtime, path, obj)) == [field]


@pytest.mark.parametrize("uri", ["http://127.0.0.1:9/", "http://localhost:9/hook",
                                 "http://[::1]:9/", "http://127.8.9.10:9/"])
def test_loopback_subscribers_are_taken(runtime: Runtime, uri: str) -> None:
    name = f"local-{abs(hash(uri)) % 10_000}"

    assert create(runtime, TRIGGERS, trigger(name, uri)).status_code == 201


def test_allow_external_sinks_takes_any_address(tmp_path: Path) -> None:
    runtime = start(write_project(tmp_path, []), allow_external_sinks=True)
    try:
        answer = create(runtime, TRIGGERS, trigger("downstream", "http://sink.example/"))
    finally:
        runtime.stop()

    assert answer.status_code == 201, answer.text


def test_an_external_sink_kept_from_an_allowing_run_stops_a_run_that_does_not_allow_it(
        tmp_path: Path) -> None:
    project = write_project(tmp_path, [])
    allowing = start(project, allow_external_sinks=True)
    try:
        assert create(allowing, TRIGGERS, trigger("downstream",
                                                  "http://sink.example/")).status_code == 201
    finally:
        allowing.stop()

    with pytest.raises(SavedStateError) as refused:
        start(project)

    assert "Trigger/downstream" in str(refused.value)
    assert "spec.subscriber.uri" in str(refused.value)
    assert "--allow-external-sinks" in str(refused.value)
