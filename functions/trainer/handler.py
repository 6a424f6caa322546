"""trainer: fits a scikit-learn pipeline on a window of validated datasets and registers it.

It answers data-validated (train on the last K datasets, ending at the new one) and
training-requested (a given window or list of dataset ids, optionally another estimator).
The reply is training-finished, or training-failed when the input cannot make a model.

Delivery is at-least-once, so before training it looks for a version already registered
for this very event (by the cause recorded in each version's lineage) and answers with it:
a redelivered event never makes a second version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cloudevents.core.v1.event import CloudEvent
from troupe.events import (
    DATA_VALIDATED,
    MODELVERSION,
    TRAINING_FAILED,
    TRAINING_FINISHED,
    TRAINING_REQUESTED,
)
from troupe.function import Context, Settings, SettingsError, data_object
from troupe.ml import ESTIMATORS, Holdout, TrainingError
from troupe.ml.catalog import (
    CatalogError,
    by_ids,
    compatible,
    load_frame,
    validated_datasets,
    window,
)
from troupe.ml.reference import reference_distributions, reference_key
from troupe.store import ModelVersion, NotFoundError


@dataclass(frozen=True)
class TrainerSettings(Settings):
    """TROUPE_MODEL_NAME, TROUPE_ESTIMATOR, TROUPE_ESTIMATOR_PARAMS (a JSON object),
    TROUPE_TRAINING_WINDOW, TROUPE_HOLDOUT_FRACTION, TROUPE_SEED, TROUPE_BASELINE_BINS."""

    model_name: str = "default"
    estimator: str = "logistic_regression"
    estimator_params: str = "{}"
    training_window: int = 3
    holdout_fraction: float = 0.2
    seed: int = 42
    # always: every validated dataset trains a candidate. first: only the first one does;
    # later datasets are catalogued and retraining waits for training-requested (from the
    # policy when a metric degrades, or from a user), so models change when they must.
    train_on_arrival: str = "always"
    # Quantile bins of the reference feature distributions recorded with each version.
    baseline_bins: int = 10

    def __post_init__(self) -> None:
        self.require_one_of("estimator", ESTIMATORS)
        self.params  # noqa: B018 - parse once now, so a bad value stops the function at start
        self.require_one_of("train_on_arrival", ("always", "first"))
        self.require_at_least("training_window", 1)
        self.require_at_least("baseline_bins", 2)
        self.require_within("holdout_fraction", 0.0, 1.0, inclusive=False)

    @property
    def params(self) -> dict[str, Any]:
        try:
            params = json.loads(self.estimator_params)
        except ValueError as error:
            raise SettingsError(f"TROUPE_ESTIMATOR_PARAMS is not JSON: {error}") from None
        if not isinstance(params, dict):
            raise SettingsError('TROUPE_ESTIMATOR_PARAMS must be a JSON object, like {"C": 0.5}')
        return params


@dataclass(frozen=True)
class _Plan:
    """What to train: on which datasets, with which estimator."""

    model: str
    entries: list[dict[str, Any]]
    estimator: str
    params: dict[str, Any]


CONSUMES: Final = (DATA_VALIDATED, TRAINING_REQUESTED)


def handle(event: CloudEvent, ctx: Context[TrainerSettings]) -> CloudEvent | None:
    data = data_object(event)
    model = data.get("model") or ctx.settings.model_name
    cause = {"source": event.get_source(), "id": event.get_id(), "type": event.get_type()}
    key = f"{cause['source']}|{cause['id']}"

    registered = _registered_for(ctx, model, cause)
    if registered is not None:
        ctx.logger.info("already trained for this event", extra={"version": registered.version})
        return _finished(ctx, registered)
    if (
        event.get_type() == DATA_VALIDATED
        and ctx.settings.train_on_arrival == "first"
        and ctx.store.registry.versions(model)
    ):
        ctx.logger.info(
            "dataset %s catalogued; model %s exists, so retraining waits for "
            "training-requested (TROUPE_TRAIN_ON_ARRIVAL=first)", data.get("dataset_id"), model
        )
        return None
    # scikit-learn and pandas load with the first model trained, not at start-up: a
    # redelivered event is answered from the registry without them.
    from troupe.ml import train

    try:
        plan = _plan(event, data, model, ctx)
        frames = [load_frame(ctx.store, entry) for entry in plan.entries]
        newest = plan.entries[-1]
        holdout = Holdout(ctx.settings.holdout_fraction, ctx.settings.seed)
        trained = train(
            frames,
            features=newest["features"],
            target=newest["target"],
            estimator=plan.estimator,
            params=plan.params,
            holdout=holdout,
        )
    except (CatalogError, TrainingError, NotFoundError) as error:
        return _failed(ctx, model, str(error), data)

    version = ctx.store.registry.reserve_version(model, key=key)
    artifact = ctx.store.save_model(trained.pipeline, name=model, version=version)
    # What the monitor's feature test and the predictor's bin counters compare live
    # inputs with: the distributions of the rows this version learnt from.
    reference_uri = ctx.store.write_json(
        reference_key(model, version),
        reference_distributions(frames, newest["features"], bins=ctx.settings.baseline_bins),
    )
    lineage = {
        "dataset_ids": [e["dataset_id"] for e in plan.entries],
        "dataset_uris": [e["uri"] for e in plan.entries],
        "stats_uri": newest["stats_uri"],
        "reference_uri": reference_uri,
        "features": list(newest["features"]),
        "target": newest["target"],
        "classes": list(trained.classes),
        "cause": cause,
        "runid": str(event.get_extension("runid") or event.get_id()),
        "estimator": plan.estimator,
        "params": plan.params,
        "holdout": holdout.to_json(),
        "rows_train": trained.rows_train,
        "rows_test": trained.rows_test,
    }
    registered = ctx.store.registry.register(
        model, artifact=artifact, metrics=trained.metrics, lineage=lineage, key=key
    )
    ctx.logger.info("model registered", extra={"version": registered.version, **trained.metrics})
    return _finished(ctx, registered)


def _registered_for(
    ctx: Context[TrainerSettings], model: str, cause: Mapping[str, str]
) -> ModelVersion | None:
    for version in reversed(ctx.store.registry.versions(model)):
        recorded = version.lineage.get("cause", {})
        if recorded.get("source") == cause["source"] and recorded.get("id") == cause["id"]:
            return version
    return None


def _plan(
    event: CloudEvent, data: Mapping[str, Any], model: str, ctx: Context[TrainerSettings]
) -> _Plan:
    settings = ctx.settings
    catalog = validated_datasets(ctx.store, model)
    estimator, params = settings.estimator, settings.params
    if event.get_type() == DATA_VALIDATED:
        try:
            entries = window(catalog, settings.training_window, until=data["dataset_id"])
        except CatalogError:
            # The event itself describes the dataset; train on it alone rather than fail.
            entries = [_entry_from_event(data)]
    else:
        if "dataset_ids" in data:
            entries = by_ids(catalog, data["dataset_ids"])
        elif catalog:
            entries = window(catalog, data.get("window", settings.training_window))
        else:
            raise CatalogError(
                f"no validated datasets for model {model!r}: publish data-arrived first"
            )
        if "estimator" in data:
            estimator = data["estimator"]
            # The configured parameters belong to the configured estimator only.
            params = settings.params if estimator == settings.estimator else {}
        params = dict(data.get("params", params))
    return _Plan(model, compatible(entries), estimator, params)


def _entry_from_event(data: Mapping[str, Any]) -> dict[str, Any]:
    names = ("dataset_id", "uri", "stats_uri", "rows", "features", "target")
    return {**{name: data[name] for name in names}, "classes": list(data.get("classes", []))}


def _finished(ctx: Context[TrainerSettings], version: ModelVersion) -> CloudEvent:
    lineage = version.lineage
    return ctx.reply(
        TRAINING_FINISHED,
        {
            "model": version.name,
            "version": version.version,
            "artifact_uri": version.artifact_uri,
            "sha256": version.sha256,
            "metrics": dict(version.metrics),
            "dataset_ids": list(lineage["dataset_ids"]),
            "estimator": lineage["estimator"],
            "params": lineage["params"],
            "features": lineage["features"],
            "target": lineage["target"],
            "classes": lineage["classes"],
            "stats_uri": lineage["stats_uri"],
            "rows_train": lineage["rows_train"],
            "rows_test": lineage["rows_test"],
        },
        extensions={MODELVERSION: version.version},
        subject=f"{version.name}/{version.version}",
    )


def _failed(
    ctx: Context[TrainerSettings], model: str, reason: str, data: Mapping[str, Any]
) -> CloudEvent:
    ctx.logger.warning("training failed", extra={"reason": reason})
    failed: dict[str, Any] = {"reason": reason, "model": model}
    ids: Sequence[str] = data.get("dataset_ids") or (
        [data["dataset_id"]] if "dataset_id" in data else []
    )
    if ids:
        failed["dataset_ids"] = list(ids)
    return ctx.reply(TRAINING_FAILED, failed, subject=model)

