"""Ingest's rules as pure functions: reading, checking and baseline statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from troupe.ml import (
    DatasetRejected,
    DatasetSpec,
    baseline_stats,
    check_frame,
    read_frame,
)
from troupe.ml.drift import FeatureBaseline, psi
from troupe.ml.synthetic import synthetic_frame, to_csv_bytes, to_parquet_bytes


def reasons_of(call: object, *args: object) -> list[str]:
    with pytest.raises(DatasetRejected) as caught:
        call(*args)  # type: ignore[operator]
    assert caught.value.reasons, "a rejection must say why"
    return caught.value.reasons


def test_a_clean_csv_passes_with_features_and_classes_settled() -> None:
    frame = read_frame(to_csv_bytes(synthetic_frame(200)), "csv")
    checked = check_frame(frame, DatasetSpec(target="label"))
    assert checked.features == ("f0", "f1", "f2", "f3", "f4", "f5")
    assert checked.classes == (0, 1)
    assert checked.rows == 200
    assert list(checked.frame.columns) == [*checked.features, "label"]


def test_parquet_reads_like_csv() -> None:
    source = synthetic_frame(100)
    frame = read_frame(to_parquet_bytes(source), "parquet")
    pd.testing.assert_frame_equal(frame, source)


@pytest.mark.parametrize(
    ("data", "fmt", "expected"),
    [
        (b"", "csv", "empty"),
        (b"   \n\n", "csv", "empty"),
        (bytes(range(256)) * 4, "csv", "not UTF-8"),
        (b"PAR1\x00\x00garbage", "csv", "Parquet, not CSV"),
        (b"a,b\n1,2\n3,4,5,6\n", "csv", "not well-formed CSV"),
        (b"a,b\n1,2\n", "parquet", "not Parquet"),
    ],
)
def test_unreadable_files_are_rejected_saying_what_they_are(
    data: bytes, fmt: str, expected: str
) -> None:
    reasons = reasons_of(read_frame, data, fmt)
    assert expected in reasons[0]


def test_every_problem_is_reported_at_once() -> None:
    frame = synthetic_frame(30)
    frame["name"] = "x"
    frame.loc[:20, "f0"] = np.nan
    spec = DatasetSpec(target="label", features=("f0", "name", "nope"), min_rows=50)
    reasons = reasons_of(check_frame, frame, spec)
    text = " | ".join(reasons)
    assert "missing columns: nope" in text
    assert "30 rows, fewer than the minimum of 50" in text
    assert "'name' is not numeric" in text
    assert "'f0' is 70.0% null" in text


def test_a_json_file_posing_as_csv_fails_on_its_columns() -> None:
    frame = read_frame(b'{"rows": [1, 2, 3]}\n', "csv")
    reasons = reasons_of(check_frame, frame, DatasetSpec(target="label", min_rows=1))
    assert any("missing columns: label" in r for r in reasons)


def test_labels_outside_the_declared_classes_are_named() -> None:
    frame = synthetic_frame(100, classes=3)
    reasons = reasons_of(check_frame, frame, DatasetSpec(target="label", classes=(0, 1)))
    assert reasons == ["labels not among the declared classes: 2 (declared: 0, 1)"]


def test_declared_classes_match_by_text_and_keep_their_order() -> None:
    frame = synthetic_frame(100)
    checked = check_frame(frame, DatasetSpec(target="label", classes=("1", "0")))
    assert checked.classes == ("1", "0")


def test_continuous_and_missing_labels_are_refused() -> None:
    frame = synthetic_frame(100)
    frame["label"] = frame["f0"]
    assert "non-integral" in reasons_of(check_frame, frame, DatasetSpec(target="label"))[0]
    frame = synthetic_frame(100).astype({"label": float})
    frame.loc[3, "label"] = np.nan
    assert reasons_of(check_frame, frame, DatasetSpec(target="label")) == [
        "1 rows have no label in 'label'"
    ]


def test_integral_float_labels_become_integers() -> None:
    frame = synthetic_frame(100).astype({"label": float})
    checked = check_frame(frame, DatasetSpec(target="label"))
    assert checked.classes == (0, 1)
    assert checked.frame["label"].dtype == np.int64


def test_a_single_class_is_not_a_classification_task() -> None:
    frame = synthetic_frame(100)
    frame["label"] = 1
    assert "needs 2" in reasons_of(check_frame, frame, DatasetSpec(target="label"))[0]


def test_baseline_stats_follow_the_shared_format_and_measure_no_drift_on_themselves() -> None:
    frame = synthetic_frame(2000)
    frame.loc[:99, "f1"] = np.nan
    checked = check_frame(frame, DatasetSpec(target="label"))
    stats = baseline_stats(checked, "a" * 64, bins=10)
    assert stats["dataset_id"] == "a" * 64
    assert stats["rows"] == 2000
    assert stats["classes"] == [0, 1]
    f1 = stats["features"]["f1"]
    assert f1["kind"] == "numeric"
    assert f1["null_fraction"] == pytest.approx(0.05)
    assert len(f1["fractions"]) == len(f1["edges"]) + 1
    assert sum(f1["fractions"]) == pytest.approx(1.0)
    baseline = FeatureBaseline.from_json(stats["features"]["f0"])
    same = psi(baseline, baseline.bin_counts(frame["f0"].to_numpy()))
    shifted = psi(baseline, baseline.bin_counts(frame["f0"].to_numpy() + 1.0))
    assert same < 0.01 < 0.25 < shifted
    assert stats["features"]["f0"]["mean"] == pytest.approx(frame["f0"].mean())
