"""Tiny projects on disk (manifests + function folders) and a runtime running them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.polling import wait_until
from troupe.local.controlplane.kinds import SERVICE
from troupe.local.runtime import Runtime, RuntimeOptions
from troupe.local.serving.controller import ServingSettings

# A plain Flask function: says which revision and process answered, sleeps on request.
ECHO = '''
import os, time
from flask import Flask, request
app = Flask(__name__)

@app.route("/", methods=["GET", "POST"])
def index():
    time.sleep(float(request.args.get("sleep", 0)))
    return {"revision": os.environ["K_REVISION"], "service": os.environ["K_SERVICE"],
            "pid": os.getpid(), "greeting": os.environ.get("GREETING"),
            "secret": os.environ.get("SECRET"), "store": os.environ.get("TROUPE_STORE_URL")}

@app.route("/metrics")
def metrics():
    return "echo_up 1\\n", 200, {"Content-Type": "text/plain; version=0.0.4"}
'''

# A CloudEvents sink: appends each event's id to a file named by RECORD_FILE.
RECORDER = '''
import json, os
from flask import Flask, request
app = Flask(__name__)

@app.route("/", methods=["POST"])
def receive():
    with open(os.environ["RECORD_FILE"], "a") as out:
        out.write(json.dumps({"id": request.headers.get("ce-id"),
                              "type": request.headers.get("ce-type"),
                              "source": request.headers.get("ce-source"),
                              "body": request.get_data(as_text=True)}) + "\\n")
    return "", 202
'''


def service(name: str, image: str = "echo", *, annotations: dict[str, str] | None = None,
            concurrency: int | None = None, revision: str | None = None,
            env: list[dict[str, Any]] | None = None, traffic: list[dict[str, Any]] | None = None,
            initial_scale: int | None = 0) -> dict[str, Any]:
    """A Knative Service running `functions/<image>`. Its revisions start at zero
    instances (initial-scale 0), so tests see cold starts; `initial_scale=None` leaves
    Knative's default (1: a revision is Ready once an instance passed its probe)."""
    annotations = dict(annotations or {})
    if initial_scale is not None:
        annotations.setdefault("autoscaling.knative.dev/initial-scale", str(initial_scale))
    template: dict[str, Any] = {"metadata": {"annotations": annotations},
                                "spec": {"containers": [{"image": image, "env": env or []}]}}
    if revision:
        template["metadata"]["name"] = revision
    if concurrency is not None:
        template["spec"]["containerConcurrency"] = concurrency
    spec: dict[str, Any] = {"template": template}
    if traffic:
        spec["traffic"] = traffic
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": name}, "spec": spec}


def write_project(root: Path, knative: list[dict[str, Any]],
                  eventing: Sequence[dict[str, Any]] = (),
                  functions: dict[str, str] | None = None) -> Path:
    for folder, docs in (("knative", knative), ("eventing", eventing)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "300-resources.yaml").write_text(yaml.safe_dump_all(list(docs)))
    for name, source in (functions or {"echo": ECHO, "recorder": RECORDER}).items():
        (root / "functions" / name).mkdir(parents=True, exist_ok=True)
        (root / "functions" / name / "main.py").write_text(source)
    return root


BROKER_DOC = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
              "metadata": {"name": "default"}}

StartRuntime = Callable[..., Runtime]


@pytest.fixture
def start_runtime(tmp_path: Path) -> Iterator[StartRuntime]:
    """start_runtime(knative=[...], eventing=[...], grace_period=..., data_plane=False,
    prewarm=True, ...)"""
    started: list[Runtime] = []

    def start(knative: list[dict[str, Any]], eventing: Sequence[dict[str, Any]] = (),
              *, grace_period: float = 30.0, data_plane: bool = False, prometheus: bool = False,
              buffer_size: int = 1000, activation_timeout: float = 30.0,
              functions: dict[str, str] | None = None, prewarm: bool = True) -> Runtime:
        project = write_project(tmp_path / f"project{len(started)}", knative, eventing,
                                {"echo": ECHO, "recorder": RECORDER, **(functions or {})})
        runtime = Runtime(RuntimeOptions(
            project=project, data_plane=data_plane, prometheus=prometheus, prewarm=prewarm,
            serving=ServingSettings(grace_period=grace_period, buffer_size=buffer_size,
                                    activation_timeout=activation_timeout)),
            say=lambda line: None)
        runtime.start()
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        runtime.stop()


def service_status(runtime: Runtime, name: str) -> dict[str, Any]:
    return next(s for s in runtime.status()["services"] if s["name"] == name)


def ready_service(runtime: Runtime, name: str, generation: int = 1,
                  timeout: float = 60.0) -> dict[str, Any]:
    """The Service once it has caught up with `generation` and is Ready, as `kubectl wait
    --for=condition=Ready` waits: a new revision is Ready only once an instance passed its
    readiness probe, so a change takes effect a moment after it is accepted."""
    def ready() -> dict[str, Any] | None:
        obj = runtime.objects.get(SERVICE, runtime.options.namespace, name)
        status = obj.get("status") or {}
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        done = (status.get("observedGeneration", 0) >= generation
                and conditions.get("Ready") == "True")
        return obj if done else None
    found: dict[str, Any] = wait_until(ready, timeout, lambda: f"Service {name} to be Ready: "
                                       f"{runtime.objects.get(SERVICE, 'troupe', name)['status']}")
    return found
