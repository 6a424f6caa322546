"""What a dataset and a training run are asked to be, and the errors that refuse them.

The dataset spec, the held-out split, the names of the estimators and metrics, and the
exceptions a handler catches: the part of `troupe.ml` that functions name at start-up.
It imports no numpy, pandas or scikit-learn, so a function loads those on the first event
that needs them (`dataset`, `training`), not before its first health probe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

Label = str | int | bool
Format = Literal["csv", "parquet"]
FORMATS: Final[tuple[str, ...]] = ("csv", "parquet")
SUFFIXES: Final[dict[str, str]] = {"csv": ".csv", "parquet": ".parquet"}

LOGISTIC_REGRESSION: Final = "logistic_regression"
HIST_GRADIENT_BOOSTING: Final = "hist_gradient_boosting"
RANDOM_FOREST: Final = "random_forest"
ESTIMATORS: Final[tuple[str, ...]] = (LOGISTIC_REGRESSION, HIST_GRADIENT_BOOSTING, RANDOM_FOREST)
# The metrics every model version carries; `f1` is macro-averaged over the classes, and
# `roc_auc` is present only when the task is binary.
METRICS: Final[tuple[str, ...]] = ("accuracy", "f1", "roc_auc")


class DatasetRejected(ValueError):
    """The dataset is unfit for training; `reasons` says every way in which."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("; ".join(self.reasons))


class TrainingError(ValueError):
    """Training cannot produce a model from this input; the message says what to change."""


@dataclass(frozen=True)
class DatasetSpec:
    """What a producer promises about a dataset (from data-arrived) plus ingest's limits."""

    target: str
    format: Format = "csv"
    features: tuple[str, ...] | None = None  # None: every column but the target
    classes: tuple[Label, ...] | None = None  # None: whatever labels occur
    min_rows: int = 50
    max_null_fraction: float = 0.1
    max_classes: int = 50  # more distinct labels than this looks like a regression target


@dataclass(frozen=True)
class Holdout:
    """How the held-out rows are chosen: a share of each dataset, by a seeded shuffle."""

    fraction: float = 0.2
    seed: int = 42

    def to_json(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "seed": self.seed}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Holdout:
        return cls(fraction=float(doc["fraction"]), seed=int(doc["seed"]))


def format_of_uri(uri: str) -> Format | None:
    """The format a file name implies (`.csv`, `.parquet`), or None."""
    lowered = uri.lower()
    if lowered.endswith(".parquet"):
        return "parquet"
    if lowered.endswith(".csv"):
        return "csv"
    return None
