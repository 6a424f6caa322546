"""Drift detection in the runtime: `troupe demo --scenario abrupt` and `--scenario none`.

What is measured. Each scenario runs once on a fresh `troupe up` of a clone of this
repository (committed code, the shipped manifests: a canary rollout, 5 s monitor ticks),
driven by `troupe demo --json` as a user would. For `abrupt`: the labelled predictions
and seconds from the traffic's drift to the first concept alarm (`metric-degraded`) and to
the retrained model serving all the traffic (promoted after its canary), and the accuracy
after the retrain as a share of the accuracy before the drift. For `none`: the alarms over
NONE_PREDICTIONS labelled predictions (the aim is none).

Beside the online delay stands the offline one on the same stream: the demo's first
dataset and its traffic come from seeded sources, so the model the trainer fits and the
rows the traffic sends can be rebuilt here, and the concept test replayed on them one
label at a time. The online figure adds what the runtime costs: Prometheus's scrape
interval, the monitor's tick, and the labels that arrive while the alarm travels. (The
traffic drifts after at least 300 labelled predictions; the replay assumes exactly 300,
so its post-drift rows may be drawn a few batches off the live ones.)
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from troupe.demo.data import FEATURES, TARGET, DriftingSource
from troupe.ml.detectors import ConceptTest, DetectorSettings, concept_alarms
from troupe.ml.training import Holdout, train

from bench._loop_runtime import down, troupe_command, up
from bench.loop import GRACE_PERIOD_S
from bench.report import Figure

SEED: Final = 7  # troupe demo's default: batches from SEED, traffic from SEED + 1
ROWS: Final = 1500  # the demo's batch size
BEFORE: Final = 300  # labelled predictions before the traffic drifts (at least)
NONE_PREDICTIONS: Final = 2000


def _demo(scenario: str, *extra: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="troupe-drift-bench-") as folder:
        project = Path(folder) / "project"
        repo = Path(__file__).resolve().parents[1]
        subprocess.run(["git", "clone", "-q", str(repo), str(project)], check=True)
        info = up(project, grace_period_s=GRACE_PERIOD_S)
        try:
            ran = troupe_command(project, "demo", "--scenario", scenario, "--json", *extra,
                          timeout=600)
        finally:
            down(project, info.get("pid"))
    if ran.returncode != 0:
        raise RuntimeError(f"troupe demo --scenario {scenario} failed: "
                           f"{ran.stderr.strip()[-1500:]}")
    result: dict[str, Any] = json.loads(ran.stdout)
    return result


def offline_delay() -> int | None:
    """The concept test's delay, in labelled predictions, on the demo's own stream."""
    batch = DriftingSource(seed=SEED).batch_csv(ROWS)
    frame = pd.read_csv(io.BytesIO(batch))
    trained = train([frame], features=FEATURES, target=TARGET,
                    estimator="logistic_regression", holdout=Holdout())
    live = DriftingSource(seed=SEED + 1)
    rows = [live.sample(10) for _ in range(BEFORE // 10)]
    live.drifted = True
    rows += [live.sample(10) for _ in range(100)]
    x = np.vstack([r[0] for r in rows])
    y = np.concatenate([r[1] for r in rows])
    wrong = trained.pipeline.predict(pd.DataFrame(x, columns=list(FEATURES))) != y
    test = ConceptTest.for_model(trained.metrics["accuracy"], trained.rows_test,
                                 DetectorSettings())
    after = [a.index - BEFORE + 1 for a in concept_alarms(test, wrong) if a.index >= BEFORE]
    return after[0] if after else None


def run() -> list[Figure]:
    offline = offline_delay()
    abrupt = _demo("abrupt")
    quiet = _demo("none", "--predictions", str(NONE_PREDICTIONS))
    accuracy = abrupt["accuracy"]
    print(f"\nonline drift detection, troupe demo (seed {SEED}):")
    print(f"  abrupt: concept alarm after {abrupt['detection_delay_predictions']} labelled "
          f"predictions, {abrupt['detection_delay_seconds']:.1f} s (offline on the same "
          f"stream: {offline} labelled predictions)")
    print(f"  abrupt: retrained model serving after {abrupt['serving_delay_predictions']} "
          f"labelled predictions, {abrupt['serving_delay_seconds']:.1f} s")
    print(f"  abrupt: accuracy before {accuracy['before']:.3f}, after the drift "
          f"{accuracy['after_drift']:.3f}, after the retrain {accuracy['after_retrain']:.3f}")
    print(f"  none: {len(quiet['alarms'])} alarms in {NONE_PREDICTIONS} labelled predictions "
          f"{quiet['alarms']}\n", flush=True)
    return [
        Figure("drift-online", "abrupt: alarm, labelled predictions",
               float(abrupt["detection_delay_predictions"]), "labels",
               "offline, same stream", float(offline or float("nan"))),
        Figure("drift-online", "abrupt: alarm", float(abrupt["detection_delay_seconds"]), "s",
               "retrained model serving", float(abrupt["serving_delay_seconds"])),
        Figure("drift-online", "abrupt: accuracy after retrain",
               float(accuracy["after_retrain"]), "share", "accuracy before drift",
               float(accuracy["before"])),
        Figure("drift-online", "none: alarms", float(len(quiet["alarms"])), "alarms",
               "labelled predictions watched", float(NONE_PREDICTIONS)),
    ]


if __name__ == "__main__":
    from bench.report import render

    print(render(run()), file=sys.stdout)
