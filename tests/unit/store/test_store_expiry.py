"""Entries that expire: compare-and-delete, and compaction by the processes that use them,
on file:// and on s3:// (moto)."""

from __future__ import annotations

import threading
import time

import pytest
from support.polling import wait_until
from troupe.store import EXPIRES_AT, Compactor, Store, StoreError, entry_key, is_expired


def test_delete_json_if_deletes_only_what_the_condition_accepts(store: Store) -> None:
    store.write_json("claims/a.json", {"n": 1})
    assert store.delete_json_if("claims/a.json", lambda value: value["n"] == 2) is False
    assert store.read_json("claims/a.json") == {"n": 1}
    assert store.delete_json_if("claims/a.json", lambda value: value["n"] == 1) is True
    assert not store.exists("claims/a.json")
    assert store.delete_json_if("claims/a.json", lambda value: True) is False


def test_an_entry_changed_during_the_check_is_never_lost(store: Store) -> None:
    """Between the look and the delete, another writer renews the entry: its renewal
    survives (file://: it waits for the lock the delete holds; s3://: the delete is
    conditional on the ETag it read)."""
    store.write_json("claims/b.json", {"owner": "old"})
    renewal: list[threading.Thread] = []

    def renewed_meanwhile(value: object) -> bool:
        thread = threading.Thread(target=lambda: store.update_json(
            "claims/b.json", lambda _: {"owner": "new"}))
        thread.start()
        renewal.append(thread)
        if store.url.startswith("s3://"):
            thread.join(timeout=30)  # on s3 nothing blocks it: let it land before the delete
        return True

    store.delete_json_if("claims/b.json", renewed_meanwhile)
    renewal[0].join(timeout=30)
    assert store.read_json("claims/b.json") == {"owner": "new"}


def test_a_create_that_skips_fsync_is_as_atomic(store: Store) -> None:
    assert store.create_json("claims/d.json", {"owner": "a"}, durable=False) is True
    assert store.create_json("claims/d.json", {"owner": "b"}, durable=False) is False
    assert store.create_json("claims/d.json", {"owner": "c"}) is False
    assert store.read_json("claims/d.json") == {"owner": "a"}


def test_a_damaged_entry_is_named_not_deleted(file_store: Store) -> None:
    file_store.write_bytes("claims/c.json", b"{not json")
    with pytest.raises(StoreError, match="valid JSON"):
        file_store.delete_json_if("claims/c.json", lambda value: True)
    assert file_store.exists("claims/c.json")


@pytest.mark.parametrize(("entry", "expired"), [
    ({EXPIRES_AT: 99.0}, True),
    ({EXPIRES_AT: 100.0}, True),
    ({EXPIRES_AT: 101.0}, False),
    ({"written": "before entries expired"}, True),
    ({EXPIRES_AT: "soon"}, False),
    (["not", "an", "object"], False),
])
def test_what_counts_as_expired(entry: object, expired: bool) -> None:
    assert is_expired(entry, 100.0) is expired


def test_entry_keys_are_sharded_and_safe_for_any_text() -> None:
    key = entry_key("replies", "ingest", "https://x/../../etc", "id with spaces/\u00e9")
    folder, shard, name = key.split("/")
    assert (folder, len(shard), name) == ("replies", 2, name)
    assert name.startswith(shard) and name.endswith(".json") and len(name) == 64 + 5
    assert entry_key("replies", "a", "b\nc") != entry_key("replies", "a\nb", "c")  # order kept


def fill(store: Store, folder: str, now: float, count: int) -> tuple[list[str], list[str]]:
    expired = [entry_key(folder, "old", str(i)) for i in range(count)]
    alive = [entry_key(folder, "new", str(i)) for i in range(count)]
    for key in expired:
        store.create_json(key, {EXPIRES_AT: now - 1})
    for key in alive:
        store.create_json(key, {EXPIRES_AT: now + 3600})
    return expired, alive


def test_a_sweep_deletes_expired_entries_only(store: Store) -> None:
    now = time.time()
    expired, alive = fill(store, "feedback", now, 6)
    store.write_json("feedback-elsewhere/x.json", {EXPIRES_AT: now - 1})  # another folder
    compactor = Compactor(store, "feedback", every_seconds=3600)
    assert compactor.sweep(budget_seconds=float("inf")) == len(expired)
    assert sorted(store.list("feedback")) == sorted(alive)
    assert store.exists("feedback-elsewhere/x.json")


def test_a_sweep_within_its_budget_goes_on_where_it_stopped(file_store: Store) -> None:
    now = time.time()
    expired, _ = fill(file_store, "feedback", now, 40)
    compactor = Compactor(file_store, "feedback", every_seconds=3600, budget_seconds=0)
    deleted = [compactor.sweep() for _ in range(256)]  # a zero budget visits one shard
    assert all(n <= len(expired) for n in deleted) and sum(deleted) == len(expired)
    assert compactor.sweep() == 0


def test_use_compacts_without_a_separate_job(file_store: Store) -> None:
    now = time.time()
    _, alive = fill(file_store, "replies", now, 5)
    compactor = Compactor(file_store, "replies", every_seconds=3600, budget_seconds=10)
    assert compactor.sweep_if_due() is True
    # Not due again for an hour: the next calls start nothing.
    assert compactor.sweep_if_due() is False
    wait_until(lambda: sorted(file_store.list("replies")) == sorted(alive), timeout=30,
               message="the background sweep to delete the expired entries")
