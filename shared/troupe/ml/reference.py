"""A model version's reference: what its drift detectors compare the live stream with.

Two numbers per version come from the lifecycle, not from a configured threshold:

- the reference feature distributions, quantile bins of the rows the trainer fitted and
  scored the model on, with their row counts; the trainer writes them next to the model
  (`references/<model>/<version>.json`) and names them in the lineage (`reference_uri`);
  the predictor counts live inputs into the same bins, and the monitor tests those counts;
- the expected accuracy, the evaluator's held-out score with the number of held-out rows,
  recorded under `evaluations/<model>/<version>.json`; when the evaluator judged on another
  metric, its held-out accuracy, and for a version it never saw, the trainer's.

Both are written once per version and never change, so the monitor reads them from the
store when it first meets a version, while the counts that do change every second reach
it through the predictor's Prometheus counters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from troupe.store import Store, StoreError

if TYPE_CHECKING:
    import pandas as pd

    from .drift import FeatureBaseline


def reference_key(model: str, version: str) -> str:
    return f"references/{model}/{version}.json"


def evaluation_key(model: str, version: str) -> str:
    return f"evaluations/{model}/{version}.json"


def reference_distributions(frames: Sequence[pd.DataFrame], features: Sequence[str],
                            bins: int = 10) -> dict[str, Any]:
    """The reference document of the numeric `features` over all rows of `frames`."""
    # Here, not at the top: the monitor reads references and its image has no pandas; a
    # function that names only the keys here does not load it either.
    import pandas as pd

    from .drift import baseline_bins

    rows = pd.concat([frame[list(features)] for frame in frames], ignore_index=True)
    distributions = {}
    for name in features:
        if not pd.api.types.is_numeric_dtype(rows[name]) or rows[name].notna().sum() == 0:
            continue  # categorical or empty: no quantile bins to compare
        distributions[name] = baseline_bins(rows[name].to_numpy(dtype=float), bins).to_json()
    return {"rows": len(rows), "features": distributions}


def read_distributions(store: Store, lineage: Mapping[str, Any],
                       features: Sequence[str]) -> dict[str, FeatureBaseline]:
    """The reference bins of a version: the trainer's, or the newest dataset's baseline
    for versions trained before references were kept; {} when neither can be read."""
    from .drift import FeatureBaseline  # numpy: loaded with the first model, not at import

    for key in ("reference_uri", "stats_uri"):
        uri = lineage.get(key)
        if not uri:
            continue
        try:
            doc = store.read_json(str(uri))
        except (StoreError, ValueError):
            continue  # drift detection is an extra; serving must not depend on it
        found = {}
        for name in features:
            entry = doc.get("features", {}).get(name)
            if (isinstance(entry, dict) and entry.get("kind", "numeric") == "numeric"
                    and "edges" in entry):
                found[name] = FeatureBaseline.from_json(entry)
        if found:
            return found
    return {}


@dataclass(frozen=True)
class ExpectedAccuracy:
    accuracy: float
    rows: int  # held-out rows it was measured on
    source: str  # evaluator | trainer


def expected_accuracy(store: Store, model: str, version: str) -> ExpectedAccuracy | None:
    """The version's held-out accuracy, or None when the lifecycle never measured it."""
    try:
        record = store.read_json(evaluation_key(model, version), default=None)
    except (StoreError, ValueError):
        record = None
    if isinstance(record, dict):
        if record.get("expected_accuracy") is not None:
            return ExpectedAccuracy(float(record["expected_accuracy"]),
                                    int(record.get("eval_rows") or 0), "evaluator")
        if record.get("metric") == "accuracy" and record.get("candidate_score") is not None:
            return ExpectedAccuracy(float(record["candidate_score"]),
                                    int(record.get("eval_rows") or 0), "evaluator")
    try:
        registered = store.registry.get(model, version)
    except StoreError:
        return None
    if "accuracy" not in registered.metrics:
        return None
    return ExpectedAccuracy(registered.metrics["accuracy"],
                            int(registered.lineage.get("rows_test") or 0), "trainer")
