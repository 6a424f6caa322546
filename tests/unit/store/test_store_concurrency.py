"""Concurrent writers lose no update: threads and processes, on file:// and on s3:// (moto).

The counters would come out short if update_json were a plain read-then-write, and the
registry would hand out one version twice.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from troupe.store import Store

PROCESSES = 4
# Per writer. moto answers a request in tens of milliseconds on a busy machine and a
# compare-and-swap under contention takes several, so the s3:// runs are smaller.
INCREMENTS = {"file": 50, "s3": 8}
THREADS = {"file": 8, "s3": 4}

# Spawned, not forked: the parent runs threads (the moto server, s3fs's event loop) that a
# fork would copy in an unknown state.
_spawn = multiprocessing.get_context("spawn")


def _backend(store: Store) -> str:
    return "s3" if store.url.startswith("s3://") else "file"


def _options(store: Store, request: pytest.FixtureRequest) -> dict[str, Any] | None:
    if _backend(store) == "file":
        return None
    options: dict[str, Any] = request.getfixturevalue("s3_options")
    return options


def _increment(url: str, options: dict[str, Any] | None, start: Any, count: int) -> None:
    store = Store(url, options)
    start.wait(timeout=60)
    for _ in range(count):
        store.update_json("counter.json", lambda doc: {"n": doc["n"] + 1}, default={"n": 0})


def _reserve(
    url: str, options: dict[str, Any] | None, start: Any, keys: list[str], results: Any
) -> None:
    store = Store(url, options)
    start.wait(timeout=60)
    for key in keys:
        results.put((key, store.registry.reserve_version("default", key=key)))


def _run_processes(target: Any, args_per_process: list[tuple[Any, ...]]) -> None:
    processes = [_spawn.Process(target=target, args=args) for args in args_per_process]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * len(processes)


def test_threads_lose_no_increment(store: Store) -> None:
    threads, increments = THREADS[_backend(store)], INCREMENTS[_backend(store)]

    def work(_: int) -> None:
        for _ in range(increments):
            store.update_json("counter.json", lambda doc: {"n": doc["n"] + 1}, default={"n": 0})

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, range(threads)))

    assert store.read_json("counter.json") == {"n": threads * increments}


def test_processes_lose_no_increment(store: Store, request: pytest.FixtureRequest) -> None:
    increments = INCREMENTS[_backend(store)]
    start = _spawn.Barrier(PROCESSES)

    _run_processes(
        _increment, [(store.url, _options(store, request), start, increments)] * PROCESSES
    )

    assert store.read_json("counter.json") == {"n": PROCESSES * increments}


def test_processes_never_allocate_a_version_twice(
    store: Store, request: pytest.FixtureRequest
) -> None:
    options = _options(store, request)
    start = _spawn.Barrier(PROCESSES)
    results = _spawn.Queue()
    # Every process reserves the shared keys too: at-least-once delivery to several
    # replicas must still give each key one version.
    own = 10 if _backend(store) == "file" else 2
    shared = [f"shared-{i}" for i in range(3 if _backend(store) == "file" else 2)]
    per_process = [[*shared, *(f"p{p}-{i}" for i in range(own))] for p in range(PROCESSES)]

    _run_processes(_reserve, [(store.url, options, start, keys, results) for keys in per_process])

    pairs = [results.get(timeout=10) for _ in range(sum(len(keys) for keys in per_process))]
    by_key: dict[str, set[str]] = {}
    for key, version in pairs:
        by_key.setdefault(key, set()).add(version)
    assert all(len(versions) == 1 for versions in by_key.values()), by_key
    allocated = sorted((v for (v,) in by_key.values()), key=lambda v: int(v[1:]))
    expected_count = len(shared) + PROCESSES * own
    assert allocated == [f"v{i}" for i in range(1, expected_count + 1)]


def test_threads_racing_to_create_let_exactly_one_win(store: Store) -> None:
    def create(worker: int) -> bool:
        return store.create_json("once.json", {"winner": worker})

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(create, range(8)))

    assert outcomes.count(True) == 1
    assert store.read_json("once.json") == {"winner": outcomes.index(True)}


def test_an_s3_update_that_lost_the_race_is_redone_on_the_new_value(s3_store: Store) -> None:
    """Another writer changes the object between this update's read and its write: the
    compare-and-swap fails and the change is redone on what the other writer wrote.
    (file:// needs no such test: updates hold a lock from read to write.)"""
    s3_store.write_json("doc.json", {"items": ["first"]})
    seen: list[list[str]] = []

    def append(doc: dict[str, list[str]]) -> dict[str, list[str]]:
        seen.append(list(doc["items"]))
        if len(seen) == 1:
            s3_store.write_json("doc.json", {"items": ["first", "racer"]})
        return {"items": [*doc["items"], "mine"]}

    assert s3_store.update_json("doc.json", append) == {"items": ["first", "racer", "mine"]}
    assert seen == [["first"], ["first", "racer"]]
    assert s3_store.read_json("doc.json") == {"items": ["first", "racer", "mine"]}


def test_an_s3_update_of_an_object_deleted_meanwhile_is_redone(
    s3_store: Store, s3_bucket: str, s3_endpoint: str
) -> None:
    import boto3

    s3_store.write_json("n.json", 5)
    calls: list[int] = []
    other_client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    def increment(value: int) -> int:
        calls.append(value)
        if len(calls) == 1:
            other_client.delete_object(Bucket=s3_bucket, Key="lab/store/n.json")
        return value + 1

    assert s3_store.update_json("n.json", increment, default=0) == 1
    assert calls == [5, 0]
