"""`troupe up` when a part cannot start: one line that says what failed and what to do,
never a traceback (the CLI promises none)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import service, write_project

TROUPE = [sys.executable, "-c", "from troupe.cli import main; main()"]


def _closed_port() -> int:
    with socket.socket() as probe:  # bound and closed again: nothing listens there now
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_unreachable_kafka_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", [service("echo")],
                         [{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                           "metadata": {"name": "default"}}])
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{_closed_port()}"}
    started = subprocess.run([*TROUPE, "up", "--project", str(root)], env=env,
                             capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             timeout=100, check=False)
    assert started.returncode == 1
    assert "Traceback" not in started.stderr, started.stderr
    assert "KAFKA_BOOTSTRAP_SERVERS" in started.stderr and "did not answer" in started.stderr
    assert not (root / ".troupe" / "runtime.json").exists()
