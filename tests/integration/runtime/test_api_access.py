"""Only the user who ran `troupe up` drives the local API: the run's token, loopback Hosts,
JSON writes, no CORS, and a kubeconfig nobody else can read.

Requests are written by hand over TLS, as another local user's script or a browser would
send them, so that each header is the test's own. Each test was a hole of the old API:
any local process or web page could create a Trigger or a Service.
"""

from __future__ import annotations

import json
import socket
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from troupe.local.controlplane.kinds import TRIGGER
from troupe.local.runtime import Runtime, RuntimeOptions

from .conftest import service, write_project

TRIGGERS = "/apis/eventing.knative.dev/v1/namespaces/troupe/triggers"
ATTACKER_TRIGGER = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                    "metadata": {"name": "copy-everything"},
                    "spec": {"broker": "default",
                             "subscriber": {"uri": "http://127.0.0.1:9/"}}}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    project = write_project(tmp_path_factory.mktemp("api-access"), [service("echo")])
    with Runtime(RuntimeOptions(project=project, data_plane=False, prometheus=False),
                 say=lambda line: None) as started:
        yield started


def send(runtime: Runtime, method: str, path: str, headers: dict[str, str],
         body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One request over TLS with exactly these headers (and Content-Length, Connection)."""
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()),
             f"Content-Length: {len(body)}", "Connection: close", "", ""]
    context = ssl.create_default_context(cafile=runtime.api_ca_file)
    assert runtime.api is not None
    with socket.create_connection(("127.0.0.1", runtime.api.port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall("\r\n".join(lines).encode() + body)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    found = {name.lower(): value.strip() for name, _, value in
             (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), found, payload


def owner(runtime: Runtime, **extra: str) -> dict[str, str]:
    """What the runtime's own user sends: a loopback Host and the token."""
    assert runtime.api is not None
    return {"Host": f"127.0.0.1:{runtime.api.port}", **runtime.api_headers, **extra}


def status_of(payload: bytes) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(payload)
    assert answer["kind"] == "Status"
    return answer


def trigger_exists(runtime: Runtime, name: str) -> bool:
    return any(t["metadata"]["name"] == name for t in runtime.objects.list(TRIGGER))


def test_the_kubeconfig_holds_a_token_of_its_own_and_only_its_owner_may_read_it(
        runtime: Runtime) -> None:
    config = yaml.safe_load(runtime.kubeconfig.read_text())

    assert stat.S_IMODE(runtime.kubeconfig.stat().st_mode) == 0o600
    assert config["users"][0]["user"]["token"] == runtime.api_token
    assert len(runtime.api_token) >= 40  # 32 random bytes
    assert config["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
    assert config["clusters"][0]["cluster"]["certificate-authority-data"]


@pytest.mark.parametrize("authorization", [None, "Bearer troupe-local", "Bearer ",
                                           "Basic dXNlcjpwYXNz"])
def test_a_request_without_the_runs_token_is_401(runtime: Runtime,
                                                 authorization: str | None) -> None:
    headers = {k: v for k, v in owner(runtime).items() if k != "Authorization"}
    if authorization is not None:
        headers["Authorization"] = authorization

    code, _, payload = send(runtime, "GET", TRIGGERS, headers)
    created, _, _ = send(runtime, "POST", TRIGGERS, {**headers,
                         "Content-Type": "application/json"},
                         json.dumps(ATTACKER_TRIGGER).encode())

    answer = status_of(payload)
    assert (code, answer["reason"], answer["code"]) == (401, "Unauthorized", 401)
    assert created == 401 and not trigger_exists(runtime, "copy-everything")


def test_the_token_of_another_run_is_401(runtime: Runtime, tmp_path: Path) -> None:
    other = Runtime(RuntimeOptions(project=write_project(tmp_path, []), data_plane=False,
                                   prometheus=False), say=lambda line: None)

    code, _, _ = send(runtime, "GET", "/api", owner(runtime, Authorization=(
        f"Bearer {other.api_token}")))

    assert other.api_token != runtime.api_token
    assert code == 401


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:{port}",
                                  "127.0.0.1.nip.io:{port}", "localhost.attacker.example",
                                  "[::2]:{port}", ""])
def test_a_host_that_is_not_loopback_is_403_even_with_the_token(
        runtime: Runtime, host: str) -> None:
    """DNS rebinding: the page's own name, resolved to 127.0.0.1, arrives as the Host."""
    assert runtime.api is not None
    headers = owner(runtime, Host=host.format(port=runtime.api.port))

    code, _, payload = send(runtime, "POST", TRIGGERS, {**headers,
                            "Content-Type": "application/json"},
                            json.dumps(ATTACKER_TRIGGER).encode())

    answer = status_of(payload)
    assert (code, answer["reason"], answer["code"]) == (403, "Forbidden", 403)
    assert not trigger_exists(runtime, "copy-everything")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost:{port}", "[::1]:{port}",
                                  "LOCALHOST:{port}", "localhost:8443"])
def test_loopback_hosts_are_served_with_or_without_a_port(runtime: Runtime,
                                                          host: str) -> None:
    assert runtime.api is not None
    code, _, _ = send(runtime, "GET", "/api",
                      owner(runtime, Host=host.format(port=runtime.api.port)))

    assert code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8",
                                          "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x",
                                          "application/yaml"])
def test_a_cross_site_style_write_is_415_and_creates_nothing(
        runtime: Runtime, content_type: str) -> None:
    """A page may POST these types anywhere without a preflight; the API parses none."""
    code, _, payload = send(runtime, "POST", TRIGGERS,
                            owner(runtime, **{"Content-Type": content_type}),
                            json.dumps(ATTACKER_TRIGGER).encode())

    answer = status_of(payload)
    assert (code, answer["reason"]) == (415, "UnsupportedMediaType")
    assert not trigger_exists(runtime, "copy-everything")


def test_json_and_patch_types_are_taken(runtime: Runtime) -> None:
    made, _, _ = send(runtime, "POST", TRIGGERS,
                      owner(runtime, **{"Content-Type": "application/json"}),
                      json.dumps({**ATTACKER_TRIGGER, "metadata": {"name": "mine"}}).encode())
    patched, _, _ = send(runtime, "PATCH", f"{TRIGGERS}/mine",
                         owner(runtime, **{"Content-Type": "application/merge-patch+json"}),
                         b'{"metadata": {"labels": {"team": "ml"}}}')
    put_as_text, _, _ = send(runtime, "PUT", f"{TRIGGERS}/mine",
                             owner(runtime, **{"Content-Type": "text/plain"}), b"{}")

    assert (made, patched, put_as_text) == (201, 200, 415)


def test_cors_is_never_granted(runtime: Runtime) -> None:
    preflight = {**owner(runtime), "Origin": "https://attacker.example",
                 "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}

    code, headers, _ = send(runtime, "OPTIONS", TRIGGERS, preflight)
    _, listed_headers, _ = send(runtime, "GET", TRIGGERS,
                                owner(runtime, Origin="https://attacker.example"))

    assert code == 405
    for answer in (headers, listed_headers):
        assert not [name for name in answer if name.startswith("access-control-")]


def test_plain_http_reaches_nothing(runtime: Runtime) -> None:
    assert runtime.api is not None
    with socket.create_connection(("127.0.0.1", runtime.api.port), timeout=10) as raw:
        raw.sendall(f"GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                    f"{runtime.api_token}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        try:
            while chunk := raw.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass

    assert b'"versions"' not in answer and not answer.startswith(b"HTTP/1.1 200")
