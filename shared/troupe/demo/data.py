"""Seeded synthetic classification data whose concept drifts on demand.

Before the drift, the label follows one linear rule; after it, the rule's main weights
flip and the features shift a little. A model trained before the drift is then wrong
about half the time, which is what the monitor must notice, and a model retrained on
post-drift batches recovers.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np

FEATURES = ("f1", "f2", "f3", "f4")
TARGET = "label"


@dataclass
class DriftingSource:
    seed: int = 7
    drifted: bool = False
    _rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    @property
    def weights(self) -> np.ndarray:
        base = np.array([2.0, -1.5, 1.0, 0.5])
        return base * np.array([-1.0, -1.0, 1.0, 1.0]) if self.drifted else base

    def sample(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        shift = 0.75 if self.drifted else 0.0
        x = self._rng.normal(loc=shift, scale=1.0, size=(rows, len(FEATURES)))
        noise = self._rng.normal(scale=0.5, size=rows)
        y = ((x - shift) @ self.weights + noise > 0).astype(int)
        return x, y

    def batch_csv(self, rows: int) -> bytes:
        x, y = self.sample(rows)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([*FEATURES, TARGET])
        for features, label in zip(x, y, strict=True):
            writer.writerow([*(f"{v:.5f}" for v in features), int(label)])
        return out.getvalue().encode()
