"""predictor: one model version, served over the KServe V1 protocol, with feedback and drift.

The revision's environment names the model (TROUPE_MODEL_URI, TROUPE_MODEL_SHA256,
TROUPE_MODEL_VERSION); it is loaded once, after its checksum is verified. Each prediction
gets a signed id so that ground truth can be sent later (`:feedback`, taken in
predictor_feedback.py); the labeled/correct counters that feedback drives are what the
monitor turns into accuracy. Recent inputs are kept in a sliding window and compared with
the training data's baseline (PSI). Bodies are parsed by predictor_body.py, which counts
instances as it goes.

The HTTP routes live in handler.py; this module is the serving logic, free of Flask. (Its
name is unique across function folders, as tests import several functions in one process.)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import prediction_ids
from predictor_body import NotJSONError, TooManyInstancesError, parse_predict_body
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from troupe.function import Settings, SettingsError
from troupe.ml.drift import FeatureBaseline, psi
from troupe.ml.reference import read_distributions
from troupe.store import Store, StoreError

# Latency buckets for in-process scikit-learn scoring: sub-millisecond to seconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
NOT_JSON: Final = ('the body must be JSON (Content-Type: application/json), '
                   'e.g. {"instances": [[1.0, 2.0]]}')
# 32 characters of hex or base64 hold 128 bits or more: not guessable offline from ids.
MIN_FEEDBACK_KEY_LENGTH: Final = 32


@dataclass(frozen=True)
class PredictorSettings(Settings):
    model_name: str = "default"
    model_uri: str = ""
    model_sha256: str = ""
    model_version: str = ""
    # Signs prediction ids (from the troupe-feedback Secret); see prediction_ids.py. There
    # is no unsigned mode: without a key, predictions carry no ids and feedback is refused.
    feedback_key: str = ""
    # How long after a prediction its label is taken; the store remembers each counted
    # id that long (feedback/ in the store), so that it is counted once by any instance.
    feedback_ttl_seconds: float = 7 * 24 * 3600.0
    # Recent inputs per feature compared with the baseline, and how many are needed
    # before PSI means anything.
    drift_window: int = 500
    # PSI over k bins from n samples carries noise of about (k - 1) / n even without
    # drift: 200 keeps it near 0.05, well under the usual 0.25 alarm.
    drift_min_samples: int = 200
    max_instances: int = 1_000

    def __post_init__(self) -> None:
        if self.feedback_key and len(self.feedback_key) < MIN_FEEDBACK_KEY_LENGTH:
            raise SettingsError(
                f"TROUPE_FEEDBACK_KEY has {len(self.feedback_key)} characters; a signing key "
                f"needs at least {MIN_FEEDBACK_KEY_LENGTH} (e.g. `openssl rand -hex 32`)"
            )
        self.require_at_least("feedback_ttl_seconds", 1)
        self.require_at_least("max_instances", 1)


class PredictorError(Exception):
    """A request the predictor cannot serve; `status_code` is the HTTP answer."""

    status_code = 400


def _answered_with(status_code: int, name: str) -> type[PredictorError]:
    """A PredictorError answered with `status_code`, named for what went wrong."""
    return type(name, (PredictorError,), {"status_code": status_code})


BadRequestError = _answered_with(400, "BadRequestError")
UnknownModelError = _answered_with(404, "UnknownModelError")
UnknownPredictionError = _answered_with(404, "UnknownPredictionError")
DuplicateFeedbackError = _answered_with(409, "DuplicateFeedbackError")
LateFeedbackError = _answered_with(410, "LateFeedbackError")
ModelUnavailableError = _answered_with(503, "ModelUnavailableError")
# Feedback is off (no key), or the store could not record it: the client may retry later.
FeedbackUnavailableError = _answered_with(503, "FeedbackUnavailableError")


@dataclass(frozen=True)
class ServedModel:
    estimator: Any
    name: str
    version: str
    features: tuple[str, ...]  # empty when neither the registry nor the model names them
    n_features: int
    classes: tuple[Any, ...]
    baselines: Mapping[str, FeatureBaseline] = field(default_factory=dict)
    # Fitted on a DataFrame: it must be given one with the same column names.
    wants_frame: bool = False


def load_served_model(settings: PredictorSettings, store: Store) -> ServedModel:
    """Load and describe the configured model; StoreError or ValueError say what is wrong."""
    if not settings.model_sha256:
        raise ValueError(
            "TROUPE_MODEL_SHA256 is not set: models are only loaded after their checksum "
            "is verified, so the revision must name it with TROUPE_MODEL_URI"
        )
    estimator = store.load_model(settings.model_uri, settings.model_sha256)
    version = settings.model_version or "unknown"
    lineage: Mapping[str, Any] = {}
    if settings.model_version:
        try:
            lineage = store.registry.get(settings.model_name, settings.model_version).lineage
        except StoreError:
            lineage = {}  # served without lineage: no feature names from it, no drift
    names_in = getattr(estimator, "feature_names_in_", None)
    if names_in is not None:
        # Fitted on a DataFrame, it is given one per request: pandas loads now, with the
        # model, so that a ready predictor answers its first request as fast as the next.
        import pandas  # noqa: F401
    named = lineage.get("features") or (list(names_in) if names_in is not None else [])
    features = tuple(str(f) for f in named)
    n_features = len(features) or int(getattr(estimator, "n_features_in_", 0))
    classes = tuple(np.asarray(getattr(estimator, "classes_", ())).tolist())
    return ServedModel(
        estimator=estimator,
        name=settings.model_name,
        version=version,
        features=features,
        n_features=n_features,
        classes=classes,
        baselines=read_distributions(store, lineage, features),
        wants_frame=names_in is not None,
    )


class PredictorMetrics:
    """The predictor's Prometheus series, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("model", "model_version")
        self.predictions = Counter(
            "troupe_predictions", "Instances scored", labels, registry=self.registry
        )
        self.latency = Histogram(
            "troupe_prediction_latency_seconds", "Time to answer a predict request",
            labels, buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.labeled = Counter(
            "troupe_feedback_labeled", "Predictions that received a ground-truth label",
            labels, registry=self.registry,
        )
        self.correct = Counter(
            "troupe_feedback_correct", "Labeled predictions that were right",
            labels, registry=self.registry,
        )
        self.psi = Gauge(
            "troupe_feature_psi", "PSI of recent inputs against the training baseline",
            (*labels, "feature"), registry=self.registry,
        )
        # Inputs counted into the reference's quantile bins: the monitor's feature test
        # takes the counts of each tick from these counters.
        self.bins = Counter(
            "troupe_feature_bin", "Inputs per bin of the reference feature distribution",
            (*labels, "feature", "bin"), registry=self.registry,
        )

    def start_series(self, model: ServedModel) -> None:
        # Counters exist at 0 from the start, so increase() over a window that begins
        # before the first request is still measured from zero.
        for metric in (self.predictions, self.labeled, self.correct):
            metric.labels(model.name, model.version)
        self.latency.labels(model.name, model.version)


class Predictor:
    """Thread-safe serving state: the model and the drift windows."""

    def __init__(self, settings: PredictorSettings, store: Store | None) -> None:
        self.settings = settings
        self.metrics = PredictorMetrics()
        self.model: ServedModel | None = None
        # The store the model came from; feedback records its ids there.
        self.store: Store | None = None
        self.error: str | None = None
        self._lock = threading.Lock()
        self._key = settings.feedback_key.encode()
        self._windows: dict[str, deque[float]] = {}
        if not settings.model_uri:
            self.error = (
                "no model is configured: the deployer sets TROUPE_MODEL_URI, "
                "TROUPE_MODEL_SHA256 and TROUPE_MODEL_VERSION on the predictor revision"
            )
            return
        try:
            self.store = store if store is not None else Store.from_settings(settings)
            self.model = load_served_model(settings, self.store)
        except (StoreError, ValueError, OSError) as error:
            self.error = f"model {settings.model_uri} could not be loaded: {error}"
            return
        self.metrics.start_series(self.model)
        self._windows = {
            name: deque(maxlen=settings.drift_window) for name in self.model.baselines
        }

    @property
    def configured(self) -> bool:
        return bool(self.settings.model_uri)

    def serving(self, name: str) -> ServedModel:
        """The model behind /v1/models/<name>, or the error that explains why not."""
        if name != self.settings.model_name:
            raise UnknownModelError(
                f"model {name!r} is not served here: this predictor serves "
                f"/v1/models/{self.settings.model_name}"
            )
        if self.model is None:
            raise ModelUnavailableError(self.error or "the model is not loaded")
        return self.model

    def model_names(self) -> list[str]:
        """The models this predictor serves: the configured one, loaded or not (its status
        says which), or none when the revision names no model."""
        return [self.settings.model_name] if self.configured else []

    def status(self, name: str) -> dict[str, Any]:
        if name != self.settings.model_name:
            self.serving(name)  # raises UnknownModelError, naming the model served here
        return {
            "name": self.settings.model_name,
            "ready": self.model is not None,
            "version": self.model.version if self.model else self.settings.model_version or None,
        }

    # -- predict -----------------------------------------------------------------------
    def predict(self, name: str, body: bytes) -> dict[str, Any]:
        """Score the instances in the JSON `body` (KServe V1: {"instances": [...]})."""
        model = self.serving(name)
        started = time.perf_counter()
        try:
            parsed = parse_predict_body(body, self.settings.max_instances)
        except TooManyInstancesError as error:
            raise BadRequestError(str(error)) from None
        except NotJSONError as error:
            raise BadRequestError(f"{NOT_JSON} ({error})") from None
        rows = self._rows(model, parsed)
        try:
            predictions = np.asarray(model.estimator.predict(self._matrix(model, rows))).tolist()
        except (ValueError, TypeError) as error:
            raise BadRequestError(f"the model could not score these instances: {error}") from None
        with self._lock:
            self._observe_inputs(model, rows)
        self.metrics.predictions.labels(model.name, model.version).inc(len(predictions))
        self.metrics.latency.labels(model.name, model.version).observe(
            time.perf_counter() - started
        )
        if not self._key:
            return {"predictions": predictions}  # no ids: feedback is off without a key
        issued_at = time.time()
        ids = [prediction_ids.encode(
            prediction_ids.PredictionRef(model.name, model.version, p, issued_at), self._key)
            for p in predictions]
        return {"predictions": predictions, "ids": ids}

    def _rows(self, model: ServedModel, body: Any) -> list[list[Any]]:
        instances = body.get("instances") if isinstance(body, dict) else None
        if not isinstance(instances, list) or not instances:
            raise BadRequestError(
                'the body must be a JSON object {"instances": [...]} with at least one '
                f"instance; each is {self._expected(model)}"
            )
        if len(instances) > self.settings.max_instances:
            raise BadRequestError(
                f"{len(instances)} instances in one request; at most "
                f"{self.settings.max_instances} are accepted, send several requests"
            )
        return [self._row(model, index, instance) for index, instance in enumerate(instances)]

    def _row(self, model: ServedModel, index: int, instance: Any) -> list[Any]:
        if isinstance(instance, dict):
            if not model.features:
                raise BadRequestError(
                    f"instance {index} is an object, but this model's feature names are "
                    f"unknown: send {self._expected(model)}"
                )
            missing = [f for f in model.features if f not in instance]
            extra = sorted(set(instance) - set(model.features))
            if missing or extra:
                raise BadRequestError(
                    f"instance {index} does not match the model's features "
                    f"(missing: {missing or 'none'}; unexpected: {extra or 'none'}); "
                    f"expected {self._expected(model)}"
                )
            row = [instance[f] for f in model.features]
        elif isinstance(instance, list):
            if model.n_features and len(instance) != model.n_features:
                raise BadRequestError(
                    f"instance {index} has {len(instance)} values; expected "
                    f"{self._expected(model)}"
                )
            row = instance
        else:
            raise BadRequestError(f"instance {index} is a {type(instance).__name__}; expected "
                                  f"{self._expected(model)}")
        for value in row:
            if isinstance(value, dict | list):
                raise BadRequestError(
                    f"instance {index} holds a nested {type(value).__name__}; feature values "
                    "are numbers, strings or null"
                )
        return row

    @staticmethod
    def _expected(model: ServedModel) -> str:
        if model.features:
            return (f"a list of {len(model.features)} values ordered as {list(model.features)} "
                    "or an object with those keys")
        return f"a list of {model.n_features} values"

    @staticmethod
    def _matrix(model: ServedModel, rows: list[list[Any]]) -> Any:
        if model.wants_frame:
            import pandas as pd

            return pd.DataFrame(rows, columns=list(model.features))
        return np.asarray(rows, dtype=object if _has_text(rows) else float)

    # -- drift -------------------------------------------------------------------------
    def _observe_inputs(self, model: ServedModel, rows: list[list[Any]]) -> None:
        if not self._windows:
            return
        for name, window in self._windows.items():
            position = model.features.index(name)
            numbers = [float(v) for v in (row[position] for row in rows)
                       if isinstance(v, int | float) and not isinstance(v, bool)]
            window.extend(numbers)
            baseline = model.baselines[name]
            counts = baseline.bin_counts(numbers)
            for index in np.flatnonzero(counts):
                self.metrics.bins.labels(model.name, model.version, name, str(index)).inc(
                    int(counts[index]))
            if len(window) >= self.settings.drift_min_samples:
                value = psi(baseline, baseline.bin_counts(np.fromiter(window, dtype=float)))
                self.metrics.psi.labels(model.name, model.version, name).set(value)


def _has_text(rows: list[list[Any]]) -> bool:
    return any(isinstance(value, str) for row in rows for value in row)


def same_label(a: Any, b: Any) -> bool:
    # JSON feedback may spell a class differently from the model ("1" for 1).
    return bool(a == b) or str(a) == str(b)
