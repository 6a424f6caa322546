"""`troupe up --detach`, `troupe status --json` and `troupe down` as a user runs them;
`troupe subscribe --filter` and `troupe events --filter` against a running runtime."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from kubernetes import client, config
from support.polling import wait_until
from troupe.cli import cli
from troupe.events import DATA_ARRIVED, make_event, to_http_binary

from .conftest import BROKER_DOC, ECHO, StartRuntime, service, write_project

pytestmark = pytest.mark.kafka


def _troupe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from troupe.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=180)


def test_up_detached_then_status_then_down(tmp_path: Path) -> None:
    trigger = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
               "metadata": {"name": "to-echo"},
               "spec": {"broker": "default", "subscriber": {"ref": {
                   "apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "echo"}}}}
    # `broken` fails to start at `up` (initial-scale 1): `troupe status` says why.
    project = write_project(tmp_path, [service("echo"), service("broken", image="broken",
                                                                initial_scale=None)],
                            [BROKER_DOC, trigger],
                            {"echo": ECHO, "broken": "import a_module_nobody_installed\n"})

    up = _troupe("up", "--project", str(project), "--detach")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        kubeconfig = next(line for line in up.stdout.splitlines() if "kubeconfig" in line)
        assert Path(kubeconfig.split()[-1]).is_absolute()
        assert Path(kubeconfig.split()[-1]).is_file()
        # Both hold the API's token: owner-only.
        for private in (Path(kubeconfig.split()[-1]), project / ".troupe" / "runtime.json"):
            assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
        broker = next(line.split()[-1] for line in up.stdout.splitlines()
                      if line.startswith("broker"))
        assert broker.startswith("http://127.0.0.1:") and broker.endswith("/troupe/default")
        assert requests.options(broker, timeout=10).status_code < 500

        status = _troupe("status", "--project", str(project), "--json")
        assert status.returncode == 0, status.stderr
        state = json.loads(status.stdout)
        echo = next(s for s in state["services"] if s["name"] == "echo")
        assert (echo["name"], echo["ready"], echo["instances"]) == ("echo", True, 0)
        assert echo["revisions"][0]["name"] == "echo-00001"
        assert echo["traffic"][0]["percent"] == 100
        assert state["triggers"][0]["name"] == "to-echo"
        assert state["triggers"][0]["broker"] == "default"
        assert state["triggers"][0]["ready"] is True, json.dumps(state["triggers"])
        assert (echo["utilization"], echo["predicted_p95_wait_s"]) == (0.0, 0.0)  # idle

        assert requests.get(echo["url"], timeout=30).status_code == 200
        wait_until(lambda: "ExitCode" in _troupe("status", "--project", str(project),
                                                 "--json").stdout, 60, "broken to fail")
        table = _troupe("status", "--project", str(project))
        assert table.returncode == 0, table.stderr
        header, row = (next(line for line in table.stdout.splitlines() if line.startswith(name))
                       for name in ("SERVICE", "echo"))
        assert "RHO" in header and "P95 WAIT" in header
        rho = row.split()[3]
        assert rho.endswith("%") and 0 <= int(rho[:-1]) <= 100, row
        assert state["template"]["state"] == "ready", state["template"]
        assert f"template pid {state['template']['pid']}, RSS " in table.stdout
        assert "revision broken-00001 is not ready (ExitCode1)" in table.stdout
        assert "No module named 'a_module_nobody_installed'" in table.stdout
    finally:
        down = _troupe("down", "--project", str(project))
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert _troupe("status", "--project", str(project)).returncode == 1


def test_subscribe_and_events_take_the_same_cesql_filter(start_runtime: StartRuntime,
                                                         tmp_path: Path) -> None:
    seen = tmp_path / "seen.jsonl"
    runtime = start_runtime([service("recorder", image="recorder", env=[
        {"name": "RECORD_FILE", "value": str(seen)}])], [BROKER_DOC], data_plane=True)
    expression = "id LIKE 'keep-%' AND EXISTS subject AND subject <> 'v1'"
    runner = CliRunner()

    subscribed = runner.invoke(cli, ["subscribe", "--type", "data-arrived", "--filter",
                                     expression, "--service", "recorder", "--name", "keepers",
                                     "--kubeconfig", str(runtime.kubeconfig), "--json"])
    assert subscribed.exit_code == 0, subscribed.output
    assert json.loads(subscribed.output)["spec"]["filters"] == [
        {"exact": {"type": DATA_ARRIVED}}, {"cesql": expression}]
    api = client.CustomObjectsApi(config.new_client_from_config(str(runtime.kubeconfig)))
    wait_until(lambda: _ready(api.get_namespaced_custom_object(
        "eventing.knative.dev", "v1", "troupe", "triggers", "keepers")), 30, "the trigger")
    for event_id, subject in (("keep-1", "v2"), ("drop-1", "v2"), ("keep-2", "v1"),
                              ("keep-3", None), ("keep-4", "v3")):
        event = make_event(DATA_ARRIVED, {"uri": "file:///tmp/d.csv", "target": "label"},
                           event_id=event_id, source="/tests/cli",
                           subject=subject)
        message = to_http_binary(event)
        answer = requests.post(runtime.broker_urls()[0], data=message.body,
                               headers=dict(message.headers), timeout=30)
        assert answer.status_code == 202, answer.text
    wait_until(lambda: runtime.eventing.plane.trigger_status("troupe", "keepers").filtered_out
               == 3, 30, "the trigger to pass over drop-1, keep-2 and keep-3")
    wait_until(lambda: seen.exists() and len(seen.read_text().splitlines()) == 2, 30,
               "keep-1 and keep-4 at the recorder")

    kafka = runtime.data_plane_info()
    tailed = runner.invoke(cli, ["events", "--json", "--filter", expression,
                                 "--bootstrap-servers", kafka["bootstrap_servers"],
                                 "--topic", kafka["topic"]])
    assert tailed.exit_code == 0, tailed.output
    delivered = sorted(json.loads(line)["id"] for line in seen.read_text().splitlines())
    assert delivered == ["keep-1", "keep-4"]
    assert sorted(json.loads(line)["id"] for line in tailed.output.splitlines()) == delivered


def _ready(obj: dict[str, object]) -> bool:
    status = obj.get("status") or {}
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in status.get("conditions", []))  # type: ignore[union-attr]


def test_subscribe_to_a_sink_off_this_machine_says_what_to_do(
        start_runtime: StartRuntime) -> None:
    runtime = start_runtime([], [BROKER_DOC])

    refused = CliRunner().invoke(cli, ["subscribe", "--type", "model-deployed", "--sink",
                                       "https://hooks.example/troupe", "--name", "away",
                                       "--kubeconfig", str(runtime.kubeconfig)])
    local = CliRunner().invoke(cli, ["subscribe", "--type", "model-deployed", "--sink",
                                     "http://127.0.0.1:9000/hook", "--name", "here",
                                     "--kubeconfig", str(runtime.kubeconfig)])

    assert refused.exit_code == 1, refused.output
    assert "spec.subscriber.uri" in refused.output
    assert "--allow-external-sinks" in refused.output
    assert local.exit_code == 0, local.output
