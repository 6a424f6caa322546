"""Priorities in the activator's queue: the order requests start in, and promotion.

One instance with one slot is held by a long request while CloudEvents of several types
queue behind it, each sent only once the previous one is seen waiting, so that their
arrival order is known. The function reports when it started each one, on the system-wide
monotonic clock, which gives the order the activator let them through.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families
from support.polling import wait_until
from troupe.local.runtime import Runtime

from .conftest import StartRuntime, service, service_status

STAMP = '''
import os, time
from flask import Flask, request
app = Flask(__name__)

@app.route("/", methods=["GET", "POST"])
def index():
    started = time.monotonic()
    if request.args.get("mark"):  # tells the test this request holds the slot now
        open(request.args["mark"], "w").close()
    time.sleep(float(request.args.get("sleep", 0)))
    # A blocker can instead hold its slot until the test releases it by creating a file,
    # so that a slow machine cannot let it finish before the queue behind it is built.
    release = request.args.get("until")
    while release and not os.path.exists(release) and time.monotonic() - started < 60:
        time.sleep(0.01)
    return {"started": started, "id": request.headers.get("ce-id")}
'''
PRIORITIES = "type=dev.example.urgent:high, type=dev.example.routine:low"


def _queued(runtime: Runtime) -> float:
    text = requests.get(f"{runtime.api_url}/metrics", timeout=5, headers=runtime.api_headers,
                         verify=runtime.api_ca_file).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "kn_revision_request_queued"
               and sample.labels.get("kn_revision_name") == "stamp-00001")


def _start(wait_slo: str, start_runtime: StartRuntime) -> tuple[Runtime, str]:
    runtime = start_runtime([service("stamp", "stamp", concurrency=1, annotations={
        "autoscaling.knative.dev/max-scale": "1", "troupe.dev/priority": PRIORITIES,
        "troupe.dev/wait-slo": wait_slo})], functions={"stamp": STAMP})
    url = service_status(runtime, "stamp")["url"]
    # One warm instance, and a known service time: 0.5 s.
    assert requests.get(f"{url}/?sleep=0.5", timeout=30).status_code == 200
    return runtime, url


def _send(pool: ThreadPoolExecutor, url: str, event_id: str, event_type: str,
          sleep: float, until: Path | None = None,
          mark: Path | None = None) -> Future[requests.Response]:
    query = {"sleep": sleep, **({"until": str(until)} if until else {}),
             **({"mark": str(mark)} if mark else {})}
    return pool.submit(requests.post, url, params=query, timeout=90, data=b"{}",
                       headers={"ce-specversion": "1.0", "ce-id": event_id,
                                "ce-source": "/test", "ce-type": event_type,
                                "content-type": "application/json"})


def _started_order(futures: list[Future[requests.Response]]) -> list[str]:
    answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [200] * len(answers)
    return [a.json()["id"] for a in sorted(answers, key=lambda a: a.json()["started"])]


def _state(future: Future[requests.Response]) -> str:
    """What became of a request, for a failure's message."""
    if not future.done():
        return "pending"
    if future.exception() is not None:
        return f"raised {future.exception()!r}"
    answer = future.result()
    return f"{answer.status_code} {answer.text[:200]!r}"


def _hold_the_slot(pool: ThreadPoolExecutor, url: str, mark: Path, sleep: float,
                   until: Path | None = None) -> Future[requests.Response]:
    """Send a blocker and return once it runs. Until then a request sent after it may
    still reach the activator first (threads and connections race), take the slot, and
    leave the blocker waiting in its place."""
    blocker = _send(pool, url, "blocker", "dev.example.other", sleep, until=until, mark=mark)
    wait_until(lambda: mark.exists() or blocker.done(), 20, "the blocker to hold the slot")
    assert not blocker.done(), _state(blocker)
    return blocker


def _queue_behind_a_blocker(runtime: Runtime, url: str, scratch: Path,
                            events: list[tuple[str, str, float]]) -> list[str]:
    """Hold the slot until the test releases it, queue (id, type, sleep) events in order;
    returns the ids in the order they started."""
    release = scratch / "release"
    with ThreadPoolExecutor(len(events) + 1) as pool:
        first = _hold_the_slot(pool, url, scratch / "holding", 0, until=release)
        futures: list[Future[requests.Response]] = []
        for queued, (event_id, event_type, sleep) in enumerate(events, start=1):
            futures.append(_send(pool, url, event_id, event_type, sleep))
            wait_until(lambda queued=queued: _queued(runtime) == queued, 20,
                       lambda event_id=event_id: f"{event_id} to wait in the activator; "
                       f"waiting: {_queued(runtime)}, blocker: {_state(first)}, sent: "
                       f"{[(i, _state(f)) for (i, _, _), f in zip(events, futures, strict=False)]}")
        assert not first.done()
        release.touch()
        assert first.result().status_code == 200
        return _started_order(futures)


def _promotions(runtime: Runtime) -> int:
    [revision] = service_status(runtime, "stamp")["revisions"]
    return int(revision["promotions"])


def test_waiting_requests_start_by_level_then_by_arrival(start_runtime: StartRuntime,
                                                          tmp_path: Path) -> None:
    runtime, url = _start("30s@p95", start_runtime)  # a bound no request comes near

    # The blocker holds the slot until all five are seen waiting, however slow the machine.
    order = _queue_behind_a_blocker(runtime, url, tmp_path, [
        ("low-1", "dev.example.routine", 0.1), ("low-2", "dev.example.routine", 0.1),
        ("high-1", "dev.example.urgent", 0.1), ("normal-1", "dev.example.other", 0.1),
        ("high-2", "dev.example.urgent", 0.1)])

    assert order == ["high-1", "high-2", "normal-1", "low-1", "low-2"]
    assert _promotions(runtime) == 0


def test_a_low_request_is_promoted_on_its_predicted_wait(start_runtime: StartRuntime,
                                                         tmp_path: Path) -> None:
    # Bound 2.5 s, service time 0.5 s. low-1 waits behind a 3 s blocker with high-1 at
    # the top: promoted, it would still wait (1 + 1) x 0.5 s, so its predicted wait
    # reaches the bound once it has waited 1.4 s (less a check interval) -- while the
    # blocker still runs, and long before its wait alone reaches 2.5 s.
    runtime, url = _start("2500ms@p95", start_runtime)
    with ThreadPoolExecutor(4) as pool:
        blocker = _hold_the_slot(pool, url, tmp_path / "holding", 3.0)
        low = _send(pool, url, "low-1", "dev.example.routine", 0.5)
        wait_until(lambda: _queued(runtime) == 1, 10, "low-1 to wait")
        low_queued = time.monotonic()
        high = _send(pool, url, "high-1", "dev.example.urgent", 0.5)
        wait_until(lambda: _queued(runtime) == 2, 10, "high-1 to wait")

        wait_until(lambda: _promotions(runtime) == 1, 10, "low-1 to be promoted")
        promoted_after = time.monotonic() - low_queued
        assert not blocker.done()
        assert promoted_after < 2.3, promoted_after  # its predicted wait, not its wait
        # A high request arriving after the promotion queues behind low-1; high-1, which
        # was already waiting, keeps its place.
        later = _send(pool, url, "high-2", "dev.example.urgent", 0.5)
        wait_until(lambda: _queued(runtime) == 3, 10, "high-2 to wait")

        assert blocker.result().status_code == 200
        assert _started_order([low, high, later]) == ["high-1", "low-1", "high-2"]
