"""The per-model catalog of validated datasets, on a real file:// store."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from troupe.ml.catalog import (
    CatalogError,
    by_ids,
    catalog_entry,
    compatible,
    load_frame,
    record_validated,
    validated_datasets,
    window,
)
from troupe.ml.synthetic import synthetic_frame, to_csv_bytes
from troupe.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"file://{tmp_path}/store")


def entry(dataset_id: str, features: tuple[str, ...] = ("a", "b"), target: str = "y") -> Any:
    return catalog_entry(dataset_id=dataset_id, uri=f"datasets/{dataset_id}.csv",
                         stats_uri="s", rows=10, features=features, target=target,
                         classes=[0, 1], source_uri="in.csv")


def test_recording_is_idempotent_per_dataset_id(store: Store) -> None:
    first = record_validated(store, "m", entry("1"))
    again = record_validated(store, "m", {**entry("1"), "source_uri": "other.csv"})
    record_validated(store, "m", entry("2"))
    assert again == first
    assert [e["dataset_id"] for e in validated_datasets(store, "m")] == ["1", "2"]
    assert validated_datasets(store, "other") == []


def test_windows_end_where_asked_and_ids_keep_their_order() -> None:
    entries = [entry(str(i)) for i in range(5)]
    assert [e["dataset_id"] for e in window(entries, 3)] == ["2", "3", "4"]
    assert [e["dataset_id"] for e in window(entries, 3, until="1")] == ["0", "1"]
    assert [e["dataset_id"] for e in by_ids(entries, ["4", "0"])] == ["4", "0"]
    with pytest.raises(CatalogError, match="unknown dataset ids 9"):
        by_ids(entries, ["4", "9"])
    with pytest.raises(CatalogError, match="not in the catalog"):
        window(entries, 3, until="9")
    with pytest.raises(CatalogError, match="at least 1"):
        window(entries, 0)


def test_a_schema_change_drops_older_datasets_that_cannot_join() -> None:
    entries = [entry("old", ("a",)), entry("other-target", ("a", "b"), "z"),
               entry("wide", ("a", "b", "c")), entry("new", ("a", "b"))]
    assert [e["dataset_id"] for e in compatible(entries)] == ["wide", "new"]


def test_load_frame_verifies_the_content_hash(store: Store) -> None:
    frame = synthetic_frame(60)
    stored = store.put_dataset(to_csv_bytes(frame))
    good = {**entry(stored.sha256, tuple(f"f{i}" for i in range(6)), "label"), "uri": stored.uri}
    loaded = load_frame(store, good)
    assert list(loaded.columns) == [*good["features"], "label"]
    assert len(loaded) == 60
    tampered = to_csv_bytes(frame.head(10))
    store.write_bytes(store.key_of(stored.uri), tampered)
    with pytest.raises(CatalogError, match=hashlib.sha256(tampered).hexdigest()):
        load_frame(store, good)
