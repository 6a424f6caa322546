"""The canary test: promote, roll back or wait, on a statistical footing."""

from __future__ import annotations

import numpy as np
import pytest
from troupe.function.settings import SettingsError
from troupe.ml.canary import (
    PROMOTE,
    ROLL_BACK,
    WAIT,
    CanarySettings,
    Side,
    judge_canary,
    required_per_side,
)

SETTINGS = CanarySettings()  # margin 0.05, alpha 0.05, power 0.8


def judge(candidate: Side, champion: Side, waited: float = 60.0, expected: float = 0.94):
    return judge_canary(candidate, champion, expected_accuracy=expected,
                        waited_seconds=waited, settings=SETTINGS)


def test_the_minimum_feedback_comes_from_the_power_calculation() -> None:
    # (1.645 + 0.842)^2 * 2 * 0.94 * 0.06 / 0.05^2 = 279
    assert required_per_side(0.94, SETTINGS) == 279
    tighter = CanarySettings(canary_margin=0.02)
    assert required_per_side(0.94, tighter) > 6 * required_per_side(0.94, SETTINGS)
    assert required_per_side(0.7, SETTINGS) > required_per_side(0.94, SETTINGS)
    assert required_per_side(0.9999, SETTINGS) >= 30


def test_a_clearly_better_candidate_is_promoted() -> None:
    decision = judge(Side(300, 285), Side(300, 150))
    assert decision.outcome == PROMOTE
    assert decision.estimate == pytest.approx(0.45)
    low, high = decision.interval
    assert low < 0.45 < high and low > -0.05
    doc = decision.to_json()
    assert doc["candidate_labelled"] == 300 and doc["champion_labelled"] == 300
    assert doc["required_per_side"] == 279


def test_a_clearly_worse_candidate_is_rolled_back() -> None:
    decision = judge(Side(300, 150), Side(300, 285))
    assert decision.outcome == ROLL_BACK
    assert decision.interval[1] < -0.05
    assert "worse than the champion" in decision.reason


def test_an_equal_candidate_is_promoted_within_the_margin() -> None:
    decision = judge(Side(600, 564), Side(600, 564))
    assert decision.outcome == PROMOTE and decision.estimate == 0.0


def test_a_small_sample_waits_even_when_it_looks_good() -> None:
    decision = judge(Side(40, 40), Side(400, 200))
    assert decision.outcome == WAIT and decision.estimate is None
    assert "279 per side are needed" in decision.reason


def test_undecided_waits_then_rolls_back_at_the_limit() -> None:
    borderline = (Side(300, 267), Side(300, 282))  # -0.05: right on the margin
    assert judge(*borderline).outcome == WAIT
    late = judge(*borderline, waited=SETTINGS.canary_max_wait_seconds)
    assert late.outcome == ROLL_BACK and "undecided after 1800s" in late.reason
    starved = judge(Side(10, 10), Side(10, 10), waited=4000)
    assert starved.outcome == ROLL_BACK


def test_a_candidate_worse_by_the_margin_is_promoted_at_most_alpha_of_the_time() -> None:
    rng = np.random.default_rng(3)
    n = required_per_side(0.94, SETTINGS)
    trials = 2000
    candidate = rng.binomial(n, 0.89, size=trials)
    champion = rng.binomial(n, 0.94, size=trials)
    promoted = sum(judge(Side(n, int(a)), Side(n, int(b))).outcome == PROMOTE
                   for a, b in zip(candidate, champion, strict=True))
    assert promoted / trials <= SETTINGS.canary_alpha + 0.015


def test_a_candidate_as_good_as_expected_is_promoted_with_the_planned_power() -> None:
    rng = np.random.default_rng(4)
    n = required_per_side(0.94, SETTINGS)
    trials = 2000
    candidate = rng.binomial(n, 0.94, size=trials)
    champion = rng.binomial(n, 0.94, size=trials)
    promoted = sum(judge(Side(n, int(a)), Side(n, int(b))).outcome == PROMOTE
                   for a, b in zip(candidate, champion, strict=True))
    assert promoted / trials >= SETTINGS.canary_power - 0.03


def test_bad_settings_and_counts_say_what_is_wrong() -> None:
    with pytest.raises(SettingsError, match="TROUPE_CANARY_ALPHA"):
        CanarySettings.from_env({"TROUPE_CANARY_ALPHA": "5"})
    with pytest.raises(ValueError, match="not a count"):
        Side(3, 4)
