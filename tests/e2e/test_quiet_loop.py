"""The control run: `troupe demo --scenario none` on a fresh runtime raises no alarm.

A drift detector is only worth its alarms if it stays quiet when nothing drifts. The demo
starts its own runtime on a copy of this project (and stops it), trains and serves the
first model, answers a few hundred labeled predictions and waits two more monitor ticks:
no metric-degraded may come. Real everything, as in test_closed_loop.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.kafka, pytest.mark.prometheus,
              pytest.mark.timeout(360)]


def test_a_run_without_drift_raises_no_alarm(tmp_path: Path) -> None:
    if shutil.which("prometheus") is None:
        pytest.skip("the control run needs Prometheus: apt-get install prometheus")
    for folder in ("knative", "eventing", "functions"):
        shutil.copytree(REPO / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__", ".troupe"))
    demo = subprocess.run(
        [sys.executable, "-c", "from troupe.cli import main; main()", "demo", "--project",
         str(tmp_path), "--scenario", "none", "--predictions", "400", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        check=False)
    assert demo.returncode == 0, demo.stderr[-3000:]
    result = json.loads(demo.stdout)
    assert result["scenario"] == "none" and result["alarms"] == []
    assert result["detection_delay_predictions"] is None
    assert result["detection_delay_seconds"] is None
    assert result["accuracy"]["before"] > 0.85
    assert result["dead_letters"] == 0
