"""Seeded drift scenarios: labelled streams whose drift onsets are known.

A detector can only be judged on streams where the truth is known: when the drift began,
whether it was a change of the rule (concept) or of the inputs only (covariate), and when
each label reached the monitor. The benchmark, the detector tests and `troupe demo
--scenario` all draw from here, so they judge the same streams.

Every concept labels four standard-normal features with a noisy linear rule,
`label = ((x - centre) . weights + noise > 0)`, the rule of the demo's data. The reference
concept is right about 94% of the time at best (the noise), so a model trained on it is
expected to score about that. The scenarios:

- ``none``: the reference concept throughout;
- ``abrupt``: at the onset, the rule's main weights flip and the inputs shift (the demo's
  drift); a reference model is then right about half the time;
- ``moderate``: at the onset, the rule turns by the angle that costs a reference model
  about 10 points of accuracy (worked out in closed form, see `turned`);
- ``gradual``: from the onset, each row comes from the abrupt drift's concept with a
  probability that rises linearly to 1 over ``gradual_width`` rows;
- ``covariate``: at the onset, the inputs move along a direction the rule ignores, so the
  features drift while every label keeps its rule (a reference model loses nothing);
- ``recurring``: A, then the abrupt drift's concept B from the onset for ``period`` rows,
  then A again.

Labels may arrive late: the label of prediction i reaches the monitor once prediction
``i + label_delay`` (plus a seeded jitter) has been made, so a detector sees labels in the
order they arrive, not the order the predictions were made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

FEATURES: Final = ("f1", "f2", "f3", "f4")
TARGET: Final = "label"
NOISE: Final = 0.5  # standard deviation of the noise added to the rule's score
SCENARIOS: Final = ("none", "abrupt", "moderate", "gradual", "covariate", "recurring")
DriftKind = Literal["concept", "covariate"]

_BASE_WEIGHTS: Final = np.array([2.0, -1.5, 1.0, 0.5])
# Orthogonal to the base weights: moving the inputs along it changes no label.
_IGNORED_DIRECTION: Final = np.array([0.75, 1.0, 0.5, -1.0])


@dataclass(frozen=True)
class Concept:
    """A labelling rule and where its inputs lie."""

    name: str
    weights: tuple[float, ...]
    centre: tuple[float, ...]  # the rule is linear in (x - centre)
    mean: tuple[float, ...]  # where the inputs are centred

    def sample(self, rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(loc=self.mean, scale=1.0, size=(rows, len(FEATURES)))
        noise = rng.normal(scale=NOISE, size=rows)
        y = ((x - np.asarray(self.centre)) @ np.asarray(self.weights) + noise > 0).astype(int)
        return x, y


def _concept(name: str, weights: np.ndarray, centre: float | np.ndarray = 0.0,
             mean: float | np.ndarray = 0.0) -> Concept:
    size = len(FEATURES)

    def spread(value: float | np.ndarray) -> tuple[float, ...]:
        return tuple(float(v) for v in np.broadcast_to(value, (size,)))

    return Concept(name, spread(weights), spread(centre), spread(mean))


def turned(drop: float) -> Concept:
    """The reference rule turned so that a model of the reference loses `drop` accuracy.

    With Gaussian inputs, a model predicting sign(w0 . z) against labels
    sign(w1 . z + noise) is right with probability 1 - arccos(rho) / pi, where rho is the
    correlation of the two scores: cos(angle) * |w| / sqrt(|w|^2 + noise^2). Solving for
    the angle gives the rule whose reference accuracy is `drop` below the best one.
    """
    norm = float(np.linalg.norm(_BASE_WEIGHTS))
    fidelity = norm / math.hypot(norm, NOISE)
    best = 1 - math.acos(fidelity) / math.pi
    target = best - drop
    if not 0.5 < target < best:
        raise ValueError(f"an accuracy drop of {drop} is not reachable from {best:.3f}")
    angle = math.acos(math.cos(math.pi * (1 - target)) / fidelity)
    # Turn in the plane of w0 and a direction orthogonal to it, keeping |w|.
    across = np.array([0.6, 0.8, 0.0, 0.0]) * norm
    weights = math.cos(angle) * _BASE_WEIGHTS + math.sin(angle) * across
    return _concept(f"turned-{drop:g}", weights)


REFERENCE: Final = _concept("reference", _BASE_WEIGHTS)
FLIPPED: Final = _concept("flipped", _BASE_WEIGHTS * np.array([-1.0, -1.0, 1.0, 1.0]),
                          centre=0.75, mean=0.75)
SHIFTED_INPUTS: Final = _concept("shifted-inputs", _BASE_WEIGHTS, mean=_IGNORED_DIRECTION)


@dataclass(frozen=True)
class Drift:
    """A change in the stream: from row `onset` on (0-based), `kind` of drift to `to`."""

    onset: int
    kind: DriftKind
    to: str


@dataclass(frozen=True)
class Stream:
    """A scenario's rows in prediction order, and when each row's label arrives."""

    scenario: str
    x: np.ndarray  # (rows, features)
    y: np.ndarray  # (rows,) the true labels
    concept: tuple[str, ...]  # the concept each row was drawn from
    drifts: tuple[Drift, ...]
    # arrival[i]: how many predictions had been made when the label of row i arrived.
    arrival: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.y)

    def label_order(self) -> np.ndarray:
        """Row indices in the order their labels arrive (ties keep prediction order)."""
        return np.argsort(self.arrival, kind="stable")


@dataclass(frozen=True)
class ScenarioSpec:
    """How a scenario is generated; every number is in rows (predictions)."""

    name: str = "abrupt"
    rows: int = 10_000
    onset: int = 3_000
    gradual_width: int = 2_000
    period: int = 3_000  # recurring: rows spent in the other concept before returning
    moderate_drop: float = 0.10
    label_delay: int = 0  # predictions made before a row's label arrives
    label_jitter: int = 0  # plus a uniform 0..jitter, so labels can arrive out of order
    seed: int = 0

    def __post_init__(self) -> None:
        if self.name not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.name!r}: use one of {', '.join(SCENARIOS)}")
        if not 0 < self.onset < self.rows:
            raise ValueError(f"the onset ({self.onset}) must lie inside the {self.rows} rows")
        if self.gradual_width < 1 or self.period < 1:
            raise ValueError("gradual_width and period must be at least 1 row")
        if self.label_delay < 0 or self.label_jitter < 0:
            raise ValueError("label_delay and label_jitter cannot be negative")


def concepts_for(spec: ScenarioSpec) -> tuple[Concept, Concept]:
    """(before, after) the first drift of the scenario."""
    after = {"none": REFERENCE, "abrupt": FLIPPED, "moderate": turned(spec.moderate_drop),
             "gradual": FLIPPED, "covariate": SHIFTED_INPUTS, "recurring": FLIPPED}[spec.name]
    return REFERENCE, after


def generate(spec: ScenarioSpec) -> Stream:
    """The seeded stream of `spec`; the same spec always gives the same rows."""
    rng = np.random.default_rng(spec.seed)
    before, after = concepts_for(spec)
    position = np.arange(spec.rows)
    if spec.name == "none":
        drawn_after = np.zeros(spec.rows, dtype=bool)
    elif spec.name == "gradual":
        share = np.clip((position - spec.onset + 1) / spec.gradual_width, 0.0, 1.0)
        drawn_after = rng.random(spec.rows) < share
    elif spec.name == "recurring":
        drawn_after = (position >= spec.onset) & (position < spec.onset + spec.period)
    else:
        drawn_after = position >= spec.onset
    x = np.empty((spec.rows, len(FEATURES)))
    y = np.empty(spec.rows, dtype=int)
    for concept, mask in ((before, ~drawn_after), (after, drawn_after)):
        count = int(mask.sum())
        if count:
            x[mask], y[mask] = concept.sample(rng, count)
    names = tuple(after.name if drawn else before.name for drawn in drawn_after)
    jitter = rng.integers(0, spec.label_jitter + 1, size=spec.rows)
    arrival = position + 1 + spec.label_delay + jitter
    return Stream(spec.name, x, y, names, _drifts(spec, after), arrival)


def _drifts(spec: ScenarioSpec, after: Concept) -> tuple[Drift, ...]:
    if spec.name == "none":
        return ()
    kind: DriftKind = "covariate" if spec.name == "covariate" else "concept"
    first = Drift(spec.onset, kind, after.name)
    back = spec.onset + spec.period
    if spec.name == "recurring" and back < spec.rows:
        return (first, Drift(back, "concept", REFERENCE.name))
    return (first,)


def reference_sample(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the reference concept to train a model on, independent of any stream."""
    return REFERENCE.sample(np.random.default_rng([seed, 1]), rows)
