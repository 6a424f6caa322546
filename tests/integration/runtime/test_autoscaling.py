"""The queueing and HPA autoscaling classes, on real instances behind a real front.

Open-loop Poisson traffic for a few seconds: each class must scale up under it, come back
down after it, and never turn back up once it started down (no flapping).
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

import requests
from support.polling import wait_until
from troupe.local.runtime import Runtime

from .conftest import StartRuntime, service, service_status

# Spends `cpu` seconds of CPU per request, so that the HPA class has something to see.
SPIN = '''
import time
from flask import Flask, request
app = Flask(__name__)

@app.route("/", methods=["GET", "POST"])
def index():
    end = time.thread_time() + float(request.args.get("cpu", 0))
    while time.thread_time() < end:
        pass
    return "spun\\n"
'''


def _revision(runtime: Runtime, name: str) -> dict[str, Any]:
    [revision] = service_status(runtime, name)["revisions"]
    return revision


def _open_loop(url: str, rate: float, seconds: float, seed: int = 5) -> list[int]:
    """Poisson arrivals at `rate` for `seconds`, each sent at its own time whether or not
    earlier ones were answered (pacing the arrivals is the load, not a synchronisation)."""
    rng = random.Random(seed)
    due = start = time.monotonic()
    with ThreadPoolExecutor(48) as pool:
        futures = []
        while due - start < seconds:
            due += rng.expovariate(rate)
            time.sleep(max(0.0, due - time.monotonic()))
            futures.append(pool.submit(requests.get, url, timeout=60))
        return [f.result().status_code for f in futures]


def _in_background(work: Any) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    return thread, result


def _never_up_after_down(counts: list[int]) -> bool:
    falling = False
    for before, after in pairwise(counts):
        if after < before:
            falling = True
        elif after > before and falling:
            return False
    return True


def test_the_queueing_class_scales_to_the_model_and_back_without_flapping(
        start_runtime: StartRuntime) -> None:
    runtime = start_runtime([service("echo", concurrency=1, annotations={
        "autoscaling.knative.dev/class": "queueing.troupe.dev",
        "troupe.dev/wait-slo": "50ms@p95",
        "autoscaling.knative.dev/window": "6s",
        "autoscaling.knative.dev/scale-down-delay": "2s",
        "autoscaling.knative.dev/scale-to-zero-pod-retention-period": "2s",
        "autoscaling.knative.dev/max-scale": "4"})])
    url = service_status(runtime, "echo")["url"]
    assert requests.get(url, timeout=30).status_code == 200  # warm: one instance

    # 12 requests/s of 0.1 s: 1.2 Erlangs, which one slot cannot carry and the SLO
    # wants well spread.
    load, statuses = _in_background(lambda: _open_loop(f"{url}/?sleep=0.1", 12, 6))
    wait_until(lambda: (_revision(runtime, "echo")["desired"] or 0) >= 2, 15,
               "the queueing class to scale up under load")
    load.join()

    assert statuses == [[200] * len(statuses[0])]
    wait_until(lambda: service_status(runtime, "echo")["instances"] == 0, 30,
               "the revision to scale back to zero after the load")
    revision = _revision(runtime, "echo")
    counts = [count for _, count in revision["decisions"]]
    assert revision["autoscaler"] == "queueing.troupe.dev"
    assert max(counts) <= 4 and counts[-1] == 0
    assert _never_up_after_down(counts), counts


def test_the_hpa_class_scales_on_measured_cpu_and_keeps_one_instance(
        start_runtime: StartRuntime) -> None:
    runtime = start_runtime([service("spin", "spin", concurrency=1, annotations={
        "autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/metric": "cpu",
        "autoscaling.knative.dev/target": "15",
        "autoscaling.knative.dev/scale-down-delay": "3s",
        "autoscaling.knative.dev/max-scale": "4"})], functions={"spin": SPIN})
    # Knative's HPA class never scales to zero: one instance runs before any request.
    wait_until(lambda: service_status(runtime, "spin")["instances"] == 1, 30,
               "the HPA class's first instance")
    url = service_status(runtime, "spin")["url"]

    # 8 requests/s of 40 ms of CPU: about a third of a core, twice the 15% target.
    load, statuses = _in_background(lambda: _open_loop(f"{url}/?cpu=0.04", 8, 8))
    wait_until(lambda: (_revision(runtime, "spin")["desired"] or 0) >= 2, 15,
               "the HPA class to scale up on CPU")
    load.join()

    assert statuses == [[200] * len(statuses[0])]
    wait_until(lambda: _revision(runtime, "spin")["desired"] == 1
               and service_status(runtime, "spin")["instances"] == 1, 30,
               "the HPA class to scale back down to one instance")
    counts = [count for _, count in _revision(runtime, "spin")["decisions"]]
    assert _never_up_after_down(counts), counts
