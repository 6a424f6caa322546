"""Judging a candidate model against the champion: one metric, a tolerance and a floor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .spec import METRICS

if TYPE_CHECKING:
    import pandas as pd


class EvaluationError(ValueError):
    """A model cannot be scored as asked; the message says why."""


@dataclass(frozen=True)
class Verdict:
    approved: bool
    reason: str


def score(
    model: Any, frame: pd.DataFrame, *, features: Sequence[str], target: str, metric: str
) -> float:
    """`metric` of `model` on `frame` (held-out rows), or EvaluationError when it cannot be."""
    if metric not in METRICS:
        raise EvaluationError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise EvaluationError(f"the evaluation data lacks the model's features {missing}")
    from .training import classification_metrics  # scikit-learn: on the first score only

    try:
        metrics = classification_metrics(model, frame, features, target)
    except (ValueError, TypeError, AttributeError) as error:
        raise EvaluationError(f"the model cannot be scored on this data: {error}") from None
    if metric not in metrics:
        raise EvaluationError(
            f"{metric} is defined only for a binary task whose held-out rows hold both classes"
        )
    return metrics[metric]


def decide(
    metric: str,
    candidate: float,
    champion: float | None,
    *,
    tolerance: float,
    floor: float,
) -> Verdict:
    """Approve when the candidate reaches the floor and is no worse than the champion by
    more than `tolerance` (no champion: the floor alone decides)."""
    if candidate < floor:
        return Verdict(False, f"{metric} {candidate:.4f} is below the floor {floor:.4f}")
    if champion is not None and candidate < champion - tolerance:
        return Verdict(
            False,
            f"{metric} {candidate:.4f} is worse than the champion's {champion:.4f} by more "
            f"than the tolerance {tolerance:.4f}",
        )
    if champion is None:
        return Verdict(
            True, f"{metric} {candidate:.4f} reaches the floor {floor:.4f}; no champion yet"
        )
    return Verdict(
        True,
        f"{metric} {candidate:.4f} is within {tolerance:.4f} of the champion's {champion:.4f} "
        f"or better, and reaches the floor {floor:.4f}",
    )
