"""The model registry: versions, idempotent registration, metrics, lineage, champion."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from troupe.store import InvalidNameError, NotFoundError, ObjectRef, OutsideStoreError, Store

LINEAGE = {
    "dataset_ids": ["abc"],
    "stats_uri": "stats/abc.json",
    "features": ["x", "y"],
    "target": "label",
    "classes": [0, 1],
    "cause": {"source": "/troupe/ingest", "id": "e1", "type": "dev.troupe.data.validated"},
    "runid": "run-1",
}


def _artifact(store: Store, version: str, content: bytes = b"model") -> ObjectRef:
    url = store.write_bytes(f"models/default/{version}.skops", content + version.encode())
    data = store.read_bytes(url)
    return ObjectRef(url, hashlib.sha256(data).hexdigest(), len(data))


def test_register_allocates_v1_v2_and_records_everything(store: Store) -> None:
    first = store.registry.register(
        "default",
        artifact=_artifact(store, "v1"),
        metrics={"accuracy": 0.9, "f1": 1},
        lineage=LINEAGE,
        key="/troupe/ingest|e1",
    )
    second = store.registry.register(
        "default",
        artifact=_artifact(store, "v2"),
        metrics={"accuracy": 0.95},
        lineage={**LINEAGE, "runid": "run-2"},
        key="/troupe/ingest|e2",
    )

    assert (first.version, second.version) == ("v1", "v2")
    assert first.name == "default"
    assert first.metrics == {"accuracy": 0.9, "f1": 1.0}
    assert first.lineage == LINEAGE
    assert first.artifact_uri == store.resolve("models/default/v1.skops")
    assert first.sha256 == hashlib.sha256(store.read_bytes(first.artifact_uri)).hexdigest()
    assert datetime.fromisoformat(first.created).tzinfo is not None
    assert store.registry.get("default", "v2") == second
    assert store.registry.versions("default") == [first, second]


def test_register_is_idempotent_per_key(store: Store) -> None:
    artifact = _artifact(store, "v1")
    first = store.registry.register(
        "default", artifact=artifact, metrics={"accuracy": 0.9}, lineage=LINEAGE, key="k"
    )
    again = store.registry.register(
        "default", artifact=artifact, metrics={"accuracy": 0.1}, lineage={}, key="k"
    )

    assert again == first
    assert [v.version for v in store.registry.versions("default")] == ["v1"]


def test_reserve_then_register_uses_the_reserved_version(store: Store) -> None:
    version = store.registry.reserve_version("default", key="event-7")
    assert store.registry.reserve_version("default", key="event-7") == version == "v1"
    assert store.registry.reserve_version("default", key="event-8") == "v2"

    registered = store.registry.register(
        "default",
        artifact=_artifact(store, version),
        metrics={"accuracy": 0.8},
        lineage=LINEAGE,
        key="event-7",
    )

    assert registered.version == "v1"
    # A reserved version that was never registered is not listed.
    assert [v.version for v in store.registry.versions("default")] == ["v1"]
    with pytest.raises(NotFoundError, match="v2"):
        store.registry.get("default", "v2")


def test_models_are_independent(file_store: Store) -> None:
    assert file_store.registry.reserve_version("a", key="k") == "v1"
    assert file_store.registry.reserve_version("b", key="k") == "v1"
    assert file_store.registry.reserve_version("a", key="k2") == "v2"


def test_champion_and_its_history(store: Store) -> None:
    assert store.registry.champion("default") is None
    for number in (1, 2):
        store.registry.register(
            "default",
            artifact=_artifact(store, f"v{number}"),
            metrics={"accuracy": 0.5 + number / 10},
            lineage=LINEAGE,
            key=f"k{number}",
        )

    store.registry.set_champion("default", "v2")
    store.registry.set_champion("default", "v2")  # again: no new history entry
    store.registry.set_champion("default", "v1")

    champion = store.registry.champion("default")
    assert champion is not None and champion.version == "v1"
    assert store.registry.champion_history("default") == ["v2", "v1"]


def test_an_unregistered_version_cannot_be_champion(file_store: Store) -> None:
    file_store.registry.reserve_version("default", key="k")
    with pytest.raises(NotFoundError, match="register it first"):
        file_store.registry.set_champion("default", "v1")
    assert file_store.registry.champion("default") is None


def test_unknown_models_and_versions(file_store: Store) -> None:
    assert file_store.registry.versions("nobody") == []
    assert file_store.registry.champion("nobody") is None
    with pytest.raises(NotFoundError) as raised:
        file_store.registry.get("nobody", "v1")
    assert isinstance(raised.value, KeyError)


def test_artifacts_outside_the_store_cannot_be_registered(file_store: Store) -> None:
    outside = ObjectRef("file:///etc/passwd", "0" * 64, 1)
    with pytest.raises(OutsideStoreError):
        file_store.registry.register("default", artifact=outside, metrics={}, lineage={}, key="k")
    assert file_store.registry.versions("default") == []


def test_bad_names_keys_and_values_are_refused(file_store: Store) -> None:
    artifact = _artifact(file_store, "v1")
    with pytest.raises(InvalidNameError):
        file_store.registry.reserve_version("../escape", key="k")
    with pytest.raises(InvalidNameError):
        file_store.registry.reserve_version("default", key="")
    with pytest.raises(ValueError):
        file_store.registry.register(
            "default", artifact=artifact, metrics={"loss": float("nan")}, lineage={}, key="k"
        )
    with pytest.raises(TypeError):
        file_store.registry.register(
            "default", artifact=artifact, metrics={}, lineage={"x": object()}, key="k"
        )
    assert file_store.registry.versions("default") == []


def test_concurrent_registrations_get_distinct_versions(store: Store) -> None:
    artifact = _artifact(store, "vX")
    keys = [f"key-{i % 6}" for i in range(12)]  # each key delivered twice

    def register(key: str) -> str:
        registered = store.registry.register(
            "default", artifact=artifact, metrics={"m": 1.0}, lineage={}, key=key
        )
        return registered.version

    with ThreadPoolExecutor(max_workers=6) as pool:
        versions = list(pool.map(register, keys))

    by_key = dict(zip(keys, versions, strict=True))
    assert all(by_key[key] == version for key, version in zip(keys, versions, strict=True))
    assert sorted(by_key.values(), key=lambda v: int(v[1:])) == [f"v{i}" for i in range(1, 7)]
    assert len(store.registry.versions("default")) == 6
