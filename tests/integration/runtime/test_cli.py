"""`troupe up --detach`, `troupe status --json` and `troupe down` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from .conftest import BROKER_DOC, service, write_project

pytestmark = pytest.mark.kafka


def _troupe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from troupe.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=180)


def test_up_detached_then_status_then_down(tmp_path: Path) -> None:
    trigger = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
               "metadata": {"name": "to-echo"},
               "spec": {"broker": "default", "subscriber": {"ref": {
                   "apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "echo"}}}}
    project = write_project(tmp_path, [service("echo")], [BROKER_DOC, trigger])

    up = _troupe("up", "--project", str(project), "--detach")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        kubeconfig = next(line for line in up.stdout.splitlines() if "kubeconfig" in line)
        assert Path(kubeconfig.split()[-1]).is_absolute()
        assert Path(kubeconfig.split()[-1]).is_file()
        broker = next(line.split()[-1] for line in up.stdout.splitlines()
                      if line.startswith("broker"))
        assert broker.startswith("http://127.0.0.1:") and broker.endswith("/troupe/default")
        assert requests.options(broker, timeout=10).status_code < 500

        status = _troupe("status", "--project", str(project), "--json")
        assert status.returncode == 0, status.stderr
        state = json.loads(status.stdout)
        echo = state["services"][0]
        assert (echo["name"], echo["ready"], echo["instances"]) == ("echo", True, 0)
        assert echo["revisions"][0]["name"] == "echo-00001"
        assert echo["traffic"][0]["percent"] == 100
        assert state["triggers"][0]["name"] == "to-echo"
        assert state["triggers"][0]["broker"] == "default"
        assert state["triggers"][0]["ready"] is True, json.dumps(state["triggers"])
        assert (echo["utilization"], echo["predicted_p95_wait_s"]) == (0.0, 0.0)  # idle

        assert requests.get(echo["url"], timeout=30).status_code == 200
        table = _troupe("status", "--project", str(project))
        assert table.returncode == 0, table.stderr
        header, row = (next(line for line in table.stdout.splitlines() if line.startswith(name))
                       for name in ("SERVICE", "echo"))
        assert "RHO" in header and "P95 WAIT" in header
        rho = row.split()[3]
        assert rho.endswith("%") and 0 <= int(rho[:-1]) <= 100, row
    finally:
        down = _troupe("down", "--project", str(project))
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert _troupe("status", "--project", str(project)).returncode == 1
