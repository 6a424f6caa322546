"""evaluator: approves a trained candidate, or not, against the champion on held-out rows.

Both models are scored on the same rows: the held-out part of the newest dataset the
candidate was trained on, cut by the seeded split recorded in its lineage (so the trainer
never fitted on them). The candidate is approved when it reaches the floor and is no worse
than the champion by more than the tolerance. Which version serves is the deployer's call,
so the champion is not changed here; the verdict is recorded under evaluations/ in the store,
once per version, and a redelivered event is answered from that record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from cloudevents.core.v1.event import CloudEvent
from troupe.events import MODEL_APPROVED, MODEL_REJECTED, MODELVERSION, TRAINING_FINISHED
from troupe.function import Context, PermanentError, Settings, data_object
from troupe.ml import METRICS, EvaluationError, Holdout, decide, score
from troupe.ml.catalog import CatalogError, load_frame
from troupe.ml.reference import evaluation_key
from troupe.store import IntegrityError, ModelVersion, NotFoundError, StoreError


@dataclass(frozen=True)
class EvaluatorSettings(Settings):
    """TROUPE_MODEL_NAME, TROUPE_EVAL_METRIC (accuracy | f1 | roc_auc),
    TROUPE_EVAL_TOLERANCE, TROUPE_EVAL_FLOOR."""

    model_name: str = "default"
    eval_metric: str = "accuracy"
    eval_tolerance: float = 0.01
    eval_floor: float = 0.5

    def __post_init__(self) -> None:
        self.require_one_of("eval_metric", METRICS)
        self.require_at_least("eval_tolerance", 0)


CONSUMES: Final = (TRAINING_FINISHED,)


def handle(event: CloudEvent, ctx: Context[EvaluatorSettings]) -> CloudEvent:
    data = data_object(event)
    model, version = data["model"], data["version"]
    key = evaluation_key(model, version)
    record = ctx.store.read_json(key, default=None)
    if record is None:
        record = _evaluate(ctx, model, version, data["sha256"])
        if not ctx.store.create_json(key, record):
            record = ctx.store.read_json(key)  # a concurrent delivery decided first
    return _reply(ctx, record)


def _evaluate(
    ctx: Context[EvaluatorSettings], model: str, version: str, sha256: str
) -> dict[str, Any]:
    settings = ctx.settings
    candidate = _registered(ctx, model, version)
    if candidate.sha256 != sha256:
        raise PermanentError(
            f"training-finished says {model} {version} has sha256 {sha256}, the registry says "
            f"{candidate.sha256}: the event does not describe the registered model"
        )
    lineage = candidate.lineage
    target = lineage["target"]
    try:
        rows = _held_out_rows(ctx, lineage)
        pipeline = ctx.store.load_model(candidate.artifact_uri, candidate.sha256)
        candidate_score = score(pipeline, rows, features=lineage["features"], target=target,
                                metric=settings.eval_metric)
        # The monitor's concept test measures live errors against this held-out accuracy.
        expected_accuracy = candidate_score if settings.eval_metric == "accuracy" else score(
            pipeline, rows, features=lineage["features"], target=target, metric="accuracy")
    except (CatalogError, EvaluationError, IntegrityError, NotFoundError) as error:
        raise PermanentError(f"{model} {version} cannot be evaluated: {error}") from None

    champion = ctx.store.registry.champion(model)
    champion_score, champion_note = None, None
    if champion is not None and champion.version != version:
        champion_score, champion_note = _champion_score(ctx, champion, rows, target)
    verdict = decide(settings.eval_metric, candidate_score, champion_score,
                     tolerance=settings.eval_tolerance, floor=settings.eval_floor)
    if champion_note:
        ctx.logger.warning("champion not scored", extra={"note": champion_note})
    return {
        "model": model,
        "version": version,
        "approved": verdict.approved,
        "reason": verdict.reason + (f" ({champion_note})" if champion_note else ""),
        "metric": settings.eval_metric,
        "candidate_score": candidate_score,
        "expected_accuracy": expected_accuracy,
        "champion_version": champion.version if champion is not None else None,
        "champion_score": champion_score,
        "tolerance": settings.eval_tolerance,
        "floor": settings.eval_floor,
        "eval_dataset_id": lineage["dataset_ids"][-1],
        "eval_rows": len(rows),
        "artifact_uri": candidate.artifact_uri,
        "sha256": candidate.sha256,
    }


def _registered(ctx: Context[EvaluatorSettings], model: str, version: str) -> ModelVersion:
    try:
        return ctx.store.registry.get(model, version)
    except NotFoundError:
        raise PermanentError(
            f"{model} {version} is not in the model registry: only the trainer's "
            "training-finished events can be evaluated"
        ) from None


def _held_out_rows(ctx: Context[EvaluatorSettings], lineage: dict[str, Any]) -> Any:
    """The held-out rows of the newest dataset the candidate was trained on."""
    entry = {
        "dataset_id": lineage["dataset_ids"][-1],
        "uri": lineage["dataset_uris"][-1],
        "target": lineage["target"],
        "features": lineage["features"],
        "classes": lineage["classes"],
    }
    # scikit-learn loads with the first evaluation, not at start-up: a verdict already
    # recorded is answered from the store without it.
    from troupe.ml import holdout_split

    frame = load_frame(ctx.store, entry)
    holdout = Holdout.from_json(lineage["holdout"]) if "holdout" in lineage else Holdout()
    _, held_out = holdout_split(frame, lineage["target"], holdout)
    return held_out


def _champion_score(
    ctx: Context[EvaluatorSettings], champion: ModelVersion, rows: Any, target: str
) -> tuple[float | None, str | None]:
    """The champion's score on the candidate's rows, or why it has none. A champion that
    cannot be scored (other features, a damaged artifact) leaves the floor to decide."""
    try:
        pipeline = ctx.store.load_model(champion.artifact_uri, champion.sha256)
        value = score(pipeline, rows, features=champion.lineage["features"], target=target,
                      metric=ctx.settings.eval_metric)
    except (EvaluationError, StoreError, KeyError) as error:
        return None, f"champion {champion.version} could not be scored: {error}"
    return value, None


def _reply(ctx: Context[EvaluatorSettings], record: dict[str, Any]) -> CloudEvent:
    fields = ("model", "version", "metric", "candidate_score", "champion_version",
              "champion_score", "tolerance", "floor", "eval_dataset_id", "eval_rows",
              "artifact_uri", "sha256", "reason")
    data = {name: record[name] for name in fields}
    return ctx.reply(
        MODEL_APPROVED if record["approved"] else MODEL_REJECTED,
        data,
        extensions={MODELVERSION: record["version"]},
        subject=f"{record['model']}/{record['version']}",
    )

