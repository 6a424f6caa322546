"""Bytes, JSON, datasets and cached replies round-trip on file:// and on s3:// (moto)."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest
from troupe.function.settings import Settings
from troupe.store import (
    EventRef,
    InvalidNameError,
    NotFoundError,
    ObjectTooLargeError,
    Reply,
    Store,
    StoreConfigError,
    StoreError,
)


def test_bytes_round_trip_and_listing(store: Store) -> None:
    url = store.write_bytes("raw/a.bin", b"\x00\x01payload")
    store.write_bytes("raw/sub/b.bin", b"second")

    assert url == store.resolve("raw/a.bin")
    assert url.startswith(store.url + "/")
    assert store.read_bytes("raw/a.bin") == b"\x00\x01payload"
    assert store.read_bytes(url) == b"\x00\x01payload"
    assert store.exists(url)
    assert not store.exists("raw/missing.bin")
    assert store.list("raw") == ["raw/a.bin", "raw/sub/b.bin"]
    assert store.list("raw/") == store.list("raw")
    assert store.list("nothing-here") == []


def test_write_replaces_the_whole_object(store: Store) -> None:
    store.write_bytes("k", b"a long first version")
    store.write_bytes("k", b"short")
    assert store.read_bytes("k") == b"short"


def test_a_read_with_a_limit_refuses_a_larger_object(store: Store) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, more than one network read on s3
    url = store.write_bytes("big/object.bin", payload)
    assert store.read_bytes("big/object.bin", max_bytes=len(payload)) == payload
    with pytest.raises(ObjectTooLargeError) as raised:
        store.read_bytes("big/object.bin", max_bytes=len(payload) - 1)
    assert (raised.value.url, raised.value.limit) == (url, len(payload) - 1)
    assert isinstance(raised.value, ValueError)
    store.write_bytes("big/empty.bin", b"")
    assert store.read_bytes("big/empty.bin", max_bytes=0) == b""
    with pytest.raises(NotFoundError):
        store.read_bytes("big/absent.bin", max_bytes=10)


def test_missing_objects_raise_not_found_that_is_a_key_error(store: Store) -> None:
    with pytest.raises(NotFoundError) as raised:
        store.read_bytes("absent/thing.csv")
    assert isinstance(raised.value, KeyError)
    assert "absent/thing.csv" in str(raised.value)
    with pytest.raises(NotFoundError):
        store.read_json("absent.json")
    assert store.read_json("absent.json", None) is None
    assert store.read_json("absent.json", {"empty": True}) == {"empty": True}


def test_json_round_trip_create_and_update(store: Store) -> None:
    value = {"name": "x", "values": [1, 2.5, None], "nested": {"ok": True}}
    store.write_json("doc.json", value)
    assert store.read_json("doc.json") == value

    assert store.create_json("once.json", {"n": 1}) is True
    assert store.create_json("once.json", {"n": 2}) is False
    assert store.read_json("once.json") == {"n": 1}

    def append(items: list[int]) -> list[int]:
        return [*items, len(items)]

    assert store.update_json("list.json", append, default=[]) == [0]
    assert store.update_json("list.json", append, default=[]) == [0, 1]
    assert store.read_json("list.json") == [0, 1]


def test_update_json_does_not_mutate_the_default(store: Store) -> None:
    default: dict[str, list[int]] = {"items": []}
    store.update_json("d.json", lambda doc: {"items": [*doc["items"], 1]}, default=default)
    store.update_json("e.json", lambda doc: doc["items"].append(2) or doc, default=default)
    assert default == {"items": []}
    assert store.read_json("e.json") == {"items": [2]}


def test_values_that_are_not_plain_json_are_refused_and_nothing_is_written(store: Store) -> None:
    with pytest.raises(TypeError, match="plain JSON"):
        store.write_json("bad.json", {"when": object()})
    with pytest.raises(ValueError, match="plain JSON"):
        store.write_json("nan.json", {"x": float("nan")})
    assert not store.exists("bad.json")
    assert not store.exists("nan.json")


def test_damaged_json_is_reported_with_its_location(store: Store) -> None:
    store.write_bytes("broken.json", b"{not json")
    with pytest.raises(StoreError, match=r"broken\.json does not hold valid JSON"):
        store.read_json("broken.json")


def test_datasets_are_content_addressed_and_idempotent(store: Store) -> None:
    data = b"x,y\n1,0\n2,1\n"
    sha = hashlib.sha256(data).hexdigest()

    first = store.put_dataset(data)
    again = store.put_dataset(data)
    parquet = store.put_dataset(data, suffix=".parquet")

    assert first == again
    assert first.sha256 == sha
    assert first.size == len(data)
    assert first.uri == store.resolve(f"datasets/{sha}.csv")
    assert parquet.uri.endswith(f"datasets/{sha}.parquet")
    assert store.read_verified(first.uri, sha) == data
    assert store.list("datasets") == sorted([f"datasets/{sha}.csv", f"datasets/{sha}.parquet"])


@pytest.mark.parametrize("suffix", ["csv", "/../x", ".c/sv", ". csv"])
def test_dataset_suffixes_must_be_extensions(file_store: Store, suffix: str) -> None:
    with pytest.raises(InvalidNameError, match="suffix"):
        file_store.put_dataset(b"a", suffix=suffix)


def test_reply_cache_round_trips_any_source_and_id(store: Store) -> None:
    reply = Reply(200, {"ce-type": "dev.troupe.data.validated", "ce-id": "r1"}, b"\x00{json}")
    source, event_id = "https://example.com/../../etc?x=1", "../../id with spaces/\u00e9"
    event = EventRef("ingest", source, event_id)

    assert store.replies.get(event, now=100.0) is None
    assert store.replies.claim(event, owner="a", lease_seconds=30, now=100.0).owned
    assert store.replies.answer(event, reply, owner="a", ttl_seconds=3600, now=101.0)

    assert store.replies.get(event, now=102.0) == reply
    assert store.replies.get(EventRef("trainer", source, event_id), now=102.0) is None
    assert store.replies.get(EventRef("ingest", source, "other-id"), now=102.0) is None
    assert store.replies.get(event, now=101.0 + 3600) is None  # expired
    (key,) = store.list("replies")
    assert key.startswith("replies/") and ".." not in key


def test_default_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = Store()
    assert store.url == f"file://{Path.cwd()}/.troupe/store"
    store.write_json("a.json", 1)
    monkeypatch.chdir("/")
    assert store.read_json("a.json") == 1
    assert (tmp_path / ".troupe" / "store" / "a.json").is_file()


def test_store_from_settings(tmp_path: Path) -> None:
    settings = Settings.from_env({"TROUPE_STORE_URL": f"file://{tmp_path}/s"})
    store = Store.from_settings(settings)
    assert store.url == f"file://{tmp_path}/s"


def test_s3_store_from_settings_reads_the_endpoint(
    s3_bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env(
        {
            "TROUPE_STORE_URL": f"s3://{s3_bucket}/p",
            "TROUPE_S3_ENDPOINT_URL": s3_endpoint,
            "TROUPE_S3_REGION": "us-east-1",
        }
    )
    # Credentials come the usual AWS way, not through troupe's settings.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    store = Store.from_settings(settings)
    store.write_json("hello.json", {"from": "settings"})
    assert store.read_json(f"s3://{s3_bucket}/p/hello.json") == {"from": "settings"}


@pytest.mark.parametrize("url", ["", "ftp://host/x", "s3://", "s3:///prefix", "gs://bucket/x"])
def test_unusable_store_urls_are_refused(url: str) -> None:
    with pytest.raises(StoreConfigError, match=r"TROUPE_STORE_URL|s3://<bucket>"):
        Store(url)


def test_s3_store_at_the_bucket_root(s3_bucket: str, s3_options: dict[str, Any]) -> None:
    store = Store(f"s3://{s3_bucket}", s3_options)
    assert store.url == f"s3://{s3_bucket}"
    store.write_json("a/b.json", 1)
    assert store.resolve("a/b.json") == f"s3://{s3_bucket}/a/b.json"
    assert store.list("") == ["a/b.json"]
    assert store.read_json(f"s3://{s3_bucket}/a/b.json") == 1


def _write_from_forked_child(store: Store) -> None:
    store.write_json("from-child.json", {"pid": os.getpid()})


def test_an_s3_store_built_before_a_fork_works_in_the_child(s3_store: Store) -> None:
    # gunicorn builds the app (and its store) and then forks its workers.
    s3_store.write_json("from-parent.json", 1)
    child = multiprocessing.get_context("fork").Process(
        target=_write_from_forked_child, args=(s3_store,)
    )
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert s3_store.read_json("from-child.json")["pid"] == child.pid


def test_stored_files_are_readable_by_other_processes(file_store: Store) -> None:
    url = file_store.write_bytes("datasets/a.csv", b"a")
    assert os.stat(url.removeprefix("file://")).st_mode & 0o777 == 0o644


def test_a_missing_bucket_is_a_clear_store_error(s3_options: dict[str, Any]) -> None:
    store = Store("s3://no-such-bucket-here/p", s3_options)
    with pytest.raises(StoreError, match="NoSuchBucket") as raised:
        store.write_json("a.json", 1)
    assert "s3://no-such-bucket-here/p/a.json" in str(raised.value)
    with pytest.raises(StoreError, match="NoSuchBucket"):
        store.read_bytes("a.json")
