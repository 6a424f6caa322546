"""Each function imports at start-up only what every request needs; the heavy libraries
wait for the first event that uses them. bench/imports.py measures the time this saves;
here, which modules a fresh `import main` loads, so that a heavy import added at module
level fails a test instead of slowing every cold start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from troupe.ml import build_pipeline
from troupe.ml.synthetic import synthetic_frame
from troupe.store import Store

REPO = Path(__file__).resolve().parents[3]
# Heavy libraries, and the functions that may load them at start-up because every
# request of theirs needs them (the predictor and the monitor count with numpy).
HEAVY = ("numpy", "pandas", "pyarrow", "sklearn", "scipy", "skops", "kubernetes",
         "jsonschema", "s3fs")
NEEDED_AT_START = {"predictor": {"numpy"}, "monitor": {"numpy"}}


def _loaded_after_import(folder: Path, tmp_path: Path) -> set[str]:
    probe = f"import sys, json, main; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    env = {**os.environ, "PYTHONPATH": str(REPO / "shared"),
           "TROUPE_STORE_URL": tmp_path.as_uri(), "K_SERVICE": folder.name}
    done = subprocess.run([sys.executable, "-c", probe], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("function", sorted(p.parent.name for p in
                                            (REPO / "functions").glob("*/main.py")))
def test_importing_a_function_loads_no_heavy_library_it_does_not_always_need(
        function: str, tmp_path: Path) -> None:
    loaded = _loaded_after_import(REPO / "functions" / function, tmp_path)

    assert loaded == NEEDED_AT_START.get(function, set())


def test_a_predictor_loads_its_model_and_what_predicting_needs_before_it_is_ready(
        tmp_path: Path) -> None:
    """Loading the model is start-up, not first use: once `import main` returns, readiness
    answers 200 and scikit-learn and pandas (the model was fitted on a frame) are loaded,
    so the first prediction is as quick as the next."""
    store = Store(tmp_path.as_uri())
    frame = synthetic_frame(200, features=3, seed=4)
    features = ["f0", "f1", "f2"]
    model = build_pipeline("logistic_regression").fit(frame[features], frame["label"])
    artifact = store.save_model(model, name="default", version="v1")
    probe = ("import sys, json, main; client = main.app.test_client(); "
             "print(json.dumps({'ready': client.get('/health/readiness').status_code, "
             "'loaded': [m for m in ('sklearn', 'pandas') if m in sys.modules]}))")
    env = {**os.environ, "PYTHONPATH": str(REPO / "shared"), "TROUPE_STORE_URL": tmp_path.as_uri(),
           "K_SERVICE": "predictor", "TROUPE_MODEL_URI": artifact.uri,
           "TROUPE_MODEL_SHA256": artifact.sha256, "TROUPE_MODEL_VERSION": "v1"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO / "functions" / "predictor",
                          env=env, capture_output=True, text=True, timeout=120, check=False)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ready": 200, "loaded": ["sklearn", "pandas"]}
