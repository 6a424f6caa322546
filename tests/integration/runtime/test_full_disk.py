"""A full disk under the store: functions answer 5xx, the Broker retries and dead-letters
(or parks, when the dead-letter sink writes to the same full disk), nothing is committed
without being accounted for, and every event not delivered is counted in the runtime's
metrics. Once space is freed, the same functions store events again.

The store is a real filesystem that is really full: a small tmpfs mounted for the test and
filled to ENOSPC, so the store's writes fail as they would on a full disk (mounting needs
root or CAP_SYS_ADMIN; the test skips, saying so, where it cannot mount). Events are counted
by (source, id): lost means acknowledged with 202 and never delivered, dead-lettered nor
parked. Real Tansu, real gunicorn functions, and the real dead-letters function.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from support.polling import wait_until
from troupe.local.eventing.broker.parking import TRIGGER, read_parked
from troupe.local.runtime import Runtime, RuntimeOptions
from troupe.local.serving.controller import ServingSettings

from .conftest import RECORDER, service, write_project

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]
SOURCE = "/tests/full-disk"
EVENTS = 8
DELIVERY = {"retry": 2, "backoffPolicy": "linear", "backoffDelay": "PT0.01S", "timeout": "PT5S"}

# Keeps each event as a file in the store, as ingest keeps datasets: on a full disk the
# write fails with ENOSPC, which the app factory answers 500 (retried, as Knative does).
KEEPER = '''
from troupe.function import ANY, create_app

def handle(event, ctx):
    ctx.store.create_json(f"kept/{event.get_id()}.json",
                          {"id": event.get_id(), "source": event.get_source()})
    return None

app = create_app(handle, consumes=ANY, validate_incoming=False, deduplicate=False)
'''


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs of the test's own; unmounted afterwards, even if something holds it."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root: the full-disk test runs as root only")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs",
                              str(mount_point)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"a small tmpfs cannot be mounted here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    """Write zeros until the filesystem refuses with ENOSPC; the file that holds them."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out, pytest.raises(OSError) as full:
        while True:
            out.write(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    return filler


def trigger(name: str, dead_letter_sink: str) -> dict[str, Any]:
    def ref(service_name: str) -> dict[str, Any]:
        return {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                        "name": service_name}}
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": name},
            "spec": {"broker": "default", "subscriber": ref("keeper"),
                     "delivery": {**DELIVERY, "deadLetterSink": ref(dead_letter_sink)}}}


@pytest.fixture
def runtime(tmp_path: Path, small_disk: Path) -> Iterator[Runtime]:
    elsewhere = tmp_path / "dead-letters-elsewhere.jsonl"  # on the ordinary disk
    project = write_project(
        tmp_path / "project",
        [service("keeper", image="keeper"), service("dead-letters", image="dead-letters"),
         service("recorder", image="recorder",
                 env=[{"name": "RECORD_FILE", "value": str(elsewhere)}])],
        [{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
          "metadata": {"name": "default"}},
         # Its dead letters go to the store too: on the full disk they fail, and are parked.
         trigger("keep-dead-letters-in-store", "dead-letters"),
         # Its dead letters go to a file on another disk: they are dead-lettered.
         trigger("keep-dead-letters-elsewhere", "recorder")],
        {"keeper": KEEPER, "recorder": RECORDER,
         "dead-letters": (REPO / "functions" / "dead-letters" / "main.py").read_text()})
    shutil.copy(REPO / "functions" / "dead-letters" / "handler.py",
                project / "functions" / "dead-letters" / "handler.py")
    with Runtime(RuntimeOptions(project=project, prometheus=False,
                                store_url=small_disk.as_uri(),
                                serving=ServingSettings(grace_period=60.0)),
                 say=lambda line: None) as started:
        yield started


def post(runtime: Runtime, event_id: str) -> int:
    answer = requests.post(runtime.broker_urls()[0], data=b'{"n": 1}', timeout=30, headers={
        "ce-specversion": "1.0", "ce-id": event_id, "ce-source": SOURCE,
        "ce-type": "dev.example.fault", "content-type": "application/json"})
    return answer.status_code


def event_counts(runtime: Runtime) -> dict[str, float]:
    """troupe_runtime_events_<outcome>_total from the API port's /metrics."""
    kubeconfig = yaml.safe_load(runtime.kubeconfig.read_text())
    token = kubeconfig["users"][0]["user"]["token"]
    text = requests.get(f"{runtime.api_url}/metrics", timeout=10,
                        verify=str(getattr(runtime, "api_ca_file", "")) or True,
                        headers={"Authorization": f"Bearer {token}"}).text
    prefix = "troupe_runtime_events_"
    return {line.split()[0][len(prefix):-len("_total")]: float(line.split()[1])
            for line in text.splitlines()
            if line.startswith(prefix) and line.split()[0].endswith("_total")}


def parked_by(runtime: Runtime, trigger_name: str) -> list[dict[str, str]]:
    servers = runtime.data_plane_info()["bootstrap_servers"]
    return [event.headers for event in read_parked(servers)
            if event.headers.get(TRIGGER) == f"troupe/{trigger_name}"]


def dead_lettered_elsewhere(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    return [(line["source"], line["id"]) for line in map(json.loads, path.read_text().splitlines())]


def test_a_full_store_disk_loses_nothing_and_counts_every_event_not_delivered(
        runtime: Runtime, small_disk: Path, tmp_path: Path) -> None:
    filler = fill(small_disk)
    acknowledged = set()
    for number in range(EVENTS):
        assert post(runtime, f"full-{number}") == 202
        acknowledged.add((SOURCE, f"full-{number}"))

    # Every acknowledged event is parked by one Trigger and dead-lettered by the other.
    def parked() -> list[tuple[str, str]]:
        return [(headers["ce_source"], headers["ce_id"])
                for headers in parked_by(runtime, "keep-dead-letters-in-store")]
    elsewhere = tmp_path / "dead-letters-elsewhere.jsonl"
    wait_until(lambda: set(parked()) >= acknowledged
               and set(dead_lettered_elsewhere(elsewhere)) >= acknowledged, 90,
               lambda: f"every event parked and dead-lettered: parked {sorted(parked())}, "
               f"dead-lettered {dead_lettered_elsewhere(elsewhere)}")
    lost_by_trigger = {"in store": acknowledged - set(parked()),
                       "elsewhere": acknowledged - set(dead_lettered_elsewhere(elsewhere))}
    assert lost_by_trigger == {"in store": set(), "elsewhere": set()}
    assert sorted(parked()) == sorted(acknowledged)  # each once: no duplicates either
    assert sorted(dead_lettered_elsewhere(elsewhere)) == sorted(acknowledged)
    # The function answered 5xx, and so did the dead-letters function on the same disk.
    for headers in parked_by(runtime, "keep-dead-letters-in-store"):
        assert headers["ce_knativeerrorcode"] == "500", headers
        assert "failed too" in headers["troupe-parked-reason"]
        assert "500" in headers["troupe-parked-reason"]
    # Nothing was stored, nor half-stored, and nothing counted as delivered.
    # (Folders may have been made: they take no space on a tmpfs.)
    assert [path for path in small_disk.rglob("*") if path.is_file()] == [filler]
    # A dead letter reaches its sink a moment before it is counted: wait for both counts.
    counts = wait_until(lambda: (c := event_counts(runtime)).get("parked") == EVENTS
                        and c.get("dead_lettered") == EVENTS and c, 10,
                        lambda: f"the metrics to count every parked and dead-lettered event: "
                                f"{event_counts(runtime)}")
    assert counts["delivered"] == 0
    assert counts["dropped"] == 0
    assert counts["retried"] == 2 * EVENTS * DELIVERY["retry"]  # both Triggers, each event

    # Space freed: the same functions store what arrives now, and it counts as delivered.
    filler.unlink()
    for number in range(EVENTS):
        assert post(runtime, f"after-{number}") == 202
    wait_until(lambda: len(list((small_disk / "kept").glob("after-*.json"))) == EVENTS, 60,
               "the events sent after space was freed to be stored")
    wait_until(lambda: event_counts(runtime).get("delivered") == 2 * EVENTS, 10,
               lambda: f"both Triggers to count their deliveries: {event_counts(runtime)}")
    assert not list((small_disk / "kept").glob("full-*.json"))
