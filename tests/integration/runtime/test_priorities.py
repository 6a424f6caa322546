"""Priorities in the activator's queue: the order requests start in, and promotion.

One instance with one slot is held by a long request while CloudEvents of several types
queue behind it, each sent only once the previous one is seen waiting, so that their
arrival order is known. The function reports when it started each one, on the system-wide
monotonic clock, which gives the order the activator let them through.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import requests
from prometheus_client.parser import text_string_to_metric_families
from support.polling import wait_until
from troupe.local.runtime import Runtime

from .conftest import StartRuntime, service, service_status

STAMP = '''
import time
from flask import Flask, request
app = Flask(__name__)

@app.route("/", methods=["GET", "POST"])
def index():
    started = time.monotonic()
    time.sleep(float(request.args.get("sleep", 0)))
    return {"started": started, "id": request.headers.get("ce-id")}
'''
PRIORITIES = "type=dev.example.urgent:high, type=dev.example.routine:low"


def _queued(runtime: Runtime) -> float:
    text = requests.get(f"{runtime.api_url}/metrics", timeout=5).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "kn_revision_request_queued"
               and sample.labels.get("kn_revision_name") == "stamp-00001")


def _start(wait_slo: str, start_runtime: StartRuntime) -> tuple[Runtime, str]:
    runtime = start_runtime([service("stamp", "stamp", concurrency=1, annotations={
        "autoscaling.knative.dev/max-scale": "1", "troupe.dev/priority": PRIORITIES,
        "troupe.dev/wait-slo": wait_slo})], functions={"stamp": STAMP})
    url = service_status(runtime, "stamp")["url"]
    assert requests.get(url, timeout=30).status_code == 200  # one warm instance
    return runtime, url


def _queue_behind_a_blocker(runtime: Runtime, url: str, blocker: float,
                            events: list[tuple[str, str, float]]) -> list[str]:
    """Hold the slot for `blocker` s, queue (id, type, sleep) events in order; returns
    the ids in the order they started."""
    with ThreadPoolExecutor(len(events) + 1) as pool:
        first = pool.submit(requests.post, f"{url}/?sleep={blocker}", timeout=60,
                            headers={"ce-id": "blocker"})
        futures: list[Future[requests.Response]] = []
        for queued, (event_id, event_type, sleep) in enumerate(events, start=1):
            futures.append(pool.submit(
                requests.post, f"{url}/?sleep={sleep}", timeout=60, data=b"{}",
                headers={"ce-specversion": "1.0", "ce-id": event_id, "ce-source": "/test",
                         "ce-type": event_type, "content-type": "application/json"}))
            wait_until(lambda queued=queued: _queued(runtime) == queued, 10,
                       f"{event_id} to wait in the activator")
        assert first.result().status_code == 200
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [200] * len(events)
    return [a.json()["id"] for a in sorted(answers, key=lambda a: a.json()["started"])]


def test_waiting_requests_start_by_level_then_by_arrival(start_runtime: StartRuntime) -> None:
    runtime, url = _start("30s@p95", start_runtime)  # a bound no request comes near

    order = _queue_behind_a_blocker(runtime, url, 1.0, [
        ("low-1", "dev.example.routine", 0.1), ("low-2", "dev.example.routine", 0.1),
        ("high-1", "dev.example.urgent", 0.1), ("normal-1", "dev.example.other", 0.1),
        ("high-2", "dev.example.urgent", 0.1)])

    assert order == ["high-1", "high-2", "normal-1", "low-1", "low-2"]
    [revision] = service_status(runtime, "stamp")["revisions"]
    assert revision["promotions"] == 0


def test_a_low_request_is_promoted_on_its_predicted_wait(start_runtime: StartRuntime) -> None:
    # Bound 2.6 s. The low request joins first; the blocker holds the slot for 2 s, then
    # high-1 takes it (the low one is not yet due). Once the blocker is served the mean
    # service time is about 1 s (it and the warm-up), so the low one's predicted wait --
    # 2 s waited, plus about 1 s more if promoted -- passes the bound: it is promoted and
    # goes before the later highs. Its wait alone would reach 2.6 s only after high-2 had
    # started, at 2.5 s.
    runtime, url = _start("2600ms@p95", start_runtime)

    order = _queue_behind_a_blocker(runtime, url, 2.0, [
        ("low-1", "dev.example.routine", 0.5), ("high-1", "dev.example.urgent", 0.5),
        ("high-2", "dev.example.urgent", 0.5), ("high-3", "dev.example.urgent", 0.5)])

    assert order == ["high-1", "low-1", "high-2", "high-3"]
    [revision] = service_status(runtime, "stamp")["revisions"]
    assert revision["promotions"] == 1
