"""Synthetic classification datasets, for the demo and for tests that need real data.

`shift` moves every feature by that many standard deviations, which is how a demo makes
drift the predictor's PSI gauge can see.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification


def synthetic_frame(
    rows: int = 1000,
    *,
    features: int = 6,
    classes: int = 2,
    seed: int = 0,
    shift: float = 0.0,
    target: str = "label",
) -> pd.DataFrame:
    """A learnable table: numeric columns f0..f{n-1} and an integer label column."""
    inputs, labels = make_classification(
        n_samples=rows,
        n_features=features,
        n_informative=max(2, features // 2),
        n_redundant=min(1, features - max(2, features // 2)),
        n_classes=classes,
        class_sep=1.5,
        random_state=seed,
    )
    frame = pd.DataFrame(inputs + shift, columns=[f"f{i}" for i in range(features)])
    frame[target] = labels.astype(np.int64)
    return frame


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    text: str = frame.to_csv(index=False)
    return text.encode("utf-8")


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    data: bytes = buffer.getvalue()
    return data
