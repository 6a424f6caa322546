"""predictor: ground-truth feedback, taken only for real predictions, and counted once.

Feedback moves the accuracy the monitor reads, and so canary promotion, rollback and
retraining: it is the one input from outside the cluster that steers the loop. So:
- an id is taken only if a predictor holding TROUPE_FEEDBACK_KEY signed it (there is no
  unsigned mode), and only within `feedback_ttl_seconds` of the prediction;
- it must name the model served here and a version the registry holds for it, so the
  `model_version` label of the feedback series never takes a value a client made up;
- it is counted once across every instance and revision: the first label claims the id in
  the store (`create_json`, atomic), and the record expires with the id. Expired records
  are swept by the predictor itself as it takes feedback (troupe.store.Compactor).

(Its name is unique across function folders, as tests import several functions in one
process.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final

import prediction_ids
from predictor_serving import (
    BadRequestError,
    DuplicateFeedbackError,
    FeedbackUnavailableError,
    LateFeedbackError,
    Predictor,
    ServedModel,
    UnknownPredictionError,
    same_label,
)
from troupe.store import EXPIRES_AT, Compactor, NotFoundError, Store, StoreError, entry_key
from troupe.store import sweep_interval as compaction_interval

FEEDBACK_FOLDER: Final = "feedback"
# The instances' clocks disagree by seconds: the record of a counted id outlives the id's
# own deadline by this much, so that no instance with a slower clock takes it again.
_CLOCK_SKEW_SECONDS: Final = 300.0
_SHAPE: Final = 'the body must be a JSON object {"id": "<id from :predict>", "label": <true class>}'


class FeedbackDesk:
    """Takes `:feedback` requests for the model `predictor` serves."""

    def __init__(self, predictor: Predictor, clock: Callable[[], float] = time.time) -> None:
        self._predictor = predictor
        self._settings = predictor.settings
        self._key = predictor.settings.feedback_key.encode()
        self._clock = clock
        self._lock = threading.Lock()
        # Versions found in the registry: they stay there, so one look each is enough.
        self._registered: set[str] = set()
        self._compactor: Compactor | None = None

    def take(self, name: str, body: Any) -> dict[str, Any]:
        model = self._predictor.serving(name)
        store = self._predictor.store
        if not self._key or store is None:
            raise FeedbackUnavailableError(
                "feedback is off: this predictor has no TROUPE_FEEDBACK_KEY to sign "
                "prediction ids with; create the troupe-feedback Secret (README, Deploy to a "
                "cluster), or run under `troupe up`, which makes a key for each run"
            )
        if not isinstance(body, dict) or "label" not in body:
            raise BadRequestError(_SHAPE)
        prediction_id, label = body.get("id"), body["label"]
        if not isinstance(prediction_id, str):
            raise BadRequestError(_SHAPE)
        made = self._decode(prediction_id)
        self._check_served(model, made, store)
        self._check_in_time(made)
        if model.classes and not any(same_label(label, c) for c in model.classes):
            raise BadRequestError(
                f"label {label!r} is not one of the model's classes {list(model.classes)}"
            )
        self._count_once(store, model, prediction_id, made)
        correct = same_label(made.prediction, label)
        # Counted for the version that made the prediction, which may be another revision.
        metrics = self._predictor.metrics
        metrics.labeled.labels(model.name, made.version).inc()
        if correct:
            metrics.correct.labels(model.name, made.version).inc()
        return {"id": prediction_id, "prediction": made.prediction, "label": label,
                "correct": correct}

    def _decode(self, prediction_id: str) -> prediction_ids.PredictionRef:
        try:
            return prediction_ids.decode(prediction_id, self._key)
        except prediction_ids.MalformedPredictionIdError as error:
            raise BadRequestError(f"the id is not an id from :predict: {error}") from None
        except prediction_ids.ForgedPredictionIdError as error:
            raise UnknownPredictionError(
                f"{prediction_id!r} is not an id from :predict ({error})"
            ) from None

    def _check_served(self, model: ServedModel, made: prediction_ids.PredictionRef,
                      store: Store) -> None:
        if made.model != model.name:
            raise UnknownPredictionError(
                f"the id is a prediction of model {made.model!r}, not {model.name!r}: send "
                f"its feedback to /v1/models/{made.model}:feedback"
            )
        if made.version == model.version or made.version in self._registered:
            return
        try:
            store.registry.get(model.name, made.version)
        except NotFoundError:
            raise UnknownPredictionError(
                f"the id names version {made.version!r}, which the registry does not hold "
                f"for model {model.name!r}; feedback is taken for its versions only"
            ) from None
        except StoreError as error:
            raise FeedbackUnavailableError(
                f"the registry could not be read ({error}); send the feedback again later"
            ) from None
        with self._lock:
            self._registered.add(made.version)

    def _check_in_time(self, made: prediction_ids.PredictionRef) -> None:
        age = self._clock() - made.issued_at
        if age > self._settings.feedback_ttl_seconds:
            raise LateFeedbackError(
                f"the prediction was made {age:.0f} s ago; feedback is taken for "
                f"{self._settings.feedback_ttl_seconds:.0f} s (TROUPE_FEEDBACK_TTL_SECONDS)"
            )

    def _count_once(self, store: Store, model: ServedModel, prediction_id: str,
                    made: prediction_ids.PredictionRef) -> None:
        record = {"model": model.name, "id": prediction_id,
                  EXPIRES_AT: made.issued_at + self._settings.feedback_ttl_seconds
                  + _CLOCK_SKEW_SECONDS}
        try:
            # Not fsynced: it would cost each label milliseconds, and a record forgotten in
            # an operating-system crash lets that one id be counted twice, no more.
            first = store.create_json(entry_key(FEEDBACK_FOLDER, model.name, prediction_id),
                                      record, durable=False)
        except StoreError as error:
            raise FeedbackUnavailableError(
                f"the feedback could not be recorded ({error}); send it again later"
            ) from None
        self._compactor_for(store).sweep_if_due()
        if not first:
            raise DuplicateFeedbackError(
                f"feedback for prediction {prediction_id!r} was already recorded; each "
                "prediction takes one label"
            )

    def _compactor_for(self, store: Store) -> Compactor:
        if self._compactor is None:
            with self._lock:
                if self._compactor is None:
                    self._compactor = Compactor(
                        store, FEEDBACK_FOLDER,
                        every_seconds=compaction_interval(self._settings.feedback_ttl_seconds))
        return self._compactor
