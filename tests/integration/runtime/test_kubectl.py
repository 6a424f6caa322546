"""The real kubectl against the local control plane, as a new user tries it.

One runtime for the module: it starts with no manifests of its own and the project's real
function folders, then `kubectl apply -f knative/ -f eventing/` creates everything, as a
user would apply the manifests on a cluster. Each test below was a failure of the old
hand-written API (see the issue's table): no OpenAPI, no namespaces, a DELETE body that
broke the connection, no watch, no dry run, and an empty core discovery.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from troupe.local.runtime import Runtime, RuntimeOptions

REPO = Path(__file__).resolve().parents[3]


def _kubectl_minor() -> int | None:
    if shutil.which("kubectl") is None:
        return None
    version = subprocess.run(["kubectl", "version", "--client", "-o", "json"],
                             capture_output=True, text=True, timeout=30, check=False)
    try:
        return int(json.loads(version.stdout)["clientVersion"]["minor"].rstrip("+"))
    except (ValueError, KeyError):
        return None


MINOR = _kubectl_minor()
# kubectl 1.27 and later read OpenAPI v3 and leave validation to the server; older ones
# want OpenAPI v2 as protobuf, which the local control plane does not serve.
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    MINOR is None or MINOR < 27,
    reason="needs kubectl 1.27 or later (`make test` installs Debian's kubernetes-client "
           f"when kubectl is missing); found: {(MINOR and f'1.{MINOR}') or 'none'}")]

TRIGGER = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
           "metadata": {"name": "audit-model-deployed", "namespace": "troupe"},
           "spec": {"broker": "default",
                    "filter": {"attributes": {"type": "dev.troupe.model.deployed"}},
                    "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1",
                                           "kind": "Service", "name": "dead-letters"}}}}


class Kubectl:
    def __init__(self, kubeconfig: Path, workdir: Path) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        self.workdir = workdir

    def __call__(self, *args: str, check: bool = True, env: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["kubectl", *args], capture_output=True, text=True,
                                timeout=120, env={**self.env, **(env or {})},
                                cwd=self.workdir)
        if check:
            assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result

    def write(self, name: str, document: dict[str, Any]) -> Path:
        path = self.workdir / name
        path.write_text(yaml.safe_dump(document))
        return path


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    project = tmp_path_factory.mktemp("kubectl-project")
    for folder in ("knative", "eventing"):
        (project / folder).mkdir()
    (project / "functions").symlink_to(REPO / "functions")
    with Runtime(RuntimeOptions(project=project, data_plane=False, prometheus=False),
                 say=lambda line: None) as started:
        yield started


@pytest.fixture(scope="module")
def kubectl(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(runtime.kubeconfig, tmp_path_factory.mktemp("kubectl-files"))


@pytest.fixture(scope="module")
def first_apply(kubectl: Kubectl) -> subprocess.CompletedProcess[str]:
    """The project's manifests applied once, with validation on (kubectl's default)."""
    return kubectl("apply", "-f", str(REPO / "knative"), "-f", str(REPO / "eventing"),
                   check=False)


def test_apply_of_the_manifests_creates_everything_then_changes_nothing(
        kubectl: Kubectl, first_apply: subprocess.CompletedProcess[str]) -> None:
    again = kubectl("apply", "-f", str(REPO / "knative"), "-f", str(REPO / "eventing"))

    assert first_apply.returncode == 0, first_apply.stderr
    created = [line for line in first_apply.stdout.splitlines() if line.endswith(" created")]
    assert "service.serving.knative.dev/ingest created" in created
    assert "trigger.eventing.knative.dev/ingest-data-arrived created" in created
    assert "kafkasource.sources.knative.dev/data-arrivals created" in created
    assert len(created) >= 40
    lines = again.stdout.splitlines()
    assert lines and all(line.endswith(" unchanged") for line in lines), again.stdout


def test_the_manifests_namespace_is_there_and_a_new_one_can_be_made(
        kubectl: Kubectl, first_apply: subprocess.CompletedProcess[str]) -> None:
    manifest = kubectl.write("namespace.yaml", {"apiVersion": "v1", "kind": "Namespace",
                                                "metadata": {"name": "scratch"}})
    created = kubectl("apply", "-f", str(manifest))
    # `kubectl create namespace` sends protobuf, which is refused with what to do instead.
    refused = kubectl("create", "namespace", "other", check=False)

    names = kubectl("get", "namespaces", "-o", "name").stdout.split()

    assert created.stdout.strip() == "namespace/scratch created"
    assert {"namespace/troupe", "namespace/scratch"} <= set(names)
    assert refused.returncode == 1 and "kubectl apply -f" in refused.stderr


def test_a_new_trigger_can_be_applied_labelled_annotated_and_deleted(
        kubectl: Kubectl, first_apply: subprocess.CompletedProcess[str]) -> None:
    manifest = kubectl.write("audit.yaml", TRIGGER)

    applied = kubectl("apply", "-f", str(manifest))
    kubectl("label", "trigger", "audit-model-deployed", "team=ml")
    kubectl("annotate", "trigger", "audit-model-deployed", "troupe.dev/owner=ml")
    got = json.loads(kubectl("get", "trigger", "audit-model-deployed", "-o", "json").stdout)
    # kubectl delete sends DeleteOptions, then asks on the same connection whether the
    # object is gone: the old server broke the connection there.
    deleted = kubectl("delete", "trigger", "audit-model-deployed", "-v=6")
    after = kubectl("get", "trigger", "audit-model-deployed", check=False)

    assert applied.stdout.strip() == "trigger.eventing.knative.dev/audit-model-deployed created"
    assert got["metadata"]["labels"]["team"] == "ml"
    assert got["metadata"]["annotations"]["troupe.dev/owner"] == "ml"
    assert got["spec"]["subscriber"]["ref"]["namespace"] == "troupe"  # Knative's default
    assert 'trigger.eventing.knative.dev "audit-model-deployed" deleted' in deleted.stdout
    assert "404 Not Found" in deleted.stderr  # the wait's GET after the DELETE was answered
    assert after.returncode != 0 and "NotFound" in after.stderr


def test_diff_shows_a_local_edit_and_a_server_dry_run_changes_nothing(
        kubectl: Kubectl, first_apply: subprocess.CompletedProcess[str]) -> None:
    ingest = yaml.safe_load((REPO / "knative" / "500-ingest.yaml").read_text())
    ingest["spec"]["template"]["metadata"]["annotations"][
        "autoscaling.knative.dev/max-scale"] = "7"
    edited = kubectl.write("ingest.yaml", ingest)
    before = json.loads(kubectl("get", "ksvc", "ingest", "-o", "json").stdout)

    diff = kubectl("diff", "-f", str(edited), check=False)
    dry = kubectl("apply", "--dry-run=server", "-f", str(edited))
    after = json.loads(kubectl("get", "ksvc", "ingest", "-o", "json").stdout)

    assert diff.returncode == 1, diff.stderr  # 1: differences found
    assert '-        autoscaling.knative.dev/max-scale: "5"' in diff.stdout
    assert '+        autoscaling.knative.dev/max-scale: "7"' in diff.stdout
    assert "configured (server dry run)" in dry.stdout
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"] == before["spec"]


def test_get_watch_sees_the_change_a_patch_makes(
        kubectl: Kubectl, first_apply: subprocess.CompletedProcess[str]) -> None:
    watch = subprocess.Popen(["kubectl", "get", "ksvc", "policy", "-w", "--output-watch-events",
                              "--no-headers"], stdout=subprocess.PIPE, text=True,
                             env=kubectl.env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in watch.stdout or []],
                     daemon=True).start()
    try:
        assert lines.get(timeout=30).split()[:2] == ["ADDED", "policy"]
        kubectl("patch", "ksvc", "policy", "--type=merge", "-p", json.dumps({"spec": {
            "template": {"metadata": {"annotations": {"troupe.dev/watched": "yes"}}}}}))
        seen = []
        while not any(line.startswith("MODIFIED") and "policy-00002" in line
                      for line in seen):
            seen.append(lines.get(timeout=30))
    finally:
        watch.kill()
        watch.wait()


def test_wait_for_ready_returns_once_the_service_is_ready(
        kubectl: Kubectl, first_apply: subprocess.CompletedProcess[str]) -> None:
    waited = kubectl("wait", "--for=condition=Ready", "ksvc/ingest", "--timeout=120s")

    assert waited.stdout.strip() == "service.serving.knative.dev/ingest condition met"


def test_get_revisions_shows_traffic_and_readiness(
        kubectl: Kubectl, first_apply: subprocess.CompletedProcess[str]) -> None:
    kubectl("wait", "--for=condition=Ready", "ksvc/ingest", "--timeout=120s")

    table = kubectl("get", "revisions", "-l", "serving.knative.dev/service=ingest").stdout
    header, *rows = table.splitlines()

    assert header.split()[:6] == ["NAME", "CONFIG", "NAME", "GENERATION", "TRAFFIC", "READY"]
    assert rows and rows[0].split()[:5] == ["ingest-00001", "ingest", "1", "100%", "True"]


def test_explain_reads_the_crd_schema(
        kubectl: Kubectl, first_apply: subprocess.CompletedProcess[str]) -> None:
    explained = kubectl("explain", "ksvc.spec.template").stdout

    assert "KIND:       Service" in explained
    assert "Template holds the latest specification for the Revision" in explained
    assert "RevisionSpec holds the desired state of the Revision" in explained


def test_edit_through_an_editor_script(
        kubectl: Kubectl, first_apply: subprocess.CompletedProcess[str]) -> None:
    editor = kubectl.workdir / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/type: dev.troupe.data.arrived/"
                      "type: dev.troupe.data.arrived.v2/' \"$1\"\n")
    editor.chmod(0o755)

    edited = kubectl("edit", "trigger", "ingest-data-arrived",
                     env={"KUBE_EDITOR": str(editor)})
    trigger = json.loads(kubectl("get", "trigger", "ingest-data-arrived", "-o", "json").stdout)

    assert edited.stdout.strip() == "trigger.eventing.knative.dev/ingest-data-arrived edited"
    assert trigger["spec"]["filter"]["attributes"]["type"] == "dev.troupe.data.arrived.v2"


def test_api_resources_lists_every_kind_cleanly(
        kubectl: Kubectl, first_apply: subprocess.CompletedProcess[str]) -> None:
    listed = kubectl("api-resources")
    names = {line.split()[0] for line in listed.stdout.splitlines()[1:]}

    assert listed.stderr == ""
    assert {"namespaces", "configmaps", "services", "revisions", "routes", "configurations",
            "triggers", "brokers", "pingsources", "kafkasources", "eventtypes"} <= names


@pytest.mark.parametrize(("spec", "fields"), [
    ({"brokr": "default", "subscriber": {"ref": {"kind": "Service", "name": "ingest",
                                                  "colour": "red"}}},
     ["spec.brokr", "spec.subscriber.ref.colour"]),
    ({"broker": "default", "filters": [{"exact": {"type": ""}}],
      "subscriber": {"ref": {"kind": "Service", "name": "ingest"}}},
     ["spec.filters[0].exact.type"]),
    ({"broker": "default", "filters": [{"cesql": "type = = 'x'"}],
      "subscriber": {"ref": {"kind": "Service", "name": "ingest"}}},
     ["spec.filters[0].cesql"]),
])
def test_an_invalid_trigger_is_refused_naming_each_field(
        kubectl: Kubectl, first_apply: subprocess.CompletedProcess[str],
        spec: dict[str, Any], fields: list[str]) -> None:
    manifest = kubectl.write("invalid.yaml", {**TRIGGER, "metadata": {"name": "invalid"},
                                              "spec": spec})

    refused = kubectl("apply", "-f", str(manifest), "-v=6", check=False)

    assert refused.returncode == 1
    assert " 422 " in refused.stderr
    assert 'The Trigger "invalid" is invalid' in refused.stderr
    for field in fields:
        assert field in refused.stderr
    assert kubectl("get", "trigger", "invalid", check=False).returncode == 1


def test_kubectl_apply_after_troupe_up_finds_nothing_to_change(
        tmp_path: Path) -> None:
    """`troupe up` records each manifest as kubectl would, so applying the same files with
    kubectl afterwards changes nothing (no Service here: none of their functions start)."""
    files = [REPO / "knative" / "100-namespace.yaml", REPO / "knative" / "300-config.yaml",
             REPO / "eventing" / "110-broker.yaml", REPO / "eventing" / "200-eventtypes.yaml",
             REPO / "eventing" / "300-triggers.yaml"]
    for file in files:
        (tmp_path / file.parent.name).mkdir(exist_ok=True)
        shutil.copy(file, tmp_path / file.parent.name / file.name)
    with Runtime(RuntimeOptions(project=tmp_path, data_plane=False, prometheus=False),
                 say=lambda line: None) as runtime:
        applied = Kubectl(runtime.kubeconfig, tmp_path)(
            "apply", *(f"-f={tmp_path / f.parent.name / f.name}" for f in files))

    lines = applied.stdout.splitlines()
    assert len(lines) >= 25 and all(line.endswith(" unchanged") for line in lines), lines
