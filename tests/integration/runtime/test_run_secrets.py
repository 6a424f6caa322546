"""`troupe up` makes the feedback key the predictor needs, new for each run, where the
manifests reference the `troupe-feedback` Secret that a cluster's operator creates."""

from __future__ import annotations

import re
from pathlib import Path

import requests
import yaml
from troupe.local.run_secrets import FEEDBACK_KEY, FEEDBACK_SECRET

from .conftest import StartRuntime, service, service_status

REPO = Path(__file__).resolve().parents[3]


def keyed_echo() -> dict[str, object]:
    return service("echo", env=[{"name": "SECRET", "valueFrom": {
        "secretKeyRef": {"name": FEEDBACK_SECRET, "key": FEEDBACK_KEY}}}])


def key_seen_by(runtime_url: str) -> str:
    secret: str = requests.get(runtime_url, timeout=30).json()["secret"]
    return secret


def test_each_run_gives_a_new_full_strength_key(start_runtime: StartRuntime) -> None:
    first = key_seen_by(service_status(start_runtime([keyed_echo()]), "echo")["url"])
    second = key_seen_by(service_status(start_runtime([keyed_echo()]), "echo")["url"])
    assert re.fullmatch(r"[0-9a-f]{64}", first) and re.fullmatch(r"[0-9a-f]{64}", second)
    assert first != second


def test_a_project_that_declares_the_secret_keeps_its_own(start_runtime: StartRuntime) -> None:
    declared = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": FEEDBACK_SECRET},
                "stringData": {FEEDBACK_KEY: "k" * 40}}
    runtime = start_runtime([declared, keyed_echo()])
    assert key_seen_by(service_status(runtime, "echo")["url"]) == "k" * 40


def test_the_predictor_manifest_names_the_secret_the_runtime_makes() -> None:
    (predictor,) = [doc for doc in yaml.safe_load_all((REPO / "knative/540-predictor.yaml")
                                                      .read_text()) if doc]
    (container,) = predictor["spec"]["template"]["spec"]["containers"]
    references = [entry["valueFrom"]["secretKeyRef"] for entry in container["env"]
                  if entry["name"] == FEEDBACK_KEY]
    assert references == [{"name": FEEDBACK_SECRET, "key": FEEDBACK_KEY}]
