"""`troupe down` then `troupe up`: the control plane's objects come back as they were.

A cluster keeps its objects across restarts of any component, so the local runtime must
too: the Services as the deployer patched them, their revisions, and Triggers made
through the API. The manifests are then applied on top, as `kubectl apply` would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kubernetes import client, config
from support.polling import wait_until
from troupe.local.controlplane.saved_objects import SavedStateError
from troupe.local.runtime import Runtime, RuntimeOptions

from .conftest import BROKER_DOC, ECHO, RECORDER, service, write_project
from .test_eventing import publish, received, recorder, trigger

GROUP, VERSION, NS = "serving.knative.dev", "v1", "troupe"
TROUPE = [sys.executable, "-c", "from troupe.cli import main; main()"]


class Restartable:
    """One project folder, and runtimes started on it one after another."""

    def __init__(self, root: Path, data_plane: bool) -> None:
        self.root, self.data_plane = root, data_plane
        self.runtime: Runtime | None = None

    def up(self) -> Runtime:
        self.runtime = Runtime(RuntimeOptions(project=self.root, data_plane=self.data_plane,
                                              prometheus=False), say=lambda line: None)
        self.runtime.start()
        return self.runtime

    def down(self) -> None:
        if self.runtime is not None:
            self.runtime.stop()
            self.runtime = None

    def api(self) -> client.CustomObjectsApi:
        assert self.runtime is not None
        return client.CustomObjectsApi(
            config.new_client_from_config(config_file=str(self.runtime.kubeconfig)))


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Restartable]:
    root = write_project(tmp_path / "project", [service("echo", revision="echo-v1")],
                         functions={"echo": ECHO, "recorder": RECORDER})
    restartable = Restartable(root, data_plane=False)
    yield restartable
    restartable.down()


def _deploy_v2(api: client.CustomObjectsApi) -> None:
    """What the deployer does: a named revision with new env, and a tagged traffic split."""
    api.patch_namespaced_custom_object(GROUP, VERSION, NS, "services", "echo", {"spec": {
        "template": {"metadata": {"name": "echo-v2"}, "spec": {"containers": [
            {"image": "echo", "env": [{"name": "GREETING", "value": "v2"}]}]}},
        "traffic": [{"revisionName": "echo-v2", "percent": 100, "tag": "champion"},
                    {"revisionName": "echo-v1", "percent": 0, "tag": "previous"}]}})


def _status(api: client.CustomObjectsApi) -> dict[str, Any]:
    return dict(api.get_namespaced_custom_object(GROUP, VERSION, NS, "services", "echo"))


def test_the_deployers_revisions_and_traffic_survive_a_restart(project: Restartable) -> None:
    project.up()
    _deploy_v2(project.api())
    before = _status(project.api())
    project.down()

    runtime = project.up()
    after = _status(project.api())
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    assert after["spec"]["traffic"] == before["spec"]["traffic"]
    assert after["status"]["latestReadyRevisionName"] == "echo-v2"
    assert [(t["revisionName"], t["percent"]) for t in after["status"]["traffic"]] == [
        ("echo-v2", 100), ("echo-v1", 0)]
    answer = requests.get(after["status"]["url"], timeout=30).json()
    assert (answer["revision"], answer["greeting"]) == ("echo-v2", "v2")
    tagged = {t["tag"]: t["url"] for t in after["status"]["traffic"]}
    assert requests.get(tagged["previous"], timeout=30).json()["revision"] == "echo-v1"

    # A new revision continues the numbering instead of reusing a name.
    project.api().patch_namespaced_custom_object(GROUP, VERSION, NS, "services", "echo", {
        "spec": {"template": {"metadata": {"name": None}, "spec": {"containers": [
            {"image": "echo", "env": [{"name": "GREETING", "value": "v3"}]}]}}}})
    revisions = [r["name"] for r in
                 next(s for s in runtime.status()["services"] if s["name"] == "echo")["revisions"]]
    assert revisions == ["echo-v1", "echo-v2", "echo-00003"]


def test_a_changed_manifest_field_wins_and_the_rest_stays(project: Restartable) -> None:
    project.up()
    _deploy_v2(project.api())
    project.api().patch_namespaced_custom_object(GROUP, VERSION, NS, "services", "echo", {
        "metadata": {"labels": {"team": "ml"}}})
    project.down()

    manifest_file = project.root / "knative" / "300-resources.yaml"
    manifest = yaml.safe_load(manifest_file.read_text())
    manifest["metadata"]["annotations"] = {"owner": "platform"}
    manifest_file.write_text(yaml.safe_dump(manifest))
    project.up()
    after = _status(project.api())
    assert after["metadata"]["annotations"]["owner"] == "platform"  # the manifest's change
    assert after["metadata"]["labels"] == {"team": "ml"}  # set through the API: kept
    assert after["spec"]["traffic"][0]["revisionName"] == "echo-v2"  # the deployer's: kept
    assert after["spec"]["template"]["metadata"]["name"] == "echo-v2"

    # A manifest field the deployer had changed wins when the manifest changes it too.
    project.down()
    manifest["spec"]["traffic"] = [{"revisionName": "echo-v1", "percent": 100}]
    manifest_file.write_text(yaml.safe_dump(manifest))
    project.up()
    after = _status(project.api())
    assert [(t["revisionName"], t["percent"]) for t in after["status"]["traffic"]] == [
        ("echo-v1", 100)]
    assert requests.get(after["status"]["url"], timeout=30).json()["revision"] == "echo-v1"


def test_kinds_without_a_status_are_applied_again_after_a_restart(
        project: Restartable) -> None:
    account = {"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "troupe-deployer", "namespace": NS}}
    manifests = project.root / "knative" / "300-resources.yaml"
    manifests.write_text(yaml.safe_dump_all([service("echo", revision="echo-v1"), account]))
    project.up()
    project.down()
    runtime = project.up()  # was refused: "ServiceAccount: status: unknown field"
    assert {s["name"] for s in runtime.status()["services"]} == {"echo"}


def test_an_object_whose_manifest_is_gone_is_deleted_and_api_objects_stay(
        project: Restartable) -> None:
    manifests = project.root / "knative" / "300-resources.yaml"
    manifests.write_text(yaml.safe_dump_all([service("echo", revision="echo-v1"),
                                             service("gone", revision="gone-v1")]))
    project.up()
    created = service("mine", revision="mine-v1")
    created["metadata"]["namespace"] = NS
    project.api().create_namespaced_custom_object(GROUP, VERSION, NS, "services", created)
    project.down()

    manifests.write_text(yaml.safe_dump_all([service("echo", revision="echo-v1")]))
    runtime = project.up()
    names = {s["name"] for s in runtime.status()["services"]}
    assert names == {"echo", "mine"}


@pytest.mark.kafka
def test_a_trigger_created_through_the_api_delivers_after_a_restart(tmp_path: Path) -> None:
    seen = tmp_path / "seen.jsonl"
    root = write_project(tmp_path / "project", [recorder("recorder", seen)], [BROKER_DOC],
                         functions={"echo": ECHO, "recorder": RECORDER})
    restartable = Restartable(root, data_plane=True)
    try:
        restartable.up()
        made = trigger("mine", "recorder")
        made["metadata"]["namespace"] = NS
        restartable.api().create_namespaced_custom_object(
            "eventing.knative.dev", "v1", NS, "triggers", made)
        restartable.down()

        runtime = restartable.up()
        assert runtime.eventing is not None and runtime.eventing.wait_ready(60)
        event_id = str(uuid.uuid4())
        publish(runtime.broker_urls()[0], event_id)
        wait_until(lambda: any(r["id"] == event_id for r in received(seen)), timeout=60,
                   message="the restored Trigger to deliver")
    finally:
        restartable.down()


def test_a_truncated_state_file_is_refused_naming_it_and_changing_nothing(
        project: Restartable) -> None:
    project.up()
    project.down()
    state = project.root / ".troupe" / "objects.json"
    text = state.read_bytes()
    state.write_bytes(text[: len(text) // 2])
    store_before = sorted(p.name for p in (project.root / ".troupe").iterdir())

    with pytest.raises(SavedStateError) as refused:
        project.up()
    assert str(state) in str(refused.value) and "--fresh" in str(refused.value)
    assert state.read_bytes() == text[: len(text) // 2]
    assert sorted(p.name for p in (project.root / ".troupe").iterdir()) == store_before

    cli = subprocess.run([*TROUPE, "up", "--project", str(project.root)], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL, timeout=60, check=False)
    assert cli.returncode == 1
    assert "Traceback" not in cli.stderr and str(state) in cli.stderr, cli.stderr


def test_a_state_file_of_another_format_is_refused(project: Restartable) -> None:
    state = project.root / ".troupe" / "objects.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"format": 0, "resourceVersion": 1, "objects": []}))
    with pytest.raises(SavedStateError, match="format 0"):
        project.up()


def _troupe_on_a_terminal(args: list[str], answer: str) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin, answering its question."""
    controller, terminal = os.openpty()
    try:
        child = subprocess.Popen([*TROUPE, *args], stdin=terminal, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        os.write(controller, answer.encode())
        output, _ = child.communicate(timeout=60)
    finally:
        os.close(controller)
        os.close(terminal)
    return child.returncode, output


def test_purge_says_what_it_removes_and_asks_on_a_terminal(project: Restartable) -> None:
    project.up()
    project.down()
    workdir = project.root / ".troupe"
    (workdir / "store" / "models").mkdir(parents=True)  # what the functions would write
    (workdir / "store" / "models" / "registry.json").write_text("{}")
    assert (workdir / "objects.json").exists()

    code, output = _troupe_on_a_terminal(["down", "--purge", "--project", str(project.root)],
                                         "n\n")
    assert code == 1 and "nothing removed" in output, output
    assert str(workdir / "objects.json") in output and str(workdir / "store") in output
    assert (workdir / "objects.json").exists()

    code, output = _troupe_on_a_terminal(
        ["down", "--purge", "--yes", "--project", str(project.root)], "")
    assert code == 0, output
    assert not (workdir / "objects.json").exists() and not (workdir / "store").exists()


def test_fresh_without_a_terminal_removes_without_asking(project: Restartable) -> None:
    project.up()
    project.down()
    code, output = _troupe_on_a_terminal(
        ["up", "--fresh", "--project", str(project.root)], "n\n")
    assert code == 1 and "nothing removed" in output  # asked on a terminal, and refused
    assert (project.root / ".troupe" / "objects.json").exists()

    done = subprocess.run([*TROUPE, "down", "--purge", "--project", str(project.root)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "objects.json" in done.stderr
    assert not (project.root / ".troupe" / "objects.json").exists()
