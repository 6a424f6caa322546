"""File-descriptor exhaustion: `troupe up` under a low RLIMIT_NOFILE, flooded with idle
connections on the ingress and on the API, more than it has files for.

The ingress and the API cap their connections from the files the process may still open,
so the flood meets the caps, never EMFILE: a client that was already connected is still
served, a new one at the ingress gets 503 with Retry-After (the API makes it wait), the
runtime neither crashes nor logs "Too many open files", and once the flood goes, new
clients are served and every acknowledged event is delivered, counted by (source, id).
Without the caps, accept() would fail with EMFILE: new clients would hang unanswered, and
Kafka, deliveries and function starts would fail beside them.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from support.polling import wait_until
from troupe.local.host.processes import process_alive

from .conftest import BROKER_DOC, service, write_project

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
FILE_LIMIT = 256
FLOOD = FILE_LIMIT  # connections to each of the ingress and the API
SOURCE = "/tests/file-limit"


def _troupe(*args: str, limit: bool = False) -> subprocess.CompletedProcess[str]:
    def lower_the_file_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))
    return subprocess.run([sys.executable, "-c", "from troupe.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=180,
                          preexec_fn=lower_the_file_limit if limit else None)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`troupe up --detach` under the low limit (Tansu, Prometheus and functions inherit it),
    with one Trigger to a recorder; its runtime.json, plus where the recorder writes."""
    record_file = tmp_path / "received.jsonl"
    trigger = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
               "metadata": {"name": "to-recorder"},
               "spec": {"broker": "default", "subscriber": {"ref": {
                   "apiVersion": "serving.knative.dev/v1", "kind": "Service",
                   "name": "recorder"}}}}
    project = write_project(tmp_path / "project", [service(
        "recorder", image="recorder", env=[{"name": "RECORD_FILE", "value": str(record_file)}])],
        [BROKER_DOC, trigger])
    up = _troupe("up", "--project", str(project), "--detach", limit=True)
    assert up.returncode == 0, up.stdout + up.stderr
    info = json.loads((project / ".troupe" / "runtime.json").read_text())
    info["record_file"] = record_file
    info["log"] = project / ".troupe" / "runtime.log"
    try:
        yield info
    finally:
        down = _troupe("down", "--project", str(project))
        for pid in (info["pid"], info.get("kafka_pid")):
            if pid and process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        assert down.returncode == 0, down.stdout + down.stderr


def _connection(url: str, ca_file: str | None = None) -> http.client.HTTPConnection:
    address = urlsplit(url)
    if address.scheme == "https":  # the API, where it speaks TLS
        return http.client.HTTPSConnection(
            address.hostname or "", address.port, timeout=10,
            context=ssl.create_default_context(cafile=ca_file))
    return http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)


def _post(connection: http.client.HTTPConnection, path: str, event_id: str) -> int:
    connection.request("POST", path, body=b"{}", headers={
        "ce-specversion": "1.0", "ce-id": event_id, "ce-source": SOURCE,
        "ce-type": "dev.example.test", "content-type": "application/json"})
    answer = connection.getresponse()
    answer.read()
    return answer.status


def _get_api(connection: http.client.HTTPConnection, token: str) -> int:
    connection.request("GET", "/api", headers={"Authorization": f"Bearer {token}"})
    answer = connection.getresponse()
    answer.read()
    return answer.status


def _delivered(record_file: Path) -> set[tuple[str, str]]:
    if not record_file.exists():
        return set()
    return {(line["source"], line["id"])
            for line in map(json.loads, record_file.read_text().splitlines())}


def _flood(url: str, count: int = FLOOD) -> list[socket.socket]:
    address = urlsplit(url)
    return [socket.create_connection((address.hostname, address.port), timeout=10)
            for _ in range(count)]


def test_a_flood_past_the_file_limit_meets_the_caps_and_the_runtime_recovers(
        runtime: dict[str, Any]) -> None:
    broker_url, api_url = runtime["broker_url"], runtime["api_url"]
    broker_path = urlsplit(broker_url).path
    token = yaml.safe_load(Path(runtime["kubeconfig"]).read_text())["users"][0]["user"]["token"]
    acknowledged: set[tuple[str, str]] = set()
    ca_file = runtime.get("api_ca_file")
    ingress_before, api_before = _connection(broker_url), _connection(api_url, ca_file)
    assert _post(ingress_before, broker_path, "before") == 202
    acknowledged.add((SOURCE, "before"))
    assert _get_api(api_before, token) == 200

    flood: list[socket.socket] = []
    try:
        flood = _flood(broker_url) + _flood(api_url)
        # Clients already connected are served.
        for number in range(5):
            assert _post(ingress_before, broker_path, f"during-{number}") == 202
            acknowledged.add((SOURCE, f"during-{number}"))
        assert _get_api(api_before, token) == 200
        # A new client at the ingress is told to come back: 503 with Retry-After, then EOF.
        with _flood(broker_url, 1)[0] as refused:
            answer = b""
            while chunk := refused.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1\r\n" in answer
        assert process_alive(runtime["pid"])
    finally:
        for connection in flood:
            connection.close()

    # The flood gone, new clients are served, and every acknowledged event arrives.
    def served_anew(number: int) -> bool:
        connection = _connection(broker_url)
        try:
            if _post(connection, broker_path, f"after-{number}") != 202:
                return False
        finally:
            connection.close()
        acknowledged.add((SOURCE, f"after-{number}"))
        return True
    wait_until(lambda: served_anew(0), 15, "a new ingress client to be served again")
    fresh_api = _connection(api_url, ca_file)
    assert _get_api(fresh_api, token) == 200
    fresh_api.close()
    wait_until(lambda: _delivered(runtime["record_file"]) >= acknowledged, 60,
               lambda: f"every acknowledged event delivered; lost: "
               f"{sorted(acknowledged - _delivered(runtime['record_file']))}")
    assert process_alive(runtime["pid"])
    assert "Too many open files" not in runtime["log"].read_text(errors="replace")
    ingress_before.close()
    api_before.close()
