"""DELETE as the API server does it: propagationPolicy (Background, Foreground, Orphan)
through owner references, preconditions, and finalizers that keep an object, marked with
a deletionTimestamp, until they are removed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from support.polling import wait_until
from troupe.local.controlplane.kinds import CONFIGURATION, REVISION, ROUTE
from troupe.local.controlplane.objects import NotFound
from troupe.local.runtime import Runtime, RuntimeOptions

from .conftest import ready_service, service, write_project

GROUP, VERSION, NS = "serving.knative.dev", "v1", "troupe"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    project = write_project(tmp_path_factory.mktemp("deletion"), [])
    with Runtime(RuntimeOptions(project=project, data_plane=False, prometheus=False),
                 say=lambda line: None) as started:
        yield started


@pytest.fixture(scope="module")
def api(runtime: Runtime) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(config.new_client_from_config(str(runtime.kubeconfig)))


def owned(runtime: Runtime, name: str) -> dict[str, Any]:
    """What of the Service's own objects is still there."""
    found: dict[str, Any] = {}
    for kind, object_name in ((CONFIGURATION, name), (ROUTE, name),
                              (REVISION, f"{name}-00001")):
        try:
            found[kind.kind] = runtime.objects.get(kind, NS, object_name)
        except NotFound:
            continue
    return found


def make(runtime: Runtime, api: client.CustomObjectsApi, name: str) -> None:
    api.create_namespaced_custom_object(GROUP, VERSION, NS, "services", service(name))
    ready_service(runtime, name)
    assert set(owned(runtime, name)) == {"Configuration", "Route", "Revision"}


def test_a_background_delete_takes_what_the_service_owns(
        runtime: Runtime, api: client.CustomObjectsApi) -> None:
    make(runtime, api, "background")

    api.delete_namespaced_custom_object(GROUP, VERSION, NS, "services", "background")

    wait_until(lambda: not owned(runtime, "background"), 10, "the owned objects to go")


def test_a_foreground_delete_goes_once_its_dependents_are_gone(
        runtime: Runtime, api: client.CustomObjectsApi) -> None:
    make(runtime, api, "foreground")

    api.delete_namespaced_custom_object(GROUP, VERSION, NS, "services", "foreground",
                                        propagation_policy="Foreground")

    wait_until(lambda: not owned(runtime, "foreground"), 10, "the owned objects to go")
    with pytest.raises(ApiException) as gone:
        api.get_namespaced_custom_object(GROUP, VERSION, NS, "services", "foreground")
    assert gone.value.status == 404


def test_an_orphaning_delete_leaves_what_the_service_owned(
        runtime: Runtime, api: client.CustomObjectsApi) -> None:
    make(runtime, api, "orphaning")

    api.delete_namespaced_custom_object(GROUP, VERSION, NS, "services", "orphaning",
                                        body=client.V1DeleteOptions(propagation_policy="Orphan"))

    left = owned(runtime, "orphaning")
    assert set(left) == {"Configuration", "Route", "Revision"}
    assert "ownerReferences" not in left["Configuration"]["metadata"]
    # The Revision stays owned by its Configuration, which stayed.
    assert left["Revision"]["metadata"]["ownerReferences"][0]["uid"] == \
        left["Configuration"]["metadata"]["uid"]


def test_a_finalizer_keeps_an_object_marked_until_it_is_removed(
        api: client.CustomObjectsApi) -> None:
    trigger = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
               "metadata": {"name": "kept", "finalizers": ["example.dev/cleanup"]},
               "spec": {"broker": "default", "subscriber": {"uri": "http://127.0.0.1:9/"}}}
    api.create_namespaced_custom_object("eventing.knative.dev", "v1", NS, "triggers", trigger)

    with pytest.raises(ApiException) as stale:
        api.delete_namespaced_custom_object("eventing.knative.dev", "v1", NS, "triggers",
                                            "kept", body=client.V1DeleteOptions(
                                                preconditions={"resourceVersion": "1"}))
    api.delete_namespaced_custom_object("eventing.knative.dev", "v1", NS, "triggers", "kept")
    marked = api.get_namespaced_custom_object("eventing.knative.dev", "v1", NS, "triggers",
                                              "kept")
    api.patch_namespaced_custom_object("eventing.knative.dev", "v1", NS, "triggers", "kept",
                                       {"metadata": {"finalizers": None}})

    assert stale.value.status == 409
    assert marked["metadata"]["deletionTimestamp"]
    with pytest.raises(ApiException) as gone:
        api.get_namespaced_custom_object("eventing.knative.dev", "v1", NS, "triggers", "kept")
    assert gone.value.status == 404
