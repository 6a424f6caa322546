"""Judging a canary by a statistical test: promote, roll back, or keep waiting.

A candidate serving a share of the traffic beside the champion is compared on the
labelled predictions each has made since the canary started. Raw accuracies after a fixed
number of labels guard against neither error: a worse candidate promoted by luck, or a
good one rolled back by it. So:

- the difference d = candidate accuracy - champion accuracy gets a one-sided interval at
  level alpha on each side (Agresti-Caffo: one success and one failure added to each
  side, which keeps the interval honest near 0% and 100%);
- **promote** when the lower bound is above -margin: the candidate is shown to be no worse
  than the champion by more than the margin (a non-inferiority test at alpha);
- **roll back** when the upper bound is below -margin: it is shown to be worse by more;
- otherwise **wait**, up to TROUPE_CANARY_MAX_WAIT_SECONDS, then roll back: a candidate
  that cannot show it is good enough in that time does not get the traffic.

No decision is taken before each side has the minimum feedback from a power calculation:
the labels per side for which a candidate exactly as accurate as expected (its held-out
score) would be shown non-inferior with probability TROUPE_CANARY_POWER,
n = (z_{1-alpha} + z_{power})^2 * 2 p (1 - p) / margin^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Final, Literal

from troupe.function.settings import Settings, SettingsError

PROMOTE: Final = "promote"
ROLL_BACK: Final = "roll-back"
WAIT: Final = "wait"
Outcome = Literal["promote", "roll-back", "wait"]
# Below this the normal approximation behind the interval is not worth trusting.
_FLOOR_PER_SIDE: Final = 30


@dataclass(frozen=True)
class CanarySettings(Settings):
    """TROUPE_CANARY_MARGIN, TROUPE_CANARY_ALPHA, TROUPE_CANARY_POWER,
    TROUPE_CANARY_MAX_WAIT_SECONDS."""

    canary_margin: float = 0.05  # the candidate may be this much less accurate, no more
    canary_alpha: float = 0.05  # the chance of promoting a candidate worse than the margin
    canary_power: float = 0.8  # the chance of promoting one as good as expected
    canary_max_wait_seconds: float = 1800.0  # undecided this long: roll back

    def __post_init__(self) -> None:
        if not 0 < self.canary_margin < 1:
            raise SettingsError(f"TROUPE_CANARY_MARGIN={self.canary_margin} must lie between "
                                "0 and 1: it is a difference in accuracy, e.g. 0.05")
        for name, value in (("ALPHA", self.canary_alpha), ("POWER", self.canary_power)):
            if not 0 < value < 1:
                raise SettingsError(f"TROUPE_CANARY_{name}={value} must lie between 0 and 1")
        if self.canary_max_wait_seconds <= 0:
            raise SettingsError("TROUPE_CANARY_MAX_WAIT_SECONDS must be positive")


@dataclass(frozen=True)
class Side:
    """Labelled predictions of one version since the canary started."""

    labelled: int
    correct: int

    def __post_init__(self) -> None:
        if self.labelled < 0 or not 0 <= self.correct <= self.labelled:
            raise ValueError(f"{self.correct} correct of {self.labelled} is not a count")

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


@dataclass(frozen=True)
class CanaryDecision:
    outcome: Outcome
    reason: str
    estimate: float | None  # candidate accuracy - champion accuracy
    interval: tuple[float, float] | None  # the one-sided bounds at alpha, low and high
    candidate: Side
    champion: Side
    required_per_side: int
    margin: float
    alpha: float

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "estimate": self.estimate,
            "interval": list(self.interval) if self.interval else None,
            "candidate_labelled": self.candidate.labelled,
            "candidate_accuracy": self.candidate.accuracy,
            "champion_labelled": self.champion.labelled,
            "champion_accuracy": self.champion.accuracy,
            "required_per_side": self.required_per_side,
            "margin": self.margin,
            "alpha": self.alpha,
        }


def required_per_side(expected_accuracy: float, settings: CanarySettings) -> int:
    """Labels per side to show a candidate as good as expected non-inferior, with power."""
    p = min(max(expected_accuracy, 0.01), 0.99)
    normal = NormalDist()
    z = normal.inv_cdf(1 - settings.canary_alpha) + normal.inv_cdf(settings.canary_power)
    return max(_FLOOR_PER_SIDE, math.ceil(z * z * 2 * p * (1 - p) / settings.canary_margin ** 2))


def judge_canary(candidate: Side, champion: Side, *, expected_accuracy: float,
                 waited_seconds: float, settings: CanarySettings) -> CanaryDecision:
    """The decision on a canary now; see the module docstring for the rule."""
    needed = required_per_side(expected_accuracy, settings)
    margin, alpha = settings.canary_margin, settings.canary_alpha

    def decision(outcome: Outcome, reason: str, estimate: float | None = None,
                 interval: tuple[float, float] | None = None) -> CanaryDecision:
        return CanaryDecision(outcome, reason, estimate, interval, candidate, champion,
                              needed, margin, alpha)

    timed_out = waited_seconds >= settings.canary_max_wait_seconds
    if min(candidate.labelled, champion.labelled) < needed:
        why = (f"{candidate.labelled} and {champion.labelled} labelled predictions "
               f"(candidate, champion); {needed} per side are needed")
        if timed_out:
            return decision(ROLL_BACK, f"undecided after {waited_seconds:.0f}s: {why}")
        return decision(WAIT, why)
    estimate = (candidate.correct / candidate.labelled) - (champion.correct / champion.labelled)
    low, high = _bounds(candidate, champion, alpha)
    summary = (f"accuracy difference {estimate:+.4f}, one-sided {1 - alpha:.0%} bounds "
               f"[{low:+.4f}, {high:+.4f}], margin {margin}")
    if low > -margin:
        return decision(PROMOTE, f"not worse than the champion by the margin: {summary}",
                        estimate, (low, high))
    if high < -margin:
        return decision(ROLL_BACK, f"worse than the champion by more than the margin: "
                        f"{summary}", estimate, (low, high))
    if timed_out:
        return decision(ROLL_BACK, f"undecided after {waited_seconds:.0f}s: {summary}",
                        estimate, (low, high))
    return decision(WAIT, f"undecided: {summary}", estimate, (low, high))


def _bounds(candidate: Side, champion: Side, alpha: float) -> tuple[float, float]:
    """Agresti-Caffo bounds on the difference of accuracies, one-sided at alpha each."""
    p1 = (candidate.correct + 1) / (candidate.labelled + 2)
    p2 = (champion.correct + 1) / (champion.labelled + 2)
    spread = math.sqrt(p1 * (1 - p1) / (candidate.labelled + 2)
                       + p2 * (1 - p2) / (champion.labelled + 2))
    z = NormalDist().inv_cdf(1 - alpha)
    return p1 - p2 - z * spread, p1 - p2 + z * spread
