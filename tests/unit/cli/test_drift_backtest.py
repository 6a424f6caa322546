"""`troupe drift backtest` on generated histories whose drift onset is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression
from troupe.cli import cli
from troupe.ml.scenarios import FEATURES, ScenarioSpec, generate, reference_sample

ONSET = 2000


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    x, y = reference_sample(1500, seed=21)
    return LogisticRegression().fit(x, y)


def history(tmp_path: Path, model: LogisticRegression, name: str, rows: int = 6000) -> Path:
    stream = generate(ScenarioSpec(name=name, rows=rows, onset=ONSET, seed=6))
    frame = pd.DataFrame(stream.x, columns=list(FEATURES))
    frame["label"] = stream.y
    frame["prediction"] = model.predict(stream.x)
    path = tmp_path / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


def run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["drift", "backtest", *args], env=env)


def test_abrupt_drift_alarms_just_after_the_onset(tmp_path: Path, model) -> None:
    result = run(str(history(tmp_path, model, "abrupt")), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["rows"] == 6000
    alarms = report["alarms"]
    assert all(set(a) == {"kind", "test", "index"} for a in alarms)
    concept = [a for a in alarms if a["kind"] == "concept"]
    covariate = [a for a in alarms if a["kind"] == "covariate"]
    assert ONSET <= concept[0]["index"] < ONSET + 200
    assert concept[0]["test"] == "bernoulli-cusum"
    # Feature blocks of 500 start after the 500 reference rows: 2000-2499 holds the onset.
    assert covariate[0] == {"kind": "covariate", "test": "chi-squared", "index": 2499}
    assert min(a["index"] for a in alarms) >= ONSET


def test_covariate_shift_alone_raises_no_concept_alarm(tmp_path: Path, model) -> None:
    result = run(str(history(tmp_path, model, "covariate")), "--json")
    assert result.exit_code == 0, result.output
    alarms = json.loads(result.output)["alarms"]
    assert alarms and {a["kind"] for a in alarms} == {"covariate"}
    assert alarms[0]["index"] == 2499


def test_no_drift_no_alarm_and_the_text_says_so(tmp_path: Path, model) -> None:
    result = run(str(history(tmp_path, model, "none", rows=10_000)))
    assert result.exit_code == 0, result.output
    assert "10000 rows; the first 500 are the reference" in result.output
    assert "features tested: f1, f2, f3, f4" in result.output
    assert result.output.rstrip().endswith("no alarm")


def test_settings_come_from_the_monitors_variables(tmp_path: Path, model) -> None:
    path = str(history(tmp_path, model, "covariate"))
    result = run(path, "--json", "--reference-rows", "1000",
                 env={"TROUPE_FEATURE_BLOCK": "250"})
    assert result.exit_code == 0, result.output
    first = json.loads(result.output)["alarms"][0]
    assert first["index"] == 2249  # blocks of 250 from row 1000
    bad = run(path, env={"TROUPE_CONCEPT_ARL0": "often"})
    assert bad.exit_code == 1 and "TROUPE_CONCEPT_ARL0='often'" in bad.output


def test_the_text_report_names_the_test_and_its_statistic(tmp_path: Path, model) -> None:
    result = run(str(history(tmp_path, model, "abrupt")))
    assert result.exit_code == 0, result.output
    assert "concept alarm from bernoulli-cusum (statistic" in result.output
    assert "covariate alarm from chi-squared (statistic" in result.output


@pytest.mark.parametrize(("content", "message"), [
    ("label,f1\n1,0.5\n", "has no 'prediction' column"),
    ("prediction,f1\n1,0.5\n", "has no 'label' column"),
    ("label,prediction\n1,1\n0,0\n1,1\ncat,1\n",
     "data row 3 (line 5): label 'cat' is not a number"),
    ("label,prediction\n1,1\n0,\n", "data row 1 (line 3): prediction is empty"),
    ("", "is empty"),
    ("label,prediction\n1,1\n0,0\n", "the history has 2 rows, all of them reference"),
])
def test_a_malformed_history_gets_a_clear_error_and_exit_1(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "history.csv"
    path.write_text(content)
    result = run(str(path))
    assert result.exit_code == 1
    assert message in result.output


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    result = run(str(tmp_path / "nowhere.csv"))
    assert result.exit_code == 1 and "does not exist" in result.output


def test_non_numeric_columns_are_reported_not_tested(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"when": [f"t{i}" for i in range(1200)],
                          "label": rng.integers(0, 2, 1200)})
    frame["prediction"] = frame["label"]
    path = tmp_path / "h.csv"
    frame.to_csv(path, index=False)
    result = run(str(path))
    assert result.exit_code == 0, result.output
    assert "not tested (not numeric, or empty in the reference): when" in result.output
