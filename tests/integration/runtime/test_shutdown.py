"""`troupe down` finishes within 15 s in the worst state we can make: Kafka frozen (SIGSTOP:
it accepts connections and never answers), a delivery stuck on a sink that never answers,
a function busy in a request. What does not stop in time is killed, the embedded Kafka
included: nothing is left running."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.polling import wait_until

from .conftest import BROKER_DOC, service, write_project

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
SLEEPER = '''
import time
from flask import Flask
app = Flask(__name__)

@app.route("/", methods=["GET", "POST"])
def busy():
    time.sleep(600)  # a function stuck in a request
    return "", 202
'''


def _troupe(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from troupe.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=timeout)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def silent_sink() -> Iterator[str]:
    """Accepts connections and reads, and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            held.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    listener.close()
    for connection in held:
        connection.close()


def test_down_finishes_within_15_s_with_kafka_frozen_and_deliveries_stuck(
        tmp_path: Path, silent_sink: str) -> None:
    triggers = [{"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                 "metadata": {"name": "to-silence"},
                 "spec": {"broker": "default", "subscriber": {"uri": silent_sink}}},
                {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                 "metadata": {"name": "to-sleeper"},
                 "spec": {"broker": "default", "subscriber": {"ref": {
                     "apiVersion": "serving.knative.dev/v1", "kind": "Service",
                     "name": "sleeper"}}}}]
    project = write_project(tmp_path, [service("sleeper", image="sleeper")],
                            [BROKER_DOC, *triggers], functions={"sleeper": SLEEPER})
    up = _troupe("up", "--project", str(project), "--detach")
    assert up.returncode == 0, up.stdout + up.stderr
    info = json.loads((project / ".troupe" / "runtime.json").read_text())
    runtime_pid, kafka_pid = info["pid"], info["kafka_pid"]
    try:
        answer = requests.post(info["broker_url"], data=b"{}", timeout=10, headers={
            "ce-specversion": "1.0", "ce-id": "stuck", "ce-type": "dev.example.test",
            "ce-source": "/tests", "content-type": "application/json"})
        assert answer.status_code == 202
        status = json.loads(_troupe("status", "--project", str(project), "--json").stdout)
        wait_until(lambda: json.loads(_troupe("status", "--project", str(project), "--json")
                                      .stdout)["services"][0]["instances"] == 1, 60,
                   "the sleeper to be busy with the event")
        assert status["kafka"].endswith(": up")
        os.kill(kafka_pid, signal.SIGSTOP)

        started = time.monotonic()
        down = _troupe("down", "--project", str(project), timeout=30)
        took = time.monotonic() - started

        assert down.returncode == 0, down.stdout + down.stderr
        assert took < 15, f"troupe down took {took:.1f} s"
        assert not _alive(runtime_pid)
        wait_until(lambda: not _alive(kafka_pid), 5, "the frozen Kafka to be gone")
    finally:
        for pid in (runtime_pid, kafka_pid):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
