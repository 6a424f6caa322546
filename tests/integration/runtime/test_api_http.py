"""The control plane's HTTP: keep-alive for every verb, and every failure a Status object.

One connection is used for a whole sequence of requests, as kubectl and client-go use
one: a DELETE with a DeleteOptions body must leave it usable for the next request.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from troupe.local.runtime import Runtime, RuntimeOptions

from .conftest import service, write_project

TRIGGERS = "/apis/eventing.knative.dev/v1/namespaces/troupe/triggers"


def trigger(name: str) -> dict[str, Any]:
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": name},
            "spec": {"broker": "default", "subscriber": {"ref": {
                "apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "echo"}}}}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    project = write_project(tmp_path_factory.mktemp("api-http"), [service("echo")])
    with Runtime(RuntimeOptions(project=project, data_plane=False, prometheus=False),
                 say=lambda line: None) as started:
        yield started


@pytest.fixture
def connection(runtime: Runtime) -> Iterator[http.client.HTTPConnection]:
    address = urlsplit(runtime.api_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    yield connection
    connection.close()


def call(connection: http.client.HTTPConnection, method: str, path: str, body: Any = None,
         content_type: str = "application/json") -> tuple[int, dict[str, Any], str]:
    payload = None if body is None else (body if isinstance(body, bytes)
                                         else json.dumps(body).encode())
    headers = {"Content-Type": content_type} if payload is not None else {}
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    return response.status, json.loads(response.read()), response.getheader("Content-Type", "")


def test_every_verb_keeps_the_connection_open(
        connection: http.client.HTTPConnection) -> None:
    call(connection, "GET", "/api")
    socket = connection.sock

    created, _, _ = call(connection, "POST", TRIGGERS, trigger("keepalive"))
    got, current, _ = call(connection, "GET", f"{TRIGGERS}/keepalive")
    replaced, _, _ = call(connection, "PUT", f"{TRIGGERS}/keepalive", current)
    patched, _, _ = call(connection, "PATCH", f"{TRIGGERS}/keepalive",
                         {"metadata": {"labels": {"team": "ml"}}},
                         "application/merge-patch+json")
    deleted, status, _ = call(connection, "DELETE", f"{TRIGGERS}/keepalive",
                              {"kind": "DeleteOptions", "apiVersion": "v1",
                               "propagationPolicy": "Background"})
    after, gone, _ = call(connection, "GET", f"{TRIGGERS}/keepalive")

    assert (created, got, replaced, patched, deleted) == (201, 200, 200, 200, 200)
    assert status["status"] == "Success"
    assert (after, gone["reason"]) == (404, "NotFound")
    assert connection.sock is socket  # one connection from the first request to the last


def test_a_delete_whose_precondition_fails_changes_nothing(
        connection: http.client.HTTPConnection) -> None:
    call(connection, "POST", TRIGGERS, trigger("guarded"))

    code, status, _ = call(connection, "DELETE", f"{TRIGGERS}/guarded",
                           {"preconditions": {"uid": "not-its-uid"}})
    still, _, _ = call(connection, "GET", f"{TRIGGERS}/guarded")

    assert (code, status["reason"]) == (409, "Conflict")
    assert "Precondition failed" in status["message"]
    assert still == 200


@pytest.mark.parametrize(("method", "path", "body", "content_type", "code", "reason"), [
    ("GET", "/no/such/path", None, "", 404, "NotFound"),
    ("GET", "/apis/serving.knative.dev/v9/services", None, "", 404, "NotFound"),
    ("POST", TRIGGERS, b"{not json", "application/json", 400, "BadRequest"),
    ("POST", TRIGGERS, [1, 2], "application/json", 400, "BadRequest"),
    ("PATCH", f"{TRIGGERS}/missing", {}, "application/merge-patch+json", 404, "NotFound"),
    ("PATCH", "/apis/serving.knative.dev/v1/namespaces/troupe/services/echo", {},
     "text/plain", 415, "UnsupportedMediaType"),
    ("PUT", TRIGGERS, {}, "application/json", 405, "MethodNotAllowed"),
    ("POST", "/apis/serving.knative.dev/v1/namespaces/troupe/revisions",
     {"metadata": {"name": "echo-made-by-hand"}}, "application/json", 405,
     "MethodNotAllowed"),
    ("POST", "/apis/eventing.knative.dev/v1/namespaces/nowhere/triggers", trigger("t"),
     "application/json", 404, "NotFound"),
])
def test_every_failure_is_a_status_object(
        connection: http.client.HTTPConnection, method: str, path: str, body: Any,
        content_type: str, code: int, reason: str) -> None:
    status, answer, answered_as = call(connection, method, path, body, content_type)

    assert (status, answer["kind"], answer["reason"], answer["code"]) == (
        code, "Status", reason, code)
    assert answered_as == "application/json"
    assert call(connection, "GET", "/version")[0] == 200  # and the connection still works
