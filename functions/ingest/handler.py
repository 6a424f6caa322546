"""ingest: checks the dataset behind a data-arrived event and catalogues it for training.

A dataset that breaks a rule is answered with data-rejected and every reason found: that
is a normal reply (200), because the event was handled; only a broken store is an error.
A valid one is stored by content hash, its baseline statistics are written beside it, and
it is appended to the model's catalog, which the trainer windows over.

Limits come before work: a file larger than TROUPE_MAX_DATASET_BYTES is refused without
reading more of it than that, and one with more than TROUPE_MAX_COLUMNS columns from its
header or schema, before its rows are loaded. Both are data-rejected naming the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cloudevents.core.v1.event import CloudEvent
from troupe.events import DATA_ARRIVED, DATA_REJECTED, DATA_VALIDATED
from troupe.function import (
    Context,
    Settings,
    TemporaryError,
    data_object,
)
from troupe.ml import SUFFIXES, DatasetRejected, DatasetSpec, format_of_uri
from troupe.ml.catalog import catalog_entry, record_validated, stats_key
from troupe.store import ConflictError, NotFoundError, ObjectTooLargeError, OutsideStoreError


@dataclass(frozen=True)
class IngestSettings(Settings):
    """TROUPE_MODEL_NAME, TROUPE_MIN_ROWS, TROUPE_MAX_NULL_FRACTION, TROUPE_MAX_CLASSES,
    TROUPE_BASELINE_BINS, TROUPE_MAX_DATASET_BYTES, TROUPE_MAX_COLUMNS; a data-arrived
    event may tighten or relax min_rows and max_null_fraction, never the size limits."""

    model_name: str = "default"
    min_rows: int = 50
    max_null_fraction: float = 0.1
    max_classes: int = 50
    baseline_bins: int = 10
    max_dataset_bytes: int = 100 * 1024 * 1024  # the file as stored, before parsing
    max_columns: int = 1000  # features and target together

    def __post_init__(self) -> None:
        self.require_at_least("max_dataset_bytes", 1)
        self.require_at_least("max_columns", 2, "a feature and the target")
        self.require_at_least("min_rows", 1)
        self.require_within("max_null_fraction", 0.0, 1.0)
        self.require_at_least("baseline_bins", 2)


CONSUMES: Final = (DATA_ARRIVED,)


def handle(event: CloudEvent, ctx: Context[IngestSettings]) -> CloudEvent:
    data = data_object(event)
    model = data.get("model") or ctx.settings.model_name
    uri: str = data["uri"]
    fmt = data.get("format") or format_of_uri(uri) or "csv"

    def reject(reasons: list[str]) -> CloudEvent:
        ctx.logger.info("dataset rejected", extra={"uri": uri, "reasons": reasons})
        return ctx.reply(DATA_REJECTED, {"uri": uri, "model": model, "reasons": reasons},
                         subject=model)

    limit = ctx.settings.max_dataset_bytes
    try:
        raw = ctx.store.read_bytes(uri, max_bytes=limit)
    except ObjectTooLargeError:
        return reject([f"the file is larger than ingest's limit of {limit} bytes "
                       f"({limit / 2**20:.4g} MiB, TROUPE_MAX_DATASET_BYTES): split it into "
                       "smaller datasets"])
    except OutsideStoreError as error:
        return reject([f"{error}; datasets must be uploaded into the store ({ctx.store.url})"])
    except NotFoundError as error:
        return reject(
            [f"there is no file at {uri} ({error}): upload it before publishing data-arrived"]
        )
    spec = DatasetSpec(
        target=data["target"],
        format=fmt,
        features=tuple(data["features"]) if "features" in data else None,
        classes=tuple(data["classes"]) if "classes" in data else None,
        min_rows=data.get("min_rows", ctx.settings.min_rows),
        max_null_fraction=data.get("max_null_fraction", ctx.settings.max_null_fraction),
        max_classes=ctx.settings.max_classes,
    )
    # pandas loads with the first dataset read, not at start-up: an event refused before
    # this point (no file, too large, outside the store) never needs it.
    from troupe.ml import baseline_stats, check_frame, read_frame

    try:
        frame = read_frame(raw, spec.format, max_columns=ctx.settings.max_columns)
        checked = check_frame(frame, spec)
    except DatasetRejected as rejection:
        return reject(rejection.reasons)

    stored = ctx.store.put_dataset(raw, suffix=SUFFIXES[spec.format])
    stats = baseline_stats(checked, stored.sha256, bins=ctx.settings.baseline_bins)
    stats_uri = ctx.store.write_json(stats_key(stored.sha256), stats)
    entry = catalog_entry(
        dataset_id=stored.sha256,
        uri=stored.uri,
        stats_uri=stats_uri,
        rows=checked.rows,
        features=checked.features,
        target=checked.target,
        classes=checked.classes,
        source_uri=ctx.store.resolve(uri),
    )
    try:
        recorded = record_validated(ctx.store, model, entry)
    except ConflictError as error:
        raise TemporaryError(f"the dataset catalog of {model} is contended: {error}") from None
    ctx.logger.info("dataset validated", extra={"dataset_id": stored.sha256, "rows": checked.rows})
    return ctx.reply(
        DATA_VALIDATED,
        {
            "dataset_id": recorded["dataset_id"],
            "uri": recorded["uri"],
            "source_uri": entry["source_uri"],
            "format": spec.format,
            "model": model,
            "target": recorded["target"],
            "rows": recorded["rows"],
            "features": recorded["features"],
            "classes": recorded["classes"],
            "stats_uri": recorded["stats_uri"],
        },
        subject=model,
    )

