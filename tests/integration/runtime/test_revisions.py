"""Revisions as Knative runs them: started at their initial scale, Ready only once an
instance passed its readiness probe, Ready=False with the reason and the log when they
cannot start, and traffic kept on the last Ready one. Configurations and Routes are there
too, owned by their Service and read-only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from support.polling import wait_until
from troupe.local.controlplane.kinds import CONFIGURATION, REVISION, ROUTE, SERVICE
from troupe.local.runtime import Runtime, RuntimeOptions

from .conftest import ECHO, ready_service, service, write_project

GROUP, VERSION, NS = "serving.knative.dev", "v1", "troupe"
# A function whose code cannot even import: its process exits before it listens.
BROKEN = "import no_such_module_anywhere\n"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    project = write_project(tmp_path_factory.mktemp("revisions"), [
        service("probed", revision="probed-v1", initial_scale=None),
        service("unprobed", initial_scale=0)],
        functions={"echo": ECHO, "broken": BROKEN})
    with Runtime(RuntimeOptions(project=project, data_plane=False, prometheus=False),
                 say=lambda line: None) as started:
        yield started


@pytest.fixture(scope="module")
def api(runtime: Runtime) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(config.new_client_from_config(str(runtime.kubeconfig)))


def condition(obj: dict[str, Any], kind: str = "Ready") -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions", [])
                 if c["type"] == kind), {})


def test_a_new_revision_is_ready_once_an_instance_passed_its_probe(runtime: Runtime) -> None:
    obj = ready_service(runtime, "probed")
    revision = runtime.objects.get(REVISION, NS, "probed-v1")

    assert condition(revision)["status"] == "True"
    assert revision["status"]["actualReplicas"] >= 1  # it started at its initial scale
    assert obj["status"]["latestReadyRevisionName"] == "probed-v1"


def test_an_initial_scale_of_zero_is_ready_without_an_instance(runtime: Runtime) -> None:
    revision = runtime.objects.get(REVISION, NS, "unprobed-00001")

    assert condition(revision)["status"] == "True"
    assert revision["status"]["actualReplicas"] == 0


def test_a_revision_that_cannot_start_is_not_ready_and_traffic_stays(
        runtime: Runtime, api: client.CustomObjectsApi) -> None:
    url = ready_service(runtime, "probed")["status"]["url"]
    api.patch_namespaced_custom_object(GROUP, VERSION, NS, "services", "probed", {"spec": {
        "template": {"metadata": {"name": "probed-v2"},
                     "spec": {"containers": [{"image": "broken"}]}}}})

    def failed_start() -> dict[str, Any] | None:
        revision = runtime.objects.get(REVISION, NS, "probed-v2")
        return revision if condition(revision).get("status") == "False" else None
    failed = wait_until(failed_start, 60, "probed-v2 to fail its start")
    service_obj = runtime.objects.get(SERVICE, NS, "probed")
    described = next(s for s in runtime.status()["services"] if s["name"] == "probed")

    assert condition(failed)["reason"] == "ExitCode1"
    assert "no_such_module_anywhere" in condition(failed)["message"]  # the log's last lines
    assert condition(service_obj, "ConfigurationsReady")["status"] == "False"
    assert "probed-v2" in condition(service_obj, "ConfigurationsReady")["message"]
    assert service_obj["status"]["latestReadyRevisionName"] == "probed-v1"
    assert [t["revisionName"] for t in service_obj["status"]["traffic"]] == ["probed-v1"]
    assert requests.get(url, timeout=30).json()["revision"] == "probed-v1"
    broken = next(r for r in described["revisions"] if r["name"] == "probed-v2")
    assert (broken["ready"], broken["reason"]) == (False, "ExitCode1")


def test_configurations_and_routes_are_kept_and_read_only(
        runtime: Runtime, api: client.CustomObjectsApi) -> None:
    ready_service(runtime, "unprobed")
    owner = runtime.objects.get(SERVICE, NS, "unprobed")["metadata"]["uid"]
    configuration = runtime.objects.get(CONFIGURATION, NS, "unprobed")
    route = runtime.objects.get(ROUTE, NS, "unprobed")
    revision = runtime.objects.get(REVISION, NS, "unprobed-00001")

    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_custom_object(GROUP, VERSION, NS, "routes", "unprobed",
                                           {"metadata": {"labels": {"x": "y"}}})

    assert [o["uid"] for o in configuration["metadata"]["ownerReferences"]] == [owner]
    assert [o["uid"] for o in route["metadata"]["ownerReferences"]] == [owner]
    assert revision["metadata"]["ownerReferences"][0]["uid"] == \
        configuration["metadata"]["uid"]
    assert configuration["status"]["latestReadyRevisionName"] == "unprobed-00001"
    assert route["status"]["traffic"][0]["revisionName"] == "unprobed-00001"
    assert condition(route)["status"] == "True"
    assert revision["metadata"]["labels"]["serving.knative.dev/routingState"] == "active"
    assert refused.value.status == 405
