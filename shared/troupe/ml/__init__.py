"""Training, evaluation and drift statistics, on scikit-learn.

Pure functions over bytes, pandas frames and scikit-learn pipelines; only `catalog` touches
the store. The functions ingest, trainer and evaluator are thin layers over these.

The numeric names below are loaded when first used (PEP 562): `from troupe.ml import
Holdout` does not import scikit-learn, `from troupe.ml import train` does. So a function
imports at start-up what every request needs (`spec`, `evaluation`), and numpy, pandas
and scikit-learn with the first event that needs them. The monitor, which imports
`troupe.ml.detectors`, has an image with numpy and scipy but neither pandas nor
scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

from .evaluation import EvaluationError, Verdict, decide, score
from .spec import (
    ESTIMATORS,
    FORMATS,
    METRICS,
    SUFFIXES,
    DatasetRejected,
    DatasetSpec,
    Holdout,
    Label,
    TrainingError,
    format_of_uri,
)

if TYPE_CHECKING:
    from .dataset import CheckedDataset, baseline_stats, check_frame, read_frame
    from .training import (
        TrainedModel,
        build_pipeline,
        classification_metrics,
        holdout_split,
        train,
    )

# Name -> the submodule that defines it, imported on first access.
_LAZY: Final = {
    **dict.fromkeys(("CheckedDataset", "baseline_stats", "check_frame", "read_frame"),
                    "dataset"),
    **dict.fromkeys(("TrainedModel", "build_pipeline", "classification_metrics",
                     "holdout_split", "train"), "training"),
}

__all__ = [
    "ESTIMATORS", "FORMATS", "METRICS", "SUFFIXES", "CheckedDataset", "DatasetRejected",
    "DatasetSpec", "EvaluationError", "Holdout", "Label", "TrainedModel", "TrainingError",
    "Verdict", "baseline_stats", "build_pipeline", "check_frame", "classification_metrics",
    "decide", "format_of_uri", "holdout_split", "read_frame", "score", "train",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
