"""Open-loop load for bench/capacity.py, and the waits its requests met.

Arrivals are scheduled in advance (Poisson, or piecewise Poisson for bursts) and each is
sent at its time by one of many workers holding keep-alive connections, whether or not
earlier requests were answered: the load does not slow down when the service does.

The wait a request met is measured on the system-wide monotonic clock: the worker notes
when it sent the request, and the function returns when its handler started. Their
difference is the wait plus the cost of getting a request from the client through the
front to the handler, which `overhead` measures beforehand with requests sent one at a
time (so that none waits) and which is subtracted.
"""

from __future__ import annotations

import http.client
import queue
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from troupe.local.runtime import Runtime, RuntimeOptions
from troupe.local.serving.controller import ServingSettings

# Spends `cpu` seconds of CPU (for the HPA class to see), then sleeps `sleep` seconds, and
# answers with the monotonic time at which it started.
FUNCTION = '''
import time
from flask import Flask, request
app = Flask(__name__)

@app.route("/", methods=["GET", "POST"])
def index():
    started = time.monotonic()
    end = time.thread_time() + float(request.args.get("cpu", 0))
    while time.thread_time() < end:
        pass
    time.sleep(float(request.args.get("sleep", 0)))
    return repr(started)
'''


@dataclass(frozen=True)
class Arrival:
    at: float  # seconds after the load starts
    sleep: float  # the function's service time, apart from `cpu`
    cpu: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    label: str = ""


@dataclass(frozen=True)
class Outcome:
    arrival: Arrival
    scheduled: float  # monotonic
    sent: float  # monotonic
    started: float | None  # monotonic, in the function's handler
    status: int

    def wait(self, overhead: float) -> float | None:
        if self.started is None:
            return None
        return max(self.started - self.sent - overhead, 0.0)


def poisson(phases: Sequence[tuple[float, float]], rng: random.Random) -> list[float]:
    """Arrival times for consecutive (seconds, rate) phases; memorylessness lets each
    phase start afresh at its boundary."""
    times: list[float] = []
    start = 0.0
    for seconds, rate in phases:
        at = start + rng.expovariate(rate)
        while at < start + seconds:
            times.append(at)
            at += rng.expovariate(rate)
        start += seconds
    return times


def service_manifest(name: str, annotations: dict[str, str], *,
                     concurrency: int = 1) -> dict[str, Any]:
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": name},
            "spec": {"template": {"metadata": {"annotations": annotations},
                                  "spec": {"containerConcurrency": concurrency,
                                           "containers": [{"image": "bench"}]}}}}


@contextmanager
def runtime_with(services: list[dict[str, Any]], *,
                 grace_period: float = 30.0) -> Iterator[Runtime]:
    """A serving-only runtime (no Kafka, no Prometheus) running `services`."""
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as folder:
        project = Path(folder)
        (project / "functions" / "bench").mkdir(parents=True)
        (project / "functions" / "bench" / "main.py").write_text(FUNCTION)
        (project / "knative").mkdir()
        (project / "knative" / "300-bench.yaml").write_text(yaml.safe_dump_all(services))
        (project / "eventing").mkdir()
        runtime = Runtime(RuntimeOptions(
            project, data_plane=False, prometheus=False,
            serving=ServingSettings(grace_period=grace_period, activation_timeout=300)),
            say=lambda _: None)
        runtime.start()
        try:
            yield runtime
        finally:
            runtime.stop()


def url_of(runtime: Runtime, service: str) -> str:
    assert runtime.serving is not None
    url = runtime.serving.url_of("troupe", service)
    if url is None:
        raise RuntimeError(f"the runtime has no service {service}")
    return url


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def overhead(url: str, requests: int = 25) -> float:
    """The median time from sending a request to its handler starting, when none waits:
    requests 50 ms apart on one keep-alive connection (the first, which connects, aside)."""
    arrivals = [Arrival(at=i * 0.05, sleep=0.0) for i in range(requests + 1)]
    outcomes = drive(url, arrivals, workers=1)[1:]
    if any(o.started is None for o in outcomes):
        raise RuntimeError(f"{url} failed requests while calibrating")
    return statistics.median(o.started - o.sent for o in outcomes if o.started is not None)


def drive(url: str, arrivals: Sequence[Arrival], *, workers: int = 64) -> list[Outcome]:
    """Send every arrival at its time; returns the outcomes in arrival order."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    work: queue.Queue[tuple[int, Arrival, float] | None] = queue.Queue()
    outcomes: list[Outcome | None] = [None] * len(arrivals)

    def worker() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=300)
        while (item := work.get()) is not None:
            index, arrival, scheduled = item
            query = f"/?sleep={arrival.sleep:.6f}&cpu={arrival.cpu:.6f}"
            sent = time.monotonic()
            try:
                connection.request("GET", query, headers=dict(arrival.headers))
                response = connection.getresponse()
                body = response.read()
                started = float(body) if response.status == 200 else None
                outcomes[index] = Outcome(arrival, scheduled, sent, started, response.status)
            except (OSError, http.client.HTTPException, ValueError):
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=300)
                outcomes[index] = Outcome(arrival, scheduled, sent, None, 0)
        connection.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    start = time.monotonic()
    for index, arrival in enumerate(arrivals):
        due = start + arrival.at
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # pacing the arrivals is the load itself
        work.put((index, arrival, due))
    for _ in threads:
        work.put(None)
    for thread in threads:
        thread.join()
    return [outcome for outcome in outcomes if outcome is not None]


def lateness(outcomes: Sequence[Outcome]) -> float:
    """How far behind its schedule the generator sent a request, at worst (seconds)."""
    return max((o.sent - o.scheduled for o in outcomes), default=0.0)
