"""Reading a tabular dataset and deciding whether it is fit to train on.

Everything here is a pure function over bytes and pandas frames, so ingest's rules can be
tested without a store. A dataset that breaks the rules raises DatasetRejected carrying
every reason found (not just the first), because a producer fixing a file wants the whole
list at once.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from .drift import baseline_bins
from .spec import DatasetRejected, DatasetSpec, Format, Label

_PARQUET_MAGIC: Final = b"PAR1"
_EMPTY: Final = "the file is empty: publish a file with a header row and data rows"


@dataclass(frozen=True)
class CheckedDataset:
    """A frame that passed every check, with its roles settled."""

    frame: pd.DataFrame
    target: str
    features: tuple[str, ...]
    classes: tuple[Label, ...]

    @property
    def rows(self) -> int:
        return len(self.frame)


def read_frame(data: bytes, fmt: Format, *, max_columns: int | None = None) -> pd.DataFrame:
    """Parse `data` as `fmt`; anything unreadable raises DatasetRejected saying what it is.
    With `max_columns`, a file with more columns is refused from its header (CSV) or
    schema (Parquet) alone, before any row is loaded."""
    if not data.strip():
        raise DatasetRejected([_EMPTY])
    if fmt == "parquet":
        if max_columns is not None:
            _check_columns(_parquet_columns(data), max_columns)
        return _read_parquet(data)
    if data.startswith(_PARQUET_MAGIC):
        raise DatasetRejected(['the file is Parquet, not CSV: send it with "format": "parquet"'])
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DatasetRejected(
            [f"the file is not CSV: it is not UTF-8 text (byte {error.start} is invalid)"]
        ) from None
    if max_columns is not None:
        _check_columns(len(_parse_csv(data, nrows=0).columns), max_columns)
    return _parse_csv(data)


def _parse_csv(data: bytes, **options: Any) -> pd.DataFrame:
    try:
        return pd.read_csv(io.BytesIO(data), **options)
    except pd.errors.EmptyDataError:
        raise DatasetRejected([_EMPTY]) from None
    except (pd.errors.ParserError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise DatasetRejected([f"the file is not well-formed CSV: {first_line}"]) from None


def _check_columns(count: int, max_columns: int) -> None:
    if count > max_columns:
        raise DatasetRejected([
            f"the file has {count} columns, more than ingest's limit of {max_columns} "
            "(TROUPE_MAX_COLUMNS): leave out the columns the model does not need"
        ])


def _parquet_columns(data: bytes) -> int:
    """The number of columns in a Parquet file's schema, read from its footer only."""
    import pyarrow.parquet as pq

    if not data.startswith(_PARQUET_MAGIC):
        raise DatasetRejected(["the file is not Parquet (no PAR1 header): check \"format\""])
    try:
        return len(pq.read_schema(io.BytesIO(data)).names)
    except Exception as error:  # pyarrow raises a zoo of types for a damaged file
        raise DatasetRejected([f"the Parquet file cannot be read: {error}"]) from None


def _read_parquet(data: bytes) -> pd.DataFrame:
    if not data.startswith(_PARQUET_MAGIC):
        raise DatasetRejected(["the file is not Parquet (no PAR1 header): check \"format\""])
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as error:  # pyarrow raises a zoo of types for a damaged file
        raise DatasetRejected([f"the Parquet file cannot be read: {error}"]) from None


def check_frame(frame: pd.DataFrame, spec: DatasetSpec) -> CheckedDataset:
    """Apply every rule of `spec` to `frame`; raise DatasetRejected with all reasons found."""
    reasons: list[str] = []
    columns = [str(c) for c in frame.columns]
    if len(set(columns)) != len(columns):
        duplicated = sorted({c for c in columns if columns.count(c) > 1})
        reasons.append(f"duplicate column names: {', '.join(duplicated)}")
    features = spec.features if spec.features is not None else tuple(
        c for c in columns if c != spec.target
    )
    missing = [c for c in (spec.target, *features) if c not in columns]
    if missing:
        reasons.append(
            f"missing columns: {', '.join(missing)} (the file has: {', '.join(columns) or 'none'})"
        )
    if spec.target in features:
        reasons.append(f"the target {spec.target!r} is also listed as a feature")
    if not features:
        reasons.append("there are no feature columns besides the target")
    if len(frame) < spec.min_rows:
        reasons.append(f"{len(frame)} rows, fewer than the minimum of {spec.min_rows}")
    present = [c for c in features if c in columns]
    reasons.extend(_feature_problems(frame, present, spec.max_null_fraction))
    classes: tuple[Label, ...] = ()
    if spec.target in columns:
        labels, label_reasons = _labels(frame[spec.target])
        reasons.extend(label_reasons)
        if labels is not None:
            classes, class_reasons = _classes(labels, spec)
            reasons.extend(class_reasons)
            frame = frame.assign(**{spec.target: labels})
    if reasons:
        raise DatasetRejected(reasons)
    return CheckedDataset(
        frame=frame[[*features, spec.target]].reset_index(drop=True),
        target=spec.target,
        features=tuple(features),
        classes=classes,
    )


def _feature_problems(frame: pd.DataFrame, features: list[str], max_null: float) -> list[str]:
    problems = []
    for name in features:
        column = frame[name]
        if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)):
            problems.append(
                f"feature {name!r} is not numeric (dtype {column.dtype}): encode it as numbers"
            )
            continue
        null_fraction = float(column.isna().mean()) if len(column) else 0.0
        if null_fraction > max_null:
            problems.append(
                f"feature {name!r} is {null_fraction:.1%} null, more than the allowed "
                f"{max_null:.1%}"
            )
        elif len(column) and column.notna().sum() == 0:
            problems.append(f"feature {name!r} has no values")
    return problems


def _labels(column: pd.Series) -> tuple[pd.Series | None, list[str]]:
    """Labels as a classifier wants them: integral floats become ints, continuous is refused."""
    reasons = []
    unlabelled = int(column.isna().sum())
    if unlabelled:
        reasons.append(f"{unlabelled} rows have no label in {column.name!r}")
    known = column.dropna()
    if pd.api.types.is_float_dtype(known):
        if not np.all(np.mod(known.to_numpy(), 1) == 0):
            reasons.append(
                f"target {column.name!r} holds non-integral numbers: troupe trains "
                "classifiers, so labels must be classes (strings, integers or booleans)"
            )
            return None, reasons
        column = column.astype("Int64" if unlabelled else "int64")
    return column, reasons


def _classes(labels: pd.Series, spec: DatasetSpec) -> tuple[tuple[Label, ...], list[str]]:
    observed = sorted((_builtin(v) for v in labels.dropna().unique()), key=str)
    if spec.classes is not None:
        # Compare by text: a CSV reads "1" as the integer 1, a producer may declare either.
        declared = {str(c) for c in spec.classes}
        unexpected = [v for v in observed if str(v) not in declared]
        if unexpected:
            shown = ", ".join(repr(v) for v in unexpected[:10])
            return (), [
                f"labels not among the declared classes: {shown} "
                f"(declared: {', '.join(repr(c) for c in spec.classes)})"
            ]
        return tuple(spec.classes), []
    if len(observed) < 2:
        return (), [f"the target has {len(observed)} distinct label(s); a classifier needs 2"]
    if len(observed) > spec.max_classes:
        return (), [
            f"the target has {len(observed)} distinct labels, more than {spec.max_classes}: "
            "is it a continuous value? Declare \"classes\" if it really is a class label"
        ]
    return tuple(observed), []


def _builtin(value: Any) -> Label:
    """numpy scalars to the JSON-friendly Python value."""
    plain = value.item() if hasattr(value, "item") else value
    if isinstance(plain, bool | int | str):
        return plain
    return str(plain)


def baseline_stats(dataset: CheckedDataset, dataset_id: str, *, bins: int = 10) -> dict[str, Any]:
    """The baseline statistics document (shared format) the predictor measures drift against."""
    features: dict[str, Any] = {}
    for name in dataset.features:
        values = dataset.frame[name].astype(float).to_numpy()
        known = values[~np.isnan(values)]
        baseline = baseline_bins(known, bins=bins)
        features[name] = {
            "kind": "numeric",
            **baseline.to_json(),
            "null_fraction": float(1 - known.size / values.size) if values.size else 0.0,
            "mean": _finite(np.mean(known)),
            "std": _finite(np.std(known)),
        }
    return {
        "dataset_id": dataset_id,
        "rows": dataset.rows,
        "target": dataset.target,
        "classes": list(dataset.classes),
        "features": features,
    }


def _finite(value: float) -> float:
    number = float(value)
    return number if math.isfinite(number) else 0.0
