"""Training, evaluation and drift statistics, on scikit-learn.

Pure functions over bytes, pandas frames and scikit-learn pipelines; only `catalog` touches
the store. The functions ingest, trainer and evaluator are thin layers over these.

The names below load on first use (PEP 562), not with the package: the monitor imports
`troupe.ml.detectors`, and its image carries numpy and scipy but neither pandas nor
scikit-learn, which `dataset`, `evaluation` and `training` import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .dataset import (
        FORMATS,
        SUFFIXES,
        CheckedDataset,
        DatasetRejected,
        DatasetSpec,
        Label,
        baseline_stats,
        check_frame,
        format_of_uri,
        read_frame,
    )
    from .evaluation import EvaluationError, Verdict, decide, score
    from .training import (
        ESTIMATORS,
        METRICS,
        Holdout,
        TrainedModel,
        TrainingError,
        build_pipeline,
        classification_metrics,
        holdout_split,
        train,
    )

_MODULE_OF: Final[dict[str, str]] = {
    **dict.fromkeys(("FORMATS", "SUFFIXES", "CheckedDataset", "DatasetRejected", "DatasetSpec",
                     "Label", "baseline_stats", "check_frame", "format_of_uri", "read_frame"),
                    "dataset"),
    **dict.fromkeys(("EvaluationError", "Verdict", "decide", "score"), "evaluation"),
    **dict.fromkeys(("ESTIMATORS", "METRICS", "Holdout", "TrainedModel", "TrainingError",
                     "build_pipeline", "classification_metrics", "holdout_split", "train"),
                    "training"),
}

__all__ = [
    "ESTIMATORS", "FORMATS", "METRICS", "SUFFIXES", "CheckedDataset", "DatasetRejected",
    "DatasetSpec", "EvaluationError", "Holdout", "Label", "TrainedModel", "TrainingError",
    "Verdict", "baseline_stats", "build_pipeline", "check_frame", "classification_metrics",
    "decide", "format_of_uri", "holdout_split", "read_frame", "score", "train",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
