"""Training, evaluation and drift statistics, on scikit-learn.

Pure functions over bytes, pandas frames and scikit-learn pipelines; only `catalog` touches
the store. The functions ingest, trainer and evaluator are thin layers over these.
"""

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

__all__ = [
    "ESTIMATORS", "FORMATS", "METRICS", "SUFFIXES", "CheckedDataset", "DatasetRejected",
    "DatasetSpec", "EvaluationError", "Holdout", "Label", "TrainedModel", "TrainingError",
    "Verdict", "baseline_stats", "build_pipeline", "check_frame", "classification_metrics",
    "decide", "format_of_uri", "holdout_split", "read_frame", "score", "train",
]
