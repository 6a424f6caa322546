"""The catalog of validated datasets, one JSON index per model, that training windows over.

Ingest appends an entry per validated dataset (once per dataset id, so a redelivered or
re-published file does not count twice); the trainer reads the last K entries and loads
their content, checking it still hashes to its id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .spec import DatasetRejected, DatasetSpec, format_of_uri

if TYPE_CHECKING:
    import pandas as pd

    from troupe.store import Store


class CatalogError(LookupError):
    """The catalog cannot supply what was asked for; the message says what is missing."""


def index_key(model: str) -> str:
    return f"datasets/index/{model}.json"


def stats_key(dataset_id: str) -> str:
    return f"datasets/stats/{dataset_id}.json"


def catalog_entry(
    *,
    dataset_id: str,
    uri: str,
    stats_uri: str,
    rows: int,
    features: Sequence[str],
    target: str,
    classes: Sequence[Any],
    source_uri: str,
) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "uri": uri,
        "source_uri": source_uri,
        "stats_uri": stats_uri,
        "rows": rows,
        "features": list(features),
        "target": target,
        "classes": list(classes),
        "time": datetime.now(UTC).isoformat(),
    }


def record_validated(store: Store, model: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """Append `entry` to the model's index unless its dataset id is there; return the entry
    as recorded (the first one, on a repeat)."""
    recorded: dict[str, Any] = {}

    def append(index: dict[str, Any]) -> dict[str, Any]:
        # update_json may call this again after losing a race: start from nothing each time.
        recorded.clear()
        datasets = list(index.get("datasets", []))
        for existing in datasets:
            if existing["dataset_id"] == entry["dataset_id"]:
                recorded.update(existing)
                return index
        recorded.update(entry)
        return {**index, "model": model, "datasets": [*datasets, dict(entry)]}

    store.update_json(index_key(model), append, default={"model": model, "datasets": []})
    return recorded


def validated_datasets(store: Store, model: str) -> list[dict[str, Any]]:
    """The model's catalog entries, oldest first."""
    index = store.read_json(index_key(model), default={"datasets": []})
    return list(index.get("datasets", []))


def window(
    entries: Sequence[Mapping[str, Any]], size: int, *, until: str | None = None
) -> list[dict[str, Any]]:
    """The last `size` entries, ending at dataset `until` when given, so that answering the
    same data-validated twice picks the same window even after newer data arrived."""
    if size < 1:
        raise CatalogError(f"a training window must hold at least 1 dataset, not {size}")
    end = len(entries)
    if until is not None:
        positions = [i for i, e in enumerate(entries) if e["dataset_id"] == until]
        if not positions:
            raise CatalogError(f"dataset {until} is not in the catalog")
        end = positions[0] + 1
    return [dict(e) for e in entries[max(0, end - size) : end]]


def by_ids(entries: Sequence[Mapping[str, Any]], ids: Sequence[str]) -> list[dict[str, Any]]:
    """The entries of `ids`, in the order given; CatalogError naming any unknown id."""
    known = {e["dataset_id"]: e for e in entries}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise CatalogError(
            f"unknown dataset ids {', '.join(unknown)}: only validated datasets can be trained "
            "on (publish data-arrived for them first)"
        )
    return [dict(known[i]) for i in ids]


def compatible(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The entries that can be trained together with the newest one: same target, and
    every feature of the newest present (a changed schema starts a new window)."""
    if not entries:
        return []
    newest = entries[-1]
    wanted = set(newest["features"])
    return [
        dict(e)
        for e in entries
        if e["target"] == newest["target"] and wanted <= set(e["features"])
    ]


def load_frame(store: Store, entry: Mapping[str, Any]) -> pd.DataFrame:
    """The validated rows of a catalog entry: its features and target, labels normalised
    the way ingest saw them. Raises CatalogError if the content no longer matches its id."""
    data = store.read_bytes(entry["uri"])
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["dataset_id"]:
        raise CatalogError(
            f"dataset {entry['dataset_id']} at {entry['uri']} hashes to {digest}: it was "
            "changed after validation; publish it again as a new data-arrived"
        )
    spec = DatasetSpec(
        target=entry["target"],
        format=format_of_uri(entry["uri"]) or "csv",
        features=tuple(entry["features"]),
        classes=tuple(entry["classes"]) or None,
        min_rows=1,
        max_null_fraction=1.0,
        max_classes=len(entry["classes"]) or 1000,
    )
    from .dataset import check_frame, read_frame  # pandas: when a frame is loaded, not before

    try:
        frame = read_frame(data, spec.format)
        return check_frame(frame, spec).frame
    except DatasetRejected as error:
        raise CatalogError(f"dataset {entry['dataset_id']} no longer reads: {error}") from None
