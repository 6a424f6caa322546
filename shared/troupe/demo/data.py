"""Seeded synthetic classification data whose concept drifts on demand, as a scenario says.

Before the drift, the label follows the reference rule of troupe.ml.scenarios; once
`drifted` is set, rows come from the scenario's drifted concept: for `abrupt` the rule's
main weights flip and the features shift (a model trained before is then wrong most of
the time, and one retrained on post-drift batches recovers), for `moderate` the rule
turns enough to cost about 10 points, for `covariate` only the inputs move, and for
`gradual` each row is drifted with a probability that rises over `gradual_width` rows.
`none` never drifts. The demo, the benchmarks and the detector tests share these
concepts, so a live run and an offline one see the same data.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np

from troupe.demo import LIVE_SCENARIOS
from troupe.ml.scenarios import FEATURES, TARGET, ScenarioSpec, concepts_for

__all__ = ["FEATURES", "LIVE_SCENARIOS", "TARGET", "DriftingSource"]


@dataclass
class DriftingSource:
    seed: int = 7
    drifted: bool = False
    scenario: str = "abrupt"
    gradual_width: int = 2000
    _rng: np.random.Generator = field(init=False)
    _drifted_rows: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.scenario not in LIVE_SCENARIOS:
            raise ValueError(f"scenario {self.scenario!r} cannot be played live: use one of "
                             f"{', '.join(LIVE_SCENARIOS)}")
        self._rng = np.random.default_rng(self.seed)
        self._before, self._after = concepts_for(ScenarioSpec(name=self.scenario))

    def sample(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.drifted:
            return self._before.sample(self._rng, rows)
        if self.scenario != "gradual":
            return self._after.sample(self._rng, rows)
        position = self._drifted_rows + np.arange(1, rows + 1)
        self._drifted_rows += rows
        late = self._rng.random(rows) < np.clip(position / self.gradual_width, 0.0, 1.0)
        x, y = self._before.sample(self._rng, rows)
        if late.any():
            x[late], y[late] = self._after.sample(self._rng, int(late.sum()))
        return x, y

    def batch_csv(self, rows: int) -> bytes:
        x, y = self.sample(rows)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([*FEATURES, TARGET])
        for features, label in zip(x, y, strict=True):
            writer.writerow([*(f"{v:.5f}" for v in features), int(label)])
        return out.getvalue().encode()
