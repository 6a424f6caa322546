"""Loading knative/ and eventing/: what runs, what is ignored, and errors naming
file, resource and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from troupe.local.controlplane.kinds import CONFIGMAP, ROLE, SERVICE
from troupe.local.controlplane.manifests import ManifestError, load_project
from troupe.local.runtime import Runtime, RuntimeOptions

from .conftest import ECHO, service, write_project


def _write(root: Path, folder: str, docs: list[dict[str, Any]]) -> Path:
    (root / folder).mkdir(parents=True, exist_ok=True)
    path = root / folder / "500-things.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_served_kinds_are_loaded_and_others_ignored(tmp_path: Path) -> None:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "deployer"}}
    # EventType is served at v1beta3 (the manifests' version) only; Deployments not at all.
    old_event_type = {"apiVersion": "eventing.knative.dev/v1beta2", "kind": "EventType",
                      "metadata": {"name": "x"}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}
    _write(tmp_path, "knative", [role, service("echo"), deployment,
                                 {"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "cfg"}, "data": {"A": "1"}}])
    _write(tmp_path, "eventing", [old_event_type])

    project = load_project(tmp_path)

    assert [(m.kind, m.obj["metadata"]["name"]) for m in project.resources] == [
        (ROLE, "deployer"), (SERVICE, "echo"), (CONFIGMAP, "cfg")]
    assert {m.obj["metadata"]["namespace"] for m in project.resources} == {"troupe"}
    assert project.config_maps == {("troupe", "cfg"): {"A": "1"}}


@pytest.mark.parametrize(("doc", "field"), [
    (service("echo", traffic=[{"latestRevision": True, "percent": 90}]), "spec.traffic"),
    ({**service("echo"), "spec": {"template": {"spec": {"containers": [{}]}}}},
     "spec.template.spec.containers[0].image"),
    (service("echo", concurrency=-1), "spec.template.spec.containerConcurrency"),
    ({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "t"},
      "spec": {"broker": "default"}}, "spec.subscriber"),
    ({"apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "metadata": {"name": "p"},
      "spec": {"schedule": "every minute", "sink": {"uri": "http://127.0.0.1:1"}}},
     "spec.schedule"),
])
def test_an_invalid_manifest_names_file_resource_and_field(tmp_path: Path, doc: dict[str, Any],
                                                           field: str) -> None:
    path = _write(tmp_path, "knative", [doc])

    with pytest.raises(ManifestError) as error:
        load_project(tmp_path)

    assert (error.value.file, error.value.field) == (path, field)
    assert f"{doc['kind']}/{doc['metadata']['name']}" in str(error.value)


def test_a_missing_configmap_reference_fails_troupe_up_naming_the_field(tmp_path: Path) -> None:
    echo = service("echo", env=[{"name": "X", "valueFrom": {
        "configMapKeyRef": {"name": "absent", "key": "x"}}}])
    write_project(tmp_path, [echo], functions={"echo": ECHO})

    with pytest.raises(ManifestError) as error:
        Runtime(RuntimeOptions(tmp_path, data_plane=False, prometheus=False),
                say=lambda _: None).start()

    assert error.value.field == "spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef"
    assert "absent" in str(error.value) and "Service/echo" in str(error.value)


def test_a_service_whose_function_folder_is_missing_is_refused(tmp_path: Path) -> None:
    write_project(tmp_path, [service("ghost", image="ghost")], functions={"echo": ECHO})

    with pytest.raises(ManifestError, match=r"no functions/ghost/main\.py"):
        Runtime(RuntimeOptions(tmp_path, data_plane=False, prometheus=False),
                say=lambda _: None).start()
