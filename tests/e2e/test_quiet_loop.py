"""The control run: `troupe demo --scenario none` on a fresh runtime raises no alarm.

A drift detector is only worth its alarms if it stays quiet when nothing drifts. On a
runtime of its own (a copy of this project; the closed loop's runtime already holds a
model, which the first dataset would not retrain), the demo trains and serves the first
model, answers a few hundred labeled predictions and waits two more monitor ticks: no
metric-degraded may come. Real everything, as in test_closed_loop.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.prometheus,
              pytest.mark.timeout(360)]


def troupe(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from troupe.cli import main; main()", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


@pytest.fixture()
def project(tmp_path: Path) -> Iterator[Path]:
    if shutil.which("prometheus") is None:
        pytest.skip("the control run needs Prometheus: apt-get install prometheus")
    for folder in ("knative", "eventing", "functions"):
        shutil.copytree(REPO / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__", ".troupe"))
    started = troupe("up", "--detach", "--project", str(tmp_path), cwd=tmp_path, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    yield tmp_path
    stopped = troupe("down", "--project", str(tmp_path), cwd=tmp_path, timeout=90)
    assert stopped.returncode == 0, stopped.stderr


def test_a_run_without_drift_raises_no_alarm(project: Path) -> None:
    demo = troupe("demo", "--project", str(project), "--scenario", "none", "--predictions",
                  "400", "--json", cwd=project, timeout=240)
    assert demo.returncode == 0, demo.stderr[-3000:]
    result = json.loads(demo.stdout)
    assert result["scenario"] == "none" and result["alarms"] == []
    assert result["detection_delay_predictions"] is None
    assert result["detection_delay_seconds"] is None
    assert result["accuracy"]["before"] > 0.85
    assert result["dead_letters"] == 0
