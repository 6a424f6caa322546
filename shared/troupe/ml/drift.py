"""Population Stability Index over quantile bins, the drift measure ingest and predictor share.

Ingest cuts each numeric feature of a validated dataset into quantile bins and stores the
cut points and the share of rows in each bin (the baseline). The predictor counts the
values it is asked about into the same bins and reports PSI against that baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# A bin that is empty on either side would make PSI infinite; floor shares at this value.
_EPSILON = 1e-4


@dataclass(frozen=True)
class FeatureBaseline:
    edges: tuple[float, ...]  # the inner cut points; len(edges) + 1 bins
    fractions: tuple[float, ...]  # share of baseline rows per bin; sums to 1
    # How many values the fractions were counted from, so that a test can weigh the
    # baseline's own sampling noise; 0 when unknown (baselines written before it was kept).
    rows: int = 0

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"edges": list(self.edges), "fractions": list(self.fractions)}
        return doc | {"rows": self.rows} if self.rows else doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FeatureBaseline:
        return cls(tuple(float(e) for e in doc["edges"]), tuple(float(f) for f in doc["fractions"]),
                   int(doc.get("rows", 0)))

    def bin_counts(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """How many of `values` fall in each bin (NaNs are left out)."""
        array = np.asarray(values, dtype=float)
        array = array[~np.isnan(array)]
        indices = np.searchsorted(np.asarray(self.edges), array, side="right")
        return np.bincount(indices, minlength=len(self.edges) + 1)


def baseline_bins(values: Sequence[float] | np.ndarray, bins: int = 10) -> FeatureBaseline:
    """Quantile bins of a numeric column; duplicate cut points (discrete data) are merged."""
    array = np.asarray(values, dtype=float)
    array = array[~np.isnan(array)]
    if array.size == 0:
        raise ValueError("cannot compute a baseline of a column with no numeric values")
    quantiles = np.quantile(array, np.linspace(0, 1, bins + 1)[1:-1])
    edges = tuple(float(q) for q in np.unique(quantiles))
    baseline = FeatureBaseline(edges, ())
    counts = baseline.bin_counts(array)
    return FeatureBaseline(edges, tuple(float(c) for c in counts / counts.sum()),
                           int(counts.sum()))


def psi(baseline: FeatureBaseline, counts: Sequence[int] | np.ndarray) -> float:
    """PSI of observed bin counts against the baseline: sum((a - e) * ln(a / e)).

    By the usual reading, below 0.1 is stable, 0.1-0.25 a moderate shift, above 0.25 a
    significant one.
    """
    observed = np.asarray(counts, dtype=float)
    if observed.sum() == 0:
        return 0.0
    actual = np.clip(observed / observed.sum(), _EPSILON, None)
    expected = np.clip(np.asarray(baseline.fractions, dtype=float), _EPSILON, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
