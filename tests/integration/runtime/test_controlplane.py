"""The control plane through the official kubernetes client, and kubectl when installed."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
import requests
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from .conftest import StartRuntime, ready_service, service, service_status

GROUP, VERSION, NS = "serving.knative.dev", "v1", "troupe"


def _api(kubeconfig: str) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(config.new_client_from_config(config_file=kubeconfig))


def _ready(obj: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in obj.get("status", {}).get("conditions", []))


def test_a_patch_through_the_kubernetes_client_makes_a_revision_and_routes_traffic(
        start_runtime: StartRuntime) -> None:
    runtime = start_runtime([service("echo", revision="echo-v1")])
    api = _api(str(runtime.kubeconfig))
    listed = api.list_namespaced_custom_object(GROUP, VERSION, NS, "services")
    assert [s["metadata"]["name"] for s in listed["items"]] == ["echo"]
    before = api.get_namespaced_custom_object(GROUP, VERSION, NS, "services", "echo")

    patch = {"spec": {"template": {
        "metadata": {"name": "echo-v2"},
        "spec": {"containers": [{"image": "echo", "env": [{"name": "GREETING", "value": "v2"}]}]}},
        "traffic": [{"revisionName": "echo-v1", "percent": 50},
                    {"revisionName": "echo-v2", "percent": 50, "tag": "next"}]}}
    after = api.patch_namespaced_custom_object(GROUP, VERSION, NS, "services", "echo", patch)

    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    ready_service(runtime, "echo", after["metadata"]["generation"])
    read = api.get_namespaced_custom_object(GROUP, VERSION, NS, "services", "echo")
    assert _ready(read)
    assert read["status"]["latestReadyRevisionName"] == "echo-v2"
    assert read["status"]["observedGeneration"] == after["metadata"]["generation"]
    traffic = {t["revisionName"]: t for t in read["status"]["traffic"]}
    assert (traffic["echo-v1"]["percent"], traffic["echo-v2"]["percent"]) == (50, 50)
    tagged = requests.get(traffic["echo-v2"]["url"], timeout=30).json()
    assert (tagged["revision"], tagged["greeting"]) == ("echo-v2", "v2")
    revisions = [r["name"] for r in service_status(runtime, "echo")["revisions"]]
    assert revisions == ["echo-v1", "echo-v2"]


def test_a_json_patch_moves_all_traffic_to_the_latest_revision(
        start_runtime: StartRuntime) -> None:
    runtime = start_runtime([service("echo", revision="echo-v1", traffic=[
        {"revisionName": "echo-v1", "percent": 100}])])
    api = _api(str(runtime.kubeconfig))
    api.api_client.set_default_header("Content-Type", "application/json-patch+json")

    api.patch_namespaced_custom_object(GROUP, VERSION, NS, "services", "echo", [
        {"op": "replace", "path": "/spec/template/metadata/name", "value": "echo-v2"},
        {"op": "replace", "path": "/spec/traffic",
         "value": [{"latestRevision": True, "percent": 100}]}])

    ready_service(runtime, "echo", 2)
    status = api.get_namespaced_custom_object(GROUP, VERSION, NS, "services", "echo")["status"]
    assert status["traffic"] == [
        {"revisionName": "echo-v2", "percent": 100, "latestRevision": True}]
    assert requests.get(status["url"], timeout=30).json()["revision"] == "echo-v2"


def test_errors_come_back_as_status_objects_like_the_api_server(
        start_runtime: StartRuntime) -> None:
    runtime = start_runtime([service("echo")])
    api = _api(str(runtime.kubeconfig))

    with pytest.raises(ApiException) as missing:
        api.get_namespaced_custom_object(GROUP, VERSION, NS, "services", "nope")
    with pytest.raises(ApiException) as duplicate:
        api.create_namespaced_custom_object(GROUP, VERSION, NS, "services", service("echo"))
    with pytest.raises(ApiException) as invalid:
        api.patch_namespaced_custom_object(GROUP, VERSION, NS, "services", "echo",
                                           {"spec": {"traffic": [{"latestRevision": True,
                                                                  "percent": 70}]}})

    assert (missing.value.status, json.loads(missing.value.body)["reason"]) == (404, "NotFound")
    assert (duplicate.value.status, json.loads(duplicate.value.body)["reason"]) == (
        409, "AlreadyExists")
    body = json.loads(invalid.value.body)
    assert (invalid.value.status, body["kind"], body["reason"]) == (422, "Status", "Invalid")
    assert body["details"]["causes"][0]["field"] == "spec.traffic"
    # The rejected patch changed nothing.
    current = api.get_namespaced_custom_object(GROUP, VERSION, NS, "services", "echo")
    assert current["metadata"]["generation"] == 1


def test_a_service_created_through_the_api_serves_and_deleting_it_stops_it(
        start_runtime: StartRuntime) -> None:
    runtime = start_runtime([])
    api = _api(str(runtime.kubeconfig))

    created = api.create_namespaced_custom_object(GROUP, VERSION, NS, "services",
                                                  service("made-live"))
    url = api.get_namespaced_custom_object(GROUP, VERSION, NS, "services",
                                           "made-live")["status"]["url"]
    assert requests.get(url, timeout=30).json()["service"] == "made-live"
    api.delete_namespaced_custom_object(GROUP, VERSION, NS, "services", "made-live")

    assert created["metadata"]["resourceVersion"]
    assert runtime.status()["services"] == []
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)


def test_discovery_lists_the_knative_groups(start_runtime: StartRuntime) -> None:
    runtime = start_runtime([])
    groups = requests.get(f"{runtime.api_url}/apis", timeout=5).json()
    resources = requests.get(f"{runtime.api_url}/apis/serving.knative.dev/v1", timeout=5).json()

    assert {g["name"] for g in groups["groups"]} >= {
        "serving.knative.dev", "eventing.knative.dev", "sources.knative.dev"}
    ksvc = next(r for r in resources["resources"] if r["name"] == "services")
    assert "ksvc" in ksvc["shortNames"] and "patch" in ksvc["verbs"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_gets_ksvc(start_runtime: StartRuntime) -> None:
    runtime = start_runtime([service("echo")])
    result = subprocess.run(["kubectl", "--kubeconfig", str(runtime.kubeconfig), "get", "ksvc",
                             "-o", "json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [i["metadata"]["name"] for i in json.loads(result.stdout)["items"]] == ["echo"]
    table = subprocess.run(["kubectl", "--kubeconfig", str(runtime.kubeconfig), "get", "ksvc"],
                           capture_output=True, text=True, timeout=60)
    header, row = table.stdout.splitlines()
    assert header.split()[:5] == ["NAME", "URL", "LATESTCREATED", "LATESTREADY", "READY"]
    assert row.split()[:5] == ["echo", service_status(runtime, "echo")["url"], "echo-00001",
                               "echo-00001", "True"]

@pytest.mark.parametrize("path", ["/spec/traffic/¹/percent", "/spec/traffic/01/percent"])
def test_a_json_patch_with_a_bad_index_is_422_naming_its_path(
        start_runtime: StartRuntime, path: str) -> None:
    runtime = start_runtime([service("echo", traffic=[{"latestRevision": True, "percent": 100}])])
    api = _api(str(runtime.kubeconfig))
    api.api_client.set_default_header("Content-Type", "application/json-patch+json")

    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_custom_object(GROUP, VERSION, NS, "services", "echo", [
            {"op": "replace", "path": path, "value": 50}])

    body = json.loads(refused.value.body)
    assert (refused.value.status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"].startswith("spec.traffic.")
    assert path in body["message"]


def _pingsource(name: str, schedule: str, timezone: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"schedule": schedule, "sink": {"uri": "http://127.0.0.1:9/"}}
    if timezone is not None:
        spec["timezone"] = timezone
    return {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
            "metadata": {"name": name}, "spec": spec}


def test_pingsources_take_what_knative_takes_and_refuse_the_rest_with_422(
        start_runtime: StartRuntime) -> None:
    runtime = start_runtime([service("echo")])
    api = _api(str(runtime.kubeconfig))
    accepted = [_pingsource("every", "@every 90s"), _pingsource("hourly", "@hourly"),
                _pingsource("paris", "CRON_TZ=Europe/Paris 0 9 * * mon-fri"),
                _pingsource("tokyo", "0 9 * * *", timezone="Asia/Tokyo")]
    for ping in accepted:
        api.create_namespaced_custom_object("sources.knative.dev", "v1", NS, "pingsources",
                                            ping)

    refusals = {}
    for ping in (_pingsource("never", "0 0 30 2 *"), _pingsource("zone", "0 9 * * *", "Nowhere")):
        with pytest.raises(ApiException) as refused:
            api.create_namespaced_custom_object("sources.knative.dev", "v1", NS, "pingsources",
                                                ping)
        body = json.loads(refused.value.body)
        refusals[ping["metadata"]["name"]] = (refused.value.status,
                                              body["details"]["causes"][0]["field"])

    assert refusals == {"never": (422, "spec.schedule"), "zone": (422, "spec.timezone")}
    listed = api.list_namespaced_custom_object("sources.knative.dev", "v1", NS, "pingsources")
    assert sorted(p["metadata"]["name"] for p in listed["items"]) == [
        "every", "hourly", "paris", "tokyo"]
