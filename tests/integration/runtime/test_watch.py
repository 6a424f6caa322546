"""Watches through the `kubernetes` Python client: `watch.Watch()` against the API server
alone (an object store behind it, no controllers), so each change is the test's own."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from support.polling import wait_until
from troupe.local.controlplane.admission import admit
from troupe.local.controlplane.apiserver import ApiServer
from troupe.local.controlplane.kinds import NAMESPACE, TRIGGER
from troupe.local.controlplane.objects import ObjectStore

GROUP, VERSION, NS, PLURAL = "eventing.knative.dev", "v1", "troupe", "triggers"


def trigger(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"broker": "default", "subscriber": {"uri": "http://127.0.0.1:9/"}}}


def serve(history: int = 4096) -> tuple[ObjectStore, ApiServer, client.CustomObjectsApi]:
    objects = ObjectStore(history=history)
    objects.create(NAMESPACE, {"metadata": {"name": NS}})
    server = ApiServer(objects, lambda: b"", admit=admit, bookmark_interval=0.2)
    api = client.CustomObjectsApi(client.ApiClient(client.Configuration(host=server.url)))
    return objects, server, api


@pytest.fixture
def api() -> Iterator[tuple[ObjectStore, client.CustomObjectsApi]]:
    objects, server, custom = serve()
    yield objects, custom
    server.close()


def events(custom: client.CustomObjectsApi, **kwargs: Any) -> list[tuple[str, Any]]:
    return [(e["type"], e["raw_object"]) for e in watch.Watch().stream(
        custom.list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL, **kwargs)]


def test_a_watch_streams_a_change_as_it_happens(
        api: tuple[ObjectStore, client.CustomObjectsApi]) -> None:
    objects, custom = api
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, trigger("first"))
    stream = watch.Watch()
    seen: list[tuple[str, str, Any]] = []

    def follow() -> None:
        for event in stream.stream(custom.list_namespaced_custom_object, GROUP, VERSION, NS,
                                   PLURAL, timeout_seconds=20):
            obj = event["raw_object"]
            seen.append((event["type"], obj["metadata"]["name"], obj.get("status")))
            if len(seen) == 3:
                stream.stop()
    follower = threading.Thread(target=follow)
    follower.start()
    custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "first",
                                          {"metadata": {"labels": {"team": "ml"}}})
    # Controllers report status through the store, not the API: a watch sees it too.
    objects.update_status(TRIGGER, NS, "first", {"conditions": [
        {"type": "Ready", "status": "True"}]})
    follower.join(timeout=20)

    assert [(change, name) for change, name, _ in seen] == [
        ("ADDED", "first"), ("MODIFIED", "first"), ("MODIFIED", "first")]
    assert seen[2][2] == {"conditions": [{"type": "Ready", "status": "True"}]}


def test_a_watch_resumes_from_a_resource_version(
        api: tuple[ObjectStore, client.CustomObjectsApi]) -> None:
    _, custom = api
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, trigger("kept"))
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    version = listed["metadata"]["resourceVersion"]
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, trigger("later"))
    custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "kept")

    resumed = events(custom, resource_version=version, timeout_seconds=1)

    assert [(change, obj["metadata"]["name"]) for change, obj in resumed] == [
        ("ADDED", "later"), ("DELETED", "kept")]
    assert all(int(obj["metadata"]["resourceVersion"]) > int(version) for _, obj in resumed)


def test_a_version_older_than_the_kept_events_is_gone() -> None:
    _, server, custom = serve(history=3)
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, trigger("churn"))
        first = custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "churn")
        for value in range(5):
            custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "churn", {
                "metadata": {"labels": {"n": str(value)}}})

        with pytest.raises(ApiException) as gone:
            events(custom, resource_version=first["metadata"]["resourceVersion"],
                   timeout_seconds=1)
    finally:
        server.close()

    assert gone.value.status == 410
    assert "Expired" in str(gone.value.reason)


def test_bookmarks_carry_the_latest_version_and_a_timeout_ends_the_watch(
        api: tuple[ObjectStore, client.CustomObjectsApi]) -> None:
    _, custom = api
    created = custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL,
                                                     trigger("quiet"))

    seen = events(custom, resource_version=created["metadata"]["resourceVersion"],
                  timeout_seconds=1, allow_watch_bookmarks=True)

    assert seen and {change for change, _ in seen} == {"BOOKMARK"}
    assert seen[-1][1]["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_a_label_selector_sees_an_object_leave_it(
        api: tuple[ObjectStore, client.CustomObjectsApi]) -> None:
    _, custom = api
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL,
                                           trigger("selected", {"team": "ml"}))
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL,
                                                  label_selector="team in (ml,data)")
    custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "selected",
                                          {"metadata": {"labels": {"team": "ops"}}})

    seen = events(custom, label_selector="team in (ml,data)", timeout_seconds=1,
                  resource_version=listed["metadata"]["resourceVersion"])

    assert [item["metadata"]["name"] for item in listed["items"]] == ["selected"]
    assert [(change, obj["metadata"]["labels"]["team"]) for change, obj in seen] == [
        ("DELETED", "ml")]


def test_a_watch_its_client_left_frees_its_worker() -> None:
    _, server, _ = serve()
    try:
        port = int(server.url.rsplit(":", 1)[1])
        for _ in range(3):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}"
                               "?watch=true")
            assert connection.getresponse().status == 200  # the stream is open
            connection.close()  # and abandoned, as a killed `kubectl get -w` leaves it

        wait_until(lambda: server.busy_workers == 0, 10, "the abandoned watches to end")
    finally:
        server.close()
